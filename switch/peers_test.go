package vswitch

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

var (
	peer2 = netip.MustParseAddr("198.18.0.2")
	peer3 = netip.MustParseAddr("198.18.0.3")
)

// failingUnderlay refuses every message to one VTEP, as the kernel does
// for an unreachable one.
type failingUnderlay struct {
	discardUnderlay
	bad netip.Addr
}

func (u *failingUnderlay) Send(msgs []SendMsg) (int, error) {
	failed := 0
	for i := range msgs {
		if msgs[i].Dst.Addr() == u.bad {
			msgs[i].Failed = true
			failed += msgs[i].Datagrams()
		}
	}
	if failed > 0 {
		return failed, errors.New("unreachable")
	}
	return 0, nil
}

func peerOf(t *testing.T, ps []PeerCounters, v netip.Addr) PeerCounters {
	t.Helper()
	for _, p := range ps {
		if p.VTEP == v {
			return p
		}
	}
	t.Fatalf("no counters for %v in %+v", v, ps)
	return PeerCounters{}
}

// loadTX puts frames into tx's buffers as a TAP read would, and returns
// how many.
func loadTX(tx *txLoop, frames ...kframe) int {
	for i, f := range frames {
		tx.sizes[i] = copy(tx.bufs[i][txHeadroom:], f.b)
		f.vh.Encode(tx.bufs[i][txHeadroom-tap.VirtioNetHdrLen:])
	}
	return len(frames)
}

// loadRX puts datagrams from src into rx's slots, and returns how many.
func loadRX(rx *rxLoop, src netip.Addr, dgrams ...[]byte) int {
	for i, d := range dgrams {
		m := &rx.msgs[i]
		m.N, m.SegSize, m.Src = copy(m.Buf, d), 0, netip.AddrPortFrom(src, 40000)
	}
	return len(dgrams)
}

// Frames, bytes and send errors are counted per VTEP: unicast to the VTEP
// of the destination, a flooded frame once per peer, GSO messages as the
// datagrams they hold, failed sends as send_error and not as sent.
func TestPeerCountersTX(t *testing.T) {
	sw, n, _ := newDiscardNet(t, NetworkConfig{VNI: 256}, true)
	ul := &failingUnderlay{bad: peer3}
	ul.closed = make(chan struct{})
	sw.ul = ul
	if err := n.fib.Add(macA, peer2, fib.Static); err != nil {
		t.Fatal(err)
	}
	if ps := n.PeerStats(); len(ps) != 2 || ps[0].VTEP != peer2 || ps[1].VTEP != peer3 || ps[0].TXDatagrams+ps[1].TXDatagrams != 0 {
		t.Fatalf("before any traffic, want both peers with zeros: %+v", ps)
	}
	uni := kframe{b: frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 100))}
	bc := kframe{b: frame(bcast, macB, encap.EtherTypeIPv4, make([]byte, 50))}
	tx := newTxLoop(n)
	// Three equal unicast frames go as one GSO message of three.
	tx.batch(loadTX(tx, uni, uni, uni, bc))
	tx.batch(loadTX(tx, bc))
	ps := n.PeerStats()
	p2, p3 := peerOf(t, ps, peer2), peerOf(t, ps, peer3)
	if want := (PeerCounters{VTEP: peer2, TXDatagrams: 5, TXBytes: uint64(3*len(uni.b) + 2*len(bc.b))}); p2.TXDatagrams != want.TXDatagrams || p2.TXBytes != want.TXBytes || p2.Drops != nil {
		t.Errorf("peer 2: %+v, want %+v", p2, want)
	}
	if p3.TXDatagrams != 0 || p3.TXBytes != 0 || p3.Drops["send_error"] != 2 || len(p3.Drops) != 1 {
		t.Errorf("peer 3 refused both floods: %+v", p3)
	}
	if got := n.Stats().Drops["send_error"]; got != 2 {
		t.Errorf("network send_error %d, want 2", got)
	}
}

// Received frames are counted per sender: delivered ones as frames and
// bytes, dropped ones by reason; strangers beyond the bound share one
// entry.
func TestPeerCountersRX(t *testing.T) {
	sw, n, _ := newDiscardNet(t, NetworkConfig{VNI: 256}, true)
	rx := newRxLoop(sw)
	ok := vxlan(256, frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 60)))
	badSrc := vxlan(256, frame(macA, bcast, encap.EtherTypeIPv4, make([]byte, 60)))
	rx.batch(loadRX(rx, peer2, ok, ok, badSrc))
	rx.batch(loadRX(rx, peer2, ok))
	stranger := netip.MustParseAddr("198.18.7.7")
	rx.batch(loadRX(rx, stranger, ok))
	ps := n.PeerStats()
	inner := uint64(len(ok) - encap.VXLANHeaderLen)
	if p := peerOf(t, ps, peer2); p.RXFrames != 3 || p.RXBytes != 3*inner || p.Drops["bad_src_mac"] != 1 || len(p.Drops) != 1 {
		t.Errorf("peer 2: %+v, want 3 frames of %d bytes and one bad_src_mac", p, inner)
	}
	if p := peerOf(t, ps, stranger); p.RXFrames != 1 || p.RXBytes != inner {
		t.Errorf("stranger: %+v", p)
	}
	if p := peerOf(t, ps, peer3); p.RXFrames != 0 {
		t.Errorf("peer 3 sent nothing: %+v", p)
	}
	// 63 more strangers get counters of their own, the rest share one.
	for i := range maxUnknownPeers + 10 {
		rx.batch(loadRX(rx, netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i)}), ok))
	}
	ps = n.PeerStats()
	last := ps[len(ps)-1]
	if len(ps) != 2+maxUnknownPeers+1 || last.VTEP.IsValid() || last.RXFrames != 11 {
		t.Errorf("%d entries, last %+v; want 2 peers, %d strangers and one entry of 11 frames for the rest",
			len(ps), last, maxUnknownPeers)
	}
	// A known VTEP still gets its own.
	late := netip.MustParseAddr("198.18.0.4")
	n.fib.AddPeer(late)
	rx.batch(loadRX(rx, late, ok))
	if p := peerOf(t, n.PeerStats(), late); p.RXFrames != 1 {
		t.Errorf("a peer added late: %+v", p)
	}
}

// Counting per peer allocates nothing in steady state, flooding to
// several peers included (TestSteadyStateAllocs covers unicast and
// superframes).
func TestPeerCountersAllocs(t *testing.T) {
	sw, n, _ := newDiscardNet(t, NetworkConfig{VNI: 256}, true)
	for i := range 4 {
		n.fib.AddPeer(netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}))
	}
	tx := newTxLoop(n)
	bc := kframe{b: frame(bcast, macB, encap.EtherTypeIPv4, make([]byte, 50))}
	tx.batch(loadTX(tx, bc, bc))
	if a := testing.AllocsPerRun(200, func() { tx.batch(loadTX(tx, bc, bc)) }); a != 0 {
		t.Errorf("TX: %v allocations per batch", a)
	}
	rx := newRxLoop(sw)
	ok := vxlan(256, frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 60)))
	// Another station behind peer 3: a MAC that moved every batch would
	// cost the FIB's copies.
	ok3 := vxlan(256, frame(macA, fib.MAC{0x02, 0x42, 10, 0, 0, 9}, encap.EtherTypeIPv4, make([]byte, 60)))
	rx.batch(loadRX(rx, peer2, ok))
	rx.batch(loadRX(rx, peer3, ok3))
	if a := testing.AllocsPerRun(200, func() {
		rx.batch(loadRX(rx, peer2, ok, ok))
		rx.batch(loadRX(rx, peer3, ok3))
	}); a != 0 {
		t.Errorf("RX: %v allocations per batch", a)
	}
	if p := peerOf(t, n.PeerStats(), peer3); p.TXDatagrams != 2*202 || p.RXFrames != 202 {
		t.Errorf("peer 3: %+v", p)
	}
}

// Under a flood of strangers beyond the bound, a sender counted with the
// others is looked up once a batch, not once a slot: adjacent slots
// from one sender and senders that come back within the batch find the
// loop's cache.
func TestPeerCountersOtherLookups(t *testing.T) {
	sw, n, _ := newDiscardNet(t, NetworkConfig{VNI: 256}, true)
	rx := newRxLoop(sw)
	ok := vxlan(256, frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 60)))
	for i := range maxUnknownPeers {
		rx.batch(loadRX(rx, netip.AddrFrom4([4]byte{198, 19, 0, byte(i)}), ok))
	}
	lookups := 0
	addPeerHook = func() { lookups++ }
	t.Cleanup(func() { addPeerHook = nil })
	forged := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, 1, byte(i)}) }
	batch := len(rx.msgs)
	if batch < 7 {
		t.Fatalf("a batch of %d slots: too few for this test", batch)
	}
	for round := range 2 {
		// Three senders, each in runs of two slots, the first coming back.
		for i := range batch {
			m := &rx.msgs[i]
			m.N, m.SegSize, m.Src = copy(m.Buf, ok), 0, netip.AddrPortFrom(forged(i/2%3), 40000)
		}
		rx.batch(batch)
		if want := 3 * (round + 1); lookups != want {
			t.Errorf("after %d batches of %d slots from 3 strangers: %d lookups, want %d (one per sender and batch)",
				round+1, batch, lookups, want)
		}
	}
	ps := n.PeerStats()
	if last := ps[len(ps)-1]; last.VTEP.IsValid() || last.RXFrames != 2*uint64(batch) {
		t.Errorf("last entry %+v, want the others with %d frames", last, 2*batch)
	}
}

// The sweeper drops the counters of VTEPs the network no longer knows
// once they counted nothing for an aging interval, keeps known and
// recently active ones, and so frees the bound on unknown ones a burst
// of forged senders used up; the network's counters keep what dropped
// entries counted.
func TestPeerCountersPrune(t *testing.T) {
	sw, n, _ := newDiscardNet(t, NetworkConfig{VNI: 256, Aging: time.Minute}, true)
	rx := newRxLoop(sw)
	ok := vxlan(256, frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 60)))
	t0 := n.fib.Now()
	sweep := func(d time.Duration) { n.sweepPeers(t0 + int64(d)) }
	has := func(v netip.Addr) bool {
		for _, p := range n.PeerStats() {
			if p.VTEP == v {
				return true
			}
		}
		return false
	}
	// A burst of forged senders uses the bound up.
	for i := range maxUnknownPeers + 5 {
		rx.batch(loadRX(rx, netip.AddrFrom4([4]byte{198, 19, 0, byte(i)}), ok))
	}
	learned := netip.MustParseAddr("198.18.9.9")
	rx.batch(loadRX(rx, learned, ok))
	if has(learned) {
		t.Fatal("a stranger beyond the bound got counters of its own")
	}
	sweep(0) // the sweeper notes what they counted
	// Peer 3 leaves the flood list; peer 2 stays, silent.
	n.fib.RemovePeer(peer3)
	sweep(30 * time.Second)
	if ps := n.PeerStats(); len(ps) != 2+maxUnknownPeers+1 || !has(peer3) {
		t.Fatalf("within the aging interval: %d entries, want every one kept", len(ps))
	}
	// One forged sender keeps sending.
	busy := netip.AddrFrom4([4]byte{198, 19, 0, 1})
	rx.batch(loadRX(rx, busy, ok))
	sweep(70 * time.Second)
	ps := n.PeerStats()
	if !has(peer2) || !has(busy) || has(peer3) || has(netip.AddrFrom4([4]byte{198, 19, 0, 2})) {
		t.Errorf("after an aging interval: %d entries; want peer 2 (known) and the busy sender only, and the others", len(ps))
	}
	if len(ps) != 3 || ps[2].VTEP.IsValid() {
		t.Errorf("after an aging interval: %d entries, last %+v; want 2 and the others", len(ps), ps[len(ps)-1])
	}
	// The bound is free again: a learned peer gets counters of its own.
	rx.batch(loadRX(rx, learned, ok))
	if !has(learned) {
		t.Fatal("a learned peer after the prune is counted with the others")
	}
	if p := peerOf(t, n.PeerStats(), learned); p.RXFrames != 1 {
		t.Errorf("learned peer after the prune: %+v", p)
	}
	if s := n.Stats(); s.RXFrames != uint64(maxUnknownPeers+5+3) {
		t.Errorf("network rx_frames %d, want every frame (%d)", s.RXFrames, maxUnknownPeers+5+3)
	}
}
