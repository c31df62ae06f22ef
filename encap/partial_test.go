package encap

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// partialFrame builds a valid TCP or UDP frame with gopacket and returns it
// with the offset of its transport checksum field.
func partialFrame(t testing.TB, v6, udp bool) (frame []byte, csumAt int) {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var ipl gopacket.NetworkLayer
	var l3 gopacket.SerializableLayer
	ipLen := 20
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: net.ParseIP("fd00::2"), DstIP: net.ParseIP("fd00::3")}
		ipl, l3, ipLen = ip, ip, 40
		if udp {
			ip.NextHeader = layers.IPProtocolUDP
		} else {
			ip.NextHeader = layers.IPProtocolTCP
		}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 3}}
		ipl, l3 = ip, ip
		if udp {
			ip.Protocol = layers.IPProtocolUDP
		} else {
			ip.Protocol = layers.IPProtocolTCP
		}
	}
	payload := gopacket.Payload(bytes.Repeat([]byte("partial!"), 100))
	var l4 gopacket.SerializableLayer
	off := 16
	if udp {
		u := &layers.UDP{SrcPort: 1000, DstPort: 2000}
		u.SetNetworkLayerForChecksum(ipl)
		l4, off = u, 6
	} else {
		tc := &layers.TCP{SrcPort: 1000, DstPort: 2000, Seq: 1, Ack: 1, ACK: true, Window: 100}
		tc.SetNetworkLayerForChecksum(ipl)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, l3, l4, payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), 14 + ipLen + off
}

func TestRepairPartialChecksum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v6, udp bool
	}{{"tcp4", false, false}, {"udp4", false, true}, {"tcp6", true, false}, {"udp6", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			valid, at := partialFrame(t, tc.v6, tc.udp)
			if r := RepairPartialChecksum(append([]byte(nil), valid...)); r != NotPartial {
				t.Errorf("a valid frame: %v", r)
			}
			// What a kernel sending with checksum offload leaves.
			partial := append([]byte(nil), valid...)
			ipOff, l4Off := 14, at-16
			if tc.udp {
				l4Off = at - 6
			}
			var src, dst []byte
			if tc.v6 {
				src, dst = partial[ipOff+8:ipOff+24], partial[ipOff+24:ipOff+40]
			} else {
				src, dst = partial[ipOff+12:ipOff+16], partial[ipOff+16:ipOff+20]
			}
			ph := PseudoHeaderChecksum(partial[map[bool]int{false: ipOff + 9, true: ipOff + 6}[tc.v6]], src, dst, uint16(len(partial)-l4Off))
			binary.BigEndian.PutUint16(partial[at:], ph)
			if !tc.v6 {
				// A partial frame whose IPv4 header was corrupted (the
				// TTL, outside the pseudo-header): refused, unchanged.
				hurt := bytes.Clone(partial)
				hurt[ipOff+8] ^= 0x10
				orig := bytes.Clone(hurt)
				if r := RepairPartialChecksum(hurt); r != RepairRefused || !bytes.Equal(hurt, orig) {
					t.Errorf("partial frame with a bad IPv4 header checksum: %v, changed %v", r, !bytes.Equal(hurt, orig))
				}
			}
			if r := RepairPartialChecksum(partial); r != Repaired {
				t.Fatalf("partial checksum not repaired: %v", r)
			}
			if !bytes.Equal(partial, valid) {
				t.Errorf("repaired checksum %#04x, want %#04x", binary.BigEndian.Uint16(partial[at:]), binary.BigEndian.Uint16(valid[at:]))
			}
			// Corrupted in transit: left for the stack to drop.
			bad := append([]byte(nil), valid...)
			bad[len(bad)-1] ^= 0xff
			if r := RepairPartialChecksum(bad); r != NotPartial {
				t.Errorf("a corrupted frame: %v", r)
			}
			// Ethernet padding after the packet is ignored.
			padded := append(append([]byte(nil), partial...), 0, 0, 0, 0)
			binary.BigEndian.PutUint16(padded[at:], ph)
			if RepairPartialChecksum(padded) != Repaired || !bytes.Equal(padded[:len(valid)], valid) {
				t.Error("padded partial frame not repaired")
			}
		})
	}
	t.Run("udp4 without checksum", func(t *testing.T) {
		f, at := partialFrame(t, false, true)
		binary.BigEndian.PutUint16(f[at:], 0)
		if RepairPartialChecksum(f) != NotPartial {
			t.Error("touched a UDP datagram without checksum")
		}
	})
	t.Run("not ip", func(t *testing.T) {
		for _, f := range [][]byte{nil, make([]byte, 14), make([]byte, 60)} {
			if RepairPartialChecksum(f) != NotPartial {
				t.Errorf("repaired % x", f)
			}
		}
	})
}

// RepairPartialChecksum on any bytes: no panic; a frame it leaves alone
// or refuses is unchanged; a repaired one differs only in its transport
// checksum field, which then verifies, and is not repaired again.
func FuzzRepairPartialChecksum(f *testing.F) {
	f.Add(make([]byte, 60), false)
	for _, v6 := range []bool{false, true} {
		for _, udp := range []bool{false, true} {
			fr, _ := partialFrame(f, v6, udp)
			f.Add(fr, true)
			f.Add(fr, false)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, makePartial bool) {
		if makePartial {
			makePartialChecksum(b)
		}
		orig := bytes.Clone(b)
		switch r := RepairPartialChecksum(b); r {
		case NotPartial, RepairRefused:
			if !bytes.Equal(b, orig) {
				t.Fatalf("%v, but the frame changed", r)
			}
		case Repaired:
			diff := 0
			for i := range b {
				if b[i] != orig[i] {
					diff++
				}
			}
			if diff == 0 || diff > 2 {
				t.Fatalf("repaired: %d bytes changed", diff)
			}
			if again := RepairPartialChecksum(b); again != NotPartial {
				t.Fatalf("a repaired frame: %v", again)
			}
		default:
			t.Fatalf("result %d", r)
		}
	})
}

// makePartialChecksum writes the pseudo-header sum into the transport
// checksum field of an untagged IPv4 or IPv6 TCP or UDP frame, as a Linux
// sender with checksum offload leaves it, so that the fuzzer reaches the
// repair; anything else is left alone.
func makePartialChecksum(b []byte) {
	if len(b) < EthernetHeaderLen {
		return
	}
	ip := b[EthernetHeaderLen:]
	var proto uint8
	var src, dst, l4 []byte
	switch Ethernet(b).EtherType() {
	case EtherTypeIPv4:
		if len(ip) < IPv4MinHeaderLen {
			return
		}
		h := IPv4(ip)
		hl, total := h.HeaderLen(), int(h.TotalLength())
		if hl < IPv4MinHeaderLen || total < hl || total > len(ip) {
			return
		}
		proto, src, dst, l4 = h.Protocol(), h.Src(), h.Dst(), ip[hl:total]
	case EtherTypeIPv6:
		if len(ip) < IPv6HeaderLen || IPv6HeaderLen+int(IPv6(ip).PayloadLength()) > len(ip) {
			return
		}
		h := IPv6(ip)
		proto, src, dst, l4 = h.NextHeader(), h.Src(), h.Dst(), ip[IPv6HeaderLen:IPv6HeaderLen+int(h.PayloadLength())]
	default:
		return
	}
	off := TCPChecksumOffset
	if proto == ProtocolUDP {
		off = UDPChecksumOffset
	}
	if len(l4) < off+2 {
		return
	}
	binary.BigEndian.PutUint16(l4[off:], PseudoHeaderChecksum(proto, src, dst, uint16(len(l4))))
}
