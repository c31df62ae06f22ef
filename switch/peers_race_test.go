package vswitch

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Reading the counters and tracing while both loops run: run with -race.
// A reader takes PeerStats and Stats, starts a trace, reads a few frames
// and stops it, and sweeps the peer counters, over and over, while A
// floods B and B answers unicast; at the end the per-peer counts add up.
func TestPeerCountersConcurrentReader(t *testing.T) {
	w := newWire()
	a := newRig(t, w, "198.18.0.1:4789", 256, netip.Addr{})
	b := newRig(t, w, "198.18.0.2:4789", 256, netip.Addr{})
	a.n.FIB().AddPeer(b.ul.addr.Addr())
	b.n.FIB().AddPeer(a.ul.addr.Addr())
	const frames = 2000
	bc := frame(bcast, macA, 0x0800, make([]byte, 100))
	uc := frame(macA, macB, 0x0800, make([]byte, 100))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	// The kernels: drain what each switch writes to its TAP.
	for _, r := range []*rig{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-r.tap.toKernel:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	// The readers, one per switch.
	for _, r := range []*rig{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				r.n.PeerStats()
				r.n.Stats()
				r.sw.Stats()
				r.n.sweepPeers(r.n.FIB().Now() + int64(time.Hour))
				tr, err := r.n.StartTrace(TraceConfig{Queue: 4})
				if err != nil {
					t.Errorf("StartTrace: %v", err)
					return
				}
				tctx, tcancel := context.WithTimeout(ctx, 5*time.Millisecond)
				for range 3 {
					if _, err := tr.Next(tctx); err != nil {
						break
					}
				}
				tcancel()
				tr.Stop()
				if _, err := tr.Next(ctx); err != nil && !errors.Is(err, ErrTraceStopped) && ctx.Err() == nil {
					t.Errorf("Next after Stop: %v", err)
				}
			}
		}()
	}
	// The traffic: A floods, B answers unicast (to macA, learned behind A).
	for i := range frames {
		a.tap.fromKernel <- kframe{b: bc}
		if i == 0 {
			waitFor(t, "B learning macA", func() bool { _, ok := b.n.FIB().Lookup(macA); return ok })
		}
		b.tap.fromKernel <- kframe{b: uc}
	}
	waitFor(t, "every frame counted", func() bool {
		return peerOf(t, b.n.PeerStats(), a.ul.addr.Addr()).RXFrames == frames &&
			peerOf(t, a.n.PeerStats(), b.ul.addr.Addr()).RXFrames == frames
	})
	for _, c := range []struct {
		name   string
		tx, rx PeerCounters
	}{
		{"A to B", peerOf(t, a.n.PeerStats(), b.ul.addr.Addr()), peerOf(t, b.n.PeerStats(), a.ul.addr.Addr())},
		{"B to A", peerOf(t, b.n.PeerStats(), a.ul.addr.Addr()), peerOf(t, a.n.PeerStats(), b.ul.addr.Addr())},
	} {
		if c.tx.TXDatagrams != frames || c.tx.TXBytes != c.rx.RXBytes || c.tx.Drops != nil || c.rx.Drops != nil {
			t.Errorf("%s: sent %+v, received %+v; want %d datagrams and the same bytes both ends", c.name, c.tx, c.rx, frames)
		}
	}
}
