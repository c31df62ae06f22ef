package fib

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable Clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

// t0 is where fake clocks start: any fixed instant will do.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t0)
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(ns int64)            { c.ns.Store(ns) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// station returns a locally administered unicast MAC numbered i.
func station(i int) MAC { return MAC{0x02, 0x42, 0, 0, byte(i >> 8), byte(i)} }

func vtep(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}) }

func TestNew(t *testing.T) {
	tb := newTable(t, Config{})
	if tb.Aging() != DefaultAging || tb.maxLearned != DefaultMaxLearned || tb.gran != int64(time.Second) {
		t.Errorf("defaults: aging %v max %d granularity %v", tb.Aging(), tb.maxLearned, time.Duration(tb.gran))
	}
	if d := time.Duration(tb.Now() - time.Now().UnixNano()).Abs(); d > time.Second {
		t.Errorf("wall-clock Now is %v off", d)
	}
	for _, cfg := range []Config{{Aging: -1}, {MaxLearned: -1}} {
		if _, err := New(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
	clk := newFakeClock()
	tb = newTable(t, Config{Aging: time.Minute, Clock: clk})
	clk.advance(time.Hour)
	if tb.Now() != clk.Now().UnixNano() {
		t.Errorf("Now = %d, want the fake clock's %d", tb.Now(), clk.Now().UnixNano())
	}
}

func TestPrecedence(t *testing.T) {
	m := station(1)
	a, b := vtep(1), vtep(2)
	type step struct {
		op   string // "learn", "add", "del"
		vtep netip.Addr
		src  Source
		res  LearnResult // for learn
		err  error       // for add and del
	}
	for _, tc := range []struct {
		name     string
		steps    []step
		want     netip.Addr // zero: Lookup misses
		wantSrc  Source
		shadowed uint64
	}{
		{"static beats learned", []step{
			{op: "add", vtep: a, src: Static},
			{op: "learn", vtep: b, res: LearnShadowed},
			{op: "learn", vtep: b, res: LearnShadowed},
		}, a, Static, 2},
		{"learn from a static entry's own VTEP", []step{
			{op: "add", vtep: a, src: Static},
			{op: "learn", vtep: a, res: LearnShadowed},
		}, a, Static, 0},
		{"control beats learned", []step{
			{op: "add", vtep: a, src: Store},
			{op: "learn", vtep: b, res: LearnShadowed},
		}, a, Store, 1},
		{"static replaces learned", []step{
			{op: "learn", vtep: a, res: LearnAdded},
			{op: "add", vtep: b, src: Static},
		}, b, Static, 0},
		{"static replaces control", []step{
			{op: "add", vtep: a, src: Store},
			{op: "add", vtep: b, src: Static},
		}, b, Static, 0},
		{"control replaces learned", []step{
			{op: "learn", vtep: a, res: LearnAdded},
			{op: "add", vtep: b, src: Store},
			{op: "learn", vtep: a, res: LearnShadowed},
		}, b, Store, 1},
		{"control cannot replace static", []step{
			{op: "add", vtep: a, src: Static},
			{op: "add", vtep: b, src: Store, err: ErrShadowed},
		}, a, Static, 0},
		{"delete with the wrong source", []step{
			{op: "add", vtep: a, src: Static},
			{op: "del", src: Store, err: ErrNotFound},
			{op: "del", src: Learned, err: ErrNotFound},
		}, a, Static, 0},
		{"delete with the right source", []step{
			{op: "add", vtep: a, src: Static},
			{op: "del", src: Static},
			{op: "del", src: Static, err: ErrNotFound},
			{op: "learn", vtep: b, res: LearnAdded},
		}, b, Learned, 0},
		{"re-add replaces", []step{
			{op: "add", vtep: a, src: Static},
			{op: "add", vtep: b, src: Static},
		}, b, Static, 0},
		{"learned moves", []step{
			{op: "learn", vtep: a, res: LearnAdded},
			{op: "learn", vtep: b, res: LearnMoved},
			{op: "learn", vtep: b, res: LearnRefreshed},
		}, b, Learned, 0},
		{"delete learned", []step{
			{op: "learn", vtep: a, res: LearnAdded},
			{op: "del", src: Learned},
		}, netip.Addr{}, 0, 0},
		{"add learned is refused", []step{
			{op: "add", vtep: a, src: Learned, err: ErrBadSource},
			{op: "add", vtep: a, src: Source(9), err: ErrBadSource},
		}, netip.Addr{}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, Config{Clock: newFakeClock()})
			for i, s := range tc.steps {
				switch s.op {
				case "learn":
					if got := tb.Learn(m, s.vtep, tb.Now()); got != s.res {
						t.Fatalf("step %d: Learn from %v = %v, want %v", i, s.vtep, got, s.res)
					}
				case "add", "del":
					var err error
					if s.op == "add" {
						err = tb.Add(m, s.vtep, s.src)
					} else {
						err = tb.Delete(m, s.src)
					}
					if !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
						t.Fatalf("step %d: %s %v %v = %v, want %v", i, s.op, s.src, s.vtep, err, s.err)
					}
				}
			}
			got, ok := tb.Lookup(m)
			if got != tc.want || ok != tc.want.IsValid() {
				t.Errorf("Lookup = %v, %v; want %v", got, ok, tc.want)
			}
			if e, _ := tb.Get(m); e.Source != tc.wantSrc {
				t.Errorf("source %v, want %v", e.Source, tc.wantSrc)
			}
			st := tb.Stats()
			if st.Shadowed != tc.shadowed {
				t.Errorf("Shadowed = %d, want %d", st.Shadowed, tc.shadowed)
			}
			checkCounts(t, tb)
		})
	}
}

// checkCounts compares Stats' entry counts with Entries.
func checkCounts(t *testing.T, tb *Table) {
	t.Helper()
	var n [Static + 1]int
	for _, e := range tb.Entries() {
		n[e.Source]++
	}
	st := tb.Stats()
	if st.Learned != n[Learned] || st.Store != n[Store] || st.Static != n[Static] {
		t.Errorf("Stats counts %d/%d/%d, Entries has %v", st.Learned, st.Store, st.Static, n[1:])
	}
}

func TestShadowedError(t *testing.T) {
	tb := newTable(t, Config{})
	if err := tb.Add(station(1), vtep(1), Static); err != nil {
		t.Fatal(err)
	}
	err := tb.Add(station(1), vtep(2), Store)
	want := "fib: shadowed by a stronger entry: 02:42:00:00:00:01 has a static entry to 198.18.0.1, which a store entry cannot replace; delete it first"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestAging(t *testing.T) {
	clk := newFakeClock()
	const aging = 10 * time.Second
	tb := newTable(t, Config{Aging: aging, Clock: clk})
	stale, busy, st, ctl := station(1), station(2), station(3), station(4)
	if err := tb.Add(st, vtep(3), Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(ctl, vtep(4), Store); err != nil {
		t.Fatal(err)
	}
	tb.Learn(stale, vtep(1), tb.Now())
	tb.Learn(busy, vtep(2), tb.Now())

	// busy sends a frame every second; stale goes quiet.
	for range int(aging/time.Second) - 1 {
		clk.advance(time.Second)
		if r := tb.Learn(busy, vtep(2), tb.Now()); r != LearnRefreshed {
			t.Fatalf("refresh = %v", r)
		}
	}
	clk.advance(time.Second - 1) // one nanosecond before stale's Aging
	if _, ok := tb.Lookup(stale); !ok {
		t.Fatal("entry missing before Aging")
	}
	clk.advance(1)
	if _, ok := tb.Lookup(stale); ok {
		t.Fatal("entry found at Aging")
	}
	if _, ok := tb.Get(stale); !ok {
		t.Fatal("stale entry gone before Expire")
	}
	for _, m := range []MAC{busy, st, ctl} {
		if _, ok := tb.Lookup(m); !ok {
			t.Errorf("%v missing", m)
		}
	}
	if n := tb.Expire(); n != 1 {
		t.Fatalf("Expire = %d, want 1", n)
	}
	if _, ok := tb.Get(stale); ok {
		t.Fatal("Expire left the stale entry")
	}
	if s := tb.Stats(); s.Expired != 1 || s.Learned != 1 {
		t.Fatalf("stats %+v", s)
	}

	// A stale entry that Expire has not removed comes back with a frame.
	clk.advance(aging)
	if _, ok := tb.Lookup(busy); ok {
		t.Fatal("busy found after going quiet for Aging")
	}
	if r := tb.Learn(busy, vtep(2), tb.Now()); r != LearnRefreshed {
		t.Fatalf("revive = %v", r)
	}
	if _, ok := tb.Lookup(busy); !ok {
		t.Fatal("revived entry missing")
	}

	// Static and control entries never expire.
	clk.advance(1000 * time.Hour)
	if n := tb.Expire(); n != 1 {
		t.Fatalf("Expire = %d, want 1", n)
	}
	for _, m := range []MAC{st, ctl} {
		if _, ok := tb.Lookup(m); !ok {
			t.Errorf("%v expired", m)
		}
	}
	checkCounts(t, tb)
}

// TestRefreshGranularity pins the documented bounds: a frame within the
// granularity of the stored last-seen time is not stored, so the entry goes
// stale Aging after the stored time; a frame at the granularity is stored.
func TestRefreshGranularity(t *testing.T) {
	for _, tc := range []struct {
		aging time.Duration
		gran  time.Duration
	}{
		{DefaultAging, time.Second},
		{32 * time.Second, 500 * time.Millisecond}, // Aging/64
	} {
		clk := newFakeClock()
		tb := newTable(t, Config{Aging: tc.aging, Clock: clk})
		if time.Duration(tb.gran) != tc.gran {
			t.Fatalf("Aging %v: granularity %v, want %v", tc.aging, time.Duration(tb.gran), tc.gran)
		}
		m := station(1)
		lastSeen := func() int64 { e, _ := tb.Get(m); return e.LastSeen.UnixNano() }
		alive := func(at int64) bool { _, ok := tb.LookupAt(m, at); return ok }

		tb.Learn(m, vtep(1), t0)
		// Within the granularity: refreshed, not stored.
		if r := tb.Learn(m, vtep(1), t0+int64(tc.gran)-1); r != LearnRefreshed || lastSeen() != t0 {
			t.Fatalf("Aging %v: in-granularity refresh = %v, last seen %+d", tc.aging, r, lastSeen()-t0)
		}
		// So the entry is stale Aging after the stored time, which is less
		// than the granularity before Aging after the last frame.
		if !alive(t0+int64(tc.aging)-1) || alive(t0+int64(tc.aging)) {
			t.Fatalf("Aging %v: wrong staleness boundary after an unstored refresh", tc.aging)
		}
		// At the granularity: stored, and Aging restarts from it.
		at := t0 + int64(tc.gran)
		if tb.Learn(m, vtep(1), at); lastSeen() != at {
			t.Fatalf("Aging %v: refresh at the granularity not stored", tc.aging)
		}
		if !alive(at+int64(tc.aging)-1) || alive(at+int64(tc.aging)) {
			t.Fatalf("Aging %v: wrong staleness boundary after a stored refresh", tc.aging)
		}
		// An older now never moves the time back.
		if tb.Learn(m, vtep(1), t0); lastSeen() != at {
			t.Fatalf("Aging %v: older now moved last seen to %+d", tc.aging, lastSeen()-t0)
		}
		// Traffic more often than the granularity keeps the entry alive
		// indefinitely, judged by the table's clock and by Expire.
		clk.set(at)
		for range 4 * int(tc.aging/tc.gran) {
			clk.advance(tc.gran/3 + 1)
			tb.Learn(m, vtep(1), tb.Now())
			if _, ok := tb.Lookup(m); !ok || tb.Expire() != 0 {
				t.Fatalf("Aging %v: busy entry aged out at %v", tc.aging, time.Duration(tb.Now()-at))
			}
		}
	}
}

func TestLimits(t *testing.T) {
	clk := newFakeClock()
	const max = 4
	tb := newTable(t, Config{MaxLearned: max, Clock: clk})
	for i := range max {
		if r := tb.Learn(station(i), vtep(1), tb.Now()); r != LearnAdded {
			t.Fatalf("learn %d = %v", i, r)
		}
	}
	if r := tb.Learn(station(max), vtep(1), tb.Now()); r != LearnRefusedFull {
		t.Fatalf("learn past the limit = %v", r)
	}
	// Known MACs still refresh and move; static entries do not count.
	if r := tb.Learn(station(0), vtep(1), tb.Now()); r != LearnRefreshed {
		t.Fatalf("refresh when full = %v", r)
	}
	if r := tb.Learn(station(1), vtep(2), tb.Now()); r != LearnMoved {
		t.Fatalf("move when full = %v", r)
	}
	for i := max; i < 2*max; i++ {
		if err := tb.Add(station(i), vtep(3), Static); err != nil {
			t.Fatalf("static add when full: %v", err)
		}
	}
	s := tb.Stats()
	if s.Learned != max || s.Static != max || s.RefusedFull != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Replacing a learned entry by a static one frees a learned slot.
	if err := tb.Add(station(0), vtep(3), Static); err != nil {
		t.Fatal(err)
	}
	if r := tb.Learn(station(100), vtep(1), tb.Now()); r != LearnAdded {
		t.Fatalf("learn after static replace = %v", r)
	}
	if r := tb.Learn(station(101), vtep(1), tb.Now()); r != LearnRefusedFull {
		t.Fatalf("learn past the limit = %v", r)
	}
	// Expire frees room.
	clk.advance(DefaultAging)
	if n := tb.Expire(); n != max {
		t.Fatalf("Expire = %d, want %d", n, max)
	}
	for i := range max {
		if r := tb.Learn(station(200+i), vtep(1), tb.Now()); r != LearnAdded {
			t.Fatalf("learn %d after Expire = %v", i, r)
		}
	}
	if s := tb.Stats(); s.Learned != max || s.RefusedFull != 2 {
		t.Fatalf("stats %+v", s)
	}
	checkCounts(t, tb)
}

func TestInvalid(t *testing.T) {
	tb := newTable(t, Config{})
	good := station(1)
	badMACs := []MAC{
		{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01},
		{0x33, 0x33, 0x00, 0x00, 0x00, 0x01},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{},
	}
	badVTEPs := []netip.Addr{
		{},
		netip.IPv4Unspecified(),
		netip.IPv6Unspecified(),
		netip.MustParseAddr("239.1.1.1"),
		netip.MustParseAddr("ff02::1"),
		netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("::ffff:0.0.0.0"),
	}
	n := 0
	for _, m := range badMACs {
		if r := tb.Learn(m, vtep(1), tb.Now()); r != LearnRefusedInvalid {
			t.Errorf("Learn(%v) = %v", m, r)
		}
		if err := tb.Add(m, vtep(1), Static); !errors.Is(err, ErrBadMAC) {
			t.Errorf("Add(%v) = %v", m, err)
		}
		n++
	}
	for _, a := range badVTEPs {
		if r := tb.Learn(good, a, tb.Now()); r != LearnRefusedInvalid {
			t.Errorf("Learn from %v = %v", a, r)
		}
		if err := tb.Add(good, a, Store); !errors.Is(err, ErrBadVTEP) {
			t.Errorf("Add to %v = %v", a, err)
		}
		if err := tb.AddPeer(a); !errors.Is(err, ErrBadVTEP) {
			t.Errorf("AddPeer(%v) = %v", a, err)
		}
		n++
	}
	if s := tb.Stats(); s.RefusedInvalid != uint64(n) || s.Learned+s.Static+s.Store+s.Peers != 0 {
		t.Errorf("stats %+v, want %d refused and nothing else", s, n)
	}

	// IPv4-mapped IPv6 addresses are IPv4 addresses.
	mapped := netip.AddrFrom16(vtep(1).As16())
	if r := tb.Learn(good, mapped, tb.Now()); r != LearnAdded {
		t.Fatalf("Learn from %v = %v", mapped, r)
	}
	if r := tb.Learn(good, vtep(1), tb.Now()); r != LearnRefreshed {
		t.Fatalf("Learn from %v after %v = %v", vtep(1), mapped, r)
	}
	if got, _ := tb.Lookup(good); got != vtep(1) {
		t.Fatalf("Lookup = %v, want %v", got, vtep(1))
	}
}

func TestPeers(t *testing.T) {
	tb := newTable(t, Config{})
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, a := range []netip.Addr{vtep(3), v6, vtep(1), vtep(3), netip.AddrFrom16(vtep(2).As16())} {
		if err := tb.AddPeer(a); err != nil {
			t.Fatal(err)
		}
	}
	want := []netip.Addr{vtep(1), vtep(2), vtep(3), v6}
	snap := tb.FloodList()
	if !slices.Equal(snap, want) || !slices.Equal(tb.Peers(), want) || tb.Stats().Peers != 4 {
		t.Fatalf("flood list %v, peers %v; want %v", snap, tb.Peers(), want)
	}
	if err := tb.RemovePeer(vtep(2)); err != nil {
		t.Fatal(err)
	}
	if err := tb.RemovePeer(vtep(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second RemovePeer = %v", err)
	}
	if err := tb.AddPeer(vtep(4)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap, want) {
		t.Fatalf("earlier snapshot changed to %v", snap)
	}
	if got := tb.FloodList(); !slices.Equal(got, []netip.Addr{vtep(1), vtep(3), vtep(4), v6}) {
		t.Fatalf("flood list %v", got)
	}
	p := tb.Peers()
	p[0] = vtep(9)
	if tb.FloodList()[0] != vtep(1) {
		t.Fatal("Peers returned the shared slice")
	}
}

func TestFlushAndEntries(t *testing.T) {
	clk := newFakeClock()
	tb := newTable(t, Config{Clock: clk})
	for i := range 10 {
		tb.Learn(station(10-i), vtep(i%2), tb.Now())
		clk.advance(time.Second)
	}
	for i := range 4 {
		if err := tb.Add(station(20+i), vtep(i%2), Static); err != nil {
			t.Fatal(err)
		}
		if err := tb.Add(station(30+i), vtep(i%2), Store); err != nil {
			t.Fatal(err)
		}
	}
	es := tb.Entries()
	if len(es) != 18 || !slices.IsSortedFunc(es, func(a, b Entry) int { return slices.Compare(a.MAC[:], b.MAC[:]) }) {
		t.Fatalf("Entries not 18 sorted: %v", es)
	}
	if e, _ := tb.Get(station(10)); e.LastSeen.UnixNano() != t0 || e.VTEP != vtep(0) || e.Source != Learned {
		t.Fatalf("Get = %+v", e)
	}
	if e, _ := tb.Get(station(20)); e.LastSeen.UnixNano() != t0+int64(10*time.Second) {
		t.Fatalf("static entry's LastSeen %v is not its install time", e.LastSeen)
	}
	if n := tb.FlushVTEP(vtep(1), Learned); n != 5 {
		t.Fatalf("FlushVTEP = %d", n)
	}
	if n := tb.FlushVTEP(netip.AddrFrom16(vtep(1).As16()), Static); n != 2 {
		t.Fatalf("FlushVTEP mapped = %d", n)
	}
	if n := tb.Flush(Store); n != 4 {
		t.Fatalf("Flush = %d", n)
	}
	if s := tb.Stats(); s.Learned != 5 || s.Static != 2 || s.Store != 0 {
		t.Fatalf("stats %+v", s)
	}
	checkCounts(t, tb)
}

func TestStrings(t *testing.T) {
	for s, want := range map[Source]string{Learned: "learned", Store: "store", Static: "static", 0: "source(0)"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
	for r, want := range map[LearnResult]string{LearnRefreshed: "refreshed", LearnRefusedInvalid: "refused-invalid", 9: "learn-result(9)"} {
		if r.String() != want {
			t.Errorf("%d: %q", r, r.String())
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	clk := newFakeClock()
	tb := newTable(t, Config{Clock: clk})
	learned, static, unknown := station(1), station(2), station(3)
	tb.Learn(learned, vtep(1), tb.Now())
	if err := tb.Add(static, vtep(2), Static); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if err := tb.AddPeer(vtep(10 + i)); err != nil {
			t.Fatal(err)
		}
	}
	var sink int
	for name, f := range map[string]func(){
		"Lookup learned": func() { _, ok := tb.Lookup(learned); sink += b2i(ok) },
		"Lookup static":  func() { _, ok := tb.Lookup(static); sink += b2i(ok) },
		"Lookup miss":    func() { _, ok := tb.Lookup(unknown); sink += b2i(ok) },
		"LookupAt":       func() { _, ok := tb.LookupAt(learned, tb.Now()); sink += b2i(ok) },
		"Learn refresh":  func() { sink += int(tb.Learn(learned, vtep(1), tb.Now())) },
		"Learn store": func() { // advances past the granularity: stores every time
			clk.advance(time.Second)
			sink += int(tb.Learn(learned, vtep(1), tb.Now()))
		},
		"Learn shadowed": func() { sink += int(tb.Learn(static, vtep(1), tb.Now())) },
		"Learn invalid":  func() { sink += int(tb.Learn(MAC{1}, vtep(1), tb.Now())) },
		"FloodList":      func() { sink += len(tb.FloodList()) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs per run", name, n)
		}
	}
	_ = sink
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestConcurrent runs the datapath's calls against a control plane that
// changes everything else, for the race detector, and checks invariants
// during and after.
func TestConcurrent(t *testing.T) {
	clk := newFakeClock()
	const max = 24
	tb := newTable(t, Config{MaxLearned: max, Aging: time.Minute, Clock: clk})
	// MACs 0..7 are static and never touched again; 8..63 are fought over.
	for i := range 8 {
		if err := tb.Add(station(i), vtep(100+i), Static); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := station((i*7 + g) % 64)
				now := tb.Now()
				tb.Learn(m, vtep((i+g)%3+1), now)
				a, ok := tb.LookupAt(m, now)
				if n := int(m[5]); n < 8 && (!ok || a != vtep(100+n)) {
					t.Errorf("static %v looked up as %v, %v", m, a, ok)
					return
				}
				if _, ok := tb.Lookup(station(i % 64)); ok {
					lookups.Add(1)
				}
				if fl := tb.FloodList(); !slices.IsSortedFunc(fl, netip.Addr.Compare) {
					t.Errorf("flood list %v not sorted", fl)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 3000 {
			m := station(8 + i%56)
			switch i % 7 {
			case 0:
				_ = tb.Add(m, vtep(50), Store)
			case 1:
				_ = tb.Delete(m, Store)
			case 2:
				_ = tb.Delete(station(8+(i*3)%56), Learned)
			case 3:
				clk.advance(7 * time.Second)
				tb.Expire()
			case 4:
				_ = tb.AddPeer(vtep(i % 10))
			case 5:
				_ = tb.RemovePeer(vtep((i + 3) % 10))
			case 6:
				if s := tb.Stats(); s.Learned > max {
					t.Errorf("%d learned entries, limit %d", s.Learned, max)
				}
				tb.Entries()
			}
		}
		close(stop)
	})
	wg.Wait()

	for i := range 8 {
		if e, ok := tb.Get(station(i)); !ok || e.Source != Static || e.VTEP != vtep(100+i) || e.LastSeen.UnixNano() != t0 {
			t.Errorf("static entry %d became %+v, %v", i, e, ok)
		}
	}
	s := tb.Stats()
	if s.Learned > max || s.Static != 8 {
		t.Errorf("stats %+v", s)
	}
	// Learned entries also leave by Delete and by Add replacing them, which
	// no counter records, so the counters only bound the count.
	if uint64(s.Learned) > s.Added-s.Expired {
		t.Errorf("%d learned entries, but %d added and %d expired", s.Learned, s.Added, s.Expired)
	}
	checkCounts(t, tb)
	t.Logf("stats %+v, %d lookup hits", s, lookups.Load())
}

// TestSync: the control plane's whole-set install keeps the precedence
// rules: a static entry shadows the store's, the store's replaces a learned
// one, and entries the set no longer has go.
func TestSync(t *testing.T) {
	tb := newTable(t, Config{})
	st, learned, gone, kept := station(1), station(2), station(3), station(4)
	if err := tb.Add(st, vtep(1), Static); err != nil {
		t.Fatal(err)
	}
	tb.Learn(learned, vtep(1), tb.Now())
	r, err := tb.Sync(Store, map[MAC]netip.Addr{st: vtep(2), learned: vtep(2), gone: vtep(2), kept: vtep(3)})
	if err != nil {
		t.Fatal(err)
	}
	if want := (SyncResult{Added: 2, Replaced: 1, Shadowed: 1}); r != want {
		t.Errorf("first Sync: %+v, want %+v", r, want)
	}
	r, err = tb.Sync(Store, map[MAC]netip.Addr{st: vtep(2), learned: vtep(4), kept: vtep(3)})
	if err != nil {
		t.Fatal(err)
	}
	// learned moved: removed and added again; gone removed; kept untouched.
	if want := (SyncResult{Added: 1, Removed: 2, Shadowed: 1}); r != want {
		t.Errorf("second Sync: %+v, want %+v", r, want)
	}
	for mac, want := range map[MAC]Entry{
		st:      {VTEP: vtep(1), Source: Static},
		learned: {VTEP: vtep(4), Source: Store},
		kept:    {VTEP: vtep(3), Source: Store},
	} {
		e, ok := tb.Get(mac)
		if !ok || e.VTEP != want.VTEP || e.Source != want.Source {
			t.Errorf("%s: %+v %v, want %v %s", mac, e, ok, want.VTEP, want.Source)
		}
	}
	if _, ok := tb.Get(gone); ok {
		t.Errorf("%s is still there after the set dropped it", gone)
	}
	// Once the static entry goes, the next Sync installs the store's.
	if err := tb.Delete(st, Static); err != nil {
		t.Fatal(err)
	}
	if r, _ := tb.Sync(Store, map[MAC]netip.Addr{st: vtep(2), learned: vtep(4), kept: vtep(3)}); r.Added != 1 {
		t.Errorf("Sync after the static entry went: %+v, want 1 added", r)
	}
	if _, err := tb.Sync(Learned, nil); !errors.Is(err, ErrBadSource) {
		t.Errorf("Sync(Learned): %v, want ErrBadSource", err)
	}
	if _, err := tb.Sync(Store, map[MAC]netip.Addr{{0x01}: vtep(1)}); !errors.Is(err, ErrBadMAC) {
		t.Errorf("Sync of a multicast MAC: %v, want ErrBadMAC", err)
	}
	if s := tb.Stats(); s.Store != 3 || s.Static != 0 || s.Learned != 0 {
		t.Errorf("Stats %+v, want 3 store entries only", s)
	}
}

func TestSetPeers(t *testing.T) {
	tb := newTable(t, Config{})
	changed, err := tb.SetPeers([]netip.Addr{vtep(3), vtep(1), netip.AddrFrom16(vtep(1).As16())})
	if err != nil || !changed {
		t.Fatalf("SetPeers: %v %v", changed, err)
	}
	if got := tb.FloodList(); !slices.Equal(got, []netip.Addr{vtep(1), vtep(3)}) {
		t.Errorf("flood list %v", got)
	}
	if changed, _ := tb.SetPeers([]netip.Addr{vtep(1), vtep(3)}); changed {
		t.Error("the same list again reported a change")
	}
	if _, err := tb.SetPeers([]netip.Addr{vtep(2), netip.MustParseAddr("239.0.0.1")}); !errors.Is(err, ErrBadVTEP) {
		t.Errorf("a multicast peer: %v", err)
	}
	if got := tb.FloodList(); len(got) != 2 {
		t.Errorf("a refused SetPeers changed the list: %v", got)
	}
}

// KnownVTEP: the flood list and the VTEPs of static and store entries,
// never a learned entry's; it follows every change, and ignores zones and
// IPv4-mapped forms.
func TestKnownVTEP(t *testing.T) {
	tb := newTable(t, Config{})
	known := func(want ...int) {
		t.Helper()
		for i := 1; i <= 6; i++ {
			if got := tb.KnownVTEP(vtep(i)); got != slices.Contains(want, i) {
				t.Errorf("KnownVTEP(%v) = %v, want known: %v", vtep(i), got, want)
			}
		}
	}
	known()
	tb.Learn(station(1), vtep(1), tb.Now())
	known() // learned: not known
	if err := tb.AddPeer(vtep(2)); err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(station(3), vtep(3), Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(station(4), vtep(3), Store); err != nil {
		t.Fatal(err)
	}
	known(2, 3)
	if !tb.KnownVTEP(netip.AddrFrom16(vtep(2).As16())) {
		t.Error("an IPv4-mapped form of a peer is not known")
	}
	if _, err := tb.Sync(Store, map[MAC]netip.Addr{station(5): vtep(5)}); err != nil {
		t.Fatal(err)
	}
	known(2, 3, 5) // station(3) is static and still to vtep(3)
	if err := tb.Delete(station(3), Static); err != nil {
		t.Fatal(err)
	}
	known(2, 5)
	if _, err := tb.SetPeers([]netip.Addr{vtep(6)}); err != nil {
		t.Fatal(err)
	}
	known(5, 6)
	tb.Flush(Store)
	if err := tb.RemovePeer(vtep(6)); err != nil {
		t.Fatal(err)
	}
	known()
	ll := netip.MustParseAddr("fe80::2%eth0")
	if err := tb.AddPeer(ll); err != nil {
		t.Fatal(err)
	}
	if !tb.KnownVTEP(ll.WithZone("")) || !tb.KnownVTEP(ll) {
		t.Error("a link-local peer is not known without (or with) its zone")
	}
}
