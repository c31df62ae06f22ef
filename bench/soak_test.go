package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// Bounds of the short soak: how much a daemon's resources may grow from
// the first sample after warm-up to the last. Generous: a leak of a
// goroutine or an fd per transfer or per sample, or of memory per
// datagram, would go far past them in 20 s; steady use stays well
// within.
const (
	soakRSSGrowthMiB  = 16
	soakGoroutineGrow = 10
	soakFDGrowth      = 10
)

// TestSoakShort is the soak of make soak, 20 s long: TCP and UDP both ways
// arrive intact (RunSoak fails otherwise), both kinds of traffic moved
// each way, each daemon was sampled throughout, its RSS, goroutines and
// open fds did not grow beyond a generous bound, and the table, the JSON
// and the chart are written. It asserts nothing on timing or throughput.
func TestSoakShort(t *testing.T) {
	topo.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := SoakOptions{Duration: 20 * time.Second, Sample: time.Second, Warmup: 4 * time.Second, UDPRate: 2000, TCPChunk: 8 << 20}
	res, err := RunSoak(ctx, opts, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	for _, tc := range res.TCP {
		if tc.Transfers == 0 || tc.Mismatched != 0 {
			t.Errorf("TCP %s: %d transfers, %d altered", tc.Direction, tc.Transfers, tc.Mismatched)
		}
	}
	for _, u := range res.UDP {
		if u.Received == 0 || u.Corrupt != 0 || u.Received+u.Lost != u.Sent {
			t.Errorf("UDP %s: %+v", u.Direction, u)
		}
	}
	if len(res.Daemons) != 2 {
		t.Fatalf("%d daemons sampled, want 2", len(res.Daemons))
	}
	for _, d := range res.Daemons {
		// A sample a second from 0 to 20 s, give or take one.
		if n := len(d.Samples); n < 18 || d.Samples[n-1].T < 19.5 {
			t.Errorf("%s: %d samples, the last at %.1fs", d.Host, n, d.Samples[n-1].T)
		}
		for _, s := range d.Samples {
			if !(s.RSSMiB > 0) || s.Goroutines <= 0 || s.FDs <= 0 {
				t.Errorf("%s: sample %+v", d.Host, s)
			}
		}
		if d.RSS.SampleCnt < 10 || !(d.HWMMiB >= d.RSS.Max) {
			t.Errorf("%s: trends from %d samples, VmHWM %.1f below the largest RSS %.1f", d.Host, d.RSS.SampleCnt, d.HWMMiB, d.RSS.Max)
		}
		if d.RSS.Growth > soakRSSGrowthMiB || d.Goroutines.Growth > soakGoroutineGrow || d.FDs.Growth > soakFDGrowth {
			t.Errorf("%s grew from the first sample after warm-up to the last: RSS %+.1f MiB (at most %d), goroutines %+.0f (at most %d), fds %+.0f (at most %d)",
				d.Host, d.RSS.Growth, soakRSSGrowthMiB, d.Goroutines.Growth, soakGoroutineGrow, d.FDs.Growth, soakFDGrowth)
		}
	}

	dir := t.TempDir()
	jsonPath, svgPath, err := res.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if jsonPath != filepath.Join(dir, "soak.json") || svgPath != filepath.Join(dir, "soak.svg") {
		t.Errorf("saved to %s and %s", jsonPath, svgPath)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back SoakResults
	if err := json.Unmarshal(b, &back); err != nil || len(back.Daemons) != 2 || back.TCP[0].Bytes != res.TCP[0].Bytes {
		t.Errorf("soak.json does not read back: %v", err)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil || strings.Count(string(svg), "<polyline") != 6 {
		t.Errorf("soak.svg: %v, %d lines (want 3 panels × 2 daemons)", err, strings.Count(string(svg), "<polyline"))
	}
}

// The soak's datagrams check themselves: every byte matters.
func TestSoakDatagrams(t *testing.T) {
	buf := make([]byte, udpMaxLen)
	sizes := map[int]bool{}
	for seq := range uint64(2000) {
		d := udpDatagram(buf, 7, seq)
		sizes[len(d)] = true
		got, ok := checkDatagram(d)
		if !ok || got != seq || len(d) < udpHdrLen+2 || len(d) > udpMaxLen {
			t.Fatalf("datagram %d (%d bytes) checks as %d, %v", seq, len(d), got, ok)
		}
		for _, i := range []int{0, 9, 12, len(d) - 1} {
			c := append([]byte(nil), d...)
			c[i] ^= 0x10
			if _, ok := checkDatagram(c); ok {
				t.Fatalf("datagram %d with byte %d flipped checks as intact", seq, i)
			}
		}
		if _, ok := checkDatagram(d[:len(d)-1]); ok {
			t.Fatalf("datagram %d cut short checks as intact", seq)
		}
	}
	if len(sizes) < 500 {
		t.Errorf("only %d distinct sizes in 2000 datagrams", len(sizes))
	}
}

func TestTrend(t *testing.T) {
	ts := []float64{10, 20, 30, 40}
	tr := trendOf(ts, []float64{5, 6, 7, 8}) // 0.1 a second
	if tr.First != 5 || tr.Last != 8 || tr.Max != 8 || tr.Growth != 3 || tr.LateGrowth != 1 || math.Abs(tr.Per10Min-60) > 1e-9 || tr.SampleCnt != 4 {
		t.Errorf("rising: %+v", tr)
	}
	if tr := trendOf(ts, []float64{9, 9, 9, 9}); tr.Per10Min != 0 || tr.Growth != 0 {
		t.Errorf("flat: %+v", tr)
	}
	if tr := trendOf(nil, nil); tr != (Trend{}) {
		t.Errorf("empty: %+v", tr)
	}
	d := DaemonSoak{Samples: []SoakSample{{T: 0, RSSMiB: 1}, {T: 5, RSSMiB: 10, Goroutines: 3, FDs: 4}, {T: 10, RSSMiB: 10, Goroutines: 3, FDs: 4}}}
	d.trends(5)
	if d.RSS.First != 10 || d.RSS.SampleCnt != 2 || d.Goroutines.Last != 3 || d.FDs.Max != 4 {
		t.Errorf("trends after warm-up: %+v", d)
	}
	if n, err := parseGoroutineTotal("goroutine profile: total 17\n"); err != nil || n != 17 {
		t.Errorf("parseGoroutineTotal = %d, %v", n, err)
	}
	if _, err := parseGoroutineTotal("<html>"); err == nil {
		t.Error("parseGoroutineTotal accepts anything")
	}
}
