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

// ipOffset returns where the IP header of frame starts, after the
// Ethernet header and up to two VLAN tags, and its version (4 or 6); 0
// for a frame that carries neither or is too short to tell.
func ipOffset(frame []byte) (off int, version int) {
	if len(frame) < EthernetHeaderLen {
		return 0, 0
	}
	off = EthernetHeaderLen
	et := binary.BigEndian.Uint16(frame[12:])
	for tags := 0; tags < maxTags && (et == EtherTypeVLAN || et == EtherTypeQinQ); tags++ {
		if len(frame) < off+VLANTagLen {
			return 0, 0
		}
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += VLANTagLen
	}
	switch {
	case et == EtherTypeIPv4 && len(frame) >= off+IPv4MinHeaderLen && frame[off]>>4 == 4:
		return off, 4
	case et == EtherTypeIPv6 && len(frame) >= off+IPv6HeaderLen && frame[off]>>4 == 6:
		return off, 6
	}
	return 0, 0
}

// FrameECN returns the ECN field of the IP packet in frame, or ECNNotECT
// for a frame that is not IP.
func FrameECN(frame []byte) uint8 {
	off, v := ipOffset(frame)
	switch v {
	case 4:
		return frame[off+1] & ecnMask
	case 6:
		return frame[off+1] >> 4 & ecnMask
	}
	return ECNNotECT
}

// EncapECN is the ECN field a tunnel's outer header gets for an inner
// packet with ECN field inner: a copy, except that CE becomes ECT(0)
// (RFC 6040 §4.1, normal mode, as Linux's INET_ECN_encapsulate), so that
// congestion on the underlay can be signalled to ECN-capable flows
// instead of dropping their packets.
func EncapECN(inner uint8) uint8 {
	if inner&ecnMask == ECNCE {
		return ECNECT0
	}
	return inner & ecnMask
}

// DecapECN applies the ECN field of a datagram's outer header to the
// inner frame, as a decapsulator must (RFC 6040 §4.2, as Linux's
// INET_ECN_decapsulate): when the underlay marked the datagram CE, an
// ECN-capable inner packet is marked CE too (an IPv4 header checksum is
// updated incrementally, so a header that was wrong stays wrong), and a
// Not-ECT one must be dropped, its sender being unable to hear of the
// congestion: ok is false then. Any other outer field, and a frame that
// is not IP, leave the frame as it is.
func DecapECN(frame []byte, outer uint8) (ok bool) {
	if outer&ecnMask != ECNCE {
		return true
	}
	off, v := ipOffset(frame)
	switch v {
	case 4:
		tos := frame[off+1]
		if tos&ecnMask == ECNNotECT {
			return false
		}
		if tos&ecnMask != ECNCE {
			old := binary.BigEndian.Uint16(frame[off:])
			frame[off+1] = tos | ECNCE
			updateChecksum16(frame[off+ipv4CsumOff:], old, binary.BigEndian.Uint16(frame[off:]))
		}
	case 6:
		if frame[off+1]>>4&ecnMask == ECNNotECT {
			return false
		}
		frame[off+1] |= ECNCE << 4
	}
	return true
}

// updateChecksum16 updates the Internet checksum at csum[0:2] for one
// 16-bit word of the data it covers changing from old to new (RFC 1624,
// eqn. 3: HC' = ~(~HC + ~m + m')).
func updateChecksum16(csum []byte, old, new uint16) {
	s := uint32(^binary.BigEndian.Uint16(csum)) + uint32(^old) + uint32(new)
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	binary.BigEndian.PutUint16(csum, ^uint16(s))
}
