package vswitch

import (
	"net/netip"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

// Benchmarks of one TX or RX batch over the discarding fakes: the
// datapath's own work per batch (parsing, filters, FIB, encapsulation,
// coalescing), without system calls. Each runs with and without a
// gateway address, whose filter looks at every frame.

var benchGW = netip.MustParseAddr("10.0.0.1")

// benchNet is a network on a discarding switch with a TAP with offloads,
// two peers, and macA static behind the first.
func benchNet(b *testing.B, gw netip.Addr) (*Switch, *Network, *discardUnderlay) {
	b.Helper()
	sw, n, ul := newDiscardNet(b, NetworkConfig{VNI: 256, Gateway: gw}, true)
	if err := n.fib.Add(macA, netip.MustParseAddr("198.18.0.2"), fib.Static); err != nil {
		b.Fatal(err)
	}
	return sw, n, ul
}

func benchGateways(b *testing.B, run func(b *testing.B, gw netip.Addr)) {
	b.Run("nogw", func(b *testing.B) { run(b, netip.Addr{}) })
	b.Run("gw", func(b *testing.B) { run(b, benchGW) })
}

// BenchmarkTX is one TAP read batch through the TX loop: eight small
// unicast frames, eight flooded ARP requests, or one 64 KB TSO
// superframe.
func BenchmarkTX(b *testing.B) {
	small := make([]kframe, 8)
	for i := range small {
		small[i] = kframe{b: tcpFrame(b, make([]byte, 64))}
	}
	arps := make([]kframe, 8)
	for i := range arps {
		arps[i] = kframe{b: arpFrame(macB, encap.ARPRequest, [4]byte{10, 0, 0, 3}, [4]byte{10, 0, 0, 50 + byte(i)})}
	}
	tso := []kframe{superframe(b, make([]byte, 64000))}
	for _, bc := range []struct {
		name   string
		frames []kframe
	}{{"small", small}, {"arp", arps}, {"tso64k", tso}} {
		b.Run(bc.name, func(b *testing.B) {
			benchGateways(b, func(b *testing.B, gw netip.Addr) {
				_, n, ul := benchNet(b, gw)
				tx := newTxLoop(n)
				bytes := 0
				for _, f := range bc.frames {
					bytes += len(f.b)
				}
				load := func() int {
					for i, f := range bc.frames {
						tx.sizes[i] = copy(tx.bufs[i][txHeadroom:], f.b)
						f.vh.Encode(tx.bufs[i][txHeadroom-tap.VirtioNetHdrLen:])
					}
					return len(bc.frames)
				}
				b.SetBytes(int64(bytes))
				b.ReportAllocs()
				for b.Loop() {
					tx.batch(load())
				}
				if ul.sent == 0 {
					b.Fatal("nothing sent")
				}
			})
		})
	}
}

// BenchmarkRX is one underlay receive batch through the RX loop: eight
// small frames, eight flooded ARP requests, or one UDP GRO buffer of 40
// segments of a TCP flow, coalesced into one superframe.
func BenchmarkRX(b *testing.B) {
	type slot struct {
		b   []byte
		seg int
	}
	var small, arps []slot
	for i := range 8 {
		small = append(small, slot{b: vxlan(256, frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 64)))})
		arps = append(arps, slot{b: vxlan(256, arpFrame(macB, encap.ARPRequest, [4]byte{10, 0, 0, 3}, [4]byte{10, 0, 0, 50 + byte(i)}))})
	}
	sf := superframe(b, make([]byte, 40*testMSS))
	s, err := encap.ParseTCPSuper(sf.b, testMSS)
	if err != nil {
		b.Fatal(err)
	}
	gro, segLen := groSlot(40, s.HeaderLen(), func(i int, h []byte) []byte { return s.Segment(i, sf.b, h) })
	for _, bc := range []struct {
		name  string
		slots []slot
	}{{"small", small}, {"arp", arps}, {"gro40", []slot{{gro, segLen}}}} {
		b.Run(bc.name, func(b *testing.B) {
			benchGateways(b, func(b *testing.B, gw netip.Addr) {
				sw, n, _ := benchNet(b, gw)
				rx := newRxLoop(sw)
				src := netip.MustParseAddrPort("198.18.0.2:50000")
				bytes := 0
				for _, s := range bc.slots {
					bytes += len(s.b)
				}
				load := func() int {
					for i, s := range bc.slots {
						m := &rx.msgs[i]
						m.N, m.SegSize, m.Src = copy(m.Buf, s.b), s.seg, src
					}
					return len(bc.slots)
				}
				b.SetBytes(int64(bytes))
				b.ReportAllocs()
				for b.Loop() {
					rx.batch(load())
				}
				if n.c.rxFrames.Load() == 0 {
					b.Fatal("nothing delivered")
				}
			})
		})
	}
}
