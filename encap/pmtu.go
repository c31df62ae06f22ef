package encap

import "encoding/binary"

// Path MTU discovery across the tunnel: a frame too big for the underlay
// is answered, towards its sender, with an ICMP "fragmentation needed"
// (IPv4, RFC 1191) or ICMPv6 "packet too big" (RFC 8201) message, as the
// Linux kernel's tunnels do for bridged traffic
// (skb_tunnel_check_pmtu, iptunnel_pmtud_build_icmp): the message comes
// from the original destination address and MAC, so the sender's stack
// takes it as news of the path to that destination, lowers its path MTU
// and sends smaller packets. [PutTooBig] writes it.

const (
	// ProtocolICMP is the IP protocol number of ICMP.
	ProtocolICMP = 1
	// ICMPv4 "destination unreachable, fragmentation needed" and ICMPv6
	// "packet too big".
	icmpv4Unreach      = 3
	icmpv4FragNeeded   = 4
	icmpv6PacketTooBig = 2
	// icmpErrorLen is an ICMP error header: type, code, checksum, and
	// the 32-bit field that holds the MTU.
	icmpErrorLen = 8
	// MinIPv4MTU and MinIPv6MTU are the smallest MTUs an ICMP message may
	// report: RFC 791's 68 and RFC 8200's 1280.
	MinIPv4MTU = 68
	MinIPv6MTU = 1280
	// TooBigMaxLen is the longest message PutTooBig writes: Ethernet
	// header, two VLAN tags, and an IPv6 packet of the minimum MTU (an
	// IPv4 one quotes at most 576 bytes, as RFC 1812 §4.3.2.3 allows).
	TooBigMaxLen = EthernetHeaderLen + 2*VLANTagLen + MinIPv6MTU
	tooBigMaxV4  = 576
)

// PutTooBig writes into b the ICMP message that tells the sender of frame
// (an Ethernet frame, untagged or with up to two VLAN tags, too big for
// the path) that the path takes IP packets of at most mtu bytes, and
// returns its length; or 0, writing nothing useful, when frame must not
// be answered. The message goes back the way frame came: the Ethernet
// addresses swapped, the same VLAN tags, from frame's destination IP
// address to its source, quoting as much of frame's IP packet as fits in
// len(b), 576 bytes of IPv4 and 1280 of IPv6 (the quoted IPv4 header's
// checksum is made valid: a superframe from a TAP may carry a stale one).
// mtu is raised to MinIPv4MTU or MinIPv6MTU where it is lower. b must not
// overlap frame.
//
// Not answered, as RFC 1122 §3.2.2 and RFC 4443 §2.4 require or the
// kernel does: anything but IPv4 with Don't Fragment set and IPv6; a
// multicast or broadcast destination MAC; a source or destination IP
// address that is unspecified, multicast or (IPv4) broadcast; a fragment
// other than the first; an ICMP or ICMPv6 error message; a packet whose
// headers are cut short. The quote is at least the IP header and 8
// bytes (RFC 792); a b too short for that is an error too (0). Give it
// TooBigMaxLen bytes, or fewer to keep the message within a link's MTU.
func PutTooBig(b, frame []byte, mtu int) int {
	if len(frame) < EthernetHeaderLen || IsMulticastMAC(Ethernet(frame).Dst()) {
		return 0
	}
	l3, et, ok := skipTags(frame)
	if !ok {
		return 0
	}
	ip := frame[l3:]
	var quote []byte
	switch et {
	case EtherTypeIPv4:
		if len(ip) < IPv4MinHeaderLen {
			return 0
		}
		h := IPv4(ip)
		hl := h.HeaderLen()
		if h.Version() != 4 || hl < IPv4MinHeaderLen || len(ip) < hl || !h.DF() || h.IsFragment() && h.fragOffset() != 0 {
			return 0
		}
		src, dst := h.Src(), h.Dst()
		if !unicastIPv4(src) || !unicastIPv4(dst) {
			return 0
		}
		if h.Protocol() == ProtocolICMP && (len(ip) < hl+1 || isICMPv4Error(ip[hl])) {
			return 0
		}
		quote = ip[:max(0, min(len(ip), tooBigMaxV4-IPv4MinHeaderLen-icmpErrorLen, len(b)-l3-IPv4MinHeaderLen-icmpErrorLen))]
		if len(quote) < min(len(ip), hl+8) {
			return 0
		}
		n := l3 + IPv4MinHeaderLen + icmpErrorLen + len(quote)
		putReplyEthernet(b, frame, l3)
		r := IPv4(b[l3:])
		r[ipv4VerIHLOff] = 4<<4 | IPv4MinHeaderLen/4
		r[ipv4TOSOff] = 0xc0 // internetwork control, as Linux's ICMP
		r.SetTotalLength(uint16(n - l3))
		r.SetID(0)
		binary.BigEndian.PutUint16(r[ipv4FlagsOff:], 0)
		r[ipv4TTLOff], r[ipv4ProtoOff] = 64, ProtocolICMP
		copy(r[ipv4SrcOff:ipv4SrcOff+4], dst)
		copy(r[ipv4DstOff:ipv4DstOff+4], src)
		r.UpdateChecksum()
		m := b[l3+IPv4MinHeaderLen : n]
		m[0], m[1] = icmpv4Unreach, icmpv4FragNeeded
		binary.BigEndian.PutUint16(m[2:], 0)
		binary.BigEndian.PutUint16(m[4:], 0)
		binary.BigEndian.PutUint16(m[6:], uint16(min(max(mtu, MinIPv4MTU), 0xffff)))
		q := m[icmpErrorLen:]
		copy(q, quote)
		if len(q) >= hl {
			IPv4(q).UpdateChecksum()
		}
		binary.BigEndian.PutUint16(m[2:], ^Checksum(m, 0))
		return n
	case EtherTypeIPv6:
		if len(ip) < IPv6HeaderLen {
			return 0
		}
		h := IPv6(ip)
		src, dst := h.Src(), h.Dst()
		if h.Version() != 6 || IsUnspecifiedIPv6(src) || IsMulticastIPv6(src) || IsUnspecifiedIPv6(dst) || IsMulticastIPv6(dst) {
			return 0
		}
		if h.NextHeader() == ProtocolICMPv6 && (len(ip) < IPv6HeaderLen+1 || ip[IPv6HeaderLen] < 128) {
			return 0 // an ICMPv6 error message (types 0 to 127)
		}
		quote = ip[:max(0, min(len(ip), MinIPv6MTU-IPv6HeaderLen-icmpErrorLen, len(b)-l3-IPv6HeaderLen-icmpErrorLen))]
		if len(quote) < min(len(ip), IPv6HeaderLen+8) {
			return 0
		}
		n := l3 + IPv6HeaderLen + icmpErrorLen + len(quote)
		putReplyEthernet(b, frame, l3)
		PutIPv6(b[l3:], dst, src, ProtocolICMPv6, 64, uint16(icmpErrorLen+len(quote)))
		m := ICMPv6(b[l3+IPv6HeaderLen : n])
		m[0], m[1] = icmpv6PacketTooBig, 0
		binary.BigEndian.PutUint32(m[4:], uint32(max(mtu, MinIPv6MTU)))
		copy(m[icmpErrorLen:], quote)
		m.UpdateChecksum(dst, src)
		return n
	}
	return 0
}

// putReplyEthernet writes into b[:l3] frame's Ethernet header with the
// addresses swapped, and its VLAN tags.
func putReplyEthernet(b, frame []byte, l3 int) {
	e := Ethernet(frame)
	copy(b[:l3], frame[:l3])
	copy(b[ethDstOff:ethDstOff+MACLen], e.Src())
	copy(b[ethSrcOff:ethSrcOff+MACLen], e.Dst())
}

// fragOffset is the fragment offset field, in 8-byte units.
func (h IPv4) fragOffset() uint16 {
	return binary.BigEndian.Uint16(h[ipv4FlagsOff:]) & ipv4FragOffMask
}

// unicastIPv4 reports whether a is an address a host may have: not
// 0.0.0.0, not multicast or reserved (224/3), not the broadcast.
func unicastIPv4(a []byte) bool {
	return a[0] != 0 && a[0] < 224
}

// isICMPv4Error reports whether ICMP type t is an error message, which is
// never answered with another (RFC 1122 §3.2.2).
func isICMPv4Error(t uint8) bool {
	switch t {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}
