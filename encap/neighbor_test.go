package encap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

var (
	ip6A      = net.ParseIP("fd00:9::2")
	ip6B      = net.ParseIP("fd00:9::7")
	ip6LL     = net.ParseIP("fe80::42:aff:fe00:7")
	solicitB  = net.ParseIP("ff02::1:ff00:7") // ip6B's solicited-node address
	mcastMACB = net.HardwareAddr{0x33, 0x33, 0xff, 0x00, 0x00, 0x07}
)

// ns describes a Neighbor Solicitation for the gopacket builder below;
// the zero value plus target is fd00:9::2 (macA) asking the
// solicited-node address of fd00:9::7 with a source link-layer option.
type ns struct {
	src, dst net.IP // nil: ip6A, solicitB
	target   net.IP // nil: ip6B
	noSLL    bool
	sll      net.HardwareAddr // nil: macA
	hop      uint8            // 0: 255
	code     uint8
	opts     []layers.ICMPv6Option // more options after the source link-layer one
	tags     int                   // VLAN tags, as in seg
}

func (s ns) frame(tb testing.TB) []byte {
	tb.Helper()
	src, dst, target, hop := s.src, s.dst, s.target, s.hop
	if src == nil {
		src = ip6A
	}
	if dst == nil {
		dst = solicitB
	}
	if target == nil {
		target = ip6B
	}
	if hop == 0 {
		hop = 255
	}
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: mcastMACB, EthernetType: layers.EthernetTypeIPv6}
	var opts layers.ICMPv6Options
	if !s.noSLL {
		sll := s.sll
		if sll == nil {
			sll = macA
		}
		opts = append(opts, layers.ICMPv6Option{Type: layers.ICMPv6OptSourceAddress, Data: sll})
	}
	// gopacket writes options last to first: on the wire, s.opts come
	// first and the source link-layer option last.
	for i := len(s.opts) - 1; i >= 0; i-- {
		opts = append(opts, s.opts[i])
	}
	ls := append([]gopacket.SerializableLayer{eth}, seg{tags: s.tags}.vlanLayers(eth)...)
	return serialize(tb, append(ls,
		&layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: hop, SrcIP: src, DstIP: dst},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, s.code)},
		&layers.ICMPv6NeighborSolicitation{TargetAddress: target, Options: opts})...)
}

// fixICMPv6 recomputes the ICMPv6 checksum of an untagged frame whose
// message a test has edited.
func fixICMPv6(f []byte) []byte {
	ip := encap.IPv6(f[encap.EthernetHeaderLen:])
	m := f[encap.EthernetHeaderLen+encap.IPv6HeaderLen:][:ip.PayloadLength()]
	encap.ICMPv6(m).UpdateChecksum(ip.Src(), ip.Dst())
	return f
}

func TestParseNeighborSolicit(t *testing.T) {
	edit := func(f []byte, fn func(f []byte)) []byte {
		f = bytes.Clone(f)
		fn(f)
		return f
	}
	good := ns{}.frame(t)
	sllLast := ns{opts: []layers.ICMPv6Option{{Type: 14, Data: make([]byte, 6)}}}.frame(t)
	if sllLast[78] != 14 || sllLast[86] != encap.NDPOptSourceLinkAddr {
		t.Fatalf("options not in the order meant: % x", sllLast[78:])
	}
	na := serialize(t,
		&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: ip6A, DstIP: ip6B},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)},
		&layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: ip6A})
	for _, tc := range []struct {
		name   string
		frame  []byte
		err    error
		target net.IP
		sll    net.HardwareAddr
	}{
		{"solicited-node with SLL", good, nil, ip6B, macA},
		{"unicast without SLL", ns{dst: ip6B, noSLL: true}.frame(t), nil, ip6B, nil},
		{"link-local target", ns{target: ip6LL, dst: net.ParseIP("ff02::1:ff00:7")}.frame(t), nil, ip6LL, macA},
		{"SLL after another option", sllLast, nil, ip6B, macA},
		{"SLL of two units", ns{sll: net.HardwareAddr(make([]byte, 14))}.frame(t), nil, ip6B, net.HardwareAddr(make([]byte, 6))},
		{"Ethernet padding", append(bytes.Clone(good), 0, 0, 0, 0), nil, ip6B, macA},
		{"DAD", ns{src: net.IPv6unspecified, noSLL: true}.frame(t), nil, ip6B, nil},
		{"DAD with SLL", ns{src: net.IPv6unspecified}.frame(t), encap.ErrMalformed, nil, nil},
		{"DAD to unicast", ns{src: net.IPv6unspecified, dst: ip6B, noSLL: true}.frame(t), encap.ErrMalformed, nil, nil},
		{"DAD to all-nodes", ns{src: net.IPv6unspecified, dst: net.ParseIP("ff02::1"), noSLL: true}.frame(t), encap.ErrMalformed, nil, nil},
		{"hop limit 64", ns{hop: 64}.frame(t), encap.ErrMalformed, nil, nil},
		{"code 1", ns{code: 1}.frame(t), encap.ErrMalformed, nil, nil},
		{"bad checksum", edit(good, func(f []byte) { f[56] ^= 1 }), encap.ErrMalformed, nil, nil},
		{"multicast target", ns{target: net.ParseIP("ff02::1")}.frame(t), encap.ErrMalformed, nil, nil},
		{"multicast source", ns{src: net.ParseIP("ff02::2")}.frame(t), encap.ErrMalformed, nil, nil},
		{"option of length 0", ns{opts: []layers.ICMPv6Option{{Type: 14}}}.frame(t), encap.ErrMalformed, nil, nil},
		{"option past the end", fixICMPv6(edit(good, func(f []byte) { f[79] = 2 })), encap.ErrMalformed, nil, nil},
		{"message of 20 bytes", fixICMPv6(edit(good, func(f []byte) { binary.BigEndian.PutUint16(f[18:], 20) })), encap.ErrMalformed, nil, nil},
		{"payload past the frame", good[:len(good)-1], encap.ErrShort, nil, nil},
		{"short", good[:50], encap.ErrShort, nil, nil},
		{"empty", nil, encap.ErrShort, nil, nil},
		{"short IPv4", seg{}.frame(t)[:40], encap.ErrUnsupported, nil, nil},
		{"IPv4 TCP", seg{payload: []byte("x")}.frame(t), encap.ErrUnsupported, nil, nil},
		{"IPv6 TCP", seg{v6: true, payload: []byte("x")}.frame(t), encap.ErrUnsupported, nil, nil},
		{"ARP", arpFrame(t, encap.ARPRequest), encap.ErrUnsupported, nil, nil},
		{"advertisement", na, encap.ErrUnsupported, nil, nil},
		{"VLAN-tagged", ns{tags: 1}.frame(t), encap.ErrUnsupported, nil, nil},
		{"hop-by-hop header", edit(good, func(f []byte) { f[20] = 0 }), encap.ErrUnsupported, nil, nil},
		{"IP version 4 in an IPv6 frame", edit(good, func(f []byte) { f[14] = 0x40 }), encap.ErrUnsupported, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.frame)
			ip, m, err := encap.ParseNeighborSolicit(tc.frame)
			if !bytes.Equal(orig, tc.frame) {
				t.Fatal("frame changed")
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Target(), tc.target) {
				t.Errorf("target %x, want %v", m.Target(), tc.target)
			}
			ll, ok := m.SourceLinkAddr()
			if ok != (tc.sll != nil) || !bytes.Equal(ll, tc.sll) {
				t.Errorf("source link address %x %v, want %v", ll, ok, tc.sll)
			}
			// gopacket reads the same message.
			p := gopacket.NewPacket(tc.frame, layers.LayerTypeEthernet, gopacket.Default)
			l, _ := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
			ip6, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if l == nil || ip6 == nil {
				t.Fatalf("gopacket: %v", p)
			}
			if !l.TargetAddress.Equal(net.IP(m.Target())) || !ip6.SrcIP.Equal(net.IP(ip.Src())) || !ip6.DstIP.Equal(net.IP(ip.Dst())) {
				t.Errorf("gopacket target %v src %v dst %v", l.TargetAddress, ip6.SrcIP, ip6.DstIP)
			}
			if len(m) != int(ip6.Length) {
				t.Errorf("message of %d bytes, IPv6 payload %d", len(m), ip6.Length)
			}
		})
	}
}

func TestPutARP(t *testing.T) {
	for _, tc := range []struct {
		name             string
		op               uint16
		sha, tha         net.HardwareAddr
		spa, tpa         [4]byte
		ethDst, ethSrc   net.HardwareAddr
		wantEthBroadcast bool
	}{
		{"reply", encap.ARPReply, macB, macA, [4]byte{10, 0, 0, 7}, [4]byte{10, 0, 0, 2}, macA, macB, false},
		{"request", encap.ARPRequest, macA, make(net.HardwareAddr, 6), [4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 7}, layers.EthernetBroadcast, macA, true},
		{"all ones", 0xffff, layers.EthernetBroadcast, layers.EthernetBroadcast, [4]byte{255, 255, 255, 255}, [4]byte{255, 255, 255, 255}, macA, macB, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := bytes.Repeat([]byte{0xee}, encap.ARPFrameLen+4)
			encap.PutEthernet(f, tc.ethDst, tc.ethSrc, encap.EtherTypeARP)
			encap.PutARP(f[encap.EthernetHeaderLen:], tc.op, tc.sha, tc.spa, tc.tha, tc.tpa)
			if !bytes.Equal(f[encap.ARPFrameLen:], []byte{0xee, 0xee, 0xee, 0xee}) {
				t.Fatal("wrote past ARPFrameLen")
			}
			f = f[:encap.ARPFrameLen]
			a := encap.ARP(f[encap.EthernetHeaderLen:])
			if !a.Valid() || a.Op() != tc.op || !bytes.Equal(a.SenderMAC(), tc.sha) || a.SenderIP() != tc.spa ||
				!bytes.Equal(a.TargetMAC(), tc.tha) || a.TargetIP() != tc.tpa {
				t.Fatalf("view: valid %v op %d %x %v %x %v", a.Valid(), a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
			}
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			if eth == nil || arp == nil || p.ErrorLayer() != nil {
				t.Fatalf("gopacket: %v", p)
			}
			if !bytes.Equal(eth.DstMAC, tc.ethDst) || !bytes.Equal(eth.SrcMAC, tc.ethSrc) || eth.EthernetType != layers.EthernetTypeARP {
				t.Errorf("Ethernet %v", eth)
			}
			if arp.AddrType != layers.LinkTypeEthernet || arp.Protocol != layers.EthernetTypeIPv4 || arp.HwAddressSize != 6 ||
				arp.ProtAddressSize != 4 || arp.Operation != tc.op ||
				!bytes.Equal(arp.SourceHwAddress, tc.sha) || !bytes.Equal(arp.SourceProtAddress, tc.spa[:]) ||
				!bytes.Equal(arp.DstHwAddress, tc.tha) || !bytes.Equal(arp.DstProtAddress, tc.tpa[:]) {
				t.Errorf("gopacket ARP %+v", arp)
			}
		})
	}
}

// naFrame builds the advertisement that answers a solicitation from src
// (srcMAC) for target (owned by mac), as the switch does.
func naFrame(dstMAC, mac []byte, target, dst []byte, flags uint8) []byte {
	f := make([]byte, encap.NeighborAdvertFrameLen)
	encap.PutEthernet(f, dstMAC, mac, encap.EtherTypeIPv6)
	encap.PutIPv6(f[encap.EthernetHeaderLen:], target, dst, encap.ProtocolICMPv6, encap.NDPHopLimit, encap.NeighborAdvertLen)
	m := f[encap.EthernetHeaderLen+encap.IPv6HeaderLen:]
	encap.PutNeighborAdvert(m, flags, target, mac)
	encap.ICMPv6(m).UpdateChecksum(target, dst)
	return f
}

// checkNA decodes an advertisement with gopacket, requires gopacket to
// serialize the same bytes (so lengths and the ICMPv6 checksum are what
// gopacket computes), and returns its layers.
func checkNA(tb testing.TB, f []byte) (*layers.IPv6, *layers.ICMPv6, *layers.ICMPv6NeighborAdvertisement) {
	tb.Helper()
	p := sameOnWire(tb, f)
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	icmp, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	na, _ := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if ip == nil || icmp == nil || na == nil {
		tb.Fatalf("gopacket: %v", p)
	}
	return ip, icmp, na
}

func TestPutNeighborAdvert(t *testing.T) {
	for _, tc := range []struct {
		name        string
		target, dst net.IP
		flags       uint8
	}{
		{"solicited override", ip6B, ip6A, encap.NDPFlagSolicited | encap.NDPFlagOverride},
		{"router", ip6B, ip6A, encap.NDPFlagRouter | encap.NDPFlagSolicited | encap.NDPFlagOverride},
		{"unsolicited to all-nodes", ip6LL, net.ParseIP("ff02::1"), encap.NDPFlagOverride},
		{"no flags", ip6A, ip6B, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := naFrame(macA, macB, tc.target, tc.dst, tc.flags)
			m := encap.ICMPv6(f[encap.EthernetHeaderLen+encap.IPv6HeaderLen:])
			if !m.ChecksumValid(tc.target, tc.dst) || m.Type() != encap.ICMPv6NeighborAdvert || m.Code() != 0 {
				t.Errorf("type %d code %d checksum %#04x", m.Type(), m.Code(), m.Checksum())
			}
			ip, icmp, na := checkNA(t, f)
			if ip.Version != 6 || ip.HopLimit != 255 || ip.NextHeader != layers.IPProtocolICMPv6 ||
				!ip.SrcIP.Equal(tc.target) || !ip.DstIP.Equal(tc.dst) || ip.TrafficClass != 0 || ip.FlowLabel != 0 {
				t.Errorf("IPv6 %+v", ip)
			}
			if icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0) {
				t.Errorf("ICMPv6 %v", icmp.TypeCode)
			}
			if na.Router() != (tc.flags&encap.NDPFlagRouter != 0) || na.Solicited() != (tc.flags&encap.NDPFlagSolicited != 0) ||
				na.Override() != (tc.flags&encap.NDPFlagOverride != 0) || !na.TargetAddress.Equal(tc.target) {
				t.Errorf("advertisement flags %#x target %v", na.Flags, na.TargetAddress)
			}
			if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, macB) {
				t.Errorf("options %v", na.Options)
			}
		})
	}
}

func TestIPv6AddressKinds(t *testing.T) {
	for _, tc := range []struct {
		a                          string
		multicast, unspec, solNode bool
	}{
		{"::", false, true, false},
		{"::1", false, false, false},
		{"fd00::7", false, false, false},
		{"ff02::1", true, false, false},
		{"ff02::1:ff00:7", true, false, true},
		{"ff02::1:ffab:cdef", true, false, true},
		{"ff02::1:fe00:7", true, false, false},
		{"ff02::2:ff00:7", true, false, false},
		{"ff05::1:ff00:7", true, false, false},
	} {
		a := net.ParseIP(tc.a).To16()
		if encap.IsMulticastIPv6(a) != tc.multicast || encap.IsUnspecifiedIPv6(a) != tc.unspec || encap.IsSolicitedNodeIPv6(a) != tc.solNode {
			t.Errorf("%s: multicast %v unspecified %v solicited-node %v", tc.a,
				encap.IsMulticastIPv6(a), encap.IsUnspecifiedIPv6(a), encap.IsSolicitedNodeIPv6(a))
		}
	}
}
