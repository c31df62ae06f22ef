package bench

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// TestSmoke runs the whole harness in smoke mode (2 s per figure, one
// round, every case) so it cannot rot, and checks that every figure is
// there and positive, the ratios are computed and the files are written.
func TestSmoke(t *testing.T) {
	opts := Options{Smoke: true}
	requireRootAndTools(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, opts, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}

	for _, name := range CaseNames() {
		c := res.Case(name)
		if c == nil {
			t.Fatalf("no results for case %s", name)
		}
		if len(c.Runs) != 1 {
			t.Errorf("%s: %d runs, want 1", name, len(c.Runs))
		}
		for _, m := range Metrics() {
			v, ok := c.Summary[m.Key]
			if m.DaemonOnly && name != VXSwitch {
				if ok {
					t.Errorf("%s has daemon figure %s", name, m.Key)
				}
				continue
			}
			if !ok || !(v > 0) {
				t.Errorf("%s %s = %v (present %v), want > 0", name, m.Key, v, ok)
			}
		}
	}
	for _, m := range Metrics() {
		if m.DaemonOnly {
			continue
		}
		if r, ok := res.Ratios[m.Key]; !ok || !(r > 0) {
			t.Errorf("ratio %s = %v (present %v), want > 0", m.Key, r, ok)
		}
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	if w := res.Wakeup; w == nil || len(w.Rounds) != 1 || !(w.Median.SameAvgUs > 0) || w.Samples != wakeupSmokeSamples ||
		(w.CPUs[0] != w.CPUs[1] && !(w.Median.CrossAvgUs > 0)) {
		t.Errorf("wake-up floor %+v: want one round of %d samples with positive figures", w, wakeupSmokeSamples)
	}
	for _, want := range []string{"TCP, 1 stream", "vxswitch ÷ kernel", res.Machine.Kernel, "wake-up floor"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}

	dir := t.TempDir()
	jsonPath, svgPath, err := res.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("%s: %v", jsonPath, err)
	}
	if back.Machine.CPU == "" || back.Machine.Cores < 1 || back.Settings.Repeat != 1 || len(back.Cases) != 3 ||
		back.Case(VXSwitch).Summary[TCP1] != res.Case(VXSwitch).Summary[TCP1] ||
		back.Wakeup == nil || back.Wakeup.Median != res.Wakeup.Median || len(back.Wakeup.Rounds) != 1 {
		t.Errorf("JSON does not round-trip: %s", raw)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg ") || !strings.Contains(string(svg), "× kernel") {
		t.Errorf("%s does not look like the chart", svgPath)
	}
	if err := wellFormed(svg); err != nil {
		t.Errorf("%s is not well-formed XML: %v", svgPath, err)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(ents) > 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// TestSmokePinLatency runs the vxswitch case briefly with -pin-latency,
// so that the diagnostic cannot rot: ping and the daemons' threads are
// pinned for the ping test and given their affinity back.
func TestSmokePinLatency(t *testing.T) {
	opts := Options{Smoke: true, Duration: time.Second, Cases: []string{VXSwitch}, PinLatency: true}
	requireRootAndTools(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The daemons' threads are pinned: pinThreads lists each daemon's
	// threads at least twice (the second listing finds none new).
	passes := 0
	pinPassHook = func(op string, _ int) {
		if op == "pin" {
			passes++
		}
	}
	defer func() { pinPassHook = nil }()
	res, err := Run(ctx, opts, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if passes < 4 {
		t.Errorf("%d pinning passes over the two daemons, want at least 4", passes)
	}
	// The first CPU the test may use, found here rather than taken from
	// res, which placement fills from one value.
	first, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Settings.PinLatencyCPU; c == nil || *c != first[0] {
		t.Errorf("pin_latency_cpu %v, want %d", c, first[0])
	}
	if v := res.Case(VXSwitch).Summary[LatAvg]; !(v > 0) {
		t.Errorf("latency %v, want > 0", v)
	}
	if !strings.Contains(res.settingsLine(), "for the latency") {
		t.Errorf("settings line %q does not say the latency was pinned", res.settingsLine())
	}
}

// requireRootAndTools skips a test that needs root or a tool Run with
// opts needs when run without, except under CI=true, where a missing tool
// fails it.
func requireRootAndTools(t *testing.T, opts Options) {
	t.Helper()
	topo.RequireRoot(t)
	for _, tool := range opts.Tools() {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed; CI must install it (.ci/run)", tool)
			}
			t.Skipf("%s is not installed (Debian: apt-get install iperf3 iputils-ping util-linux iproute2); under CI=true this is a failure", tool)
		}
	}
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// testWriter sends the harness's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestParsers(t *testing.T) {
	stat := "4242 (vx switch (x)) S 1 4242 4242 0 -1 4194560 1416 0 0 0 123 45 0 0 20 0 9 0 100 0 0"
	if got, err := parseStatTicks(stat); err != nil || got != 168 {
		t.Errorf("parseStatTicks = %d, %v; want 168", got, err)
	}
	if got, err := parseVmHWM("Name:\tvxswitch\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n"); err != nil || got != 12345<<10 {
		t.Errorf("parseVmHWM = %d, %v", got, err)
	}
	if _, err := parseVmHWM("Name:\tx\n"); err == nil {
		t.Error("parseVmHWM without VmHWM: no error")
	}
	out := "PING 10.0.0.3 (10.0.0.3) 56(84) bytes of data.\n" +
		"64 bytes from 10.0.0.3: icmp_seq=1 ttl=64 time=0.100 ms\n" +
		"64 bytes from 10.0.0.3: icmp_seq=2 ttl=64 time=0.050 ms\n" +
		"64 bytes from 10.0.0.3: icmp_seq=3 ttl=64 time=1.20 ms\n\n" +
		"rtt min/avg/max/mdev = 0.050/0.450/1.200/0.5 ms\n"
	rtts, err := parsePing(out)
	if err != nil || len(rtts) != 3 {
		t.Fatalf("parsePing = %v, %v", rtts, err)
	}
	avg, p99 := rttStats(rtts)
	if avg < 449.9 || avg > 450.1 || p99 != 1200 {
		t.Errorf("rttStats = %v, %v; want 450, 1200", avg, p99)
	}
	procStat := "cpu  1000 1000 1000 1000 1000 1000 1000 1000 0 0\n" +
		"cpu0 10 1 100 9999 7 1000 10000 555 3 0\n" +
		"cpu1 20 2 200 9999 7 2000 20000 555 3 0\n" +
		"cpu2 40 4 400 9999 7 4000 40000 555 3 0\n" +
		"cpu64 80 8 800 9999 7 8000 80000 555 3 0\n" +
		"intr 1 2 3\nctxt 42\n"
	var cpus unix.CPUSet
	cpus.Set(0)
	cpus.Set(2)
	cpus.Set(64)
	// user + nice + system + irq + softirq of CPUs 0, 2 and 64: not idle,
	// iowait, steal or guest (already in user), nor the summary line.
	if got, err := parseBusyTicks(procStat, &cpus); err != nil || got != 11111+44444+88888 {
		t.Errorf("parseBusyTicks = %d, %v; want %d", got, err, 11111+44444+88888)
	}
	cpus.Set(3)
	if _, err := parseBusyTicks(procStat, &cpus); err == nil {
		t.Error("parseBusyTicks without a line for CPU 3: no error")
	}
	var cpu0 unix.CPUSet
	cpu0.Set(0)
	if _, err := parseBusyTicks("cpu0 1 2 x 4 5 6 7 8\n", &cpu0); err == nil {
		t.Error("parseBusyTicks of a malformed line: no error")
	}
	if _, err := parsePing("PING x\n"); err == nil {
		t.Error("parsePing without replies: no error")
	}
	var rep iperfReport
	js := `{"end":{"sum_received":{"seconds":2,"bytes":250000000,"bits_per_second":1e9,"packets":1000,"lost_packets":100}}}`
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	if got := rep.receivedPPS(); got != 450 {
		t.Errorf("receivedPPS = %v, want 450", got)
	}
	if got := rep.End.SumReceived.Bytes; got != 250000000 {
		t.Errorf("bytes received = %v, want 250000000", got)
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median = %v", got)
	}
}

func TestUnsteady(t *testing.T) {
	r := &Results{Metrics: Metrics(), Cases: []CaseResult{
		{Name: Kernel, Runs: []map[string]float64{
			{TCP4: 16.99, TCP1: 16.8, LatAvg: 15},
			{TCP4: 37.21, TCP1: 16.5, LatAvg: 15},
			{TCP4: 17.08, TCP1: 16.6, LatAvg: 22.4}, // 1.49×: steady enough
		}},
		{Name: VXSwitch, Runs: []map[string]float64{{TCP4: 12}}}, // one round: nothing to compare
	}}
	for i := range r.Cases {
		r.Cases[i].Summary = summarize(r.Cases[i].Runs)
	}
	got := r.unsteady()
	want := []string{"kernel TCP, 4 streams (Gbit/s): rounds 16.99, 37.21, 17.08"}
	if !slices.Equal(got, want) {
		t.Errorf("unsteady() = %q, want %q", got, want)
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "unsteady figures") || !strings.Contains(table.String(), want[0]) {
		t.Errorf("table lacks the unsteady figures:\n%s", table.String())
	}
	r.Cases[0].Runs[1][TCP4] = 17.5
	if got := r.unsteady(); len(got) != 0 {
		t.Errorf("steady rounds flagged: %q", got)
	}
}

// TestRunIperfRetriesBusyServer: a client that comes while the server is
// still running another test is refused ("the server is busy", as after
// a test that has just ended); runIperf retries until the server is
// free. Without the retry the smoke tests failed now and then.
func TestRunIperfRetriesBusyServer(t *testing.T) {
	opts := Options{Smoke: true, NoPin: true}
	requireRootAndTools(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pl, err := newPlacement(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := setup(ctx, Underlay, 5299, opts, pl)
	if b != nil {
		t.Cleanup(b.close)
	}
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(b.port)
	other := b.client.Command(ctx, "iperf3", "-c", b.addr, "-p", port, "-t", "3")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	reap := sync.OnceFunc(func() {
		other.Process.Kill() // by PID; this test started it
		other.Wait()
	})
	t.Cleanup(reap)
	// The other client holds the server once its connection is up.
	waitFor(t, func() string {
		out, err := b.server.Run(ctx, "ss", "-Htn", "state", "established", "( sport = :"+port+" )")
		if err != nil || strings.TrimSpace(out) == "" {
			return fmt.Sprintf("no connection to the iperf3 server: %v %s", err, out)
		}
		return ""
	})
	if _, err := b.runIperfOnce(ctx, time.Second); err == nil || !strings.Contains(err.Error(), "server is busy") {
		t.Fatalf("a client while another's test runs: %v, want the server busy", err)
	}
	rep, err := b.runIperf(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !(rep.End.SumReceived.BitsPerSecond > 0) {
		t.Errorf("no throughput after the retry: %+v", rep.End.SumReceived)
	}
	reap()
}

// TestRunIperfRetriesRefusedConnection: between two tests iperf3 -s
// closes its listening socket and opens a new one, and a client that
// comes in that gap is refused ("Connection refused"); TestSmoke failed
// so now and then. Here the gap is made as long as the test likes: the
// server is stopped, runIperf starts, and only once a connection attempt
// of its client has been refused (the client namespace's TcpAttemptFails
// counter moved) does a new server start. runIperf must get through;
// without the retry of a run whose test did not start it returned the
// refusal.
func TestRunIperfRetriesRefusedConnection(t *testing.T) {
	opts := Options{Smoke: true, NoPin: true}
	requireRootAndTools(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pl, err := newPlacement(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := setup(ctx, Underlay, 5298, opts, pl)
	if b != nil {
		t.Cleanup(b.close)
	}
	if err != nil {
		t.Fatal(err)
	}
	b.iperf.Stop() // the gap between two tests, for as long as this test likes
	fails0 := attemptFails(ctx, t, b.client)

	type result struct {
		rep *iperfReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := b.runIperf(ctx, time.Second)
		done <- result{rep, err}
	}()
	waitFor(t, func() string {
		if n := attemptFails(ctx, t, b.client); n == fails0 {
			return fmt.Sprintf("the client's connection attempts never failed (TcpAttemptFails %d)", n)
		}
		return ""
	})
	p, err := b.serveIperf(ctx) // the next test's listening socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	r := <-done
	if r.err != nil {
		t.Fatalf("runIperf while the server was not listening, then was: %v", r.err)
	}
	if !(r.rep.End.SumReceived.BitsPerSecond > 0) {
		t.Errorf("no throughput after the retry: %+v", r.rep.End.SumReceived)
	}
}

// attemptFails is the TcpAttemptFails counter of ns (connections that
// failed before they were established, refused ones among them).
func attemptFails(ctx context.Context, t *testing.T, ns *topo.NS) int64 {
	t.Helper()
	out, err := ns.Run(ctx, "cat", "/proc/net/snmp") // /proc/net is the reader's namespace's
	if err != nil {
		t.Fatal(err)
	}
	var head []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		if i := slices.Index(head, "AttemptFails"); i > 0 && i < len(f) {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no Tcp AttemptFails in /proc/net/snmp of %s:\n%s", ns.Name, out)
	return 0
}

// TestIperfResult: the three ways a client that comes between two tests
// fails are errNotStarted, a failure during a test is not, whatever its
// message (reports as iperf 3.12 writes them, cut to what is read).
func TestIperfResult(t *testing.T) {
	const started = `"test_start": {"protocol": "TCP", "num_streams": 1, "duration": 1}`
	for _, tc := range []struct {
		name, json string
		notStarted bool
		ok         bool
	}{
		{"busy", `{"start": {"connected": [], "version": "iperf 3.12"}, "intervals": [], "end": {},
			"error": "the server is busy running a test. try again later"}`, true, false},
		{"refused", `{"start": {"connected": [], "version": "iperf 3.12"}, "intervals": [], "end": {},
			"error": "unable to connect to server: Connection refused"}`, true, false},
		{"reset in the old backlog", `{"start": {"connected": [], "cookie": "x"}, "intervals": [], "end": {},
			"error": "unable to receive control message: Connection reset by peer"}`, true, false},
		{"server gone during the test", `{"start": {"connected": [{"socket": 5}], ` + started + `}, "intervals": [], "end": {},
			"error": "unable to write to stream socket: Broken pipe"}`, false, false},
		{"refused during the test", `{"start": {` + started + `}, "end": {},
			"error": "unable to connect stream: Connection refused"}`, false, false},
		{"done", `{"start": {` + started + `}, "end": {"sum_received": {"seconds": 1.0, "bytes": 1000, "bits_per_second": 8000}}}`, false, true},
	} {
		rep, err := iperfResult([]string{"-c", "198.18.0.2"}, []byte(tc.json), "", nil)
		if got := errors.Is(err, errNotStarted); got != tc.notStarted {
			t.Errorf("%s: %v: errNotStarted %v, want %v", tc.name, err, got, tc.notStarted)
		}
		if (err == nil) != tc.ok || (tc.ok && rep.End.SumReceived.BitsPerSecond != 8000) {
			t.Errorf("%s: %+v, %v; want ok %v", tc.name, rep, err, tc.ok)
		}
	}
}
