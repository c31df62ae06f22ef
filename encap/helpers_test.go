package encap_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

// seg describes a TCP frame for the gopacket builders below. The zero value
// plus payload is a valid IPv4 ACK segment of the base flow.
type seg struct {
	v6        bool
	ipOpts    bool   // IPv4 router alert option (4 bytes)
	tcpOpts   bool   // NOP NOP timestamps (12 bytes)
	tsVal     uint32 // timestamp value when tcpOpts
	dstMAC    byte   // last byte of the destination MAC
	srcMAC    byte   // last byte of the source MAC
	srcIP     byte   // last byte of the source address
	dstIP     byte   // last byte of the destination address
	sport     uint16 // 0 means 40000
	dport     uint16 // 0 means 5201
	tos       uint8  // IPv4 TOS or IPv6 traffic class
	flowLabel uint32
	ttl       uint8 // 0 means 64
	noDF      bool
	mf        bool
	fragOff   uint16
	id        uint16
	seq       uint32
	ack       uint32
	window    uint16 // 0 means 502
	flags     uint8  // encap.TCPFlag*; 0 means ACK
	tags      int    // VLAN tags: 1 is 802.1Q, 2 is 802.1ad + 802.1Q, 3 is three 802.1Q
	payload   []byte
}

// vlanLayers returns the tags of s, outermost first, and sets the
// EtherTypes that lead from eth through them to the IP header.
func (s seg) vlanLayers(eth *layers.Ethernet) []gopacket.SerializableLayer {
	ipType := eth.EthernetType
	var tags []*layers.Dot1Q
	for i := range s.tags {
		tags = append(tags, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: ipType})
		if i > 0 {
			tags[i-1].Type = layers.EthernetTypeDot1Q
		}
	}
	var ls []gopacket.SerializableLayer
	for _, t := range tags {
		ls = append(ls, t)
	}
	switch s.tags {
	case 0:
	case 2:
		eth.EthernetType = layers.EthernetTypeQinQ
	default:
		eth.EthernetType = layers.EthernetTypeDot1Q
	}
	return ls
}

func (s seg) layers() (*layers.Ethernet, gopacket.NetworkLayer, *layers.TCP) {
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10 + s.srcMAC},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x20 + s.dstMAC},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ttl := s.ttl
	if ttl == 0 {
		ttl = 64
	}
	var ip gopacket.NetworkLayer
	if s.v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{
			Version:      6,
			TrafficClass: s.tos,
			FlowLabel:    s.flowLabel,
			NextHeader:   layers.IPProtocolTCP,
			HopLimit:     ttl,
			SrcIP:        net.IP{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02 + s.srcIP},
			DstIP:        net.IP{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03 + s.dstIP},
		}
	} else {
		v4 := &layers.IPv4{
			Version:    4,
			TOS:        s.tos,
			Id:         s.id,
			TTL:        ttl,
			Protocol:   layers.IPProtocolTCP,
			SrcIP:      net.IP{10, 0, 0, 2 + s.srcIP},
			DstIP:      net.IP{10, 0, 0, 3 + s.dstIP},
			FragOffset: s.fragOff,
		}
		if !s.noDF {
			v4.Flags |= layers.IPv4DontFragment
		}
		if s.mf {
			v4.Flags |= layers.IPv4MoreFragments
		}
		if s.ipOpts {
			v4.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
		}
		ip = v4
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(or(s.sport, 40000)),
		DstPort: layers.TCPPort(or(s.dport, 5201)),
		Seq:     s.seq,
		Ack:     s.ack,
		Window:  or(s.window, 502),
	}
	f := s.flags
	if f == 0 {
		f = encap.TCPFlagACK
	}
	setTCPFlags(tcp, f)
	if s.tcpOpts {
		ts := make([]byte, 8)
		binary.BigEndian.PutUint32(ts, s.tsVal)
		binary.BigEndian.PutUint32(ts[4:], 0x01020304)
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
		}
	}
	return eth, ip, tcp
}

func or(v, def uint16) uint16 {
	if v == 0 {
		return def
	}
	return v
}

func setTCPFlags(t *layers.TCP, f uint8) {
	t.FIN = f&encap.TCPFlagFIN != 0
	t.SYN = f&encap.TCPFlagSYN != 0
	t.RST = f&encap.TCPFlagRST != 0
	t.PSH = f&encap.TCPFlagPSH != 0
	t.ACK = f&encap.TCPFlagACK != 0
	t.URG = f&encap.TCPFlagURG != 0
	t.ECE = f&encap.TCPFlagECE != 0
	t.CWR = f&encap.TCPFlagCWR != 0
}

// serialize builds a frame from layers with lengths and checksums fixed.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	for _, l := range ls {
		l4, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		})
		if !ok {
			continue
		}
		for _, n := range ls {
			if nl, ok := n.(gopacket.NetworkLayer); ok {
				if err := l4.SetNetworkLayerForChecksum(nl); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return trimPadding(append([]byte(nil), buf.Bytes()...))
}

// trimPadding cuts the Ethernet padding gopacket adds to frames shorter
// than 60 bytes: frames from a TAP and VXLAN inner frames carry none.
func trimPadding(f []byte) []byte {
	l3 := l3Offset(f)
	switch etherType(f) {
	case encap.EtherTypeIPv4:
		return f[:l3+int(encap.IPv4(f[l3:]).TotalLength())]
	case encap.EtherTypeIPv6:
		return f[:l3+encap.IPv6HeaderLen+int(encap.IPv6(f[l3:]).PayloadLength())]
	}
	return f
}

// l3Offset returns the offset of what follows the Ethernet header and
// any VLAN tags of f.
func l3Offset(f []byte) int {
	off := encap.EthernetHeaderLen
	for et := encap.Ethernet(f).EtherType(); (et == encap.EtherTypeVLAN || et == encap.EtherTypeQinQ) && len(f) >= off+encap.VLANTagLen; off += encap.VLANTagLen {
		et = binary.BigEndian.Uint16(f[off+2:])
	}
	return off
}

// etherType returns the EtherType of f behind its VLAN tags.
func etherType(f []byte) uint16 { return binary.BigEndian.Uint16(f[l3Offset(f)-2:]) }

// frame builds s as a valid frame with correct checksums.
func (s seg) frame(tb testing.TB) []byte {
	tb.Helper()
	eth, ip, tcp := s.layers()
	ls := append([]gopacket.SerializableLayer{eth}, s.vlanLayers(eth)...)
	return serialize(tb, append(ls, ip.(gopacket.SerializableLayer), tcp, gopacket.Payload(s.payload))...)
}

// super builds s as the kernel hands a TSO superframe to a TAP: IP length
// covering the whole frame, a stale IPv4 header checksum and the TCP
// checksum field holding only the pseudo-header sum.
func (s seg) super(tb testing.TB) []byte {
	tb.Helper()
	f := s.frame(tb)
	tcpOff := tcpOffset(f)
	if !s.v6 {
		encap.IPv4(f[l3Offset(f):]).SetChecksum(0xdead)
	}
	src, dst := addrs(f)
	encap.TCP(f[tcpOff:]).SetChecksum(encap.PseudoHeaderChecksum(encap.ProtocolTCP, src, dst, uint16(len(f)-tcpOff)))
	return f
}

func isV6(f []byte) bool { return etherType(f) == encap.EtherTypeIPv6 }

func tcpOffset(f []byte) int {
	l3 := l3Offset(f)
	if isV6(f) {
		return l3 + encap.IPv6HeaderLen
	}
	return l3 + encap.IPv4(f[l3:]).HeaderLen()
}

func addrs(f []byte) (src, dst []byte) {
	if isV6(f) {
		ip := encap.IPv6(f[l3Offset(f):])
		return ip.Src(), ip.Dst()
	}
	ip := encap.IPv4(f[l3Offset(f):])
	return ip.Src(), ip.Dst()
}

// refix recomputes the IPv4 header checksum and the TCP checksum of a frame
// whose headers a test has edited.
func refix(f []byte) []byte {
	if !isV6(f) {
		encap.IPv4(f[l3Offset(f):]).UpdateChecksum()
	}
	off := tcpOffset(f)
	th := encap.TCP(f[off:])
	th.SetChecksum(0)
	src, dst := addrs(f)
	th.SetChecksum(^encap.Checksum(th, encap.PseudoHeaderChecksum(encap.ProtocolTCP, src, dst, uint16(len(th)))))
	return f
}

// sameOnWire decodes f with gopacket, serializes every decoded layer
// again with gopacket's lengths and checksums, and requires the same
// bytes: every length and checksum in f is what gopacket would put on the
// wire. It returns the decoded packet.
func sameOnWire(tb testing.TB, f []byte) gopacket.Packet {
	tb.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		tb.Fatalf("gopacket: %v", el.Error())
	}
	var ls []gopacket.SerializableLayer
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			c := *l // a copy: serializing fixes its fields
			ls = append(ls, &c)
		case *layers.IPv6:
			c := *l
			ls = append(ls, &c)
		case *layers.TCP:
			c := *l
			ls = append(ls, &c, gopacket.Payload(l.Payload))
		case *layers.UDP:
			c := *l
			ls = append(ls, &c, gopacket.Payload(l.Payload))
		case gopacket.SerializableLayer:
			if l.LayerType() != gopacket.LayerTypePayload {
				ls = append(ls, l)
			}
		}
	}
	if again := serialize(tb, ls...); !bytes.Equal(again, f) {
		tb.Errorf("gopacket serializes differently:\n got %x\nwant %x", f[:min(len(f), 80)], again[:min(len(again), 80)])
	}
	if l := p.Layer(layers.LayerTypeIPv4); l != nil && !encap.IPv4(f[l3Offset(f):]).ChecksumValid() {
		tb.Errorf("IPv4 header checksum invalid")
	}
	return p
}

// checkWire is sameOnWire for a TCP frame; it also checks the TCP
// checksum with encap's own functions.
func checkWire(tb testing.TB, f []byte) (gopacket.NetworkLayer, *layers.TCP) {
	tb.Helper()
	p := sameOnWire(tb, f)
	off := tcpOffset(f)
	src, dst := addrs(f)
	if s := encap.Checksum(f[off:], encap.PseudoHeaderChecksum(encap.ProtocolTCP, src, dst, uint16(len(f)-off))); s != 0xffff {
		tb.Errorf("TCP checksum invalid: sum %#04x", s)
	}
	return p.NetworkLayer(), p.Layer(layers.LayerTypeTCP).(*layers.TCP)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
