package encap

import "encoding/binary"

// ECN codepoints (RFC 3168): the two low bits of the IPv4 TOS byte or of
// the IPv6 traffic class.
const (
	ECNNotECT = 0 // Not ECN-Capable Transport
	ECNECT1   = 1 // ECN-Capable Transport (1)
	ECNECT0   = 2 // ECN-Capable Transport (0)
	ECNCE     = 3 // Congestion Experienced
	ecnMask   = 3
)

// ipECN returns where the IP header of frame starts (after the Ethernet
// header and up to maxTags VLAN tags), its version (4 or 6) and its ECN
// field (in the IPv4 TOS byte or the IPv6 traffic class); version 0 and
// ECNNotECT for a frame that carries neither or is too short to tell.
func ipECN(frame []byte) (off, v int, ecn uint8) {
	if len(frame) < EthernetHeaderLen {
		return 0, 0, ECNNotECT
	}
	off, et, ok := skipTags(frame)
	switch {
	case !ok:
	case et == EtherTypeIPv4 && len(frame) >= off+IPv4MinHeaderLen && frame[off]>>4 == 4:
		return off, 4, frame[off+1] & ecnMask
	case et == EtherTypeIPv6 && len(frame) >= off+IPv6HeaderLen && frame[off]>>4 == 6:
		return off, 6, frame[off+1] >> 4 & ecnMask
	}
	return 0, 0, ECNNotECT
}

// FrameECN returns the ECN field of the IP packet in frame, or ECNNotECT
// for a frame that is not IP.
func FrameECN(frame []byte) uint8 {
	_, _, ecn := ipECN(frame)
	return ecn
}

// EncapECN is the ECN field a tunnel's outer header gets for an inner
// packet with ECN field inner: a copy, so that congestion on the underlay
// can be signalled to ECN-capable flows instead of dropping their
// packets, except that CE becomes ECT(0) (RFC 3168 §9.1.1, full
// functionality, as Linux's INET_ECN_encapsulate; the inner CE survives
// decapsulation anyway).
func EncapECN(inner uint8) uint8 {
	if inner&ecnMask == ECNCE {
		return ECNECT0
	}
	return inner & ecnMask
}

// DecapECN applies the ECN field of a datagram's outer header to the
// inner frame, as a decapsulator must (RFC 6040 §4.2, figure 4, as
// Linux's INET_ECN_decapsulate):
//   - an outer CE marks an ECN-capable inner packet CE, and calls for
//     dropping a Not-ECT one, whose sender cannot hear of the
//     congestion: ok is false then;
//   - an outer ECT(1) turns an inner ECT(0) into ECT(1) (for L4S,
//     RFC 9331), as Linux has done since 5.8;
//   - anything else, and a frame that is not IP, is left as it is.
//
// An IPv4 header checksum is updated incrementally, so a header that was
// wrong stays wrong.
func DecapECN(frame []byte, outer uint8) (ok bool) {
	outer &= ecnMask
	if outer != ECNCE && outer != ECNECT1 {
		return true
	}
	off, v, inner := ipECN(frame)
	if v == 0 {
		return true
	}
	var set uint8
	switch {
	case outer == ECNCE && inner == ECNNotECT:
		return false
	case outer == ECNCE && inner == ECNCE:
		return true // nothing to write (a rewrite could turn a 0xffff checksum into 0)
	case outer == ECNCE:
		set = ECNCE
	case inner == ECNECT0: // outer ECT(1)
		set = ECNECT1
	default:
		return true
	}
	if v == 6 {
		frame[off+1] = frame[off+1]&^(ecnMask<<4) | set<<4
		return true
	}
	old := binary.BigEndian.Uint16(frame[off:])
	frame[off+1] = frame[off+1]&^ecnMask | set
	updateChecksum16(frame[off+ipv4CsumOff:], old, binary.BigEndian.Uint16(frame[off:]))
	return true
}

// updateChecksum16 updates the Internet checksum at csum[0:2] for one
// 16-bit word of the data it covers changing from old to new (RFC 1624,
// eqn. 3: HC' = ~(~HC + ~m + m')).
func updateChecksum16(csum []byte, old, new uint16) {
	binary.BigEndian.PutUint16(csum, ^add16(add16(^binary.BigEndian.Uint16(csum), ^old), new))
}
