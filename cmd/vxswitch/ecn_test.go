package main_test

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// ECN across the overlay (RFC 6040), with the real binary: the outer
// header of a datagram carries the inner packet's ECN field and no DSCP;
// a datagram the underlay marked CE (here sent so by hand from host 2)
// reaches an ECN-capable receiver marked CE, and one carrying a Not-ECT
// packet is dropped and counted.
func TestECN(t *testing.T) { offloadModes(t, testECN) }

func testECN(t *testing.T, args []string) {
	c := newCluster(t, 2, args...)
	c1, c2 := c.ctrs[0], c.ctrs[1]
	h1, h2 := c.hosts[0], c.hosts[1]
	ping(t, c1, "10.0.0.3")
	ctx := testCtx(t)

	// TX: c1 sends with DSCP AF11 and ECT(0).
	const dscp = 0x28
	rx2 := listenTOS(t, c2, "10.0.0.3:5004")
	conn, err := c1.Dial(ctx, "udp4", "10.0.0.3:5004")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	setInt(t, conn.(syscall.Conn), unix.IPPROTO_IP, unix.IP_TOS, dscp|2)
	capture, err := h1.Capture(topo.UnderlayIf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("ect0")); err != nil {
		t.Fatal(err)
	}
	if msg, tos := readTOS(t, rx2); msg != "ect0" || tos != dscp|2 {
		t.Errorf("c2 got %q with TOS %#02x, want \"ect0\" with %#02x", msg, tos, dscp|2)
	}
	var outer []uint8
	for _, f := range capture.Stop() {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.SrcIP.Equal(h1.Addr.AsSlice()) {
			if inner, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && len(inner.Payload) > 8+14+20+8 && string(inner.Payload[len(inner.Payload)-4:]) == "ect0" {
				outer = append(outer, ip.TOS)
			}
		}
	}
	if len(outer) != 1 || outer[0] != 2 {
		t.Errorf("outer TOS of the datagram: %#02x, want ECT(0) and no DSCP, 0x02", outer)
	}

	// RX: VXLAN datagrams marked CE on the way, to c1.
	rx1 := listenTOS(t, c1, "10.0.0.2:5006")
	ul, err := h2.ListenPacket("udp4", h2.Addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	setInt(t, ul.(syscall.Conn), unix.IPPROTO_IP, unix.IP_TOS, 3)
	vtep1 := &net.UDPAddr{IP: h1.Addr.AsSlice(), Port: 4789}
	send := func(payload string, innerTOS uint8) {
		t.Helper()
		if _, err := ul.WriteTo(vxlanUDP(t, innerTOS, payload), vtep1); err != nil {
			t.Fatal(err)
		}
	}
	send("not-ect", dscp)
	eventually(t, "h1 counts a ce_not_ect drop", func() bool { return stats(t, c.nets[0]).Drops["ce_not_ect"] == 1 })
	send("ect0", dscp|2)
	// The first datagram c1 sees is the ECT one: the other never came.
	if msg, tos := readTOS(t, rx1); msg != "ect0" || tos != dscp|3 {
		t.Errorf("c1 got %q with TOS %#02x, want \"ect0\" marked CE, %#02x", msg, tos, dscp|3)
	}
}

// vxlanUDP is a VXLAN datagram (VNI 256) carrying a UDP packet from c2
// (10.0.0.3, its Docker-style MAC) to c1 port 5006, with the TOS given.
func vxlanUDP(t *testing.T, tos uint8, payload string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0x02, 0x42, 10, 0, 0, 3}, DstMAC: net.HardwareAddr{0x02, 0x42, 10, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TOS: tos, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 3}, DstIP: net.IP{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 5005, DstPort: 5006}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	vx := &layers.VXLAN{ValidIDFlag: true, VNI: 256}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		vx, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listenTOS opens a UDP socket in ns that reports each datagram's TOS.
func listenTOS(t *testing.T, ns *topo.Container, addr string) *net.UDPConn {
	t.Helper()
	pc, err := ns.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	setInt(t, pc.(syscall.Conn), unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
	return pc.(*net.UDPConn)
}

// readTOS reads one datagram and its TOS.
func readTOS(t *testing.T, c *net.UDPConn) (string, uint8) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, oob := make([]byte, 2000), make([]byte, 64)
	n, oobn, _, _, err := c.ReadMsgUDP(b, oob)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) > 0 {
			return string(b[:n]), m.Data[0]
		}
	}
	t.Fatal("no IP_TOS control message")
	return "", 0
}

func setInt(t *testing.T, c syscall.Conn, level, opt, v int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil || serr != nil {
		t.Fatalf("setsockopt %d/%d: %v %v", level, opt, err, serr)
	}
}
