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
func partialFrame(t *testing.T, v6, udp bool) (frame []byte, csumAt int) {
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
			if RepairPartialChecksum(append([]byte(nil), valid...)) {
				t.Error("repaired a valid frame")
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
			if !RepairPartialChecksum(partial) {
				t.Fatal("partial checksum not repaired")
			}
			if !bytes.Equal(partial, valid) {
				t.Errorf("repaired checksum %#04x, want %#04x", binary.BigEndian.Uint16(partial[at:]), binary.BigEndian.Uint16(valid[at:]))
			}
			// Corrupted in transit: left for the stack to drop.
			bad := append([]byte(nil), valid...)
			bad[len(bad)-1] ^= 0xff
			if RepairPartialChecksum(bad) {
				t.Error("repaired a corrupted frame")
			}
			// Ethernet padding after the packet is ignored.
			padded := append(append([]byte(nil), partial...), 0, 0, 0, 0)
			binary.BigEndian.PutUint16(padded[at:], ph)
			if !RepairPartialChecksum(padded) || !bytes.Equal(padded[:len(valid)], valid) {
				t.Error("padded partial frame not repaired")
			}
		})
	}
	t.Run("udp4 without checksum", func(t *testing.T) {
		f, at := partialFrame(t, false, true)
		binary.BigEndian.PutUint16(f[at:], 0)
		if RepairPartialChecksum(f) {
			t.Error("touched a UDP datagram without checksum")
		}
	})
	t.Run("not ip", func(t *testing.T) {
		for _, f := range [][]byte{nil, make([]byte, 14), make([]byte, 60)} {
			if RepairPartialChecksum(f) {
				t.Errorf("repaired % x", f)
			}
		}
	})
}

func FuzzRepairPartialChecksum(f *testing.F) {
	f.Add(make([]byte, 60))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := append([]byte(nil), b...)
		if repaired := RepairPartialChecksum(c); repaired && RepairPartialChecksum(c) {
			t.Fatal("a repaired frame was repaired again")
		}
	})
}
