package encap

import "encoding/binary"

// Neighbour resolution: what a switch needs to answer ARP requests and
// IPv6 Neighbor Solicitations itself (the kernel vxlan device's `proxy`
// option). ARP requests are read with the [ARP] view; the reply is
// written with [PutEthernet] and [PutARP]. A solicitation is checked and
// viewed with [ParseNeighborSolicit]; the advertisement is written with
// [PutEthernet], [PutIPv6] and [PutNeighborAdvert], then checksummed with
// [ICMPv6.UpdateChecksum]. Every builder writes into the caller's bytes
// and allocates nothing.

// ARPFrameLen is the length of an Ethernet frame holding an
// IPv4-over-Ethernet ARP packet, without padding (a TAP and a bridge take
// frames shorter than the 60-byte Ethernet minimum; only a NIC pads).
const ARPFrameLen = EthernetHeaderLen + ARPLen

// PutEthernet writes an untagged Ethernet header into b[:EthernetHeaderLen].
// dst and src must be MACLen bytes long. It panics if b is shorter.
func PutEthernet(b []byte, dst, src []byte, etherType uint16) {
	_ = b[EthernetHeaderLen-1]
	copy(b[ethDstOff:ethDstOff+MACLen], dst[:MACLen])
	copy(b[ethSrcOff:ethSrcOff+MACLen], src[:MACLen])
	binary.BigEndian.PutUint16(b[ethTypeOff:], etherType)
}

// PutARP writes an IPv4-over-Ethernet ARP packet (RFC 826) into b[:ARPLen]:
// hardware type 1, protocol type 0x0800, address lengths 6 and 4, the
// operation op, and the sender and target addresses. senderMAC and
// targetMAC must be MACLen bytes long. It panics if b is shorter than
// ARPLen. b must not overlap the address arguments.
func PutARP(b []byte, op uint16, senderMAC []byte, senderIP [4]byte, targetMAC []byte, targetIP [4]byte) {
	_ = b[ARPLen-1]
	binary.BigEndian.PutUint16(b[0:], arpHTypeEthernet)
	binary.BigEndian.PutUint16(b[2:], EtherTypeIPv4)
	b[4], b[5] = MACLen, 4
	binary.BigEndian.PutUint16(b[arpOpOff:], op)
	copy(b[arpSHAOff:arpSHAOff+MACLen], senderMAC[:MACLen])
	copy(b[arpSPAOff:arpSPAOff+4], senderIP[:])
	copy(b[arpTHAOff:arpTHAOff+MACLen], targetMAC[:MACLen])
	copy(b[arpTPAOff:arpTPAOff+4], targetIP[:])
}

// PutIPv6 writes a fixed IPv6 header into b[:IPv6HeaderLen]: version 6,
// traffic class and flow label 0, the payload length, next header and hop
// limit, and the 16-byte addresses src and dst. It panics if b is shorter
// than IPv6HeaderLen. b must not overlap src or dst.
func PutIPv6(b []byte, src, dst []byte, nextHeader, hopLimit uint8, payloadLen uint16) {
	_ = b[IPv6HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], 6<<28)
	binary.BigEndian.PutUint16(b[ipv6PayloadLenOff:], payloadLen)
	b[ipv6NextHdrOff], b[ipv6HopLimitOff] = nextHeader, hopLimit
	copy(b[ipv6SrcOff:ipv6SrcOff+16], src[:16])
	copy(b[ipv6DstOff:ipv6DstOff+16], dst[:16])
}

// ICMPv6 message layout (RFC 4443 §2.1), after the IPv6 header, and the
// Neighbor Solicitation and Advertisement bodies (RFC 4861 §4.3, §4.4)
// with the link-layer address options of §4.6.1:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|S|O|                     Reserved (NS: all reserved)         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Target Address (16 bytes)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Option type  | Length (×8 B) |  Link-layer address (6 bytes) |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                         ... further options                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// ProtocolICMPv6 is the IPv6 next header value of ICMPv6.
	ProtocolICMPv6 = 58
	// ICMPv6NeighborSolicit and ICMPv6NeighborAdvert are the ICMPv6 types
	// of a Neighbor Solicitation and a Neighbor Advertisement.
	ICMPv6NeighborSolicit = 135
	ICMPv6NeighborAdvert  = 136
	// NDPHopLimit is the hop limit every Neighbor Discovery message is sent
	// with and must arrive with (RFC 4861 §7.1): proof that it was not
	// forwarded by a router.
	NDPHopLimit = 255

	// NDPFlagRouter, NDPFlagSolicited and NDPFlagOverride are the R, S
	// and O flags of a Neighbor Advertisement, in its fifth byte.
	NDPFlagRouter    = 0x80
	NDPFlagSolicited = 0x40
	NDPFlagOverride  = 0x20

	// NDPOptSourceLinkAddr and NDPOptTargetLinkAddr are the option types
	// of the source and target link-layer address options.
	NDPOptSourceLinkAddr = 1
	NDPOptTargetLinkAddr = 2

	// NeighborSolicitMinLen is the length of a Neighbor Solicitation
	// without options: ICMPv6 header, reserved word and target address.
	NeighborSolicitMinLen = 24
	// NeighborAdvertLen is the length of a Neighbor Advertisement with one
	// target link-layer address option for an Ethernet address, as
	// PutNeighborAdvert writes it.
	NeighborAdvertLen = 24 + ndpLinkAddrOptLen
	// NeighborAdvertFrameLen is the length of an Ethernet frame holding
	// such an advertisement in an IPv6 packet without extension headers.
	NeighborAdvertFrameLen = EthernetHeaderLen + IPv6HeaderLen + NeighborAdvertLen

	icmpv6CsumOff     = 2
	ndpFlagsOff       = 4
	ndpTargetOff      = 8
	ndpOptsOff        = 24
	ndpLinkAddrOptLen = 8 // type, length 1 (×8 bytes), a 6-byte MAC
)

// ICMPv6 is a view of an ICMPv6 message: header and body, as long as the
// IPv6 payload length says. It must be at least 4 bytes long.
type ICMPv6 []byte

// Type returns the message type.
func (m ICMPv6) Type() uint8 { return m[0] }

// Code returns the message code.
func (m ICMPv6) Code() uint8 { return m[1] }

// Checksum returns the checksum field.
func (m ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(m[icmpv6CsumOff:]) }

// UpdateChecksum computes the checksum over the message and the IPv6
// pseudo-header of the 16-byte addresses src and dst (RFC 4443 §2.3) and
// stores it. The whole of m is the message.
func (m ICMPv6) UpdateChecksum(src, dst []byte) {
	binary.BigEndian.PutUint16(m[icmpv6CsumOff:], 0)
	binary.BigEndian.PutUint16(m[icmpv6CsumOff:], ^Checksum(m, PseudoHeaderChecksum(ProtocolICMPv6, src, dst, uint16(len(m)))))
}

// ChecksumValid reports whether the checksum over the message and the
// pseudo-header of src and dst is correct.
func (m ICMPv6) ChecksumValid(src, dst []byte) bool {
	return Checksum(m, PseudoHeaderChecksum(ProtocolICMPv6, src, dst, uint16(len(m)))) == 0xffff
}

// NeighborSolicit is a view of an ICMPv6 Neighbor Solicitation message
// (RFC 4861 §4.3), ICMPv6 header included, as [ParseNeighborSolicit]
// returns it: at least NeighborSolicitMinLen bytes, options well formed.
type NeighborSolicit []byte

// Target returns the target address (a 16-byte subslice).
func (m NeighborSolicit) Target() []byte { return m[ndpTargetOff : ndpTargetOff+16 : ndpTargetOff+16] }

// Options returns the options (what follows the target address).
func (m NeighborSolicit) Options() []byte { return m[ndpOptsOff:] }

// SourceLinkAddr returns the address in the first source link-layer
// address option (a 6-byte subslice), and false if there is none or it is
// too short for an Ethernet address. The options must be well formed, as
// ParseNeighborSolicit checks.
func (m NeighborSolicit) SourceLinkAddr() ([]byte, bool) {
	for o := m.Options(); len(o) >= 2 && o[1] != 0 && len(o) >= int(o[1])*8; o = o[int(o[1])*8:] {
		if o[0] == NDPOptSourceLinkAddr {
			if int(o[1])*8 < 2+MACLen {
				return nil, false
			}
			return o[2 : 2+MACLen : 2+MACLen], true
		}
	}
	return nil, false
}

// ParseNeighborSolicit checks that frame is an untagged Ethernet frame
// holding an IPv6 packet whose next header is ICMPv6 (no extension
// headers) and whose message is a Neighbor Solicitation that a receiving
// node would accept (RFC 4861 §7.1.1), and returns views of the IPv6
// header and of the message (as long as the IPv6 payload length says;
// Ethernet padding after it is ignored).
//
// It returns ErrUnsupported for any other frame (not IPv6, VLAN tags,
// extension headers, another ICMPv6 type: cheap checks, made first, so
// that a caller can hand it every frame); ErrShort when frame ends before
// the headers or before the payload length; ErrMalformed for a
// solicitation a node must discard: hop limit not 255, code not 0,
// checksum wrong, a multicast target, an option of length 0 or past the
// end, a multicast source address, or a source address that is the
// unspecified address (duplicate address detection) with a destination
// that is not a solicited-node multicast address or with a source
// link-layer address option.
func ParseNeighborSolicit(frame []byte) (IPv6, NeighborSolicit, error) {
	const l3 = EthernetHeaderLen
	if len(frame) < l3+IPv6HeaderLen+4 {
		if len(frame) >= EthernetHeaderLen && Ethernet(frame).EtherType() != EtherTypeIPv6 {
			return nil, nil, ErrUnsupported
		}
		return nil, nil, ErrShort
	}
	ip := IPv6(frame[l3 : l3+IPv6HeaderLen])
	msg := frame[l3+IPv6HeaderLen:]
	if Ethernet(frame).EtherType() != EtherTypeIPv6 || ip.Version() != 6 ||
		ip.NextHeader() != ProtocolICMPv6 || ICMPv6(msg).Type() != ICMPv6NeighborSolicit {
		return nil, nil, ErrUnsupported
	}
	n := int(ip.PayloadLength())
	if n > len(msg) {
		return nil, nil, ErrShort
	}
	msg = msg[:n]
	if n < NeighborSolicitMinLen {
		return nil, nil, ErrMalformed
	}
	m := NeighborSolicit(msg)
	if ip.HopLimit() != NDPHopLimit || ICMPv6(msg).Code() != 0 || IsMulticastIPv6(m.Target()) ||
		IsMulticastIPv6(ip.Src()) || !ICMPv6(msg).ChecksumValid(ip.Src(), ip.Dst()) {
		return nil, nil, ErrMalformed
	}
	sll := false
	for o := m.Options(); len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || len(o) < int(o[1])*8 {
			return nil, nil, ErrMalformed
		}
		sll = sll || o[0] == NDPOptSourceLinkAddr
		o = o[int(o[1])*8:]
	}
	if IsUnspecifiedIPv6(ip.Src()) && (sll || !IsSolicitedNodeIPv6(ip.Dst())) {
		return nil, nil, ErrMalformed
	}
	return ip, m, nil
}

// PutNeighborAdvert writes a Neighbor Advertisement (RFC 4861 §4.4) into
// b[:NeighborAdvertLen]: ICMPv6 type 136, code 0, the flags (NDPFlag*),
// the 16-byte target address, and one target link-layer address option
// holding the 6-byte linkAddr. The checksum field is left 0: once the
// IPv6 header is known, call ICMPv6(b[:NeighborAdvertLen]).UpdateChecksum.
// It panics if b is shorter than NeighborAdvertLen. b must not overlap
// target or linkAddr.
func PutNeighborAdvert(b []byte, flags uint8, target, linkAddr []byte) {
	_ = b[NeighborAdvertLen-1]
	b[0], b[1] = ICMPv6NeighborAdvert, 0
	binary.BigEndian.PutUint16(b[icmpv6CsumOff:], 0)
	binary.BigEndian.PutUint32(b[ndpFlagsOff:], uint32(flags)<<24)
	copy(b[ndpTargetOff:ndpTargetOff+16], target[:16])
	o := b[ndpOptsOff : ndpOptsOff+ndpLinkAddrOptLen]
	o[0], o[1] = NDPOptTargetLinkAddr, ndpLinkAddrOptLen/8
	copy(o[2:], linkAddr[:MACLen])
}

// IsMulticastIPv6 reports whether the 16-byte address a is multicast
// (ff00::/8).
func IsMulticastIPv6(a []byte) bool { return a[0] == 0xff }

// IsUnspecifiedIPv6 reports whether the 16-byte address a is ::.
func IsUnspecifiedIPv6(a []byte) bool {
	return binary.BigEndian.Uint64(a[0:8])|binary.BigEndian.Uint64(a[8:16]) == 0
}

// IsSolicitedNodeIPv6 reports whether the 16-byte address a is a
// solicited-node multicast address, ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
func IsSolicitedNodeIPv6(a []byte) bool {
	return binary.BigEndian.Uint64(a[0:8]) == 0xff02_0000_0000_0000 &&
		binary.BigEndian.Uint32(a[8:12]) == 1 && a[12] == 0xff
}
