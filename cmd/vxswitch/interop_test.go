package main_test

import (
	"encoding/binary"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// The Linux kernel's vxlan device, laid out as Docker's overlay driver lays
// it out, is the reference peer: ping and TCP both ways, and the datagrams
// vxswitch puts on the wire follow RFC 7348 and the kernel's conventions.
func TestKernelInterop(t *testing.T) { offloadModes(t, testKernelInterop) }

func testKernelInterop(t *testing.T, args []string) {
	tp := topo.New(t)
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	n1 := h1.MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t), Args: args}).MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24"})
	k2 := h2.MustKernelVXLAN(topo.NetConfig{VNI: 256, Subnet: "10.0.0.0/24"})
	tp.MustMesh(n1, k2)
	c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
	tp.MustAttach(n1, c1, "10.0.0.2/24")
	tp.MustAttach(k2, c2, "10.0.0.3/24")

	capture, err := h1.Capture(topo.UnderlayIf)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, c1, "10.0.0.3")
	ping(t, c2, "10.0.0.2")
	transfer(t, c1, c2, "10.0.0.3:5001", 8<<20)
	transfer(t, c2, c1, "10.0.0.2:5001", 8<<20)
	frames := capture.Stop()

	var ours, theirs int
	for _, f := range frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip4 == nil || udp == nil {
			continue // ARP on the underlay
		}
		if udp.DstPort != 4789 {
			t.Errorf("datagram to port %d, want 4789: %v", udp.DstPort, p)
			continue
		}
		vx := udp.Payload
		if len(vx) < 8+14 {
			t.Errorf("short VXLAN datagram: % x", vx)
			continue
		}
		if vx[0] != 0x08 || vx[1]|vx[2]|vx[3]|vx[7] != 0 {
			t.Errorf("VXLAN header % x: want flags 0x08 and reserved bits zero", vx[:8])
		}
		if vni := binary.BigEndian.Uint32(vx[4:8]) >> 8; vni != 256 {
			t.Errorf("VNI %d, want 256", vni)
		}
		if !ip4.SrcIP.Equal(h1.Addr.AsSlice()) {
			theirs++
			continue
		}
		ours++
		if ip4.Flags&layers.IPv4DontFragment == 0 {
			t.Errorf("outer IPv4 without DF: %v", ip4)
		}
		// A per-flow source port in RFC 7348's range, as the kernel
		// uses.
		if udp.SrcPort < 49152 {
			t.Errorf("outer UDP source port %d outside 49152-65535", udp.SrcPort)
		}
		checkInner(t, vx[8:])
	}
	if ours < 100 || theirs < 100 {
		t.Errorf("captured %d datagrams from vxswitch and %d from the kernel; want both ≥ 100", ours, theirs)
	}
	t.Logf("checked %d datagrams from vxswitch, saw %d from the kernel", ours, theirs)
}

// checkInner verifies the inner frame's IPv4 header checksum and its TCP,
// UDP or ICMP checksum with a plain RFC 1071 sum (not the code under
// test).
func checkInner(t *testing.T, frame []byte) {
	t.Helper()
	if binary.BigEndian.Uint16(frame[12:14]) != 0x0800 {
		return
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if rfc1071(ip[:ihl], 0) != 0xffff {
		t.Errorf("inner IPv4 header checksum invalid: % x", ip[:ihl])
	}
	l4 := ip[ihl:total]
	switch ip[9] {
	case 6, 17: // TCP, UDP: pseudo header
		var ph [12]byte
		copy(ph[0:8], ip[12:20])
		ph[9] = ip[9]
		binary.BigEndian.PutUint16(ph[10:], uint16(len(l4)))
		if ip[9] == 17 && binary.BigEndian.Uint16(l4[6:8]) == 0 {
			return // UDP without checksum
		}
		if got := rfc1071(l4, rfc1071(ph[:], 0)); got != 0xffff {
			t.Errorf("inner %s checksum invalid (sum %#04x) in %d-byte segment", map[byte]string{6: "TCP", 17: "UDP"}[ip[9]], got, len(l4))
		}
	case 1: // ICMP
		if rfc1071(l4, 0) != 0xffff {
			t.Errorf("inner ICMP checksum invalid")
		}
	}
}

func rfc1071(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// The kernel's vxlan as the peer over an IPv6 underlay, routable and
// link-local (the kernel's device then has `dev eth0`): ping and TCP both
// ways, with offloads on.
func TestKernelInteropIPv6(t *testing.T) {
	for _, fam := range []struct {
		name  string
		vteps topo.VTEPFamily
	}{{"routable", topo.IPv6VTEPs}, {"link-local", topo.LinkLocalVTEPs}} {
		t.Run(fam.name, func(t *testing.T) {
			tp := topo.New(t, topo.Options{VTEPs: fam.vteps})
			h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
			n1 := h1.MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t)}).MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24"})
			k2 := h2.MustKernelVXLAN(topo.NetConfig{VNI: 256, Subnet: "10.0.0.0/24"})
			tp.MustMesh(n1, k2)
			c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
			tp.MustAttach(n1, c1, "10.0.0.2/24")
			tp.MustAttach(k2, c2, "10.0.0.3/24")
			ping(t, c1, "10.0.0.3")
			ping(t, c2, "10.0.0.2")
			transfer(t, c1, c2, "10.0.0.3:5001", 8<<20)
			transfer(t, c2, c1, "10.0.0.2:5001", 8<<20)
			if s := stats(t, n1); len(s.Drops) != 0 {
				t.Errorf("vxswitch dropped frames: %v", s.Drops)
			}
		})
	}
}
