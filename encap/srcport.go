package encap

import (
	"encoding/binary"
	"math/bits"
)

// Multipliers of the flow hash. Both are odd 64-bit constants with evenly
// mixed bits, so multiplication carries every input bit into the high half
// that SourcePort uses: the first is 2^64/φ (Fibonacci hashing), the second
// is the first multiplier of MurmurHash3's 64-bit finalizer.
const (
	hashMul1 = 0x9e3779b97f4a7c15
	hashMul2 = 0xff51afd7ed558ccd
)

// hashWord mixes one 64-bit word into h.
func hashWord(h, w uint64) uint64 {
	return bits.RotateLeft64((h^w)*hashMul1, 31)
}

// SourcePort returns the outer UDP source port for an inner Ethernet frame,
// in [lo, hi] (RFC 7348 §5: a hash of the inner flow, so that ECMP and
// receive steering spread flows while each flow keeps one path and its
// order). The hash covers the inner IPv4 or IPv6 addresses and protocol,
// plus the ports for TCP, UDP and SCTP (not for IPv4 fragments, so that all
// fragments of a datagram go the same way); for other frames it covers the
// Ethernet addresses and EtherType. It is deterministic (the same flow maps
// to the same port on every host and run) and ignores bytes beyond those.
// If hi <= lo it returns lo.
func SourcePort(frame []byte, lo, hi uint16) uint16 {
	if hi <= lo {
		return lo
	}
	h, ok := hashIPFlow(frame)
	if !ok && len(frame) >= EthernetHeaderLen {
		h = hashWord(0, binary.BigEndian.Uint64(frame[0:]))
		h = hashWord(h, uint64(binary.BigEndian.Uint32(frame[8:]))<<16|uint64(binary.BigEndian.Uint16(frame[12:])))
	}
	// Finalize (MurmurHash3 fmix64 shape), then map the high 32 bits onto
	// the range by multiplication, which is uniform without a division.
	h ^= h >> 33
	h *= hashMul2
	h ^= h >> 33
	span := uint64(hi) - uint64(lo) + 1
	return lo + uint16(((h>>32)*span)>>32)
}

// hashIPFlow hashes the addresses, protocol and ports of an IPv4 or IPv6
// frame; ok is false for other frames.
func hashIPFlow(frame []byte) (h uint64, ok bool) {
	if len(frame) < EthernetHeaderLen {
		return 0, false
	}
	ip := frame[EthernetHeaderLen:]
	var proto uint8
	l4 := -1 // offset of the ports in ip, if they are there
	switch Ethernet(frame).EtherType() {
	case EtherTypeIPv4:
		v4 := IPv4(ip)
		if len(ip) < IPv4MinHeaderLen || v4.HeaderLen() < IPv4MinHeaderLen {
			return 0, false
		}
		proto = v4.Protocol()
		h = hashWord(0, uint64(binary.BigEndian.Uint32(v4.Src()))<<32|uint64(binary.BigEndian.Uint32(v4.Dst())))
		if !v4.IsFragment() {
			l4 = v4.HeaderLen()
		}
	case EtherTypeIPv6:
		if len(ip) < IPv6HeaderLen {
			return 0, false
		}
		proto = IPv6(ip).NextHeader()
		for i := ipv6SrcOff; i < IPv6HeaderLen; i += 8 {
			h = hashWord(h, binary.BigEndian.Uint64(ip[i:]))
		}
		l4 = IPv6HeaderLen
	default:
		return 0, false
	}
	w := uint64(proto) << 32
	if (proto == ProtocolTCP || proto == ProtocolUDP || proto == ProtocolSCTP) && l4 >= 0 && len(ip) >= l4+4 {
		w |= uint64(binary.BigEndian.Uint32(ip[l4:]))
	}
	return hashWord(h, w), true
}
