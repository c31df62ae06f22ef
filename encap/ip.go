package encap

import "encoding/binary"

// IPv4 header layout (RFC 791):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |      TOS      |          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      TTL      |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options (IHL > 5)                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// IPv4MinHeaderLen is the length of an IPv4 header without options.
	IPv4MinHeaderLen = 20
	// IPv6HeaderLen is the length of the fixed IPv6 header.
	IPv6HeaderLen = 40
	// TCPMinHeaderLen is the length of a TCP header without options.
	TCPMinHeaderLen = 20
	// UDPHeaderLen is the length of a UDP header.
	UDPHeaderLen = 8

	// ProtocolTCP is the IP protocol number of TCP.
	ProtocolTCP = 6
	// ProtocolUDP is the IP protocol number of UDP.
	ProtocolUDP = 17
	// ProtocolSCTP is the IP protocol number of SCTP (ports at the same
	// place as TCP and UDP, so SourcePort hashes them too).
	ProtocolSCTP = 132

	ipv4VerIHLOff   = 0
	ipv4TOSOff      = 1
	ipv4TotalLenOff = 2
	ipv4IDOff       = 4
	ipv4FlagsOff    = 6 // flags in the top 3 bits, then the fragment offset
	ipv4TTLOff      = 8
	ipv4ProtoOff    = 9
	ipv4CsumOff     = 10
	ipv4SrcOff      = 12
	ipv4DstOff      = 16
	ipv4FlagDF      = 0x4000
	ipv4FlagMF      = 0x2000
	ipv4FragOffMask = 0x1fff
)

// IPv4 is a view of an IPv4 header. It must be at least IPv4MinHeaderLen
// bytes long, and HeaderLen bytes for the methods that cover options.
type IPv4 []byte

// Version returns the IP version field (4 for a valid IPv4 header).
func (h IPv4) Version() uint8 { return h[ipv4VerIHLOff] >> 4 }

// HeaderLen returns the header length in bytes (IHL × 4).
func (h IPv4) HeaderLen() int { return int(h[ipv4VerIHLOff]&0x0f) * 4 }

// TOS returns the type-of-service (DSCP and ECN) byte.
func (h IPv4) TOS() uint8 { return h[ipv4TOSOff] }

// TotalLength returns the total length field (header plus payload).
func (h IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(h[ipv4TotalLenOff:]) }

// SetTotalLength sets the total length field.
func (h IPv4) SetTotalLength(n uint16) { binary.BigEndian.PutUint16(h[ipv4TotalLenOff:], n) }

// ID returns the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[ipv4IDOff:]) }

// SetID sets the identification field.
func (h IPv4) SetID(id uint16) { binary.BigEndian.PutUint16(h[ipv4IDOff:], id) }

// DF reports whether the Don't Fragment flag is set.
func (h IPv4) DF() bool { return binary.BigEndian.Uint16(h[ipv4FlagsOff:])&ipv4FlagDF != 0 }

// IsFragment reports whether the packet is a fragment: More Fragments set
// or a non-zero fragment offset.
func (h IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(h[ipv4FlagsOff:])&(ipv4FlagMF|ipv4FragOffMask) != 0
}

// TTL returns the time-to-live field.
func (h IPv4) TTL() uint8 { return h[ipv4TTLOff] }

// Protocol returns the protocol number of the payload.
func (h IPv4) Protocol() uint8 { return h[ipv4ProtoOff] }

// Src returns the source address (a 4-byte subslice).
func (h IPv4) Src() []byte { return h[ipv4SrcOff : ipv4SrcOff+4 : ipv4SrcOff+4] }

// Dst returns the destination address (a 4-byte subslice).
func (h IPv4) Dst() []byte { return h[ipv4DstOff : ipv4DstOff+4 : ipv4DstOff+4] }

// Checksum returns the header checksum field.
func (h IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(h[ipv4CsumOff:]) }

// SetChecksum sets the header checksum field.
func (h IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[ipv4CsumOff:], v) }

// UpdateChecksum recomputes the header checksum over HeaderLen bytes and
// stores it.
func (h IPv4) UpdateChecksum() {
	h.SetChecksum(0)
	h.SetChecksum(^Checksum(h[:h.HeaderLen()], 0))
}

// ChecksumValid reports whether the header checksum over HeaderLen bytes is
// correct.
func (h IPv4) ChecksumValid() bool { return Checksum(h[:h.HeaderLen()], 0) == 0xffff }

// IPv6 header layout (RFC 8200):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Source Address (16 bytes)                      |
//	|                Destination Address (16 bytes)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ipv6PayloadLenOff = 4
	ipv6NextHdrOff    = 6
	ipv6HopLimitOff   = 7
	ipv6SrcOff        = 8
	ipv6DstOff        = 24
)

// IPv6 is a view of a fixed IPv6 header. It must be at least IPv6HeaderLen
// bytes long.
type IPv6 []byte

// Version returns the IP version field (6 for a valid IPv6 header).
func (h IPv6) Version() uint8 { return h[0] >> 4 }

// PayloadLength returns the payload length field (everything after the
// fixed header, extension headers included).
func (h IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(h[ipv6PayloadLenOff:]) }

// SetPayloadLength sets the payload length field.
func (h IPv6) SetPayloadLength(n uint16) { binary.BigEndian.PutUint16(h[ipv6PayloadLenOff:], n) }

// NextHeader returns the next header field.
func (h IPv6) NextHeader() uint8 { return h[ipv6NextHdrOff] }

// HopLimit returns the hop limit field.
func (h IPv6) HopLimit() uint8 { return h[ipv6HopLimitOff] }

// Src returns the source address (a 16-byte subslice).
func (h IPv6) Src() []byte { return h[ipv6SrcOff : ipv6SrcOff+16 : ipv6SrcOff+16] }

// Dst returns the destination address (a 16-byte subslice).
func (h IPv6) Dst() []byte { return h[ipv6DstOff : ipv6DstOff+16 : ipv6DstOff+16] }

// TCP header layout (RFC 9293):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Options (Data Offset > 5)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// TCPFlagFIN is the FIN flag.
	TCPFlagFIN = 0x01
	// TCPFlagSYN is the SYN flag.
	TCPFlagSYN = 0x02
	// TCPFlagRST is the RST flag.
	TCPFlagRST = 0x04
	// TCPFlagPSH is the PSH flag.
	TCPFlagPSH = 0x08
	// TCPFlagACK is the ACK flag.
	TCPFlagACK = 0x10
	// TCPFlagURG is the URG flag.
	TCPFlagURG = 0x20
	// TCPFlagECE is the ECN-Echo flag.
	TCPFlagECE = 0x40
	// TCPFlagCWR is the Congestion Window Reduced flag.
	TCPFlagCWR = 0x80

	// TCPChecksumOffset is the offset of the checksum field in the TCP
	// header (virtio-net csum_offset for TCP).
	TCPChecksumOffset = 16
	// UDPChecksumOffset is the offset of the checksum field in the UDP
	// header (virtio-net csum_offset for UDP).
	UDPChecksumOffset = 6

	tcpSeqOff     = 4
	tcpAckOff     = 8
	tcpDataOffOff = 12
	tcpFlagsOff   = 13
	tcpWindowOff  = 14
	udpLenOff     = 4
)

// TCP is a view of a TCP header. It must be at least TCPMinHeaderLen bytes
// long.
type TCP []byte

// SrcPort returns the source port.
func (h TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(h[0:]) }

// DstPort returns the destination port.
func (h TCP) DstPort() uint16 { return binary.BigEndian.Uint16(h[2:]) }

// Seq returns the sequence number.
func (h TCP) Seq() uint32 { return binary.BigEndian.Uint32(h[tcpSeqOff:]) }

// SetSeq sets the sequence number.
func (h TCP) SetSeq(seq uint32) { binary.BigEndian.PutUint32(h[tcpSeqOff:], seq) }

// Ack returns the acknowledgment number.
func (h TCP) Ack() uint32 { return binary.BigEndian.Uint32(h[tcpAckOff:]) }

// DataOffset returns the header length in bytes (data offset × 4).
func (h TCP) DataOffset() int { return int(h[tcpDataOffOff]>>4) * 4 }

// Flags returns the flags byte (TCPFlagFIN ... TCPFlagCWR).
func (h TCP) Flags() uint8 { return h[tcpFlagsOff] }

// SetFlags sets the flags byte.
func (h TCP) SetFlags(f uint8) { h[tcpFlagsOff] = f }

// Window returns the window field.
func (h TCP) Window() uint16 { return binary.BigEndian.Uint16(h[tcpWindowOff:]) }

// Checksum returns the checksum field.
func (h TCP) Checksum() uint16 { return binary.BigEndian.Uint16(h[TCPChecksumOffset:]) }

// SetChecksum sets the checksum field.
func (h TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[TCPChecksumOffset:], v) }

// UDP is a view of a UDP header. It must be at least UDPHeaderLen bytes
// long.
type UDP []byte

// SrcPort returns the source port.
func (h UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(h[0:]) }

// DstPort returns the destination port.
func (h UDP) DstPort() uint16 { return binary.BigEndian.Uint16(h[2:]) }

// Length returns the length field (header plus payload).
func (h UDP) Length() uint16 { return binary.BigEndian.Uint16(h[udpLenOff:]) }

// Checksum returns the checksum field (0 means none was sent over IPv4).
func (h UDP) Checksum() uint16 { return binary.BigEndian.Uint16(h[UDPChecksumOffset:]) }

// SetLength sets the length field.
func (h UDP) SetLength(v uint16) { binary.BigEndian.PutUint16(h[udpLenOff:], v) }

// SetChecksum sets the checksum field.
func (h UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[UDPChecksumOffset:], v) }
