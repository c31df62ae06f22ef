package encap

import "encoding/binary"

// RepairPartialChecksum finishes the TCP or UDP checksum of a frame that a
// Linux sender handed over with its checksum still partial, and reports
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
// pseudo-header sum, the signature of a partial checksum, so a frame
// corrupted in transit is left as it is for the receiving stack to drop.
// Frames that are not unfragmented IPv4 or IPv6 (no extension headers)
// TCP or UDP, and UDP over IPv4 without a checksum, are left alone.
// Ethernet padding after the IP packet is ignored.
func RepairPartialChecksum(frame []byte) bool {
	if len(frame) < EthernetHeaderLen {
		return false
	}
	ip := frame[EthernetHeaderLen:]
	var proto uint8
	var src, dst, l4 []byte
	switch Ethernet(frame).EtherType() {
	case EtherTypeIPv4:
		if len(ip) < IPv4MinHeaderLen {
			return false
		}
		h := IPv4(ip)
		hl, total := h.HeaderLen(), int(h.TotalLength())
		if h.Version() != 4 || hl < IPv4MinHeaderLen || total < hl || total > len(ip) || h.IsFragment() {
			return false
		}
		proto, src, dst, l4 = h.Protocol(), h.Src(), h.Dst(), ip[hl:total]
	case EtherTypeIPv6:
		if len(ip) < IPv6HeaderLen {
			return false
		}
		h := IPv6(ip)
		end := IPv6HeaderLen + int(h.PayloadLength())
		if h.Version() != 6 || end > len(ip) {
			return false
		}
		proto, src, dst, l4 = h.NextHeader(), h.Src(), h.Dst(), ip[IPv6HeaderLen:end]
	default:
		return false
	}
	var off int
	switch {
	case proto == ProtocolTCP && len(l4) >= TCPMinHeaderLen:
		off = TCPChecksumOffset
	case proto == ProtocolUDP && len(l4) >= UDPHeaderLen:
		off = UDPChecksumOffset
	default:
		return false
	}
	field := binary.BigEndian.Uint16(l4[off:])
	if proto == ProtocolUDP && field == 0 && len(src) == 4 {
		return false // no checksum: allowed for UDP over IPv4
	}
	ph := PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))
	if field != ph || Checksum(l4, ph) == 0xffff {
		return false // not the partial signature (checked first: it is cheap), or valid
	}
	binary.BigEndian.PutUint16(l4[off:], 0)
	sum := ^Checksum(l4, ph)
	if proto == ProtocolUDP && sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], sum)
	return true
}
