package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// bed is one case's topology: two hosts on a direct veth, and for the
// overlay cases a container on each; traffic goes from client to server.
type bed struct {
	name      string
	tp        *topo.Topo
	client    *topo.NS
	server    *topo.NS
	addr      string // the server's address, as the client reaches it
	port      int    // the iperf3 server's port, distinct per case
	iperf     *topo.Proc
	daemons   []*topo.Daemon // vxswitch case: the daemon on h1, then on h2
	placement                // the run's, the same for every bed
}

// The overlay network of the kernel and vxswitch cases.
const (
	benchVNI    = 256
	benchSubnet = "10.0.0.0/24"
	clientIP    = "10.0.0.2"
	serverIP    = "10.0.0.3"
)

// Timeouts: how long a freshly built bed may take to pass traffic, how
// long the iperf3 server may take to listen, and how much longer than its
// nominal duration a run may take before it is killed.
const (
	reachTimeout  = 20 * time.Second
	listenTimeout = 10 * time.Second
	runSlack      = 30 * time.Second
)

// setup builds the bed of one case. On error the returned bed (if not
// nil) still holds what was made, for close.
func setup(ctx context.Context, name string, port int, opts Options, pl placement) (*bed, error) {
	tp, err := topo.Open(topo.Options{Underlay: topo.Direct, MTU: underlayMTU})
	if err != nil {
		return nil, err
	}
	b := &bed{name: name, tp: tp, port: port, placement: pl}
	h1, err := tp.AddHost("h1")
	if err != nil {
		return b, err
	}
	h2, err := tp.AddHost("h2")
	if err != nil {
		return b, err
	}
	if name == Underlay {
		b.client, b.server, b.addr = &h1.NS, &h2.NS, h2.Addr.String()
	} else {
		cfg := topo.NetConfig{VNI: benchVNI, Subnet: benchSubnet}
		var n1, n2 topo.Network
		if name == Kernel {
			if n1, err = kernelNet(h1, cfg); err != nil {
				return b, err
			}
			if n2, err = kernelNet(h2, cfg); err != nil {
				return b, err
			}
		} else {
			for _, h := range []*topo.Host{h1, h2} {
				d, err := h.VXSwitch(topo.DaemonOptions{Binary: opts.Binary, Args: opts.DaemonArgs})
				if err != nil {
					return b, err
				}
				if d.PID() == 0 {
					return b, fmt.Errorf("vxswitch daemon on %s has no PID", h.Name)
				}
				b.daemons = append(b.daemons, d)
			}
			if n1, err = vxNet(b.daemons[0], cfg); err != nil {
				return b, err
			}
			if n2, err = vxNet(b.daemons[1], cfg); err != nil {
				return b, err
			}
		}
		if err := topo.Mesh(n1, n2); err != nil {
			return b, err
		}
		c1, err := tp.AddContainer("c1")
		if err != nil {
			return b, err
		}
		c2, err := tp.AddContainer("c2")
		if err != nil {
			return b, err
		}
		if _, err := n1.Attach(c1, clientIP+"/24"); err != nil {
			return b, err
		}
		if _, err := n2.Attach(c2, serverIP+"/24"); err != nil {
			return b, err
		}
		b.client, b.server, b.addr = &c1.NS, &c2.NS, serverIP
	}
	if err := b.waitReachable(ctx); err != nil {
		return b, err
	}
	return b, b.startIperf(ctx)
}

// kernelNet and vxNet return a topo.Network that is nil on error (not a
// typed nil).
func kernelNet(h *topo.Host, cfg topo.NetConfig) (topo.Network, error) {
	n, err := h.KernelVXLAN(cfg)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func vxNet(d *topo.Daemon, cfg topo.NetConfig) (topo.Network, error) {
	n, err := d.Network(cfg)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (b *bed) describe() string {
	switch b.name {
	case Underlay:
		return fmt.Sprintf("h1 → h2 %s on a direct veth, MTU %d", b.addr, underlayMTU)
	case Kernel:
		return fmt.Sprintf("c1 %s → c2 %s over the kernel's vxlan (VNI %d, MTU %d)", clientIP, serverIP, benchVNI, overlayMTU)
	default:
		var pids []string
		for _, d := range b.daemons {
			pids = append(pids, strconv.Itoa(d.PID()))
		}
		return fmt.Sprintf("c1 %s → c2 %s over vxswitch (VNI %d, MTU %d, daemon PIDs %s)",
			clientIP, serverIP, benchVNI, overlayMTU, strings.Join(pids, ", "))
	}
}

// close stops the iperf3 server (by PID, through topo) and removes the
// bed's namespaces, links and daemons.
func (b *bed) close() {
	if b.iperf != nil {
		b.iperf.Stop()
	}
	b.tp.Close()
}

// waitReachable pings the server until it answers: a fresh overlay may
// need a moment (ARP, learning), and the first answer warms it up.
func (b *bed) waitReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if _, last = b.client.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", b.addr); last == nil {
			return nil
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if last == nil {
		last = ctx.Err()
	}
	return fmt.Errorf("%s not reachable from the client after %v: %w", b.addr, reachTimeout, last)
}

// startIperf starts one iperf3 server for the whole run (see serveIperf).
func (b *bed) startIperf(ctx context.Context) error {
	p, err := b.serveIperf(ctx)
	if p != nil {
		b.iperf = p
	}
	return err
}

// serveIperf starts an iperf3 server in the server's namespace (topo's
// Start: a parent-death signal, stopped by PID when the bed closes) and
// waits until it listens. On error the returned Proc, if not nil, is the
// server that was started.
func (b *bed) serveIperf(ctx context.Context) (*topo.Proc, error) {
	p, err := b.server.Start("iperf3", "-s", "-B", b.addr, "-p", strconv.Itoa(b.port))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(listenTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.Done():
			return p, fmt.Errorf("iperf3 server exited: %s", strings.TrimSpace(p.Output()))
		default:
		}
		out, err := b.server.Run(ctx, "ss", "-Hltn", "sport = :"+strconv.Itoa(b.port))
		if err == nil && strings.TrimSpace(out) != "" {
			return p, nil
		}
		sleep(ctx, 50*time.Millisecond)
	}
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	return p, fmt.Errorf("iperf3 server does not listen on %s:%d after %v: %s", b.addr, b.port, listenTimeout, p.Output())
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// A test is one traffic pattern of a round.
type test struct {
	key, cpuKey string
	// cpuGBKey, for a TCP test, is the key of the machine's CPU time
	// per GB received.
	cpuGBKey  string
	label     string
	iperfArgs []string // extra iperf3 client flags; unused by the ping test (LatAvg)
}

func tests() []test {
	return []test{
		{key: TCP1, cpuKey: CPUTCP1, cpuGBKey: CPUPerGB1, label: "TCP 1 stream"},
		{key: TCP4, cpuKey: CPUTCP4, cpuGBKey: CPUPerGB4, label: "TCP 4 streams", iperfArgs: []string{"-P", "4"}},
		// -b 0: as fast as the sender can; what counts is what arrives.
		{key: UDP64, cpuKey: CPUUDP64, label: "UDP 64 B", iperfArgs: []string{"-u", "-l", "64", "-b", "0"}},
		{key: LatAvg, cpuKey: CPULat, label: "ping"},
	}
}

// measure runs every test once and returns the figures; say reports
// each as it is measured.
func (b *bed) measure(ctx context.Context, dur time.Duration, say func(string)) (map[string]float64, error) {
	figs := make(map[string]float64)
	for _, t := range tests() {
		cpu0, err := b.daemonTicks()
		if err != nil {
			return nil, err
		}
		start := time.Now()
		var line string
		switch t.key {
		case LatAvg:
			avg, p99, n, err := b.pinnedPing(ctx, dur)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.label, err)
			}
			figs[LatAvg], figs[LatP99] = avg, p99
			line = fmt.Sprintf("avg %.1f µs, p99 %.1f µs (%d replies)", avg, p99, n)
		default:
			rep, busy, err := b.runIperfBusy(ctx, dur, t.iperfArgs...)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.label, err)
			}
			if t.key == UDP64 {
				figs[t.key] = rep.receivedPPS()
				line = fmt.Sprintf("%.0f packets/s received (%.1f%% lost)", figs[t.key], rep.lostPercent())
			} else {
				figs[t.key] = rep.End.SumReceived.BitsPerSecond / 1e9
				line = fmt.Sprintf("%.2f Gbit/s", figs[t.key])
			}
			if t.cpuGBKey != "" {
				gb := float64(rep.End.SumReceived.Bytes) / 1e9
				if !(gb > 0) {
					return nil, fmt.Errorf("%s: iperf3 reported no bytes received", t.label)
				}
				figs[t.cpuGBKey] = busy / gb
				line += fmt.Sprintf(", machine %.2f CPU-s/GB", figs[t.cpuGBKey])
			}
		}
		if len(b.daemons) > 0 {
			cpu1, err := b.daemonTicks()
			if err != nil {
				return nil, err
			}
			pct := float64(cpu1-cpu0) / clockTicks / time.Since(start).Seconds() * 100
			figs[t.cpuKey] = pct
			line += fmt.Sprintf("; daemons %.0f%% CPU", pct)
		}
		say(fmt.Sprintf("%-14s %s", t.label, line))
	}
	if len(b.daemons) > 0 {
		pids, err := b.daemonPIDs()
		if err != nil {
			return nil, err
		}
		var peak int64
		for _, pid := range pids {
			rss, err := peakRSS(pid)
			if err != nil {
				return nil, err
			}
			peak = max(peak, rss)
		}
		figs[RSSPeak] = float64(peak) / (1 << 20)
		say(fmt.Sprintf("%-14s %.1f MiB (larger daemon, so far)", "peak RSS", figs[RSSPeak]))
	}
	return figs, nil
}

// daemonPIDs are the PIDs of the bed's daemons; an error if one is not
// running (a PID of 0 would name this process to sched_getaffinity).
func (b *bed) daemonPIDs() ([]int, error) {
	pids := make([]int, 0, len(b.daemons))
	for _, d := range b.daemons {
		pid := d.PID()
		if pid == 0 {
			return nil, fmt.Errorf("vxswitch daemon on %s is not running", d.Host.Name)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// daemonTicks is the CPU time both daemons have used so far, in ticks.
func (b *bed) daemonTicks() (int64, error) {
	pids, err := b.daemonPIDs()
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, pid := range pids {
		t, err := cpuTicks(pid)
		if err != nil {
			return 0, fmt.Errorf("vxswitch daemon %d: %w", pid, err)
		}
		sum += t
	}
	return sum, nil
}

// iperfReport is the part of `iperf3 -J` output the benchmark reads.
type iperfReport struct {
	Start struct {
		// TestStart is there once the server has taken the client on
		// and the test has begun.
		TestStart json.RawMessage `json:"test_start"`
	} `json:"start"`
	End struct {
		// SumReceived is the receiver's side: for TCP its throughput, for
		// UDP the datagrams it expected (highest sequence number) and the
		// ones that never arrived.
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Packets       int64   `json:"packets"`
			LostPackets   int64   `json:"lost_packets"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

func (r *iperfReport) receivedPPS() float64 {
	s := r.End.SumReceived
	if s.Seconds <= 0 {
		return 0
	}
	return float64(s.Packets-s.LostPackets) / s.Seconds
}

func (r *iperfReport) lostPercent() float64 {
	s := r.End.SumReceived
	if s.Packets == 0 {
		return 0
	}
	return float64(s.LostPackets) / float64(s.Packets) * 100
}

// errNotStarted marks an iperf3 client run that ended before its test
// began: it measured nothing, so it may simply be run again.
var errNotStarted = errors.New("the test did not start")

// runIperf runs the iperf3 client for dur against the bed's server.
//
// iperf3 -s serves one test at a time, and after each test it closes its
// listening socket and opens a new one. So a client that comes right
// after the previous test (as the next test's does) may find the server
// still busy with it ("the server is busy running a test"), find no
// socket listening ("Connection refused"), or be accepted into the old
// socket's backlog just before that socket is closed ("Connection reset
// by peer"). All three end before a test begins, which iperf3's report
// shows (no start.test_start), so runIperf runs the client again until
// one gets to run its test, for up to serverReadyWait. A failure after
// the test began is never retried.
//
// Waiting before each run until `ss -ltn` lists the port would not do:
// the old socket is still listed until the server has read the previous
// client's last message, and may close a moment after the check.
func (b *bed) runIperf(ctx context.Context, dur time.Duration, extra ...string) (*iperfReport, error) {
	return b.untilStarted(ctx, func() (*iperfReport, error) { return b.runIperfOnce(ctx, dur, extra...) })
}

// untilStarted calls run until it returns anything but errNotStarted,
// for up to serverReadyWait (see runIperf).
func (b *bed) untilStarted(ctx context.Context, run func() (*iperfReport, error)) (*iperfReport, error) {
	deadline := time.Now().Add(serverReadyWait)
	for attempt := 1; ; attempt++ {
		rep, err := run()
		if err == nil || !errors.Is(err, errNotStarted) || ctx.Err() != nil {
			return rep, err
		}
		if time.Now().After(deadline) {
			if p := b.iperf; p != nil {
				select {
				case <-p.Done():
					err = fmt.Errorf("%w; the iperf3 server has exited: %s", err, strings.TrimSpace(p.Output()))
				default:
				}
			}
			return nil, fmt.Errorf("%d attempts in %v: %w", attempt, serverReadyWait, err)
		}
		sleep(ctx, serverRetryPause)
	}
}

// serverReadyWait is how long runIperf tries to get a test started; the
// server is normally ready again within milliseconds of the previous
// test, and this only bounds a server that never is.
const serverReadyWait = 20 * time.Second

// serverRetryPause is the pause between two attempts of runIperf.
const serverRetryPause = 50 * time.Millisecond

// runIperfOnce is one run of the iperf3 client (see runIperf).
func (b *bed) runIperfOnce(ctx context.Context, dur time.Duration, extra ...string) (*iperfReport, error) {
	ctx, cancel := context.WithTimeout(ctx, dur+runSlack)
	defer cancel()
	args := append([]string{"-c", b.addr, "-p", strconv.Itoa(b.port), "-t", strconv.Itoa(int(dur / time.Second)),
		"-J", "--connect-timeout", "5000"}, extra...)
	if b.affinity != "" {
		args = append(args, "-A", b.affinity)
	}
	cmd := b.client.Command(ctx, "iperf3", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil && runErr != nil {
		return nil, fmt.Errorf("iperf3 %s: %w", strings.Join(args, " "), ctx.Err())
	}
	return iperfResult(args, stdout.Bytes(), stderr.String(), runErr)
}

// iperfResult reads the outcome of one iperf3 client run from its -J
// report and exit status. An error reported before the test began wraps
// errNotStarted.
func iperfResult(args []string, stdout []byte, stderr string, runErr error) (*iperfReport, error) {
	var rep iperfReport
	jsonErr := json.Unmarshal(stdout, &rep)
	switch {
	case jsonErr == nil && rep.Error != "" && rep.Start.TestStart == nil:
		return nil, fmt.Errorf("iperf3 %s: %s (%w)", strings.Join(args, " "), rep.Error, errNotStarted)
	case jsonErr == nil && rep.Error != "":
		return nil, fmt.Errorf("iperf3 %s: %s", strings.Join(args, " "), rep.Error)
	case runErr != nil:
		return nil, fmt.Errorf("iperf3 %s: %w: %s", strings.Join(args, " "), runErr, strings.TrimSpace(stderr))
	case jsonErr != nil:
		return nil, fmt.Errorf("iperf3 %s: reading its JSON: %w", strings.Join(args, " "), jsonErr)
	case rep.End.SumReceived.Seconds <= 0:
		return nil, errors.New("iperf3 reported no receiver-side figures")
	}
	return &rep, nil
}

// runIperfBusy is runIperf, and the busy time of the bed's CPUs during
// the attempt that ran the test, in seconds. That covers iperf3's whole
// run, its start and its exchange of results too, while its figures
// cover the test's duration: busy time per byte errs a little high, most
// in the 2 s of a smoke run.
func (b *bed) runIperfBusy(ctx context.Context, dur time.Duration, extra ...string) (*iperfReport, float64, error) {
	var busy float64
	rep, err := b.untilStarted(ctx, func() (*iperfReport, error) {
		busy0, err := busyTicks(&b.cpus)
		if err != nil {
			return nil, err
		}
		rep, err := b.runIperfOnce(ctx, dur, extra...)
		if err != nil {
			return nil, err
		}
		busy1, err := busyTicks(&b.cpus)
		if err != nil {
			return nil, err
		}
		busy = float64(busy1-busy0) / clockTicks
		return rep, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return rep, busy, nil
}

var pingTimeRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// pinnedPing is ping, with the daemons' threads on b.pinCPU for its
// duration when that is set (ping itself is pinned by ping). A daemon
// left pinned would skew every later figure, so a failed restore fails
// the run.
func (b *bed) pinnedPing(ctx context.Context, dur time.Duration) (avg, p99 float64, n int, err error) {
	if b.pinCPU >= 0 && len(b.daemons) > 0 {
		pids, perr := b.daemonPIDs()
		if perr != nil {
			return 0, 0, 0, perr
		}
		restore, perr := pinProcesses(pids, b.pinCPU)
		if perr != nil {
			return 0, 0, 0, fmt.Errorf("pin the daemons: %w", perr)
		}
		defer func() {
			if rerr := restore(); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore the daemons' CPU affinity: %w", rerr))
			}
		}()
	}
	return b.ping(ctx, dur)
}

// ping sends pings for dur, one every pingInterval, and returns the
// average and 99th-percentile round trip in µs and the number of replies.
func (b *bed) ping(ctx context.Context, dur time.Duration) (avg, p99 float64, n int, err error) {
	ctx, cancel := context.WithTimeout(ctx, dur+runSlack)
	defer cancel()
	count := int(dur / pingInterval)
	deadline := int((dur+10*time.Second)/time.Second) + 1
	interval := strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64)
	args := []string{"ping", "-n", "-c", strconv.Itoa(count), "-i", interval, "-w", strconv.Itoa(deadline), b.addr}
	if b.pinCPU >= 0 {
		args = append([]string{"taskset", "-c", strconv.Itoa(b.pinCPU)}, args...)
	}
	cmd := b.client.Command(ctx, args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run() // exits 1 when a reply is missing; the replies still count
	if ctx.Err() != nil {
		return 0, 0, 0, ctx.Err()
	}
	rtts, err := parsePing(stdout.String())
	if err != nil {
		return 0, 0, 0, fmt.Errorf("ping %s: %w (%v: %s)", b.addr, err, runErr, strings.TrimSpace(stderr.String()))
	}
	avg, p99 = rttStats(rtts)
	return avg, p99, len(rtts), nil
}

// parsePing returns every reply's round trip in µs from ping's
// per-packet lines ("... icmp_seq=1 ttl=64 time=0.045 ms").
func parsePing(out string) ([]float64, error) {
	var rtts []float64
	for _, m := range pingTimeRE.FindAllStringSubmatch(out, -1) {
		ms, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return nil, err
		}
		rtts = append(rtts, ms*1000)
	}
	if len(rtts) == 0 {
		return nil, errors.New("no replies")
	}
	return rtts, nil
}

// rttStats returns the mean and the 99th percentile (nearest rank).
func rttStats(rtts []float64) (avg, p99 float64) {
	s := slices.Clone(rtts)
	sort.Float64s(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	rank := (99*len(s) + 99) / 100 // ceil(0.99 n)
	return sum / float64(len(s)), s[max(rank, 1)-1]
}
