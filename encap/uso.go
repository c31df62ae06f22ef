package encap

import "bytes"

// UDP segmentation offload (USO): the UDP counterparts of TCPSuper (split
// a superframe a TAP hands over into datagrams) and of TCPSeg/TCPRun
// (coalesce received datagrams of one flow into a superframe for a TAP).
// Unlike TCP segments, UDP datagrams are messages: a superframe is cut at
// exactly its gso_size, never smaller, and a run only joins datagrams of
// one size, so that the receiving kernel's segmentation gives back the
// same datagrams.

// UDPSuper describes a USO superframe, parsed once by ParseUDPSuper, so
// that each of its datagrams can be produced with Segment. It holds
// offsets and values, not the frame.
type UDPSuper struct {
	l3Off   int    // offset of the IP header in the frame
	udpOff  int    // offset of the UDP header in the frame
	payload int    // payload bytes of the whole superframe
	size    int    // payload bytes per datagram (gso_size)
	addrSum uint16 // pseudo-header sum without the length
	id      uint16 // IPv4 ID of the first datagram
	v6      bool
}

// ParseUDPSuper validates a USO superframe as the kernel hands it to a TAP
// with IFF_VNET_HDR and GSO_UDP_L4: an Ethernet frame, untagged or with up
// to two VLAN tags, with IPv4 (options allowed) or IPv6 (no extension
// headers) and UDP, whose IP length covers the whole frame. size is the
// virtio-net gso_size. The IPv4 header checksum and the UDP length and
// checksum fields are ignored: the kernel leaves the first stale, and the
// last two describe the superframe with a pseudo-header sum.
//
// Errors: ErrShort if the frame ends inside a header; ErrUnsupported for
// other EtherTypes, transports and IPv6 extension headers; ErrMalformed
// for inconsistent headers or lengths, a fragment, size < 1, or a
// superframe whose datagrams would not fit the 16-bit UDP length.
func ParseUDPSuper(frame []byte, size int) (UDPSuper, error) {
	l3Off, udpOff, v6, err := locateIP(frame, true, ProtocolUDP)
	if err != nil {
		return UDPSuper{}, err
	}
	if len(frame) < udpOff+UDPHeaderLen {
		return UDPSuper{}, ErrShort
	}
	if size < 1 || size > maxIPLen-UDPHeaderLen {
		return UDPSuper{}, ErrMalformed
	}
	s := UDPSuper{
		l3Off:   l3Off,
		udpOff:  udpOff,
		payload: len(frame) - udpOff - UDPHeaderLen,
		size:    size,
		v6:      v6,
	}
	if !v6 {
		s.id = IPv4(frame[l3Off:]).ID()
	}
	src, dst := ipSrcDst(frame, l3Off, v6)
	s.addrSum = PseudoHeaderChecksum(ProtocolUDP, src, dst, 0)
	return s, nil
}

// HeaderLen returns the number of Ethernet, IP and UDP header bytes that
// Segment writes for every datagram.
func (s *UDPSuper) HeaderLen() int { return s.udpOff + UDPHeaderLen }

// Segments returns the number of datagrams: the payload divided by the
// size, rounded up. A superframe without payload is one empty datagram.
func (s *UDPSuper) Segments() int {
	if s.payload == 0 {
		return 1
	}
	return (s.payload + s.size - 1) / s.size
}

// Segment writes the headers of datagram i (0 <= i < Segments()) into
// hdr[:HeaderLen()] and returns its payload, a subslice of frame (not a
// copy). frame must be the frame s was parsed from, unchanged; hdr must not
// overlap it. It panics if i is out of range or hdr is shorter than
// HeaderLen().
//
// The headers are those of the kernel's UDP segmentation
// (__udp_gso_segment): IPv4 total length, ID = first ID + i (wrapping) and
// a fresh header checksum, or IPv6 payload length; UDP length; and a
// complete UDP checksum over pseudo-header, header and payload (0 sent as
// 0xffff), valid on the wire. Everything else is copied.
func (s *UDPSuper) Segment(i int, frame, hdr []byte) (payload []byte) {
	if i < 0 || i >= s.Segments() {
		panic("encap: segment index out of range")
	}
	hl := s.HeaderLen()
	start := hl + i*s.size
	payload = frame[start : start+min(s.size, s.payload-i*s.size)]
	h := hdr[:hl]
	copy(h, frame[:hl])
	udpLen := UDPHeaderLen + len(payload)
	if !s.v6 {
		IPv4(h[s.l3Off:]).SetID(s.id + uint16(i))
	}
	setIPLength(h, s.l3Off, s.udpOff, udpLen, s.v6)
	uh := UDP(h[s.udpOff:])
	uh.SetLength(uint16(udpLen))
	uh.SetChecksum(0)
	sum := ^Checksum(payload, Checksum(uh, add16(s.addrSum, uint16(udpLen))))
	if sum == 0 {
		sum = 0xffff
	}
	uh.SetChecksum(sum)
	return payload
}

// UDPSeg is a parsed UDP datagram that may be coalesced with others of its
// flow; see ParseUDPSeg. It holds offsets and values, not the frame.
type UDPSeg struct {
	udpOff int    // offset of the UDP header in the frame
	payLen int    // payload bytes
	id     uint16 // IPv4 ID
	v6     bool
}

// HeaderLen returns the number of Ethernet, IP and UDP header bytes; the
// payload is frame[HeaderLen():].
func (s UDPSeg) HeaderLen() int { return s.udpOff + UDPHeaderLen }

// ParseUDPSeg reports whether frame, a decapsulated inner Ethernet frame,
// is a UDP datagram that may be coalesced, and returns its description.
// It refuses: anything but untagged IPv4 or IPv6 carrying UDP, IPv4 with
// options or fragmented, IPv6 with extension headers, no payload, IP or
// UDP lengths that disagree with len(frame), and — because the superframe
// is handed on with NEEDS_CSUM, which the receiving stack trusts — a bad
// IPv4 header checksum, a bad UDP checksum, or none (a zero checksum over
// IPv4, which coalescing would turn into a computed one). A refused frame
// is forwarded as it is.
func ParseUDPSeg(frame []byte) (UDPSeg, bool) {
	_, udpOff, v6, err := locateIP(frame, false, ProtocolUDP)
	if err != nil || len(frame) < udpOff+UDPHeaderLen {
		return UDPSeg{}, false
	}
	uh := UDP(frame[udpOff:])
	s := UDPSeg{udpOff: udpOff, payLen: len(frame) - udpOff - UDPHeaderLen, v6: v6}
	if s.payLen == 0 || int(uh.Length()) != len(uh) || uh.Checksum() == 0 {
		return UDPSeg{}, false
	}
	if !v6 {
		ip := IPv4(frame[EthernetHeaderLen:])
		if ip.HeaderLen() != IPv4MinHeaderLen || !ip.ChecksumValid() {
			return UDPSeg{}, false
		}
		s.id = ip.ID()
	}
	src, dst := ipSrcDst(frame, EthernetHeaderLen, v6)
	if Checksum(uh, PseudoHeaderChecksum(ProtocolUDP, src, dst, uint16(len(uh)))) != 0xffff {
		return UDPSeg{}, false
	}
	return s, true
}

// UDPRun is a superframe being assembled from consecutive datagrams of one
// UDP flow. Like TCPRun it records the first frame, whose headers become
// the superframe's, while the payloads stay in the caller's buffers, which
// must stay unchanged until Finish. The zero value is an empty run.
type UDPRun struct {
	frame []byte // the first datagram's frame
	first UDPSeg
	last  UDPSeg
	total int // payload bytes held
	n     int // datagrams held
}

// Start empties r and begins a run with frame; seg is what ParseUDPSeg
// returned for it.
func (r *UDPRun) Start(frame []byte, seg UDPSeg) {
	*r = UDPRun{frame: frame, first: seg, last: seg, total: seg.payLen, n: 1}
}

// Append reports whether the datagram in frame (seg is what ParseUDPSeg
// returned for it) continues the run, and if so adds it; the caller then
// keeps frame[seg.HeaderLen():] as the next piece of the payload. The
// datagram continues the run if:
//
//   - the run is not empty and holds fewer than MaxRunSegments datagrams;
//   - the Ethernet header is identical to the first frame's;
//   - same IP version and addresses; IPv4: same TOS, TTL and flags, and
//     ID = previous ID + 1, as the kernel's segmentation will number them;
//     IPv6: same traffic class, flow label and hop limit;
//   - same ports;
//   - every datagram so far has the first one's payload length (the
//     gso_size) and this one is not longer;
//   - the superframe's UDP length and IP packet stay within 65535 bytes.
func (r *UDPRun) Append(frame []byte, seg UDPSeg) bool {
	f := &r.first
	switch {
	case r.n == 0 || r.n >= MaxRunSegments,
		seg.v6 != f.v6 || seg.udpOff != f.udpOff,
		r.last.payLen != f.payLen || seg.payLen > f.payLen,
		f.udpOff-EthernetHeaderLen+UDPHeaderLen+r.total+seg.payLen > maxIPLen,
		!f.v6 && seg.id != r.last.id+1,
		!sameIP(r.frame, frame, f.v6),
		!bytes.Equal(r.frame[f.udpOff:f.udpOff+4], frame[f.udpOff:f.udpOff+4]): // ports
		return false
	}
	r.last = seg
	r.total += seg.payLen
	r.n++
	return true
}

// Finish ends the run and empties r. If the run holds at least two
// datagrams it rewrites the first frame's headers in place into those of
// the superframe (the first frame followed by every appended payload), as
// a sender with UDP_SEGMENT hands one over: IPv4 total length and header
// checksum or IPv6 payload length, the UDP length of the whole, and the
// UDP checksum field set to the pseudo-header sum, as NEEDS_CSUM requires;
// it returns the GSO parameters and true. With fewer than two datagrams
// it changes nothing and returns false.
func (r *UDPRun) Finish() (GSO, bool) {
	n := r.n
	r.n = 0
	if n < 2 {
		return GSO{}, false
	}
	f, a := &r.first, r.frame
	udpLen := UDPHeaderLen + r.total
	setIPLength(a, EthernetHeaderLen, f.udpOff, udpLen, f.v6)
	uh := UDP(a[f.udpOff:])
	uh.SetLength(uint16(udpLen))
	src, dst := ipSrcDst(a, EthernetHeaderLen, f.v6)
	uh.SetChecksum(PseudoHeaderChecksum(ProtocolUDP, src, dst, uint16(udpLen)))
	return GSO{
		HdrLen:     f.udpOff + UDPHeaderLen,
		Size:       f.payLen,
		CsumStart:  f.udpOff,
		CsumOffset: UDPChecksumOffset,
		V6:         f.v6,
		UDP:        true,
	}, true
}
