package encap_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

var (
	macA = net.HardwareAddr{0x02, 0x42, 0x0a, 0x00, 0x00, 0x02}
	macB = net.HardwareAddr{0x02, 0x42, 0x0a, 0x00, 0x00, 0x03}
)

func arpFrame(tb testing.TB, op uint16) []byte {
	return serialize(tb,
		&layers.Ethernet{SrcMAC: macA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
			SourceHwAddress: macA, SourceProtAddress: []byte{10, 0, 0, 2},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 1},
		})
}

func TestEthernet(t *testing.T) {
	f := arpFrame(t, encap.ARPRequest)
	e := encap.Ethernet(f)
	if !bytes.Equal(e.Dst(), layers.EthernetBroadcast) || !bytes.Equal(e.Src(), macA) || e.EtherType() != encap.EtherTypeARP {
		t.Fatalf("dst %x src %x type %#x", e.Dst(), e.Src(), e.EtherType())
	}
	if cap(e.Dst()) != 6 || cap(e.Src()) != 6 {
		t.Fatalf("address subslices must be capped so append cannot clobber the frame")
	}
	v6 := seg{v6: true, payload: []byte{1}}.frame(t)
	if encap.Ethernet(v6).EtherType() != encap.EtherTypeIPv6 {
		t.Fatal("IPv6 EtherType")
	}
	if encap.Ethernet(seg{payload: []byte{1}}.frame(t)).EtherType() != encap.EtherTypeIPv4 {
		t.Fatal("IPv4 EtherType")
	}
}

func TestIsMulticastMAC(t *testing.T) {
	for _, tc := range []struct {
		mac  []byte
		want bool
	}{
		{layers.EthernetBroadcast, true},
		{[]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, true}, // IPv4 multicast
		{[]byte{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}, true}, // IPv6 multicast
		{[]byte{0x03, 0, 0, 0, 0, 0}, true},                // locally administered group
		{macA, false},
		{[]byte{0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e}, false},
		{nil, false},
	} {
		if got := encap.IsMulticastMAC(tc.mac); got != tc.want {
			t.Errorf("IsMulticastMAC(%x) = %v", tc.mac, got)
		}
	}
}

func TestARP(t *testing.T) {
	for _, op := range []uint16{encap.ARPRequest, encap.ARPReply} {
		a := encap.ARP(arpFrame(t, op)[encap.EthernetHeaderLen:])
		if !a.Valid() || a.Op() != op {
			t.Fatalf("op %d: valid %v op %d", op, a.Valid(), a.Op())
		}
		if !bytes.Equal(a.SenderMAC(), macA) || a.SenderIP() != [4]byte{10, 0, 0, 2} ||
			!bytes.Equal(a.TargetMAC(), make([]byte, 6)) || a.TargetIP() != [4]byte{10, 0, 0, 1} {
			t.Fatalf("sender %x %v target %x %v", a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
		}
	}
}

func TestARPInvalid(t *testing.T) {
	good := arpFrame(t, encap.ARPRequest)[encap.EthernetHeaderLen:]
	if !encap.ARP(good).Valid() {
		t.Fatal("reference packet invalid")
	}
	with := func(i int, v ...byte) encap.ARP {
		b := bytes.Clone(good)
		copy(b[i:], v)
		return b
	}
	for name, a := range map[string]encap.ARP{
		"short":      good[:encap.ARPLen-1],
		"empty":      nil,
		"htype 6":    with(0, 0, 6),
		"htype 256":  with(0, 1, 0),
		"ptype IPv6": with(2, 0x86, 0xdd),
		"ptype ARP":  with(2, 0x08, 0x06),
		"hlen 8":     with(4, 8),
		"plen 16":    with(5, 16),
	} {
		if a.Valid() {
			t.Errorf("%s: Valid() = true", name)
		}
	}
}
