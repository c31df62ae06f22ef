package fib

import "testing"

// benchTable returns a table holding n learned entries on the wall clock,
// as the datapath sees it.
func benchTable(b *testing.B, n int) *Table {
	tb := newTable(b, Config{})
	for i := range n {
		tb.Learn(station(i), vtep(i%16+1), tb.Now())
	}
	for i := range 8 {
		if err := tb.AddPeer(vtep(100 + i)); err != nil {
			b.Fatal(err)
		}
	}
	return tb
}

var benchSink int

func BenchmarkLookupHit(b *testing.B) {
	tb := benchTable(b, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, ok := tb.Lookup(station(i & 4095))
		benchSink += b2i(ok)
	}
}

func BenchmarkLookupAtHit(b *testing.B) {
	tb := benchTable(b, 4096)
	now := tb.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, ok := tb.LookupAt(station(i&4095), now)
		benchSink += b2i(ok)
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	tb := benchTable(b, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, ok := tb.Lookup(station(4096 + i&4095))
		benchSink += b2i(ok)
	}
}

func BenchmarkLearnRefresh(b *testing.B) {
	tb := benchTable(b, 4096)
	now := tb.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		benchSink += int(tb.Learn(station(i&4095), vtep(i&4095%16+1), now))
	}
}

// BenchmarkLearnParallel refreshes overlapping MACs from every core, with
// each goroutine's batch time advancing so that the refresh stores hit the
// shared entries as they would in a busy datapath.
func BenchmarkLearnParallel(b *testing.B) {
	tb := benchTable(b, 4096)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now, n := tb.Now(), 0
		for i := 0; pb.Next(); i++ {
			if i%64 == 0 { // a batch
				now = tb.Now()
			}
			n += int(tb.Learn(station(i&255), vtep(i&255%16+1), now))
		}
		_ = n
	})
	if r := tb.Learn(station(0), vtep(1), tb.Now()); r != LearnRefreshed {
		b.Fatalf("learn = %v", r)
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	tb := benchTable(b, 4096)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for i := 0; pb.Next(); i++ {
			_, ok := tb.Lookup(station(i & 4095))
			n += b2i(ok)
		}
		_ = n
	})
}

func BenchmarkFloodList(b *testing.B) {
	tb := benchTable(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		benchSink += len(tb.FloodList())
	}
}
