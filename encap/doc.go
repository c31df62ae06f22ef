// Package encap holds vxswitch's wire formats as pure functions over
// caller-owned byte slices: the VXLAN header (RFC 7348), views of the
// Ethernet, ARP, IPv4, IPv6, TCP, UDP and ICMPv6 headers, the Internet
// checksum (RFC 1071), splitting a TSO superframe into segments, coalescing
// received segments back into a superframe, the outer UDP source-port hash,
// and what a neighbour proxy needs: checking IPv6 Neighbor Solicitations and
// writing ARP replies and Neighbor Advertisements (see [ParseNeighborSolicit]).
//
// Nothing here does I/O, allocates, or keeps state between calls other than
// in values the caller owns, so every function may be called from any number
// of goroutines at once as long as they do not share the byte slices they
// write.
//
// # Views
//
// [Ethernet], [ARP], [IPv4], [IPv6], [TCP], [UDP], [ICMPv6],
// [NeighborSolicit] and [VXLAN] are byte-slice types in the style of
// gVisor's pkg/tcpip/header: converting a slice is free and every accessor
// reads or writes the bytes in place. Accessors do not check lengths; a
// caller first checks the slice is at least as long as the header (the
// Parse functions in this package do that for the datapath) and otherwise
// gets the usual index-out-of-range panic. The Put functions ([PutVXLAN],
// [PutEthernet], [PutARP], [PutIPv6], [PutNeighborAdvert]) write a whole
// header into the caller's slice and panic if it is too short.
//
// # Transmit: splitting a TSO superframe
//
// A TAP opened with IFF_VNET_HDR and TSO offloads returns a virtio-net header
// and a frame of up to 64 KiB. For GSO_TCPV4/GSO_TCPV6 the datapath parses it
// once and writes each segment's headers into its scratch area, right behind
// the VXLAN header, while the payload stays where it was read:
//
//	s, err := encap.ParseTCPSuper(frame, int(vnet.GSOSize))
//	if err != nil { drop(err); continue }
//	for i := range s.Segments() {
//		hdr := scratch[i][encap.VXLANHeaderLen:] // outer headers go in front
//		encap.PutVXLAN(scratch[i], vni)
//		payload := s.Segment(i, frame, hdr)
//		iov = append(iov, scratch[i][:encap.VXLANHeaderLen+s.HeaderLen()], payload)
//	}
//	// one sendmsg with UDP_SEGMENT = VXLANHeaderLen+s.HeaderLen()+mss
//
// A frame without GSO but with VIRTIO_NET_HDR_F_NEEDS_CSUM is finished with
// [CompleteChecksum] before it is encapsulated.
//
// # Receive: coalescing segments
//
// The receive loop keeps one [TCPRun] and a list of payload slices. Each
// decapsulated inner frame is parsed with [ParseTCPSeg]; [TCPRun.Append]
// says whether it continues the run, and [TCPRun.Finish] rewrites the first
// frame's headers into those of the superframe and returns what the GSO
// virtio-net header needs. Payloads are never copied: the superframe is the
// first frame followed by the payloads of the others, written with writev.
// ExampleTCPRun shows the whole loop.
package encap

import "errors"

// Sentinel errors returned by the parsers; test for them with errors.Is.
// They are never wrapped here, so returning one does not allocate.
var (
	// ErrShort means the buffer ends before a header it holds or declares.
	ErrShort = errors.New("encap: buffer too short for header")
	// ErrBadFlags means a VXLAN header's flags byte is not exactly 0x08.
	ErrBadFlags = errors.New("encap: VXLAN flags are not 0x08")
	// ErrReserved means a reserved bit of a VXLAN header is set.
	ErrReserved = errors.New("encap: VXLAN reserved bits set")
	// ErrUnsupported means the frame is well formed but of a kind this
	// package does not handle (for example VLAN tags, IPv6 extension
	// headers, or a transport other than TCP).
	ErrUnsupported = errors.New("encap: unsupported frame")
	// ErrMalformed means a field holds an impossible value or lengths
	// disagree with each other or with the buffer.
	ErrMalformed = errors.New("encap: malformed frame")
)
