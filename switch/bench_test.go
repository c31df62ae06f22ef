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
// coalescing), without system calls. Each runs with no filter, with the
// gateway filter, and with the gateway filter and the neighbour proxy
// (which knows 10.0.0.7 and fd00::7 only), all of which look at every
// frame.

var benchGW = netip.MustParseAddr("10.0.0.1")

type benchFilters struct {
	gw    netip.Addr
	proxy bool
}

// benchNet is a network on a discarding switch with a TAP with offloads,
// two peers, and macA static behind the first.
func benchNet(b *testing.B, f benchFilters) (*Switch, *Network, *discardUnderlay) {
	b.Helper()
	sw, n, ul := newDiscardNet(b, NetworkConfig{VNI: 256, Gateway: f.gw}, true)
	if err := n.fib.Add(macA, netip.MustParseAddr("198.18.0.2"), fib.Static); err != nil {
		b.Fatal(err)
	}
	if f.proxy {
		n.SetNeighbors(map[netip.Addr]fib.MAC{ipX: macX, ip6X: macX})
	}
	return sw, n, ul
}

func benchGateways(b *testing.B, run func(b *testing.B, f benchFilters)) {
	b.Run("nogw", func(b *testing.B) { run(b, benchFilters{}) })
	b.Run("gw", func(b *testing.B) { run(b, benchFilters{gw: benchGW}) })
	b.Run("gw+proxy", func(b *testing.B) { run(b, benchFilters{gw: benchGW, proxy: true}) })
}

// BenchmarkTX is one TAP read batch through the TX loop: eight small
// unicast frames, eight flooded ARP requests, one 64 KB TSO superframe,
// or four ARP requests and four Neighbor Solicitations for addresses the
// proxy knows (flooded when it is off, answered into the TAP when on).
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
	// Eight requests the proxy answers (when it is on).
	answered := make([]kframe, 8)
	for i := range answered {
		if i%2 == 0 {
			answered[i] = kframe{b: arpFrame(macB, encap.ARPRequest, [4]byte{10, 0, 0, 3}, ipX.As4())}
		} else {
			answered[i] = kframe{b: nsFrame(b, ip6X, nsOpts{ethSrc: macB, sll: &macB})}
		}
	}
	for _, bc := range []struct {
		name   string
		frames []kframe
	}{{"small", small}, {"arp", arps}, {"tso64k", tso}, {"resolve", answered}} {
		b.Run(bc.name, func(b *testing.B) {
			benchGateways(b, func(b *testing.B, f benchFilters) {
				_, n, ul := benchNet(b, f)
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
				if ul.sent == 0 && n.Stats().ARPProxied+n.Stats().NDProxied == 0 {
					b.Fatal("nothing sent or answered")
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
			benchGateways(b, func(b *testing.B, f benchFilters) {
				sw, n, _ := benchNet(b, f)
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
