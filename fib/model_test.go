package fib

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// model is a naive MAC table that applies the rules directly: one map, no
// shards, no atomics. Its refresh rule is the table's, so the two agree
// exactly whatever the clock steps.
type model struct {
	aging, gran int64
	max         int
	entries     map[MAC]modelEntry
	peers       map[netip.Addr]bool
	stats       Stats // counters only; entry counts are computed
}

type modelEntry struct {
	vtep     netip.Addr
	src      Source
	lastSeen int64
}

func modelBadVTEP(a netip.Addr) bool {
	return !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a == netip.MustParseAddr("255.255.255.255")
}

func modelBadMAC(m MAC) bool { return m[0]&1 == 1 || m == MAC{} }

func (m *model) count(src Source) int {
	n := 0
	for _, e := range m.entries {
		if e.src == src {
			n++
		}
	}
	return n
}

func (m *model) learn(mac MAC, vtep netip.Addr, now int64) LearnResult {
	vtep = vtep.Unmap()
	if modelBadMAC(mac) || modelBadVTEP(vtep) {
		m.stats.RefusedInvalid++
		return LearnRefusedInvalid
	}
	e, ok := m.entries[mac]
	switch {
	case !ok && m.count(Learned) >= m.max:
		m.stats.RefusedFull++
		return LearnRefusedFull
	case !ok:
		m.entries[mac] = modelEntry{vtep, Learned, now}
		m.stats.Added++
		return LearnAdded
	case e.src != Learned:
		if e.vtep != vtep {
			m.stats.Shadowed++
		}
		return LearnShadowed
	case e.vtep != vtep:
		m.entries[mac] = modelEntry{vtep, Learned, now}
		m.stats.Moved++
		return LearnMoved
	}
	if now-e.lastSeen >= m.gran {
		e.lastSeen = now
		m.entries[mac] = e
	}
	return LearnRefreshed
}

func (m *model) lookup(mac MAC, now int64) (netip.Addr, bool) {
	e, ok := m.entries[mac]
	if !ok || e.src == Learned && now-e.lastSeen >= m.aging {
		return netip.Addr{}, false
	}
	return e.vtep, true
}

func (m *model) add(mac MAC, vtep netip.Addr, src Source, now int64) error {
	vtep = vtep.Unmap()
	switch {
	case src != Static && src != Store:
		return ErrBadSource
	case modelBadMAC(mac):
		return ErrBadMAC
	case modelBadVTEP(vtep):
		return ErrBadVTEP
	case m.entries[mac].src > src:
		return ErrShadowed
	}
	m.entries[mac] = modelEntry{vtep, src, now}
	return nil
}

func (m *model) del(mac MAC, src Source) error {
	if e, ok := m.entries[mac]; !ok || e.src != src {
		return ErrNotFound
	}
	delete(m.entries, mac)
	return nil
}

// removeIf deletes the entries drop selects and returns how many.
func (m *model) removeIf(drop func(modelEntry) bool) int {
	n := 0
	for mac, e := range m.entries {
		if drop(e) {
			delete(m.entries, mac)
			n++
		}
	}
	return n
}

func (m *model) addPeer(a netip.Addr) error {
	a = a.Unmap()
	if modelBadVTEP(a) {
		return ErrBadVTEP
	}
	m.peers[a] = true
	return nil
}

func (m *model) removePeer(a netip.Addr) error {
	a = a.Unmap()
	if !m.peers[a] {
		return ErrNotFound
	}
	delete(m.peers, a)
	return nil
}

func (m *model) sync(src Source, want map[MAC]netip.Addr, now int64) (SyncResult, error) {
	var r SyncResult
	if src != Static && src != Store {
		return r, ErrBadSource
	}
	for mac := range want {
		if modelBadMAC(mac) {
			return r, ErrBadMAC
		}
	}
	for _, a := range want {
		if modelBadVTEP(a.Unmap()) {
			return r, ErrBadVTEP
		}
	}
	for mac, e := range m.entries {
		if a, ok := want[mac]; e.src == src && (!ok || a.Unmap() != e.vtep) {
			delete(m.entries, mac)
			r.Removed++
		}
	}
	for mac, a := range want {
		e, ok := m.entries[mac]
		switch {
		case ok && e.src == src:
			continue
		case ok && e.src > src:
			r.Shadowed++
			continue
		case ok:
			r.Replaced++
		default:
			r.Added++
		}
		m.entries[mac] = modelEntry{a.Unmap(), src, now}
	}
	return r, nil
}

func (m *model) setPeers(peers []netip.Addr) (bool, error) {
	next := map[netip.Addr]bool{}
	for _, a := range peers {
		if modelBadVTEP(a.Unmap()) {
			return false, ErrBadVTEP
		}
		next[a.Unmap()] = true
	}
	changed := !maps.Equal(next, m.peers)
	m.peers = next
	return changed, nil
}

// TestRandomAgainstModel applies random operations to a Table and to the
// model and compares every observable after each one.
func TestRandomAgainstModel(t *testing.T) {
	macs := []MAC{
		{0x01, 0x00, 0x5e, 0, 0, 1},          // multicast
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // broadcast
		{},                                   // zero
		{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}, // highest unicast
		{0x00, 0x00, 0x00, 0x00, 0x00, 0x01}, // lowest unicast
		{0x00, 0x00, 0x00, 0x01, 0x00, 0x00}, // shares key bits with the next
		{0x00, 0x00, 0x01, 0x00, 0x00, 0x00},
	}
	for i := range 20 {
		macs = append(macs, station(i))
	}
	v6 := netip.MustParseAddr("2001:db8::7")
	vteps := []netip.Addr{
		vtep(1), vtep(2), vtep(3), vtep(4), v6,
		netip.AddrFrom16(vtep(1).As16()), // the same VTEP as vtep(1)
		{}, netip.IPv4Unspecified(), netip.MustParseAddr("239.0.0.1"),
	}
	t.Run("small", func(t *testing.T) {
		// Aging 10 s: a refresh granularity of Aging/64 = 156.25 ms.
		runModel(t, modelRun{macs: macs, vteps: vteps, max: 10, aging: 10 * time.Second, seeds: 8, ops: 4000, longSteps: true})
	})
	// Enough MACs, and a long enough Aging, for the table to double its
	// shards (at 256 and 512 entries) while the model checks every step.
	many := slices.Clone(macs)
	for i := 20; i < 1200; i++ {
		many = append(many, station(i))
	}
	t.Run("growing", func(t *testing.T) {
		runModel(t, modelRun{macs: many, vteps: vteps, max: 700, aging: 10 * time.Minute, seeds: 2, ops: 1500, compareEvery: 10, preload: 400, noFlush: true, wantShards: 64})
	})
}

// modelRun is a run of random operations on a table and the model.
type modelRun struct {
	macs      []MAC
	vteps     []netip.Addr
	max       int           // MaxLearned
	aging     time.Duration // the refresh granularity is Aging/64, at most 1 s
	seeds     uint64
	ops       int
	longSteps bool // the clock also steps by up to twice Aging, not only around the granularity
	// compareEvery compares the whole table every so many operations
	// (0: after each); every result is compared as it comes.
	compareEvery int
	preload      int  // learn this many of the MACs (the last ones) before the random operations
	noFlush      bool // no Flush or FlushVTEP, which would empty a table the run means to grow
	wantShards   int  // the table must have grown to at least this many shards
}

// runModel runs run.ops random operations on a table and on the model,
// for each of run.seeds seeds, and compares them after each.
func runModel(t *testing.T, run modelRun) {
	macs, vteps, aging := run.macs, run.vteps, run.aging
	for seed := range run.seeds {
		rng := rand.New(rand.NewPCG(seed, 0x66_69_62))
		clk := newFakeClock()
		tb := newTable(t, Config{Aging: aging, MaxLearned: run.max, Clock: clk})
		m := &model{aging: int64(aging), gran: int64(min(time.Second, aging/64)), max: run.max,
			entries: map[MAC]modelEntry{}, peers: map[netip.Addr]bool{}}
		if tb.gran != m.gran {
			t.Fatalf("granularity %d, model %d", tb.gran, m.gran)
		}
		pickMAC := func() MAC { return macs[rng.IntN(len(macs))] }
		pickVTEP := func() netip.Addr { return vteps[rng.IntN(len(vteps))] }
		pickSrc := func() Source { return Source(rng.IntN(4)) } // 0 is invalid

		for i, mac := range macs[len(macs)-run.preload:] {
			now := tb.Now()
			if got, want := tb.Learn(mac, vteps[i%4], now), m.learn(mac, vteps[i%4], now); got != want {
				t.Fatalf("seed %d: preload %v: got %v, model %v", seed, mac, got, want)
			}
		}
		compare(t, tb, m, macs)
		for op := range run.ops {
			var what string
			var got, want any
			switch r := rng.IntN(100); {
			case r < 55:
				mac, a := pickMAC(), pickVTEP()
				now := tb.Now()
				if rng.IntN(4) == 0 { // a batch time read a little earlier
					now -= rng.Int64N(2 * m.gran)
				}
				what = "Learn " + mac.String() + " " + a.String()
				got, want = tb.Learn(mac, a, now), m.learn(mac, a, now)
			case r < 70:
				// Mostly steps around the granularity, some around Aging.
				d := time.Duration(rng.Int64N(2 * m.gran))
				if run.longSteps && rng.IntN(5) == 0 {
					d = time.Duration(rng.Int64N(int64(2 * aging)))
				}
				clk.advance(d)
				what = "advance " + d.String()
			case r < 77:
				mac, a, src := pickMAC(), pickVTEP(), pickSrc()
				what = "Add " + mac.String() + " " + a.String() + " " + src.String()
				got, want = errKind(tb.Add(mac, a, src)), errKind(m.add(mac, a, src, tb.Now()))
			case r < 83:
				mac, src := pickMAC(), pickSrc()
				what = "Delete " + mac.String() + " " + src.String()
				got, want = errKind(tb.Delete(mac, src)), errKind(m.del(mac, src))
			case r < 90:
				now := tb.Now()
				what = "Expire"
				n := m.removeIf(func(e modelEntry) bool { return e.src == Learned && now-e.lastSeen >= m.aging })
				m.stats.Expired += uint64(n)
				got, want = tb.Expire(), n
			case r < 93 && run.noFlush:
				what = "nothing"
			case r < 92:
				a, src := pickVTEP(), pickSrc()
				what = "FlushVTEP " + a.String() + " " + src.String()
				got, want = tb.FlushVTEP(a, src), m.removeIf(func(e modelEntry) bool { return e.src == src && e.vtep == a.Unmap() })
			case r < 93:
				src := pickSrc()
				what = "Flush " + src.String()
				got, want = tb.Flush(src), m.removeIf(func(e modelEntry) bool { return e.src == src })
			case r < 95:
				src := pickSrc()
				set := map[MAC]netip.Addr{}
				for range rng.IntN(6) {
					set[pickMAC()] = pickVTEP()
				}
				what = fmt.Sprintf("Sync %s %v", src, set)
				gr, gerr := tb.Sync(src, set)
				mr, merr := m.sync(src, set, tb.Now())
				got, want = fmt.Sprint(gr, errKind(gerr)), fmt.Sprint(mr, errKind(merr))
				if gerr != nil { // counts mean nothing when it refused
					got, want = errKind(gerr), errKind(merr)
				}
			case r < 96:
				var peers []netip.Addr
				for range rng.IntN(4) {
					peers = append(peers, pickVTEP())
				}
				what = fmt.Sprintf("SetPeers %v", peers)
				gc, gerr := tb.SetPeers(peers)
				mc, merr := m.setPeers(peers)
				got, want = fmt.Sprint(gc, errKind(gerr)), fmt.Sprint(mc, errKind(merr))
			case r < 98:
				a := pickVTEP()
				what = "AddPeer " + a.String()
				got, want = errKind(tb.AddPeer(a)), errKind(m.addPeer(a))
			default:
				a := pickVTEP()
				what = "RemovePeer " + a.String()
				got, want = errKind(tb.RemovePeer(a)), errKind(m.removePeer(a))
			}
			if got != want {
				t.Fatalf("seed %d op %d %s: got %v, model %v", seed, op, what, got, want)
			}
			if op%max(run.compareEvery, 1) != 0 && op != run.ops-1 {
				continue
			}
			compare(t, tb, m, macs)
			if t.Failed() {
				t.Fatalf("seed %d op %d %s: table and model differ", seed, op, what)
			}
		}
		shards := len(tb.shards.Load().s)
		if shards < run.wantShards {
			t.Fatalf("seed %d: the table has %d shards, want it grown to at least %d", seed, shards, run.wantShards)
		}
		t.Logf("seed %d: %d shards, %+v", seed, shards, tb.Stats())
	}
}

// errKind reduces an error to the sentinel it wraps, for comparison.
func errKind(err error) error {
	for _, s := range []error{ErrBadMAC, ErrBadVTEP, ErrNotFound, ErrShadowed, ErrBadSource} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

func compare(t *testing.T, tb *Table, m *model, macs []MAC) {
	t.Helper()
	now := tb.Now()
	for _, mac := range macs {
		got, gotOK := tb.Lookup(mac)
		want, wantOK := m.lookup(mac, now)
		if got != want || gotOK != wantOK {
			t.Errorf("Lookup(%v) = %v, %v; model %v, %v", mac, got, gotOK, want, wantOK)
		}
	}
	var want []Entry
	for mac, e := range m.entries {
		want = append(want, Entry{MAC: mac, VTEP: e.vtep, Source: e.src, LastSeen: time.Unix(0, e.lastSeen)})
	}
	slices.SortFunc(want, func(a, b Entry) int { return slices.Compare(a.MAC[:], b.MAC[:]) })
	if got := tb.Entries(); !slices.EqualFunc(got, want, func(a, b Entry) bool {
		return a.MAC == b.MAC && a.VTEP == b.VTEP && a.Source == b.Source && a.LastSeen.Equal(b.LastSeen)
	}) {
		t.Errorf("Entries\n%v\nmodel\n%v", got, want)
	}
	ws := m.stats
	ws.Learned, ws.Store, ws.Static, ws.Peers = m.count(Learned), m.count(Store), m.count(Static), len(m.peers)
	ws.MaxLearned = m.max
	if got := tb.Stats(); got != ws {
		t.Errorf("Stats\n%+v\nmodel\n%+v", got, ws)
	}
	var peers []netip.Addr
	for a := range m.peers {
		peers = append(peers, a)
	}
	slices.SortFunc(peers, netip.Addr.Compare)
	if got := tb.FloodList(); !slices.Equal(got, peers) {
		t.Errorf("FloodList %v, model %v", got, peers)
	}
}
