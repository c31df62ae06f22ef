package encap

import "encoding/binary"

// RepairResult says what RepairPartialChecksum did with a frame.
type RepairResult uint8

const (
	// NotPartial: the frame holds no partial checksum (a complete one,
	// valid or not, none, or another kind of frame); it is unchanged.
	NotPartial RepairResult = iota
	// Repaired: the checksum was partial and is now complete.
	Repaired
	// RepairRefused: the checksum field holds the pseudo-header sum, but
	// the IPv4 header checksum fails, so the header that sum was taken
	// from cannot be trusted; the frame is unchanged and should be
	// dropped.
	RepairRefused
)

func (r RepairResult) String() string {
	switch r {
	case NotPartial:
		return "not partial"
	case Repaired:
		return "repaired"
	case RepairRefused:
		return "refused"
	}
	return "repair-result(?)"
}

// RepairPartialChecksum finishes the TCP or UDP checksum of a frame that a
// Linux sender handed over with its checksum still partial, and says
// whether it did.
//
// A kernel that sends through an interface claiming checksum offload
// (veth, and a kernel vxlan device over veth) leaves the transport
// checksum field holding only the folded pseudo-header sum, for the
// "hardware" to finish. Over a veth underlay nothing ever finishes it, so
// the inner frame of such a datagram reaches a userspace VTEP with a
// checksum that no receiving stack accepts. The kernel's own vxlan device
// is not affected because the skb keeps its CHECKSUM_PARTIAL mark.
//
// The checksum is replaced only when it is wrong AND equals the
// pseudo-header sum, the signature of a partial checksum, so a frame with
// a complete checksum corrupted in transit is left as it is for the
// receiving stack to drop. What a partial checksum can vouch for is
// checked before it is completed: the pseudo-header (addresses, protocol,
// transport length) it was computed from, and for IPv4 the header
// checksum, which a Linux sender always completes; a frame that fails
// the latter is refused (RepairRefused). The payload cannot be checked:
// its sender never summed it. Only the outer UDP checksum, where the peer
// sends one, covers it (see the README's failure model).
//
// Frames that are not unfragmented IPv4 or IPv6 (no extension headers)
// TCP or UDP, and UDP over IPv4 without a checksum, are left alone.
// Ethernet padding after the IP packet is ignored.
func RepairPartialChecksum(frame []byte) RepairResult {
	if len(frame) < EthernetHeaderLen {
		return NotPartial
	}
	ip := frame[EthernetHeaderLen:]
	var proto uint8
	var src, dst, l4 []byte
	v4 := false
	switch Ethernet(frame).EtherType() {
	case EtherTypeIPv4:
		if len(ip) < IPv4MinHeaderLen {
			return NotPartial
		}
		h := IPv4(ip)
		hl, total := h.HeaderLen(), int(h.TotalLength())
		if h.Version() != 4 || hl < IPv4MinHeaderLen || total < hl || total > len(ip) || h.IsFragment() {
			return NotPartial
		}
		proto, src, dst, l4, v4 = h.Protocol(), h.Src(), h.Dst(), ip[hl:total], true
	case EtherTypeIPv6:
		if len(ip) < IPv6HeaderLen {
			return NotPartial
		}
		h := IPv6(ip)
		end := IPv6HeaderLen + int(h.PayloadLength())
		if h.Version() != 6 || end > len(ip) {
			return NotPartial
		}
		proto, src, dst, l4 = h.NextHeader(), h.Src(), h.Dst(), ip[IPv6HeaderLen:end]
	default:
		return NotPartial
	}
	var off int
	switch {
	case proto == ProtocolTCP && len(l4) >= TCPMinHeaderLen:
		off = TCPChecksumOffset
	case proto == ProtocolUDP && len(l4) >= UDPHeaderLen:
		off = UDPChecksumOffset
	default:
		return NotPartial
	}
	field := binary.BigEndian.Uint16(l4[off:])
	if proto == ProtocolUDP && field == 0 && len(src) == 4 {
		return NotPartial // no checksum: allowed for UDP over IPv4
	}
	ph := PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))
	if field != ph || Checksum(l4, ph) == 0xffff {
		return NotPartial // not the partial signature (checked first: it is cheap), or valid
	}
	if v4 && !IPv4(ip).ChecksumValid() {
		return RepairRefused
	}
	binary.BigEndian.PutUint16(l4[off:], 0)
	sum := ^Checksum(l4, ph)
	if proto == ProtocolUDP && sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], sum)
	return Repaired
}
