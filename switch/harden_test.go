package vswitch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

// newSwitchRig is a rig whose switch is made with cfg (its Underlay is
// set here) and whose network has the VNI and TAP given.
// tapKind names a subtest run with a fake TAP with offloads (fast) or
// without.
func tapKind(fast bool) string { return map[bool]string{false: "simple", true: "offload"}[fast] }

// newTAPRig is a switch at 198.18.0.1:4789 on w with network 256 on a
// fake TAP with offloads (fast) or without.
func newTAPRig(t *testing.T, w *wire, fast bool) *rig {
	tp := newFakeTAP("vxlan256")
	if fast {
		tp = newFakeVnetTAP("vxlan256")
	}
	return newSwitchRig(t, w, "198.18.0.1:4789", Config{}, 256, tp)
}

func newSwitchRig(t *testing.T, w *wire, addr string, cfg Config, vni uint32, tp *fakeTAP) *rig {
	t.Helper()
	ul := w.attach(addr)
	cfg.Underlay = ul
	sw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sw.Run(context.Background()) }()
	n, err := sw.AddNetwork(NetworkConfig{VNI: vni, TAP: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sw.Close()
		<-done
	})
	return &rig{sw: sw, ul: ul, tap: tp, n: n}
}

// accounting returns how many datagrams the switch received, and how many
// it accounts for: dropped at the switch level, and per network delivered
// (RXFrames) or dropped on receive (RXDrops).
func accounting(sw *Switch) (received, accounted uint64) {
	st := sw.Stats()
	for _, v := range st.Drops {
		accounted += v
	}
	for _, n := range *sw.nets.Load() {
		c := n.Stats()
		accounted += c.RXFrames
		for _, v := range c.RXDrops {
			accounted += v
		}
	}
	return st.RXDatagrams, accounted
}

// corrupt returns a copy of f with one payload byte flipped.
func corrupt(f []byte) []byte {
	f = bytes.Clone(f)
	f[len(f)-100] ^= 0x40
	return f
}

// badIPHeader returns a copy of an untagged IPv4 frame whose TTL changed
// without its header checksum: the pseudo-header stays the same.
func badIPHeader(f []byte) []byte {
	f = bytes.Clone(f)
	f[14+8]--
	return f
}

// Every datagram the switch receives is delivered or dropped under a
// reason, exactly once, whatever it is and however it arrives (alone or
// in a GRO buffer), with a TAP with offloads and without.
func TestEveryDatagramAccounted(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(tapKind(fast), func(t *testing.T) {
			w := newWire()
			a := newTAPRig(t, w, fast)
			a.ul.gro = fast
			raw := w.attach("198.18.0.9:4789")
			good := tcpFrame(t, []byte("hello"))
			big := tcpFrame(t, bytes.Repeat([]byte("b"), 5000))
			notECT := withTOS(good, 0)
			reserved := vxlan(256, good)
			reserved[7] = 1
			flags := vxlan(256, good)
			flags[0] = 0x0c
			kinds := [][]byte{
				vxlan(256, good),
				{},                    // empty
				{0x08, 0, 0},          // short
				flags,                 // bad flags
				reserved,              // reserved bits
				vxlan(999, good),      // unknown VNI
				vxlan(256, good[:10]), // runt inner frame
				vxlan(256, frame(macA, bcast, 0x0800, []byte("x"))),       // bad source MAC
				vxlan(256, frame(macA, macB, 0x88b5, make([]byte, 3000))), // oversize, not TCP
				vxlan(256, corrupt(big)),                                  // superframe, corrupted
				vxlan(256, big),                                           // superframe, split
				vxlan(256, badIPHeader(partial(bytes.Clone(good)))),       // partial, bad IPv4 header
				vxlan(256, partial(bytes.Clone(good))),                    // partial, repaired
				vxlan(256, bytes.Repeat([]byte{0xa5}, 200)),               // garbage inner frame
			}
			sent := 0
			for round := range 3 {
				for _, k := range kinds {
					m := SendMsg{Iov: [][]byte{k}, Dst: a.ul.addr}
					if len(k) == len(kinds[0]) && round == 2 {
						// Three of a size in one GSO message: one GRO slot
						// with the fast rig's underlay.
						m = SendMsg{Iov: [][]byte{k, k, k}, Dst: a.ul.addr, SegSize: len(k)}
						sent += 2
					}
					if round == 1 && len(k) > 0 {
						m.ECN = encap.ECNCE // CE: dropped for a Not-ECT inner packet
					}
					raw.Send([]SendMsg{m})
					sent++
				}
			}
			raw.Send([]SendMsg{{Iov: [][]byte{vxlan(256, notECT)}, Dst: a.ul.addr, ECN: encap.ECNCE}})
			sent++
			waitFor(t, "every datagram accounted for", func() bool {
				rcv, acc := accounting(a.sw)
				return rcv == uint64(sent) && acc == rcv
			})
			rcv, acc := accounting(a.sw)
			if rcv != uint64(sent) || acc != rcv {
				t.Fatalf("sent %d, received %d, accounted %d", sent, rcv, acc)
			}
			st, c := a.sw.Stats(), a.n.Stats()
			for _, r := range []string{"short", "bad_flags", "reserved_bits", "unknown_vni"} {
				if st.Drops[r] == 0 {
					t.Errorf("no switch-level %s drop: %v", r, st.Drops)
				}
			}
			for _, r := range []string{"short", "bad_src_mac", "oversize", "bad_csum", "ce_not_ect"} {
				if c.RXDrops[r] == 0 {
					t.Errorf("no %s drop: %v", r, c.RXDrops)
				}
			}
			if c.RXSplit == 0 || c.RXCsumRepaired == 0 {
				t.Errorf("nothing split or repaired: %+v", c)
			}
			t.Logf("%d datagrams: switch %v, network %+v", sent, st, c)
		})
	}
}

// A superframe split for the TAP (a kernel peer's, whose MTU is larger)
// keeps its corruption visible: its checksum is verified over the whole
// payload before the segments get fresh ones, and a corrupted one is
// dropped as bad_csum; so is a partial frame whose IPv4 header fails.
// Nothing corrupted reaches the TAP.
func TestCorruptionIsNotRepaired(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(tapKind(fast), func(t *testing.T) {
			w := newWire()
			a := newTAPRig(t, w, fast)
			tp := a.tap
			raw := w.attach("198.18.0.9:4789")
			send := func(f []byte) { raw.Send([]SendMsg{{Iov: [][]byte{vxlan(256, f)}, Dst: a.ul.addr}}) }
			payload := make([]byte, 6000)
			for i := range payload {
				payload[i] = byte(i * 31)
			}
			big := tcpFrame(t, payload)
			send(corrupt(big))
			send(badIPHeader(partial(bytes.Clone(big))))
			send(badIPHeader(partial(tcpFrame(t, []byte("small")))))
			// A partial superframe of the size of one segment and a
			// small frame with a corrupted payload and a complete
			// checksum: left alone (not partial), for the stack to drop.
			send(corrupt(tcpFrame(t, make([]byte, 200))))
			waitFor(t, "three bad_csum drops", func() bool { return a.n.Stats().RXDrops["bad_csum"] == 3 })
			if f := recvK(t, tp); !bytes.Equal(f.b, corrupt(tcpFrame(t, make([]byte, 200)))) || f.vh.Flags&tap.VirtioNetHdrFDataValid != 0 {
				t.Errorf("the corrupted small frame was changed or marked valid: %+v", f.vh)
			}
			noFrame(t, tp)

			// The intact superframe, complete or partial, is split.
			for _, f := range [][]byte{big, partial(bytes.Clone(big))} {
				send(f)
				var got []byte
				for len(got) < len(payload) {
					p := validTCP(t, recvFrame(t, tp))
					got = append(got, p.ApplicationLayer().Payload()...)
				}
				if !bytes.Equal(got, payload) {
					t.Fatal("split payload differs")
				}
			}
			if s := a.n.Stats(); s.RXSplit != 2 || s.RXDrops["bad_csum"] != 3 {
				t.Errorf("counters %+v", s)
			}
		})
	}
}

// With PeersOnly a network takes datagrams only from the VTEPs it knows
// (flood list, static and store entries), per network; the others are
// dropped as unknown_vtep and never learned from.
func TestPeersOnly(t *testing.T) {
	w := newWire()
	a := newSwitchRig(t, w, "198.18.0.1:4789", Config{PeersOnly: true}, 256, newFakeTAP("vxlan256"))
	other, err := a.sw.AddNetwork(NetworkConfig{VNI: 257, TAP: newFakeTAP("vxlan257")})
	if err != nil {
		t.Fatal(err)
	}
	peer, static, store, rogue := w.attach("198.18.0.2:4789"), w.attach("198.18.0.3:4789"), w.attach("198.18.0.4:4789"), w.attach("198.18.0.66:4789")
	a.n.FIB().AddPeer(peer.addr.Addr())
	a.n.FIB().Add(fib.MAC{2, 0, 0, 0, 0, 3}, static.addr.Addr(), fib.Static)
	a.n.FIB().Add(fib.MAC{2, 0, 0, 0, 0, 4}, store.addr.Addr(), fib.Store)
	other.FIB().AddPeer(rogue.addr.Addr()) // known in 257, not in 256

	for i, u := range []*fakeUnderlay{peer, static, store} {
		src := fib.MAC{2, 0, 0, 0, 1, byte(i)}
		f := frame(macA, src, 0x0800, []byte{byte(i)})
		u.Send([]SendMsg{{Iov: [][]byte{vxlan(256, f)}, Dst: a.ul.addr}})
		if got := recvFrame(t, a.tap); !bytes.Equal(got, f) {
			t.Fatalf("from %v: got % x", u.addr, got)
		}
	}
	victim := fib.MAC{2, 0, 0, 0, 0, 3}
	rogue.Send([]SendMsg{{Iov: [][]byte{vxlan(256, frame(macA, victim, 0x0800, []byte("spoof")))}, Dst: a.ul.addr}})
	rogue.Send([]SendMsg{{Iov: [][]byte{vxlan(256, frame(macA, macB, 0x0800, []byte("new")))}, Dst: a.ul.addr}})
	waitFor(t, "two unknown_vtep drops", func() bool { return a.n.Stats().RXDrops["unknown_vtep"] == 2 })
	noFrame(t, a.tap)
	if _, ok := a.n.FIB().Get(macB); ok {
		t.Error("learned a MAC from an unknown VTEP")
	}
	if e, _ := a.n.FIB().Get(victim); e.VTEP != static.addr.Addr() || e.Source != fib.Static {
		t.Errorf("victim's entry %+v", e)
	}
	// Once the control plane names it, it is welcome.
	a.n.FIB().AddPeer(rogue.addr.Addr())
	f := frame(macA, macB, 0x0800, []byte("now known"))
	rogue.Send([]SendMsg{{Iov: [][]byte{vxlan(256, f)}, Dst: a.ul.addr}})
	if got := recvFrame(t, a.tap); !bytes.Equal(got, f) {
		t.Fatalf("got % x", got)
	}
	rcv, acc := accounting(a.sw)
	if rcv != 6 || acc != 6 {
		t.Errorf("received %d, accounted %d, want 6", rcv, acc)
	}
}

// failingTAP is a fake TAP whose reads fail, as a TAP deleted from
// outside does, once fail is closed.
type failingTAP struct {
	*fakeTAP
	fail chan struct{}
}

func (f failingTAP) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-f.fail:
		return 0, errTAPGone
	default:
	}
	select {
	case fr := <-f.fromKernel:
		f.put(bufs, sizes, 0, offset, fr)
		return 1, nil
	case <-f.fail:
		return 0, errTAPGone
	case <-f.closed:
		return 0, tap.ErrClosed
	}
}

var errTAPGone = errors.New("read /dev/net/tun: file descriptor in bad state")

// A network whose TAP fails reports it once, keeps its MAC table and
// counters, and works again on the TAP ReplaceTAP gives it; ReplaceTAP
// refuses once the network is gone.
func TestReplaceTAP(t *testing.T) {
	w := newWire()
	ul := w.attach("198.18.0.1:4789")
	sw, err := New(Config{Underlay: ul})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sw.Run(context.Background()) }()
	defer func() { sw.Close(); <-done }()
	peer := w.attach("198.18.0.2:4789")

	first := failingTAP{newFakeTAP("vxlan256"), make(chan struct{})}
	failed := make(chan error, 4)
	n, err := sw.AddNetwork(NetworkConfig{VNI: 256, TAP: first, OnTAPFailure: func(_ *Network, err error) { failed <- err }})
	if err != nil {
		t.Fatal(err)
	}
	n.FIB().Add(macB, peer.addr.Addr(), fib.Static)
	f := frame(macB, macA, 0x0800, []byte("before"))
	first.fromKernel <- kframe{b: f}
	if d := <-peer.in; !bytes.Equal(d.b[8:], f) {
		t.Fatalf("peer got % x", d.b)
	}
	close(first.fail)
	select {
	case err := <-failed:
		if !errors.Is(err, errTAPGone) {
			t.Errorf("OnTAPFailure got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnTAPFailure not called")
	}
	if !errors.Is(n.Err(), errTAPGone) {
		t.Errorf("Err() = %v", n.Err())
	}

	second := newFakeVnetTAP("vxlan256")
	if err := n.ReplaceTAP(func() (tap.Device, error) {
		select {
		case <-first.closed:
		default:
			t.Error("the new TAP was opened before the old one was closed")
		}
		return second, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n.Err() != nil || !n.Offload() {
		t.Errorf("after ReplaceTAP: Err %v, Offload %v", n.Err(), n.Offload())
	}
	f = frame(macB, macA, 0x0800, []byte("after"))
	second.fromKernel <- kframe{b: f}
	if d := <-peer.in; !bytes.Equal(d.b[8:], f) {
		t.Fatalf("peer got % x", d.b)
	}
	in := frame(macA, macB, 0x0800, []byte("in"))
	peer.Send([]SendMsg{{Iov: [][]byte{vxlan(256, in)}, Dst: ul.addr}})
	if got := recvFrame(t, second); !bytes.Equal(got, in) {
		t.Fatalf("TAP got % x", got)
	}
	if e, ok := n.FIB().Get(macB); !ok || e.Source != fib.Static {
		t.Errorf("static entry lost: %+v %v", e, ok)
	}
	waitFor(t, "counters kept", func() bool { s := n.Stats(); return s.TXFrames == 2 && s.RXFrames >= 1 })
	select {
	case err := <-failed:
		t.Errorf("OnTAPFailure called again: %v", err)
	default:
	}
	// An open that fails leaves the network without a TAP; try again.
	boom := errors.New("no /dev/net/tun")
	if err := n.ReplaceTAP(func() (tap.Device, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("ReplaceTAP with a failing open: %v", err)
	}
	third := newFakeTAP("vxlan256")
	if err := n.ReplaceTAP(func() (tap.Device, error) { return third, nil }); err != nil {
		t.Fatal(err)
	}
	if err := sw.RemoveNetwork(256); err != nil {
		t.Fatal(err)
	}
	if err := n.ReplaceTAP(func() (tap.Device, error) { return newFakeTAP("x"), nil }); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("ReplaceTAP after RemoveNetwork: %v", err)
	}
}

// A frame from the TAP too long for the underlay (its MTU lowered after
// the network was made, or a VLAN tag on a full-size frame) is answered
// with ICMP "fragmentation needed" or ICMPv6 "packet too big" into the
// TAP and dropped as too_big; a TCP superframe is cut to fit, and
// answered; the answers are rate-limited.
func TestTooBigForTheUnderlay(t *testing.T) {
	w := newWire()
	a := newFastRig(t, w, "198.18.0.1:4789")
	peer := w.attach("198.18.0.2:4789")
	a.n.FIB().Add(macA, peer.addr.Addr(), fib.Static)
	const maxInner = 1400 - 36 // an IPv4 underlay of MTU 1400
	a.sw.SetMaxInnerFrame(maxInner)

	expectAnswer := func(what string, mtu int) {
		t.Helper()
		k := recvK(t, a.tap)
		p := gopacket.NewPacket(k.b, layers.LayerTypeEthernet, gopacket.Default)
		icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok {
			icmp6, ok6 := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if !ok6 || icmp6.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || int(binary.BigEndian.Uint32(icmp6.Payload[:4])) != mtu {
				t.Fatalf("%s: answer %v", what, p)
			}
			return
		}
		if icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || int(icmp.Seq) != mtu {
			t.Fatalf("%s: answer %v, want fragmentation needed with MTU %d", what, p, mtu)
		}
		if eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(eth.DstMAC, macB[:]) || !bytes.Equal(eth.SrcMAC, macA[:]) {
			t.Errorf("%s: answer from %v to %v", what, eth.SrcMAC, eth.DstMAC)
		}
	}

	// A full-size plain frame (DF set): answered, not sent.
	full := tcpFrame(t, make([]byte, 1450-40))
	a.tap.fromKernel <- kframe{b: full}
	expectAnswer("full-size frame", maxInner-14)
	waitFor(t, "too_big drop", func() bool { s := a.n.Stats(); return s.Drops["too_big"] == 1 && s.PMTUAnswered == 1 })

	// A frame that fits goes out.
	small := tcpFrame(t, make([]byte, 100))
	a.tap.fromKernel <- kframe{b: small}
	if d := <-peer.in; !bytes.Equal(d.b[8:], small) {
		t.Fatal("a small frame did not go out")
	}

	// A TSO superframe: cut to fit, every byte sent, and answered.
	payload := make([]byte, 20*testMSS)
	for i := range payload {
		payload[i] = byte(i)
	}
	a.tap.fromKernel <- superframe(t, payload)
	expectAnswer("superframe", maxInner-14)
	var got []byte
	for len(got) < len(payload) {
		d := <-peer.in
		if len(d.b)-8 > maxInner {
			t.Fatalf("a %d-byte inner frame went out", len(d.b)-8)
		}
		got = append(got, validTCP(t, d.b[8:]).ApplicationLayer().Payload()...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the cut superframe's payload differs")
	}

	// A VLAN-tagged full-size frame on an underlay of MTU 1500.
	a.sw.SetMaxInnerFrame(1500 - 36)
	a.tap.fromKernel <- kframe{b: tagged(tcpFrame(t, make([]byte, 1450-40)))}
	expectAnswer("tagged frame", 1500-36-18)
	// Counted after the answer was written: wait for the counters.
	waitFor(t, "two too_big drops, three answers", func() bool { s := a.n.Stats(); return s.Drops["too_big"] == 2 && s.PMTUAnswered == 3 })

	// IPv4 without DF: dropped, not answered.
	a.sw.SetMaxInnerFrame(maxInner)
	noDF := bytes.Clone(full)
	noDF[14+6] = 0
	encap.IPv4(noDF[14:]).UpdateChecksum()
	before := a.n.Stats()
	a.tap.fromKernel <- kframe{b: noDF}
	waitFor(t, "too_big drop", func() bool { return a.n.Stats().Drops["too_big"] == before.Drops["too_big"]+1 })
	if a.n.Stats().PMTUAnswered != before.PMTUAnswered {
		t.Error("answered a frame without DF")
	}
}

// The "too big" answers of a network are a token bucket: a burst of 50,
// then one a millisecond (by the switch's clock, here a fake one).
func TestTooBigRateLimit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	w := newWire()
	a := newSwitchRig(t, w, "198.18.0.1:4789", Config{Clock: clk, MaxInnerFrame: 1400 - 36}, 256, newFakeVnetTAP("vxlan256"))
	a.n.FIB().AddPeer(netip.MustParseAddr("198.18.0.2"))
	full := tcpFrame(t, make([]byte, 1450-40))
	flood := func(k int) {
		before := a.n.Stats().Drops["too_big"]
		for range k {
			a.tap.fromKernel <- kframe{b: full}
		}
		waitFor(t, "too_big drops", func() bool { return a.n.Stats().Drops["too_big"] == before+uint64(k) })
	}
	flood(200)
	if n := a.n.Stats().PMTUAnswered; n != icmpBurst {
		t.Errorf("%d answers to a burst of 200, want %d", n, icmpBurst)
	}
	clk.Advance(10 * time.Millisecond)
	flood(200)
	if n := a.n.Stats().PMTUAnswered; n != icmpBurst+10 {
		t.Errorf("%d answers after 10 ms more, want %d", n, icmpBurst+10)
	}
	for range icmpBurst + 10 {
		recvK(t, a.tap)
	}
}

// MAC moves between VTEPs are counted (fib Stats.Moved) and logged at
// most once a second per network, with the number of moves left unsaid.
func TestMACMovesLoggedRateLimited(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	core, logs := observer.New(zap.InfoLevel)
	w := newWire()
	a := newSwitchRig(t, w, "198.18.0.1:4789", Config{Clock: clk, Logger: zap.New(core)}, 256, newFakeTAP("vxlan256"))
	v1, v2 := w.attach("198.18.0.2:4789"), w.attach("198.18.0.3:4789")
	f := frame(macA, macB, 0x0800, []byte("moving"))
	for i := range 100 {
		u := v1
		if i%2 == 1 {
			u = v2
		}
		u.Send([]SendMsg{{Iov: [][]byte{vxlan(256, f)}, Dst: a.ul.addr}})
		recvFrame(t, a.tap)
	}
	if m := a.n.FIB().Stats().Moved; m != 99 {
		t.Errorf("%d moves counted, want 99", m)
	}
	if n := logs.FilterMessage("MAC moved to another VTEP").Len(); n != 1 {
		t.Errorf("%d log lines for 99 moves in one instant, want 1", n)
	}
	clk.Advance(2 * time.Second)
	v1.Send([]SendMsg{{Iov: [][]byte{vxlan(256, f)}, Dst: a.ul.addr}})
	recvFrame(t, a.tap)
	lines := logs.FilterMessage("MAC moved to another VTEP").All()
	if len(lines) != 2 || lines[1].ContextMap()["suppressed"] != uint64(98) {
		t.Errorf("after 2 s: %d lines (%v); want 2, the last saying 98 suppressed", len(lines), lines)
	}
}
