package vswitch

import (
	"bytes"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

var (
	macX    = fib.MAC{0x02, 0x42, 10, 0, 0, 7} // the proxied addresses' owner, on another host
	macY    = fib.MAC{0x02, 0x42, 10, 0, 0, 8}
	ipX     = netip.MustParseAddr("10.0.0.7")
	ip6X    = netip.MustParseAddr("fd00::7")
	ip6A    = netip.MustParseAddr("fd00::2")
	proxyGW = netip.MustParseAddr("10.0.0.1")
)

// proxyPair is host A, whose network proxies ipX and ip6X (and the
// gateway address) as macX, and host B, its only peer, which receives
// what A floods.
func proxyPair(t *testing.T, tp *fakeTAP, dev tap.Device) (a, b *rig) {
	t.Helper()
	w := newWire()
	a = newRigWith(t, w, "198.18.0.1:4789", NetworkConfig{VNI: 256, Gateway: proxyGW}, tp, dev)
	b = newRig(t, w, "198.18.0.2:4789", 256, netip.Addr{})
	a.n.FIB().AddPeer(b.ul.addr.Addr())
	a.n.SetNeighbors(map[netip.Addr]fib.MAC{ipX: macX, ip6X: macX, proxyGW: macX})
	return a, b
}

func withDst(f []byte, dst fib.MAC) []byte {
	f = bytes.Clone(f)
	copy(f[0:6], dst[:])
	return f
}

// nsOpts describes a Neighbor Solicitation for nsFrame; the zero value is
// macA/fd00::2 asking the solicited-node address of the target.
type nsOpts struct {
	ethSrc fib.MAC    // zero: macA
	ethDst fib.MAC    // zero: the target's solicited-node MAC
	src    netip.Addr // zero: ip6A
	dst    netip.Addr // zero: the target's solicited-node address
	sll    *fib.MAC   // source link-layer address option
	hop    uint8      // 0: 255
}

func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

func nsFrame(t testing.TB, target netip.Addr, o nsOpts) []byte {
	t.Helper()
	if o.ethSrc == (fib.MAC{}) {
		o.ethSrc = macA
	}
	if !o.src.IsValid() {
		o.src = ip6A
	}
	if !o.dst.IsValid() {
		o.dst = solicitedNode(target)
	}
	if o.ethDst == (fib.MAC{}) {
		d := o.dst.As16()
		o.ethDst = fib.MAC{0x33, 0x33, d[12], d[13], d[14], d[15]}
	}
	if o.hop == 0 {
		o.hop = 255
	}
	var opts layers.ICMPv6Options
	if o.sll != nil {
		opts = append(opts, layers.ICMPv6Option{Type: layers.ICMPv6OptSourceAddress, Data: o.sll[:]})
	}
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: o.hop, SrcIP: o.src.AsSlice(), DstIP: o.dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: o.ethSrc[:], DstMAC: o.ethDst[:], EthernetType: layers.EthernetTypeIPv6},
		ip, icmp, &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(), Options: opts}); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// checkARPReply decodes an ARP reply with gopacket and checks it answers
// requester (mac, ip) for target (owned by owner).
func checkARPReply(t *testing.T, f []byte, owner fib.MAC, target netip.Addr, mac fib.MAC, ip netip.Addr) {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if eth == nil || arp == nil || p.ErrorLayer() != nil {
		t.Fatalf("not an ARP frame: %v", p)
	}
	if !bytes.Equal(eth.DstMAC, mac[:]) || !bytes.Equal(eth.SrcMAC, owner[:]) {
		t.Errorf("Ethernet %v → %v, want %v → %v", eth.SrcMAC, eth.DstMAC, owner, mac)
	}
	if arp.Operation != layers.ARPReply || arp.AddrType != layers.LinkTypeEthernet || arp.Protocol != layers.EthernetTypeIPv4 ||
		!bytes.Equal(arp.SourceHwAddress, owner[:]) || !bytes.Equal(arp.SourceProtAddress, target.AsSlice()) ||
		!bytes.Equal(arp.DstHwAddress, mac[:]) || !bytes.Equal(arp.DstProtAddress, ip.AsSlice()) {
		t.Errorf("ARP %+v", arp)
	}
}

// checkNA decodes a Neighbor Advertisement with gopacket, checks its
// ICMPv6 checksum by having gopacket compute it, and checks it answers
// (dstMAC, dst) for target (owned by owner).
func checkNA(t *testing.T, f []byte, owner fib.MAC, target netip.Addr, dstMAC fib.MAC, dst netip.Addr) {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	icmp, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	na, _ := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if eth == nil || ip == nil || icmp == nil || na == nil || p.ErrorLayer() != nil {
		t.Fatalf("not a Neighbor Advertisement: %v", p)
	}
	if !bytes.Equal(eth.DstMAC, dstMAC[:]) || !bytes.Equal(eth.SrcMAC, owner[:]) || eth.EthernetType != layers.EthernetTypeIPv6 {
		t.Errorf("Ethernet %v → %v, want %v → %v", eth.SrcMAC, eth.DstMAC, owner, dstMAC)
	}
	if ip.HopLimit != 255 || !ip.SrcIP.Equal(target.AsSlice()) || !ip.DstIP.Equal(dst.AsSlice()) || int(ip.Length) != len(f)-54 {
		t.Errorf("IPv6 %v → %v hop limit %d length %d", ip.SrcIP, ip.DstIP, ip.HopLimit, ip.Length)
	}
	if icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0) {
		t.Errorf("ICMPv6 %v", icmp.TypeCode)
	}
	if !na.Solicited() || !na.Override() || na.Router() || !na.TargetAddress.Equal(target.AsSlice()) {
		t.Errorf("advertisement flags %#x target %v", na.Flags, na.TargetAddress)
	}
	if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, owner[:]) {
		t.Errorf("options %v", na.Options)
	}
	// gopacket computes the checksum over the same bytes.
	want := icmp.Checksum
	c := *icmp
	c.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &c, gopacket.Payload(icmp.Payload)); err != nil {
		t.Fatal(err)
	}
	if c.Checksum != want {
		t.Errorf("ICMPv6 checksum %#04x, gopacket computes %#04x", want, c.Checksum)
	}
}

// proxyCase is a frame from A's TAP and what must become of it: answered
// into A's TAP (check looks at the answer), or flooded to B unchanged.
type proxyCase struct {
	name  string
	frame []byte
	check func(t *testing.T, reply []byte) // nil: flooded
}

// runProxyCases sends each case's frame from A's TAP, one at a time, and
// checks where it went: every answer is the only frame on A's TAP, and
// what A sent into the overlay is exactly the flooded cases' frames.
func runProxyCases(t *testing.T, a, b *rig, cases []proxyCase) {
	t.Helper()
	var flooded [][]byte
	for _, tc := range cases {
		a.tap.fromKernel <- kframe{b: tc.frame}
		if tc.check == nil {
			if got := recvFrame(t, b.tap); !bytes.Equal(got, tc.frame) {
				t.Fatalf("%s: B got % x, want the request", tc.name, got)
			}
			flooded = append(flooded, tc.frame)
			continue
		}
		k := recvK(t, a.tap)
		if k.vh != (tap.VirtioNetHdr{}) {
			t.Errorf("%s: answer written with virtio-net header %+v", tc.name, k.vh)
		}
		tc.check(t, k.b)
	}
	// A frame sent after all of them, flooded: once it reached B, every
	// earlier frame was handled (one TX loop, in order).
	last := frame(bcast, macA, encap.EtherTypeIPv4, []byte("last"))
	a.tap.fromKernel <- kframe{b: last}
	if got := recvFrame(t, b.tap); !bytes.Equal(got, last) {
		t.Fatalf("B got % x, want the last frame", got)
	}
	flooded = append(flooded, last)
	noFrame(t, a.tap)
	noFrame(t, b.tap)
	sent := a.ul.Sent()
	if len(sent) != len(flooded) {
		t.Fatalf("A sent %d datagrams into the overlay, want the %d flooded frames", len(sent), len(flooded))
	}
	for i, d := range sent {
		if !bytes.Equal(d.b[encap.VXLANHeaderLen:], flooded[i]) {
			t.Errorf("datagram %d is % x, want % x", i, d.b[encap.VXLANHeaderLen:], flooded[i])
		}
	}
}

func TestProxyARP(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		name := "simple"
		if vnet {
			name = "offload"
		}
		t.Run(name, func(t *testing.T) {
			tp := newFakeTAP("vxlan256")
			tp.vnet = vnet
			a, b := proxyPair(t, tp, nil)
			me := [4]byte{10, 0, 0, 2}
			x := ipX.As4()
			answered := func(t *testing.T, reply []byte) {
				checkARPReply(t, reply, macX, ipX, macA, netip.AddrFrom4(me))
			}
			unknown := arpFrame(macA, encap.ARPRequest, me, [4]byte{10, 0, 0, 50})
			runProxyCases(t, a, b, []proxyCase{
				{"broadcast request", arpFrame(macA, encap.ARPRequest, me, x), answered},
				{"unicast request", withDst(arpFrame(macA, encap.ARPRequest, me, x), macX), answered},
				{"unknown address", unknown, nil},
				{"gratuitous", arpFrame(macX, encap.ARPRequest, x, x), nil},
				{"probe", arpFrame(macB, encap.ARPRequest, [4]byte{}, x), nil},
				{"reply", arpFrame(macA, encap.ARPReply, me, x), nil},
				{"VLAN-tagged", tagged(arpFrame(macA, encap.ARPRequest, me, x)), nil},
				{"asking for itself", arpFrame(macX, encap.ARPRequest, [4]byte{10, 0, 0, 9}, x), nil},
				{"padded to 60 bytes", append(arpFrame(macA, encap.ARPRequest, me, x), make([]byte, 18)...), answered},
			})
			// The gateway filter runs first: the local bridge answers for
			// the gateway even though the table lists it.
			a.tap.fromKernel <- kframe{b: arpFrame(macA, encap.ARPRequest, me, proxyGW.As4())}
			waitFor(t, "gateway drop", func() bool { return a.n.Stats().Drops["gateway_local"] == 1 })
			noFrame(t, a.tap)
			s := a.n.Stats()
			if s.ARPProxied != 3 || s.NDProxied != 0 || s.Drops["tap_error"] != 0 {
				t.Errorf("counters %+v: want 3 ARP requests answered", s)
			}
			if s.TXFrames != 7 {
				t.Errorf("TXFrames %d, want the 7 flooded frames only", s.TXFrames)
			}
			// Cleared, the table answers nothing: the request floods.
			a.n.SetNeighbors(nil)
			if m := a.n.Neighbors(); m != nil {
				t.Errorf("Neighbors after clearing: %v", m)
			}
			req := arpFrame(macA, encap.ARPRequest, me, x)
			a.tap.fromKernel <- kframe{b: req}
			if got := recvFrame(t, b.tap); !bytes.Equal(got, req) {
				t.Fatalf("after clearing, B got % x", got)
			}
			noFrame(t, a.tap)
		})
	}
}

func TestProxyND(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		name := "simple"
		if vnet {
			name = "offload"
		}
		t.Run(name, func(t *testing.T) {
			tp := newFakeTAP("vxlan256")
			tp.vnet = vnet
			a, b := proxyPair(t, tp, nil)
			answeredTo := func(mac fib.MAC) func(t *testing.T, reply []byte) {
				return func(t *testing.T, reply []byte) { checkNA(t, reply, macX, ip6X, mac, ip6A) }
			}
			badSum := nsFrame(t, ip6X, nsOpts{sll: &macA})
			badSum[56] ^= 0xff
			runProxyCases(t, a, b, []proxyCase{
				{"solicited-node with SLL", nsFrame(t, ip6X, nsOpts{sll: &macA}), answeredTo(macA)},
				{"unicast without SLL", nsFrame(t, ip6X, nsOpts{dst: ip6X, ethDst: macX}), answeredTo(macA)},
				{"SLL other than the Ethernet source", nsFrame(t, ip6X, nsOpts{sll: &macB}), answeredTo(macB)},
				{"unknown target", nsFrame(t, netip.MustParseAddr("fd00::50"), nsOpts{sll: &macA}), nil},
				{"DAD", nsFrame(t, ip6X, nsOpts{src: netip.IPv6Unspecified()}), nil},
				{"bad checksum", badSum, nil},
				{"hop limit 64", nsFrame(t, ip6X, nsOpts{sll: &macA, hop: 64}), nil},
				{"VLAN-tagged", tagged(nsFrame(t, ip6X, nsOpts{sll: &macA})), nil},
				{"asking for itself", nsFrame(t, ip6X, nsOpts{ethSrc: macX, src: netip.MustParseAddr("fd00::9"), sll: &macX}), nil},
				{"IPv4 target as IPv4-mapped", nsFrame(t, netip.AddrFrom16(ipX.As16()), nsOpts{sll: &macA}), nil},
			})
			if s := a.n.Stats(); s.NDProxied != 3 || s.ARPProxied != 0 || s.Drops["tap_error"] != 0 {
				t.Errorf("counters %+v: want 3 solicitations answered", s)
			}
		})
	}
}

// A reply the TAP refuses is counted and the request goes on into the
// overlay, where the owner can answer it.
func TestProxyTAPRefuses(t *testing.T) {
	tp := newFakeTAP("vxlan256")
	a, b := proxyPair(t, tp, refusingTAP{tp})
	req := arpFrame(macA, encap.ARPRequest, [4]byte{10, 0, 0, 2}, ipX.As4())
	a.tap.fromKernel <- kframe{b: req}
	if got := recvFrame(t, b.tap); !bytes.Equal(got, req) {
		t.Fatalf("B got % x, want the request", got)
	}
	if s := a.n.Stats(); s.Drops["tap_error"] != 1 || s.ARPProxied != 0 {
		t.Errorf("counters %+v: want one tap_error and nothing proxied", s)
	}
}

// The RX loop draining a polled TAP runs the chain too: a request the
// "kernel" queues while a received frame is written is answered from the
// RX loop, which must not hold the TAP's write lock then.
func TestProxyFromDrain(t *testing.T) {
	p := newPollingTAP("vxlan256")
	replies := make(chan []byte, 16)
	p.onWrite = func(k kframe) {
		if encap.Ethernet(k.b).EtherType() == encap.EtherTypeARP {
			replies <- k.b
			return
		}
		// The stack wants to answer the sender and asks for its address.
		p.fromKernel <- kframe{b: arpFrame(macA, encap.ARPRequest, [4]byte{10, 0, 0, 2}, ipX.As4())}
	}
	w := newWire()
	a := newRigWith(t, w, "198.18.0.1:4789", NetworkConfig{VNI: 256}, p.fakeTAP, p)
	a.n.SetNeighbors(map[netip.Addr]fib.MAC{ipX: macX})
	peer := w.attach("198.18.0.2:4789")
	const rounds = 20
	for range rounds {
		peer.Send([]SendMsg{{Iov: [][]byte{vxlan(256, frame(macA, macX, encap.EtherTypeIPv4, []byte("hi")))}, Dst: a.ul.addr}})
		select {
		case r := <-replies:
			checkARPReply(t, r, macX, ipX, macA, netip.AddrFrom4([4]byte{10, 0, 0, 2}))
		case <-time.After(5 * time.Second):
			t.Fatal("no ARP reply")
		}
	}
	// TXDrained is added after the drained batch, whose answer is counted
	// while it runs: wait for both.
	waitFor(t, "every request answered, some by the RX loop", func() bool {
		s := a.n.Stats()
		return s.ARPProxied == rounds && s.TXDrained > 0
	})
	if len(a.ul.Sent()) != 0 {
		t.Errorf("a request went into the overlay")
	}
}

// SetNeighbors, Neighbors and Inject while traffic flows both ways, under
// the race detector: every request gets one valid answer from the MAC of
// the table it met, or is flooded, and the TAP never has two writers.
func TestProxyConcurrent(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		name := "simple"
		if vnet {
			name = "offload"
		}
		t.Run(name, func(t *testing.T) {
			tp := newFakeTAP("vxlan256")
			tp.vnet = vnet
			dev := &exclusiveTAP{fakeTAP: tp}
			w := newWire()
			a := newRigWith(t, w, "198.18.0.1:4789", NetworkConfig{VNI: 256, Gateway: proxyGW}, tp, dev)
			peer := w.attach("198.18.0.2:4789")
			a.n.FIB().AddPeer(peer.addr.Addr())

			// The control plane keeps installing the current table, and
			// moves to the next one when the request loop asks (every
			// phase requests): frames meet SetNeighbors all the time,
			// but what answers a request is known.
			tables := []map[netip.Addr]fib.MAC{{ipX: macX, ip6X: macX}, {ipX: macY, ip6X: macY}, nil}
			owners := []fib.MAC{macX, macY, {}}
			const phase, requests = 10, 30 * 10
			a.n.SetNeighbors(tables[0])
			next := make(chan chan struct{})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			t.Cleanup(func() {
				close(stop)
				tp.Close() // unblocks writers, should the test have stopped reading
				wg.Wait()
			})
			wg.Add(3)
			go func() {
				defer wg.Done()
				cur := 0
				for {
					select {
					case <-stop:
						return
					case ack := <-next:
						cur++
						a.n.SetNeighbors(tables[cur%len(tables)])
						close(ack)
					default:
						a.n.SetNeighbors(tables[cur%len(tables)])
						_ = a.n.Neighbors()
						time.Sleep(20 * time.Microsecond)
					}
				}
			}()
			injected := frame(macA, macB, encap.EtherTypeIPv4, []byte("injected"))
			var injects atomic.Int64
			go func() { // another writer
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := a.n.Inject(injected); err != nil {
						select {
						case <-stop:
						default:
							t.Errorf("Inject: %v", err)
						}
						return
					}
					injects.Add(1)
					time.Sleep(20 * time.Microsecond)
				}
			}()
			go func() { // traffic from the overlay, written by the RX loop
				defer wg.Done()
				f := vxlan(256, frame(macA, macB, encap.EtherTypeIPv4, []byte("from the overlay")))
				for {
					select {
					case <-stop:
						return
					default:
					}
					peer.Send([]SendMsg{{Iov: [][]byte{f}, Dst: a.ul.addr}})
					time.Sleep(20 * time.Microsecond)
				}
			}()

			arpReq := arpFrame(macA, encap.ARPRequest, [4]byte{10, 0, 0, 2}, ipX.As4())
			nsReq := nsFrame(t, ip6X, nsOpts{sll: &macA})
			var answered uint64
			for i := range requests {
				if i > 0 && i%phase == 0 {
					ack := make(chan struct{})
					next <- ack
					<-ack
				}
				owner := owners[i/phase%len(owners)]
				req := arpReq
				if i%2 == 1 {
					req = nsReq
				}
				a.tap.fromKernel <- kframe{b: req}
			wait:
				for {
					select {
					case k := <-a.tap.toKernel:
						if len(k.b) < encap.EthernetHeaderLen {
							t.Fatalf("request %d: a garbled frame reached the TAP: % x", i, k.b)
						}
						et := encap.Ethernet(k.b).EtherType()
						if et == encap.EtherTypeIPv4 {
							continue // injected or from the overlay
						}
						if owner == (fib.MAC{}) {
							t.Fatalf("request %d answered with the table cleared", i)
						}
						if i%2 == 0 {
							checkARPReply(t, k.b, owner, ipX, macA, netip.AddrFrom4([4]byte{10, 0, 0, 2}))
						} else {
							checkNA(t, k.b, owner, ip6X, macA, ip6A)
						}
						answered++
						break wait
					case d := <-peer.in:
						if !bytes.Equal(d.b[encap.VXLANHeaderLen:], req) {
							t.Fatalf("request %d: the overlay got % x", i, d.b)
						}
						if owner != (fib.MAC{}) {
							t.Fatalf("request %d flooded, though %v owns the address", i, owner)
						}
						break wait
					case <-time.After(5 * time.Second):
						t.Fatalf("request %d: no answer and nothing flooded", i)
					}
				}
			}
			if answered != requests*2/3 {
				t.Errorf("%d answered, want %d", answered, requests*2/3)
			}
			// The proxy counts an answer once the TAP took it.
			waitFor(t, "the answers counted", func() bool {
				s := a.n.Stats()
				return s.ARPProxied+s.NDProxied == answered
			})
			if s := a.n.Stats(); s.Drops["tap_error"] != 0 {
				t.Errorf("counters %+v", s)
			}
			if n := dev.overlaps.Load(); n != 0 {
				t.Errorf("%d TAP writes overlapped another (of %d; %d injected)", n, dev.writes.Load(), injects.Load())
			}
		})
	}
}

// Zero allocations per frame with the chain on: the gateway filter and the
// proxy look at every frame, answer ARP and NS requests into the TAP, and
// let the rest go on, on both loops.
func TestSteadyStateAllocsWithFilters(t *testing.T) {
	_, n, ul := newDiscardNet(t, NetworkConfig{VNI: 256, Gateway: proxyGW}, true)
	n.SetNeighbors(map[netip.Addr]fib.MAC{ipX: macX, ip6X: macX})
	tx := newTxLoop(n)
	frames := []kframe{
		{b: arpFrame(macA, encap.ARPRequest, [4]byte{10, 0, 0, 2}, ipX.As4())},             // answered
		{b: nsFrame(t, ip6X, nsOpts{sll: &macA})},                                          // answered
		{b: arpFrame(macA, encap.ARPRequest, [4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 50})}, // flooded
		{b: arpFrame(macA, encap.ARPRequest, [4]byte{10, 0, 0, 2}, proxyGW.As4())},         // gateway
		{b: tcpFrame(t, make([]byte, 100))},                                                // flooded
		superframe(t, make([]byte, 20000)),                                                 // split, flooded
	}
	load := func() int {
		for i, f := range frames {
			tx.sizes[i] = copy(tx.bufs[i][txHeadroom:], f.b)
			f.vh.Encode(tx.bufs[i][txHeadroom-tap.VirtioNetHdrLen:])
		}
		return len(frames)
	}
	tx.batch(load())
	before, sent := n.Stats(), ul.sent
	if a := testing.AllocsPerRun(200, func() { tx.batch(load()) }); a != 0 {
		t.Errorf("TX: %v allocations per batch", a)
	}
	after := n.Stats()
	// AllocsPerRun runs the batch once more than asked.
	if after.ARPProxied-before.ARPProxied != 201 || after.NDProxied-before.NDProxied != 201 ||
		after.Drops["gateway_local"]-before.Drops["gateway_local"] != 201 || ul.sent == sent {
		t.Fatalf("TX did not answer, filter and send every batch: %+v", after)
	}

	sw, rn, _ := newDiscardNet(t, NetworkConfig{VNI: 256, Gateway: proxyGW}, true)
	rn.SetNeighbors(map[netip.Addr]fib.MAC{ipX: macX, ip6X: macX})
	rx := newRxLoop(sw)
	slots := [][]byte{
		vxlan(256, arpFrame(macB, encap.ARPRequest, [4]byte{10, 0, 0, 3}, ipX.As4())),   // delivered: the proxy answers the TAP's side only
		vxlan(256, arpFrame(macB, encap.ARPReply, proxyGW.As4(), [4]byte{10, 0, 0, 3})), // gateway
		vxlan(256, frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 50))),            // delivered
	}
	loadRX := func() int {
		for i, b := range slots {
			rx.msgs[i].N = copy(rx.msgs[i].Buf, b)
			rx.msgs[i].SegSize = 0
			rx.msgs[i].Src = netip.MustParseAddrPort("198.18.0.2:50000")
		}
		return len(slots)
	}
	rx.batch(loadRX())
	rbefore := rn.Stats()
	if a := testing.AllocsPerRun(200, func() { rx.batch(loadRX()) }); a != 0 {
		t.Errorf("RX: %v allocations per batch", a)
	}
	rafter := rn.Stats()
	if rafter.RXFrames-rbefore.RXFrames != 2*201 || rafter.Drops["gateway_local"]-rbefore.Drops["gateway_local"] != 201 {
		t.Fatalf("RX did not deliver and filter every batch: %+v", rafter)
	}
}

// SetNeighbors copies the map, normalises addresses and leaves out
// entries nobody can be answered for.
func TestSetNeighbors(t *testing.T) {
	_, n, _ := newDiscardNet(t, NetworkConfig{VNI: 256}, false)
	if n.filters.Load() != nil {
		t.Fatal("a network without gateway or neighbours has filters")
	}
	m := map[netip.Addr]fib.MAC{
		ipX:                                    macX,
		netip.MustParseAddr("::ffff:10.0.0.8"): macY,                  // taken as 10.0.0.8
		netip.MustParseAddr("fe80::7%eth0"):    macX,                  // zone dropped
		netip.MustParseAddr("10.0.0.9"):        {},                    // zero MAC
		netip.MustParseAddr("10.0.0.10"):       bcast,                 // broadcast MAC
		netip.MustParseAddr("224.0.0.1"):       macX,                  // multicast address
		netip.MustParseAddr("127.0.0.1"):       macX,                  // loopback
		netip.IPv6Unspecified():                macX,                  // unspecified
		{}:                                     macX,                  // invalid
		netip.MustParseAddr("ff02::1"):         macX,                  // multicast
		netip.MustParseAddr("fd00::7"):         {0x03, 0, 0, 0, 0, 1}, // group MAC
	}
	n.SetNeighbors(m)
	want := map[netip.Addr]fib.MAC{
		ipX:                             macX,
		netip.MustParseAddr("10.0.0.8"): macY,
		netip.MustParseAddr("fe80::7"):  macX,
	}
	got := n.Neighbors()
	if len(got) != len(want) {
		t.Fatalf("Neighbors() = %v, want %v", got, want)
	}
	for a, mac := range want {
		if got[a] != mac {
			t.Errorf("%v: %v, want %v", a, got[a], mac)
		}
	}
	// The table is a copy of m, and Neighbors a copy of the table.
	m[ipX] = macY
	got[ipX] = macY
	if n.Neighbors()[ipX] != macX {
		t.Error("the table changed with the caller's map")
	}
	c := n.filters.Load()
	if c == nil || len(c.fs) != 1 {
		t.Fatalf("chain %v: want the proxy alone", c)
	}
	// The same table again (as a reconciler installs it on every pass)
	// changes nothing: not even the chain is replaced.
	n.SetNeighbors(map[netip.Addr]fib.MAC{ipX: macX, netip.MustParseAddr("10.0.0.8"): macY, netip.MustParseAddr("fe80::7"): macX})
	if n.filters.Load() != c {
		t.Error("setting the same table replaced the chain")
	}
	// Only entries that cannot be answered: no table, no proxy.
	n.SetNeighbors(map[netip.Addr]fib.MAC{netip.MustParseAddr("224.0.0.1"): macX})
	if n.Neighbors() != nil || n.filters.Load() != nil {
		t.Error("a table of unanswerable entries left the proxy on")
	}
	n.SetNeighbors(map[netip.Addr]fib.MAC{ipX: macX})
	n.SetNeighbors(map[netip.Addr]fib.MAC{})
	if n.Neighbors() != nil || n.filters.Load() != nil {
		t.Error("an empty map left the proxy on")
	}
}
