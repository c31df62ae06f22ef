package fib

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wide returns a locally administered unicast MAC numbered i, for tables
// larger than station's 65 536.
func wide(i int) MAC { return MAC{0x06, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 0x01} }

// The table doubles its shards as it fills, keeping 16 entries a shard
// on average, and every entry stays where it was through each doubling.
func TestGrow(t *testing.T) {
	tb := newTable(t, Config{MaxLearned: 5000})
	if n := len(tb.shards.Load().s); n != 1<<minShardBits {
		t.Fatalf("an empty table has %d shards, want %d", n, 1<<minShardBits)
	}
	now := tb.Now()
	for i := range 3000 {
		if err := tb.Add(wide(i), vtep(i%7+1), Static); err != nil {
			t.Fatal(err)
		}
		if r := tb.Learn(station(i), vtep(i%5+1), now); r != LearnAdded {
			t.Fatalf("learn %d: %v", i, r)
		}
	}
	ss := tb.shards.Load()
	if n := len(ss.s); n != 512 {
		t.Errorf("6000 entries in %d shards, want 512 (at most 16 entries a shard on average)", n)
	}
	biggest := 0
	for i := range ss.s {
		biggest = max(biggest, len(*ss.s[i].Load()))
	}
	t.Logf("6000 entries in %d shards, the biggest has %d", len(ss.s), biggest)
	for i := range 3000 {
		if a, ok := tb.Lookup(wide(i)); !ok || a != vtep(i%7+1) {
			t.Fatalf("static %d: %v, %v", i, a, ok)
		}
		if a, ok := tb.Lookup(station(i)); !ok || a != vtep(i%5+1) {
			t.Fatalf("learned %d: %v, %v", i, a, ok)
		}
	}
	checkCounts(t, tb)
	// Emptied, it keeps its shards: a table that filled once may fill
	// again.
	tb.Flush(Learned)
	tb.Flush(Static)
	if n := len(tb.shards.Load().s); n != 512 {
		t.Errorf("emptied, the table has %d shards, want the 512 it had", n)
	}
	if len(tb.Entries()) != 0 {
		t.Error("entries left after Flush")
	}
}

// Lookups and refreshes that run while the table doubles its shards find
// every entry that was there before, and learns that race with the
// doubling land in the table.
func TestGrowConcurrent(t *testing.T) {
	tb := newTable(t, Config{MaxLearned: 1 << 20})
	for i := range 64 {
		if err := tb.Add(station(i), vtep(1), Static); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if a, ok := tb.Lookup(station(i % 64)); !ok || a != vtep(1) {
					t.Errorf("static %d looked up as %v, %v during growth", i%64, a, ok)
					return
				}
				// Learners racing the writer below, on MACs of their own.
				m := wide(1<<20 + g<<16 + i%4096)
				if r := tb.Learn(m, vtep(2), tb.Now()); r != LearnAdded && r != LearnRefreshed {
					t.Errorf("learn %v: %v", m, r)
					return
				}
			}
		})
	}
	for i := range 20000 {
		tb.Learn(wide(i), vtep(3), tb.Now())
	}
	stop.Store(true)
	wg.Wait()
	for i := range 20000 {
		if a, ok := tb.Lookup(wide(i)); !ok || a != vtep(3) {
			t.Fatalf("learned %d: %v, %v", i, a, ok)
		}
	}
	checkCounts(t, tb)
	t.Logf("%d entries in %d shards", len(tb.Entries()), len(tb.shards.Load().s))
}

// A learn that adds a MAC copies one small shard however full the table
// is: filling a default table to its limit makes little garbage, as a
// flood of forged source MACs does.
func TestLearnGarbage(t *testing.T) {
	tb := newTable(t, Config{})
	now := tb.Now()
	const before = DefaultMaxLearned - 4096
	for i := range before {
		tb.Learn(wide(i), vtep(1), now)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := before; i < DefaultMaxLearned; i++ {
		if r := tb.Learn(wide(i), vtep(1), now); r != LearnAdded {
			t.Fatalf("learn %d: %v", i, r)
		}
	}
	runtime.ReadMemStats(&m1)
	perAdd := (m1.TotalAlloc - m0.TotalAlloc) / 4096
	t.Logf("%d bytes allocated per learned MAC in a table of %d", perAdd, DefaultMaxLearned)
	// The entry (48 bytes) and a copy of a shard of about 16 entries.
	if perAdd > 1024 {
		t.Errorf("%d bytes allocated per learned MAC in a nearly full table, want at most 1 KiB", perAdd)
	}
	if r := tb.Learn(wide(DefaultMaxLearned), vtep(1), now); r != LearnRefusedFull {
		t.Errorf("learn beyond the limit: %v", r)
	}
}

// All yields what Entries returns, in the same order, without a snapshot;
// it stops when the loop does, and tolerates changes while it runs.
func TestAll(t *testing.T) {
	clk := newFakeClock()
	tb := newTable(t, Config{Clock: clk})
	for i := range 600 {
		switch i % 3 {
		case 0:
			tb.Learn(station(i), vtep(1), tb.Now())
		case 1:
			tb.Add(station(i), vtep(2), Store)
		default:
			tb.Add(station(i), vtep(3), Static)
		}
		clk.advance(time.Second)
	}
	var got []Entry
	for e := range tb.All() {
		got = append(got, e)
	}
	if want := tb.Entries(); !slices.Equal(got, want) {
		t.Errorf("All yields %d entries, Entries %d, or they differ", len(got), len(want))
	}
	n := 0
	for range tb.All() {
		n++
		if n == 10 {
			break
		}
	}
	if n != 10 {
		t.Errorf("All went on after break: %d", n)
	}
	// Deleting every other entry while All runs: it yields the entries
	// still there, each once, in order, and never one already deleted.
	seen := map[MAC]bool{}
	var last uint64
	for e := range tb.All() {
		if seen[e.MAC] || e.MAC.key() < last {
			t.Fatalf("All yields %v twice or out of order", e.MAC)
		}
		seen[e.MAC], last = true, e.MAC.key()
		if i := int(e.MAC[4])<<8 | int(e.MAC[5]); i+1 < 600 {
			tb.Delete(station(i+1), []Source{Learned, Store, Static}[(i+1)%3])
		}
	}
	if len(seen) != 300 {
		t.Errorf("All yielded %d entries while every other one was deleted, want 300", len(seen))
	}
}
