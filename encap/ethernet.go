package encap

import "encoding/binary"

// Ethernet II header layout:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination MAC (6 bytes)                  |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+     Source MAC (6 bytes)      +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// EthernetHeaderLen is the length of an untagged Ethernet header.
	EthernetHeaderLen = 14
	// MACLen is the length of an Ethernet (EUI-48) address.
	MACLen = 6

	// EtherTypeIPv4 is the EtherType of IPv4.
	EtherTypeIPv4 = 0x0800
	// EtherTypeARP is the EtherType of ARP.
	EtherTypeARP = 0x0806
	// EtherTypeIPv6 is the EtherType of IPv6.
	EtherTypeIPv6 = 0x86DD
	// EtherTypeVLAN is the EtherType of an IEEE 802.1Q VLAN tag.
	EtherTypeVLAN = 0x8100
	// EtherTypeQinQ is the EtherType of an IEEE 802.1ad (service) tag.
	EtherTypeQinQ = 0x88A8
	// VLANTagLen is the length of a VLAN tag: its TCI and the EtherType
	// that follows it.
	VLANTagLen = 4

	ethDstOff  = 0
	ethSrcOff  = 6
	ethTypeOff = 12
)

// Ethernet is a view of an Ethernet frame. It must be at least
// EthernetHeaderLen bytes long.
type Ethernet []byte

// Dst returns the destination MAC address (a 6-byte subslice).
func (e Ethernet) Dst() []byte { return e[ethDstOff : ethDstOff+MACLen : ethDstOff+MACLen] }

// Src returns the source MAC address (a 6-byte subslice).
func (e Ethernet) Src() []byte { return e[ethSrcOff : ethSrcOff+MACLen : ethSrcOff+MACLen] }

// EtherType returns the EtherType (0x8100 for a VLAN-tagged frame; tags are
// not looked through).
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[ethTypeOff:]) }

// IsMulticastMAC reports whether mac is a group address (the I/G bit, the
// least significant bit of the first byte, is set); the broadcast address is
// one. An empty mac is not.
func IsMulticastMAC(mac []byte) bool { return len(mac) > 0 && mac[0]&1 != 0 }

// ARP packet layout for IPv4 over Ethernet (RFC 826), after the Ethernet
// header:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        HTYPE (1)              |        PTYPE (0x0800)         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   HLEN (6)    |   PLEN (4)    |        Operation              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Sender hardware address (6) ...  Sender IP (4)       |
//	|          Target hardware address (6) ...  Target IP (4)       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// ARPLen is the length of an IPv4-over-Ethernet ARP packet.
	ARPLen = 28
	// ARPRequest is the ARP operation code of a request.
	ARPRequest = 1
	// ARPReply is the ARP operation code of a reply.
	ARPReply = 2

	arpHTypeEthernet = 1
	arpOpOff         = 6
	arpSHAOff        = 8
	arpSPAOff        = 14
	arpTHAOff        = 18
	arpTPAOff        = 24
)

// ARP is a view of an ARP packet (the bytes after the Ethernet header).
// Check Valid before using the other accessors.
type ARP []byte

// Valid reports whether a is a complete IPv4-over-Ethernet ARP packet:
// hardware type 1, protocol type 0x0800, address lengths 6 and 4, and at
// least ARPLen bytes.
func (a ARP) Valid() bool {
	return len(a) >= ARPLen &&
		binary.BigEndian.Uint16(a[0:]) == arpHTypeEthernet &&
		binary.BigEndian.Uint16(a[2:]) == EtherTypeIPv4 &&
		a[4] == MACLen && a[5] == 4
}

// Op returns the operation (ARPRequest, ARPReply, ...).
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[arpOpOff:]) }

// SenderMAC returns the sender hardware address (a 6-byte subslice).
func (a ARP) SenderMAC() []byte { return a[arpSHAOff : arpSHAOff+MACLen : arpSHAOff+MACLen] }

// SenderIP returns the sender protocol address.
func (a ARP) SenderIP() [4]byte { return [4]byte(a[arpSPAOff : arpSPAOff+4]) }

// TargetMAC returns the target hardware address (a 6-byte subslice).
func (a ARP) TargetMAC() []byte { return a[arpTHAOff : arpTHAOff+MACLen : arpTHAOff+MACLen] }

// TargetIP returns the target protocol address.
func (a ARP) TargetIP() [4]byte { return [4]byte(a[arpTPAOff : arpTPAOff+4]) }
