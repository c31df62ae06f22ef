package encap

import "bytes"

// MaxRunSegments is the most segments a TCPRun holds. 64 is the kernel's
// own UDP GRO limit and the GSO segment ceiling of kernels before 6.9, and
// it bounds the caller's iovec array per superframe (the first frame plus
// 63 payloads, far below UIO_MAXIOV).
const MaxRunSegments = 64

// TCPSeg is a parsed TCP segment that may be coalesced with others of its
// flow; see ParseTCPSeg. It holds offsets and values, not the frame.
type TCPSeg struct {
	tcpOff int    // offset of the TCP header in the frame
	hdrLen int    // Ethernet + IP + TCP header bytes
	payLen int    // payload bytes
	seq    uint32 // sequence number
	id     uint16 // IPv4 ID
	flags  uint8  // TCP flags
	v6     bool
}

// HeaderLen returns the number of Ethernet, IP and TCP header bytes; the
// payload is frame[HeaderLen():].
func (s TCPSeg) HeaderLen() int { return s.hdrLen }

// PayloadLen returns the number of payload bytes.
func (s TCPSeg) PayloadLen() int { return s.payLen }

// ParseTCPSeg reports whether frame, a decapsulated inner Ethernet frame,
// is a plain TCP data segment that may be coalesced, and returns its
// description. Like the kernel's inet_gro_receive and tcp_gro_receive it
// refuses: anything but untagged IPv4 or IPv6 carrying TCP, IPv4 with
// options or fragmented, IPv6 with extension headers, SYN, FIN, RST or URG
// set, no payload, IP lengths that disagree with len(frame) (so a padded
// runt is refused), and — because the superframe is handed on with
// NEEDS_CSUM, which the receiving stack trusts — a bad IPv4 header checksum
// or TCP checksum. A refused frame is forwarded as it is; the receiving
// stack then judges it as it would have without coalescing.
func ParseTCPSeg(frame []byte) (TCPSeg, bool) {
	_, tcpOff, hdrLen, v6, err := locateTCP(frame, false)
	if err != nil {
		return TCPSeg{}, false
	}
	th := TCP(frame[tcpOff:])
	s := TCPSeg{
		tcpOff: tcpOff,
		hdrLen: hdrLen,
		payLen: len(frame) - hdrLen,
		seq:    th.Seq(),
		flags:  th.Flags(),
		v6:     v6,
	}
	if s.payLen == 0 || s.flags&(TCPFlagSYN|TCPFlagFIN|TCPFlagRST|TCPFlagURG) != 0 {
		return TCPSeg{}, false
	}
	if !v6 {
		ip := IPv4(frame[EthernetHeaderLen:])
		if ip.HeaderLen() != IPv4MinHeaderLen || !ip.ChecksumValid() {
			return TCPSeg{}, false
		}
		s.id = ip.ID()
	}
	src, dst := ipSrcDst(frame, EthernetHeaderLen, v6)
	if Checksum(th, PseudoHeaderChecksum(ProtocolTCP, src, dst, uint16(len(th)))) != 0xffff {
		return TCPSeg{}, false
	}
	return s, true
}

// TCPRun is a superframe being assembled from consecutive segments of one
// TCP flow, as the kernel's GRO does. It records the first frame (whose
// headers become the superframe's) and what Append needs to know about the
// others; the payloads stay in the caller's buffers, which must stay
// unchanged until Finish. The zero value is an empty run. A TCPRun is used
// by one goroutine at a time.
type TCPRun struct {
	frame []byte // the first segment's frame
	first TCPSeg
	last  TCPSeg
	total int // payload bytes held
	n     int // segments held
}

// Start empties r and begins a run with frame; seg is what ParseTCPSeg
// returned for it.
func (r *TCPRun) Start(frame []byte, seg TCPSeg) {
	*r = TCPRun{frame: frame, first: seg, last: seg, total: seg.payLen, n: 1}
}

// Len returns the number of segments in the run (0 if it is empty).
func (r *TCPRun) Len() int { return r.n }

// Append reports whether the segment in frame (seg is what ParseTCPSeg
// returned for it) continues the run, and if so adds it; the caller then keeps frame[seg.HeaderLen():]
// as the next piece of the superframe's payload. The rules are those of
// the kernel's GRO (tcp_gro_receive, inet_gro_receive, ipv6_gro_receive):
//
//   - the run is not empty and holds fewer than MaxRunSegments segments;
//   - the Ethernet header is identical to the first frame's;
//   - same IP version and addresses; IPv4: same TOS, TTL and flags (DF),
//     and ID = previous ID + 1; IPv6: same traffic class, flow label and
//     hop limit;
//   - same ports, acknowledgment number, window, TCP header length and
//     option bytes, and the same flags apart from PSH and CWR; CWR only on
//     the first segment;
//   - the sequence number is the first one plus the payload bytes so far;
//   - every segment so far has the first segment's payload length (the
//     gso_size) and this one is not longer, since only the last segment of
//     a superframe may be short;
//   - the previous segment has no PSH (PSH ends a superframe);
//   - the superframe's IP packet, header included, stays within 65535
//     bytes: the IPv4 total length field, and for IPv6 the kernel's
//     default GRO limit of 64 KiB.
func (r *TCPRun) Append(frame []byte, seg TCPSeg) bool {
	f := &r.first
	switch {
	case r.n == 0 || r.n >= MaxRunSegments,
		seg.v6 != f.v6 || seg.hdrLen != f.hdrLen,
		seg.seq != f.seq+uint32(r.total),
		r.last.flags&TCPFlagPSH != 0,
		r.last.payLen != f.payLen || seg.payLen > f.payLen,
		seg.flags&TCPFlagCWR != 0 || (seg.flags^f.flags)&^(TCPFlagPSH|TCPFlagCWR) != 0,
		f.hdrLen-EthernetHeaderLen+r.total+seg.payLen > maxIPLen,
		!f.v6 && seg.id != r.last.id+1,
		!sameFlow(r.frame, frame, f.tcpOff, f.hdrLen, f.v6):
		return false
	}
	r.last = seg
	r.total += seg.payLen
	r.n++
	return true
}

// sameFlow compares the header fields of a and b that must be equal for b
// to join a's run; lengths, IDs, sequence numbers, flags and checksums are
// checked by the caller.
func sameFlow(a, b []byte, tcpOff, hdrLen int, v6 bool) bool {
	if !sameIP(a, b, v6) {
		return false
	}
	t := tcpOff
	// ports; acknowledgment number and data offset; window; options.
	return bytes.Equal(a[t:t+tcpSeqOff], b[t:t+tcpSeqOff]) &&
		bytes.Equal(a[t+tcpAckOff:t+tcpFlagsOff], b[t+tcpAckOff:t+tcpFlagsOff]) &&
		bytes.Equal(a[t+tcpWindowOff:t+TCPChecksumOffset], b[t+tcpWindowOff:t+TCPChecksumOffset]) &&
		bytes.Equal(a[t+TCPMinHeaderLen:hdrLen], b[t+TCPMinHeaderLen:hdrLen])
}

// sameIP compares the Ethernet headers of two untagged frames and the IP
// header fields that must be equal for b to join a's run: all but
// lengths, IDs and checksums (and IPv4 options, which runs refuse).
func sameIP(a, b []byte, v6 bool) bool {
	const ip = EthernetHeaderLen
	if !bytes.Equal(a[:ip], b[:ip]) {
		return false
	}
	if v6 {
		// version/traffic class/flow label; hop limit; both addresses.
		return bytes.Equal(a[ip:ip+4], b[ip:ip+4]) && a[ip+ipv6HopLimitOff] == b[ip+ipv6HopLimitOff] &&
			bytes.Equal(a[ip+ipv6SrcOff:ip+IPv6HeaderLen], b[ip+ipv6SrcOff:ip+IPv6HeaderLen])
	}
	// TOS; flags (DF and the reserved bit; MF is refused by the parsers); TTL; both addresses.
	return a[ip+ipv4TOSOff] == b[ip+ipv4TOSOff] && a[ip+ipv4FlagsOff]>>5 == b[ip+ipv4FlagsOff]>>5 &&
		a[ip+ipv4TTLOff] == b[ip+ipv4TTLOff] &&
		bytes.Equal(a[ip+ipv4SrcOff:ip+IPv4MinHeaderLen], b[ip+ipv4SrcOff:ip+IPv4MinHeaderLen])
}

// GSO is what a virtio-net header needs to hand a superframe to a TAP:
// gso_type TCPV4 or TCPV6 (with the ECN bit if ECN is set), flags
// NEEDS_CSUM, and the lengths and offsets below, counted from the start of
// the Ethernet header as a TAP expects.
type GSO struct {
	HdrLen     int  // Ethernet + IP + TCP header bytes (hdr_len)
	Size       int  // payload bytes per segment (gso_size)
	CsumStart  int  // offset of the TCP header (csum_start)
	CsumOffset int  // offset of the checksum in the TCP header (csum_offset)
	V6         bool // GSO_TCPV6 rather than GSO_TCPV4
	ECN        bool // the first segment has CWR: set VIRTIO_NET_HDR_GSO_ECN
	UDP        bool // GSO_UDP_L4 (from a UDPRun): V6 and ECN do not apply
}

// Finish ends the run and empties r. If the run holds at least two
// segments it rewrites the first frame's headers in place into those of
// the superframe (the first frame followed by every appended payload):
// IPv4 total length and header checksum or IPv6 payload length, PSH if the
// last segment had it, and the TCP checksum field set to the pseudo-header
// sum, as NEEDS_CSUM requires; it returns the GSO parameters and true. With
// fewer than two segments it changes nothing and returns false: the frame,
// if any, is written as it is, without GSO.
func (r *TCPRun) Finish() (GSO, bool) {
	n := r.n
	r.n = 0
	if n < 2 {
		return GSO{}, false
	}
	f, a := &r.first, r.frame
	tcpLen := f.hdrLen - f.tcpOff + r.total
	setIPLength(a, EthernetHeaderLen, f.tcpOff, tcpLen, f.v6)
	th := TCP(a[f.tcpOff:])
	th.SetFlags(th.Flags() | r.last.flags&TCPFlagPSH)
	src, dst := ipSrcDst(a, EthernetHeaderLen, f.v6)
	th.SetChecksum(PseudoHeaderChecksum(ProtocolTCP, src, dst, uint16(tcpLen)))
	return GSO{
		HdrLen:     f.hdrLen,
		Size:       f.payLen,
		CsumStart:  f.tcpOff,
		CsumOffset: TCPChecksumOffset,
		V6:         f.v6,
		ECN:        th.Flags()&TCPFlagCWR != 0,
	}, true
}
