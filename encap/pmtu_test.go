package encap_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

// checkTooBig checks, with gopacket and plain RFC 1071 sums, that reply
// answers frame as PutTooBig promises: addresses swapped, the VLAN tags
// kept, ICMP "fragmentation needed" or ICMPv6 "packet too big" with mtu,
// valid checksums, and a quote of frame's IP packet.
func checkTooBig(t *testing.T, reply, frame []byte, mtu int) {
	t.Helper()
	p := gopacket.NewPacket(reply, layers.LayerTypeEthernet, gopacket.Default)
	o := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth, oeth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet), o.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.SrcMAC, oeth.DstMAC) || !bytes.Equal(eth.DstMAC, oeth.SrcMAC) {
		t.Errorf("MACs %v > %v for a frame %v > %v", eth.SrcMAC, eth.DstMAC, oeth.SrcMAC, oeth.DstMAC)
	}
	l3 := l3Offset(frame)
	if l3Offset(reply) != l3 || !bytes.Equal(reply[12:l3], frame[12:l3]) {
		t.Errorf("VLAN tags % x, want % x", reply[12:l3Offset(reply)], frame[12:l3])
	}
	var quote []byte
	if v4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		ov4 := o.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !v4.SrcIP.Equal(ov4.DstIP) || !v4.DstIP.Equal(ov4.SrcIP) || v4.Protocol != layers.IPProtocolICMPv4 || int(v4.Length) != len(reply)-l3 {
			t.Errorf("IPv4 %v", v4)
		}
		if naiveChecksum(reply[l3:l3+20], 0) != 0xffff {
			t.Error("IPv4 header checksum")
		}
		m := reply[l3+20:]
		if m[0] != 3 || m[1] != 4 || int(binary.BigEndian.Uint16(m[6:])) != mtu || naiveChecksum(m, 0) != 0xffff {
			t.Errorf("ICMP % x, want type 3 code 4 MTU %d and a valid checksum", m[:8], mtu)
		}
		if len(reply)-l3 > 576 {
			t.Errorf("IPv4 message of %d bytes", len(reply)-l3)
		}
		quote = m[8:]
		if naiveChecksum(quote[:20], 0) != 0xffff {
			t.Error("quoted IPv4 header checksum")
		}
		quote = bytes.Clone(quote)
		copy(quote[10:12], frame[l3+10:l3+12]) // compared below but for its checksum
	} else {
		v6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		ov6 := o.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !v6.SrcIP.Equal(ov6.DstIP) || !v6.DstIP.Equal(ov6.SrcIP) || v6.NextHeader != layers.IPProtocolICMPv6 || int(v6.Length) != len(reply)-l3-40 {
			t.Errorf("IPv6 %v", v6)
		}
		m := reply[l3+40:]
		var ph [40]byte
		copy(ph[:32], reply[l3+8:l3+40])
		binary.BigEndian.PutUint32(ph[32:], uint32(len(m)))
		ph[39] = 58
		if m[0] != 2 || m[1] != 0 || int(binary.BigEndian.Uint32(m[4:])) != mtu || naiveChecksum(m, naiveChecksum(ph[:], 0)) != 0xffff {
			t.Errorf("ICMPv6 % x, want type 2 MTU %d and a valid checksum", m[:8], mtu)
		}
		if len(reply)-l3 > 1280 {
			t.Errorf("IPv6 message of %d bytes", len(reply)-l3)
		}
		quote = m[8:]
	}
	if !bytes.HasPrefix(frame[l3:], quote) || len(quote) < 28 {
		t.Errorf("quote of %d bytes is not a prefix of the packet", len(quote))
	}
}

func TestPutTooBig(t *testing.T) {
	big := make([]byte, 1500)
	b := make([]byte, encap.TooBigMaxLen)
	for _, tc := range []struct {
		name  string
		frame []byte
		mtu   int
		want  int // reported MTU; 0: not answered
	}{
		{"ipv4 df", seg{payload: big}.frame(t), 1350, 1350},
		{"ipv4 df tagged", seg{tags: 1, payload: big}.frame(t), 1346, 1346},
		{"ipv4 df two tags", seg{tags: 2, payload: big}.frame(t), 1342, 1342},
		{"ipv4 df tiny mtu", seg{payload: big}.frame(t), 10, encap.MinIPv4MTU},
		{"ipv4 superframe", seg{payload: make([]byte, 30000)}.super(t), 1350, 1350},
		{"ipv6", seg{v6: true, payload: big}.frame(t), 1330, 1330},
		{"ipv6 tagged", seg{v6: true, tags: 1, payload: big}.frame(t), 1330, 1330},
		{"ipv6 below 1280", seg{v6: true, payload: big}.frame(t), 1000, encap.MinIPv6MTU},
		{"ipv4 without df", seg{noDF: true, payload: big}.frame(t), 1350, 0},
		{"ipv4 later fragment", seg{fragOff: 100, payload: big}.frame(t), 1350, 0},
		{"multicast destination MAC", seg{dstMAC: 0xff, payload: big}.frame(t), 1350, 0},
		{"arp", arpFrame(t, encap.ARPRequest), 1350, 0},
		{"runt", seg{payload: big}.frame(t)[:30], 1350, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.frame
			if tc.name == "multicast destination MAC" {
				f = bytes.Clone(f)
				f[0] |= 1
			}
			orig := bytes.Clone(f)
			n := encap.PutTooBig(b, f, tc.mtu)
			if !bytes.Equal(f, orig) {
				t.Fatal("the frame changed")
			}
			if tc.want == 0 {
				if n != 0 {
					t.Fatalf("answered with %d bytes", n)
				}
				return
			}
			if n == 0 {
				t.Fatal("not answered")
			}
			checkTooBig(t, b[:n], f, tc.want)
		})
	}
	// ICMP errors are never answered; an echo request is.
	for _, typ := range []layers.ICMPv4TypeCode{layers.CreateICMPv4TypeCode(3, 4), layers.CreateICMPv4TypeCode(11, 0), layers.CreateICMPv4TypeCode(8, 0)} {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, Flags: layers.IPv4DontFragment, SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 3}}
		f := serialize(t, &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, EthernetType: layers.EthernetTypeIPv4},
			ip, &layers.ICMPv4{TypeCode: typ}, gopacket.Payload(big))
		if n := encap.PutTooBig(b, f, 1350); (n != 0) != (typ.Type() == 8) {
			t.Errorf("ICMP type %d: answered with %d bytes", typ.Type(), n)
		}
	}
	// A short buffer takes a shorter quote, down to the IP header and 8
	// bytes; shorter still, nothing is written.
	f := seg{payload: big}.frame(t)
	short := make([]byte, 100)
	if n := encap.PutTooBig(short, f, 1350); n != 100 {
		t.Errorf("wrote %d bytes into 100", n)
	} else {
		checkTooBig(t, short, f, 1350)
	}
	if n := encap.PutTooBig(make([]byte, 14+20+8+20+7), f, 1350); n != 0 {
		t.Errorf("wrote %d bytes with a quote shorter than the header and 8 bytes", n)
	}
}

// PutTooBig on any frame: no panic, the frame unchanged, and a message
// only for a frame it may answer, well formed (see checkTooBig).
func FuzzPutTooBig(f *testing.F) {
	f.Add(seg{payload: make([]byte, 1500)}.frame(f), uint16(1350))
	f.Add(seg{v6: true, tags: 1, payload: make([]byte, 1500)}.frame(f), uint16(1300))
	f.Add(seg{tags: 2, payload: make([]byte, 100)}.super(f), uint16(0))
	f.Add(arpFrame(f, encap.ARPRequest), uint16(1500))
	f.Fuzz(func(t *testing.T, frame []byte, mtu uint16) {
		b := make([]byte, encap.TooBigMaxLen)
		orig := bytes.Clone(frame)
		n := encap.PutTooBig(b, frame, int(mtu))
		if !bytes.Equal(frame, orig) {
			t.Fatal("the frame changed")
		}
		if n == 0 {
			return
		}
		want := max(int(mtu), encap.MinIPv4MTU)
		if etherType(frame) == encap.EtherTypeIPv6 {
			want = max(int(mtu), encap.MinIPv6MTU)
		}
		p := gopacket.NewPacket(b[:n], layers.LayerTypeEthernet, gopacket.Default)
		if p.ErrorLayer() != nil && etherType(frame) == encap.EtherTypeIPv4 && frame[l3Offset(frame)]&0x0f == 5 {
			t.Fatalf("gopacket cannot read the message: %v", p.ErrorLayer().Error())
		}
		if len(frame)-l3Offset(frame) >= 48 {
			checkTooBig(t, b[:n], frame, want)
		}
	})
}
