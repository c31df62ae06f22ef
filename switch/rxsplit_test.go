package vswitch

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

// tcpFrame builds an IPv4 TCP frame with a valid checksum.
func tcpFrame(t testing.TB, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macB[:]), DstMAC: net.HardwareAddr(macA[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IP{10, 0, 0, 3}, DstIP: net.IP{10, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 5001, DstPort: 40000, Seq: 1000, Ack: 1, ACK: true, PSH: true, Window: 500}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// partial replaces a frame's TCP checksum by the pseudo-header sum, as a
// Linux sender with checksum offload leaves it.
func partial(f []byte) []byte {
	ip := encap.IPv4(f[14:])
	tcp := encap.TCP(f[14+ip.HeaderLen():])
	tcp.SetChecksum(encap.PseudoHeaderChecksum(encap.ProtocolTCP, ip.Src(), ip.Dst(), ip.TotalLength()-uint16(ip.HeaderLen())))
	return f
}

func validTCP(t *testing.T, f []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if tcp == nil || ip == nil {
		t.Fatalf("not TCP/IPv4: %v", p)
	}
	want := tcp.Checksum
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload))
	if got := (&layers.TCP{}); got.DecodeFromBytes(buf.Bytes(), gopacket.NilDecodeFeedback) == nil && got.Checksum != want {
		t.Errorf("TCP checksum %#04x, want %#04x", want, got.Checksum)
	}
	return p
}

// A kernel VTEP on a veth underlay sends partial checksums and whole TSO
// superframes; the RX loop completes the former and splits the latter.
func TestReceiveFromKernelOverVeth(t *testing.T) {
	w := newWire()
	a := newRig(t, w, "198.18.0.1:4789", 256, netip.Addr{})
	kernel := w.attach("198.18.0.2:4789")
	send := func(b []byte) { kernel.Send([]SendMsg{{Iov: [][]byte{b}, Dst: a.ul.addr}}) }

	small := tcpFrame(t, []byte("hello"))
	send(vxlan(256, partial(append([]byte(nil), small...))))
	if got := recvFrame(t, a.tap); !bytes.Equal(got, small) {
		t.Errorf("partial checksum not completed:\n got % x\nwant % x", got, small)
	}

	payload := bytes.Repeat([]byte("0123456789abcdef"), 500) // 8000 bytes
	super := partial(tcpFrame(t, payload))
	send(vxlan(256, super))
	var joined []byte
	for len(joined) < len(payload) {
		f := recvFrame(t, a.tap)
		if len(f) > 1450+14 {
			t.Fatalf("segment of %d bytes exceeds the TAP's MTU", len(f))
		}
		p := validTCP(t, f)
		joined = append(joined, p.Layer(layers.LayerTypeTCP).(*layers.TCP).Payload...)
	}
	if !bytes.Equal(joined, payload) {
		t.Error("split segments do not carry the superframe's payload")
	}
	s := a.n.Stats()
	if s.RXCsumRepaired != 1 || s.RXSplit != 1 || len(s.Drops) != 0 {
		t.Errorf("counters %+v", s)
	}

	// A frame of the MTU plus one VLAN tag passes as Linux's own bridge
	// passes it; anything else that does not fit the TAP is dropped and
	// counted.
	tagged := frame(macA, macB, 0x8100, make([]byte, 1450+4))
	send(vxlan(256, tagged))
	if got := recvFrame(t, a.tap); !bytes.Equal(got, tagged) {
		t.Errorf("a %d-byte tagged frame did not pass as it was", len(tagged))
	}
	for i, big := range [][]byte{
		frame(macA, macB, 0x8100, make([]byte, 1450+5)),
		frame(macA, macB, 0x0800, make([]byte, 3000)),
	} {
		send(vxlan(256, big))
		waitFor(t, "oversize drop", func() bool { return a.n.Stats().Drops["oversize"] == uint64(i+1) })
	}
	noFrame(t, a.tap)
}
