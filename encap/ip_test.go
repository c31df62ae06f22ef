package encap_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

func TestIPv4View(t *testing.T) {
	s := seg{ipOpts: true, tos: 0xb8, ttl: 17, id: 0xbeef, payload: []byte("hello")}
	f := s.frame(t)
	ip := encap.IPv4(f[encap.EthernetHeaderLen:])
	if ip.Version() != 4 || ip.HeaderLen() != 24 || ip.TOS() != 0xb8 || ip.TTL() != 17 || ip.ID() != 0xbeef ||
		ip.Protocol() != encap.ProtocolTCP || !ip.DF() || ip.IsFragment() ||
		int(ip.TotalLength()) != len(f)-encap.EthernetHeaderLen ||
		!bytes.Equal(ip.Src(), []byte{10, 0, 0, 2}) || !bytes.Equal(ip.Dst(), []byte{10, 0, 0, 3}) {
		t.Fatalf("IPv4 accessors disagree with gopacket's frame %x", ip[:24])
	}
	if !ip.ChecksumValid() {
		t.Fatal("gopacket's checksum is not valid by ChecksumValid")
	}
	want := ip.Checksum()
	ip.SetChecksum(0x1234)
	if ip.ChecksumValid() {
		t.Fatal("corrupt checksum reported valid")
	}
	ip.UpdateChecksum()
	if ip.Checksum() != want {
		t.Fatalf("UpdateChecksum = %#x, gopacket %#x", ip.Checksum(), want)
	}
	ip.SetTotalLength(1000)
	ip.SetID(7)
	if ip.TotalLength() != 1000 || ip.ID() != 7 {
		t.Fatal("setters")
	}

	for _, tc := range []struct {
		s        seg
		df, frag bool
	}{
		{seg{noDF: true}, false, false},
		{seg{noDF: true, mf: true}, false, true},
		{seg{noDF: true, fragOff: 1}, false, true},
		{seg{fragOff: 0x1fff}, true, true},
	} {
		ip := encap.IPv4(tc.s.frame(t)[encap.EthernetHeaderLen:])
		if ip.DF() != tc.df || ip.IsFragment() != tc.frag {
			t.Errorf("%+v: DF %v fragment %v", tc.s, ip.DF(), ip.IsFragment())
		}
	}
}

func TestIPv6View(t *testing.T) {
	f := seg{v6: true, ttl: 9, payload: []byte("hello")}.frame(t)
	ip := encap.IPv6(f[encap.EthernetHeaderLen:])
	if ip.Version() != 6 || ip.NextHeader() != encap.ProtocolTCP || ip.HopLimit() != 9 ||
		int(ip.PayloadLength()) != len(f)-encap.EthernetHeaderLen-encap.IPv6HeaderLen ||
		ip.Src()[15] != 2 || ip.Dst()[15] != 3 || len(ip.Src()) != 16 || len(ip.Dst()) != 16 {
		t.Fatalf("IPv6 accessors %x", ip[:40])
	}
	ip.SetPayloadLength(999)
	if ip.PayloadLength() != 999 {
		t.Fatal("SetPayloadLength")
	}
}

func TestTCPView(t *testing.T) {
	f := seg{tcpOpts: true, seq: 0xfffffff0, ack: 77, window: 4321, flags: encap.TCPFlagACK | encap.TCPFlagPSH | encap.TCPFlagECE, payload: []byte("x")}.frame(t)
	th := encap.TCP(f[tcpOffset(f):])
	if th.SrcPort() != 40000 || th.DstPort() != 5201 || th.Seq() != 0xfffffff0 || th.Ack() != 77 || th.Window() != 4321 ||
		th.DataOffset() != 32 || th.Flags() != encap.TCPFlagACK|encap.TCPFlagPSH|encap.TCPFlagECE {
		t.Fatalf("TCP accessors %x", th[:32])
	}
	sum := th.Checksum()
	th.SetSeq(5)
	th.SetFlags(encap.TCPFlagFIN)
	th.SetChecksum(sum + 1)
	if th.Seq() != 5 || th.Flags() != encap.TCPFlagFIN || th.Checksum() != sum+1 {
		t.Fatal("TCP setters")
	}
}

func TestUDPView(t *testing.T) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 3}}
	udp := &layers.UDP{SrcPort: 1234, DstPort: 4789}
	f := serialize(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload("abc"))
	u := encap.UDP(f[encap.EthernetHeaderLen+encap.IPv4MinHeaderLen:])
	if u.SrcPort() != 1234 || u.DstPort() != 4789 || u.Length() != encap.UDPHeaderLen+3 || u.Checksum() != udp.Checksum || u.Checksum() == 0 {
		t.Fatalf("UDP accessors %x (gopacket checksum %#x)", u, udp.Checksum)
	}
}
