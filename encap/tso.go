package encap

import "encoding/binary"

// maxIPLen is the largest IP packet handled: the most the 16-bit IPv4 total
// length field can say. IPv6 superframes are held to it too (the kernel's
// default GSO/GRO size is 64 KiB); jumbograms and BIG TCP are not supported.
const maxIPLen = 0xffff

// maxTags is how many VLAN tags (802.1Q, or 802.1ad outside 802.1Q)
// skipTags skips.
const maxTags = 2

// locateIP finds the transport header of an Ethernet frame carrying an
// unfragmented IPv4 packet (options allowed) or an IPv6 packet without
// extension headers, with transport protocol proto, whose IP length field
// accounts for exactly the rest of the frame. With tagged, up to maxTags
// VLAN tags may precede the EtherType; otherwise the frame must be
// untagged. It returns the offsets of the IP and transport headers.
func locateIP(frame []byte, tagged bool, proto uint8) (l3Off, l4Off int, v6 bool, err error) {
	if len(frame) < EthernetHeaderLen {
		return 0, 0, false, ErrShort
	}
	l3Off, et := EthernetHeaderLen, Ethernet(frame).EtherType()
	if tagged {
		var ok bool
		if l3Off, et, ok = skipTags(frame); !ok {
			return 0, 0, false, ErrShort
		}
	}
	ip := frame[l3Off:]
	switch et {
	case EtherTypeIPv4:
		if len(ip) < IPv4MinHeaderLen {
			return 0, 0, false, ErrShort
		}
		h := IPv4(ip)
		if h.Version() != 4 || h.HeaderLen() < IPv4MinHeaderLen {
			return 0, 0, false, ErrMalformed
		}
		if len(ip) < h.HeaderLen() {
			return 0, 0, false, ErrShort
		}
		if h.Protocol() != proto {
			return 0, 0, false, ErrUnsupported
		}
		if h.IsFragment() || int(h.TotalLength()) != len(ip) {
			return 0, 0, false, ErrMalformed
		}
		return l3Off, l3Off + h.HeaderLen(), false, nil
	case EtherTypeIPv6:
		if len(ip) < IPv6HeaderLen {
			return 0, 0, false, ErrShort
		}
		h := IPv6(ip)
		if h.Version() != 6 {
			return 0, 0, false, ErrMalformed
		}
		if h.NextHeader() != proto {
			return 0, 0, false, ErrUnsupported
		}
		if int(h.PayloadLength()) != len(ip)-IPv6HeaderLen {
			return 0, 0, false, ErrMalformed
		}
		return l3Off, l3Off + IPv6HeaderLen, true, nil
	}
	return 0, 0, false, ErrUnsupported
}

// locateTCP is locateIP for TCP; it also returns the length of all
// headers, TCP options included.
func locateTCP(frame []byte, tagged bool) (l3Off, tcpOff, hdrLen int, v6 bool, err error) {
	l3Off, tcpOff, v6, err = locateIP(frame, tagged, ProtocolTCP)
	if err != nil {
		return 0, 0, 0, false, err
	}
	if len(frame) < tcpOff+TCPMinHeaderLen {
		return 0, 0, 0, false, ErrShort
	}
	th := TCP(frame[tcpOff:])
	if th.DataOffset() < TCPMinHeaderLen {
		return 0, 0, 0, false, ErrMalformed
	}
	hdrLen = tcpOff + th.DataOffset()
	if len(frame) < hdrLen {
		return 0, 0, 0, false, ErrShort
	}
	return l3Off, tcpOff, hdrLen, v6, nil
}

// skipTags returns the offset and EtherType of what follows the Ethernet
// header of frame and up to maxTags VLAN tags; ok is false if the frame
// ends inside a tag. frame holds at least an Ethernet header.
func skipTags(frame []byte) (off int, et uint16, ok bool) {
	off, et = EthernetHeaderLen, Ethernet(frame).EtherType()
	for tags := 0; tags < maxTags && (et == EtherTypeVLAN || et == EtherTypeQinQ); tags++ {
		if len(frame) < off+VLANTagLen {
			return 0, 0, false
		}
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += VLANTagLen
	}
	return off, et, true
}

// setIPLength sets the length field of the IP header at h[l3Off:] for a
// transport header at h[l4Off:] followed by l4Len transport bytes in all
// (IPv6: the payload length, no extension headers; IPv4: the total length,
// and the header checksum, which covers it and must be recomputed).
func setIPLength(h []byte, l3Off, l4Off, l4Len int, v6 bool) {
	if v6 {
		IPv6(h[l3Off:]).SetPayloadLength(uint16(l4Len))
		return
	}
	ip := IPv4(h[l3Off:])
	ip.SetTotalLength(uint16(l4Off - l3Off + l4Len))
	ip.UpdateChecksum()
}

// ipSrcDst returns the source and destination address of the IP header
// at frame[l3Off:].
func ipSrcDst(frame []byte, l3Off int, v6 bool) (src, dst []byte) {
	if v6 {
		h := IPv6(frame[l3Off:])
		return h.Src(), h.Dst()
	}
	h := IPv4(frame[l3Off:])
	return h.Src(), h.Dst()
}

// TCPSuper describes a TSO superframe, parsed once by ParseTCPSuper, so
// that each of its segments can be produced with Segment. It holds offsets
// and values, not the frame.
type TCPSuper struct {
	l3Off   int    // offset of the IP header in the frame
	tcpOff  int    // offset of the TCP header in the frame
	hdrLen  int    // Ethernet + IP + TCP header bytes
	payload int    // payload bytes of the whole superframe
	mss     int    // payload bytes per segment
	addrSum uint16 // pseudo-header sum without the length
	id      uint16 // IPv4 ID of the first segment
	seq     uint32 // sequence number of the first segment
	flags   uint8  // TCP flags of the superframe
	v6      bool
}

// ParseTCPSuper validates a TSO superframe as the kernel hands it to a TAP
// with IFF_VNET_HDR and GSO_TCPV4/GSO_TCPV6: an Ethernet frame, untagged or
// with up to two VLAN tags (a TCP sender on a VLAN device behind the
// bridge), with IPv4 (options allowed) or IPv6 (no extension headers), TCP (options
// allowed) and any payload, whose IPv4 total length or IPv6 payload length
// covers the whole frame. mss is the virtio-net gso_size. The IPv4 header
// checksum and TCP checksum fields are ignored: the kernel leaves the first
// stale and the second holding only a pseudo-header sum.
//
// Errors: ErrShort if the frame ends inside a header; ErrUnsupported for
// other EtherTypes (more than two tags included), other transports and IPv6
// extension headers; ErrMalformed for a version that contradicts the
// EtherType, impossible header lengths, a fragment, IP lengths that do not
// match len(frame), or mss < 1.
func ParseTCPSuper(frame []byte, mss int) (TCPSuper, error) {
	l3Off, tcpOff, hdrLen, v6, err := locateTCP(frame, true)
	if err != nil {
		return TCPSuper{}, err
	}
	if mss < 1 {
		return TCPSuper{}, ErrMalformed
	}
	s := TCPSuper{
		l3Off:   l3Off,
		tcpOff:  tcpOff,
		hdrLen:  hdrLen,
		payload: len(frame) - hdrLen,
		mss:     min(mss, maxIPLen), // no segment is longer; keeps offsets small
		seq:     TCP(frame[tcpOff:]).Seq(),
		flags:   TCP(frame[tcpOff:]).Flags(),
		v6:      v6,
	}
	if !v6 {
		s.id = IPv4(frame[l3Off:]).ID()
	}
	src, dst := ipSrcDst(frame, l3Off, v6)
	s.addrSum = PseudoHeaderChecksum(ProtocolTCP, src, dst, 0)
	return s, nil
}

// SetMSS changes the payload bytes per segment, for a caller that learns
// the size it needs only from the headers (HeaderLen): a receiver cutting
// a superframe to its MTU, a sender cutting one smaller than its sender
// asked. It returns ErrMalformed, changing nothing, if mss < 1.
func (s *TCPSuper) SetMSS(mss int) error {
	if mss < 1 {
		return ErrMalformed
	}
	s.mss = min(mss, maxIPLen)
	return nil
}

// HeaderLen returns the number of Ethernet, IP and TCP header bytes that
// Segment writes for every segment.
func (s *TCPSuper) HeaderLen() int { return s.hdrLen }

// Segments returns the number of segments: the payload divided by the MSS,
// rounded up. A superframe without payload is one segment without payload.
func (s *TCPSuper) Segments() int {
	if s.payload == 0 {
		return 1
	}
	return (s.payload + s.mss - 1) / s.mss
}

// Segment writes the headers of segment i (0 <= i < Segments()) into
// hdr[:HeaderLen()] and returns the segment's payload, a subslice of frame
// (not a copy). frame must be the frame s was parsed from, unchanged; hdr
// must not overlap it. It panics if i is out of range or hdr is shorter
// than HeaderLen().
//
// The headers are those of the kernel's TCP segmentation (tcp_gso_segment):
// IPv4 total length, ID = first ID + i (wrapping) and a fresh header
// checksum, or IPv6 payload length; TCP sequence number = first + i×MSS,
// FIN and PSH only on the last segment, CWR only on the first, and a
// complete checksum over pseudo-header, TCP header and payload, valid on
// the wire. Everything else (DF, TTL, options) is copied.
func (s *TCPSuper) Segment(i int, frame, hdr []byte) (payload []byte) {
	last := s.Segments() - 1
	if i < 0 || i > last {
		panic("encap: segment index out of range")
	}
	start := s.hdrLen + i*s.mss
	payload = frame[start : start+min(s.mss, s.payload-i*s.mss)]
	h := hdr[:s.hdrLen]
	copy(h, frame[:s.hdrLen])

	if !s.v6 {
		IPv4(h[s.l3Off:]).SetID(s.id + uint16(i))
	}
	tcpLen := s.hdrLen - s.tcpOff + len(payload)
	setIPLength(h, s.l3Off, s.tcpOff, tcpLen, s.v6)

	th := TCP(h[s.tcpOff:])
	th.SetSeq(s.seq + uint32(i*s.mss))
	f := s.flags
	if i != 0 {
		f &^= TCPFlagCWR
	}
	if i != last {
		f &^= TCPFlagFIN | TCPFlagPSH
	}
	th.SetFlags(f)
	th.SetChecksum(0)
	sum := Checksum(th, add16(s.addrSum, uint16(tcpLen))) // header length is a multiple of 4
	th.SetChecksum(^Checksum(payload, sum))
	return payload
}

// CsumState says what the TCP checksum field of a received superframe
// holds; see TCPSuper.Verify.
type CsumState uint8

const (
	// CsumValid: the checksum verifies over the pseudo-header, the TCP
	// header and the whole payload.
	CsumValid CsumState = iota
	// CsumPartial: the field holds the pseudo-header sum, left for the
	// receiver to complete by a Linux sender whose device claims
	// checksum offload (see RepairPartialChecksum); the payload is not
	// covered.
	CsumPartial
	// CsumBad: neither, or the IPv4 header checksum fails: the frame was
	// corrupted on the way.
	CsumBad
)

// Verify checks the checksums of the superframe s was parsed from, before
// a receiver splits it and writes every segment a fresh, valid checksum,
// which would otherwise hide any corruption: the IPv4 header checksum (a
// Linux sender completes it even for a superframe it leaves partial), and
// the TCP checksum over the whole superframe, unless the field holds the
// pseudo-header sum (CsumPartial). frame must be unchanged since
// ParseTCPSuper.
func (s *TCPSuper) Verify(frame []byte) CsumState {
	if !s.v6 && !IPv4(frame[s.l3Off:]).ChecksumValid() {
		return CsumBad
	}
	th := TCP(frame[s.tcpOff:])
	ph := add16(s.addrSum, uint16(len(th)))
	switch {
	case th.Checksum() == ph:
		return CsumPartial
	case Checksum(th, ph) == 0xffff:
		return CsumValid
	}
	return CsumBad
}

// CompleteChecksum finishes the checksum of a frame the kernel handed over
// with VIRTIO_NET_HDR_F_NEEDS_CSUM and no GSO: the 16-bit field at
// csumStart+csumOffset (offsets from the start of the frame, as a TAP
// reports them) holds the pseudo-header sum; the ones'-complement sum of
// frame[csumStart:] starting from it is complemented and stored there. As
// in the kernel's skb_checksum_help, a result of 0 is stored as 0xffff,
// which UDP requires (0 means "no checksum") and TCP treats as equal.
// It returns ErrMalformed, and changes nothing, if the field does not lie
// within frame or csumOffset is odd (the Internet checksum fields of TCP
// and UDP are 16-bit words at even offsets, and the sum is only right for
// those).
func CompleteChecksum(frame []byte, csumStart, csumOffset int) error {
	if csumStart < 0 || csumOffset < 0 || csumOffset%2 != 0 || csumStart > len(frame) || csumOffset > len(frame)-csumStart-2 {
		return ErrMalformed
	}
	at := csumStart + csumOffset
	initial := binary.BigEndian.Uint16(frame[at:])
	frame[at], frame[at+1] = 0, 0
	sum := ^Checksum(frame[csumStart:], initial)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(frame[at:], sum)
	return nil
}
