// Package bench measures vxswitch against the Linux kernel's own vxlan
// device and against the bare underlay, in one run on one machine.
//
// Each case gets its own pair of hosts (network namespaces made with
// bench/topo) joined by a direct veth underlay with MTU 1500:
//
//	underlay  traffic between the two hosts' underlay addresses, no overlay
//	kernel    a container on each host, joined by the kernel's vxlan in
//	          Docker's layout (a namespace per network with br0 and a vxlan
//	          port created in the host namespace and moved in)
//	vxswitch  the same layout with a vxswitch daemon on each host, run as
//	          the built binary so its CPU time and peak RSS can be read
//
// The same traffic runs over every case: iperf3 TCP with one and with four
// streams (receiver's throughput), iperf3 UDP with 64-byte payloads at full
// speed (packets the receiver got, per second), and ping every 2 ms
// (average and 99th percentile round trip). For the TCP tests it also
// records what the whole machine spent per gigabyte received: the busy
// time of the CPUs the benchmark runs on, every process and the kernel's
// work included. Where the machine is CPU-bound (four streams on two
// cores) that cost decides the throughput, and it is steadier than the
// throughput itself. For vxswitch it also records the CPU time its two
// daemons used during each test and their peak RSS.
// Repetitions are interleaved (case after case in every round) so that a
// slow minute on the machine hits every case alike; the figures are the
// medians. Every vxswitch figure is also given as a ratio to the kernel's.
// Every round also measures the machine's wake-up floor (WakeupFloor): a
// pipe round trip between threads on two CPUs, the cost on this machine
// of the two wake-ups that any daemon on a ping's path adds.
//
// Run does the work; Results prints itself as a table (WriteTable), JSON
// (WriteJSON) and an SVG chart (WriteSVG), and Save writes the JSON and
// the chart into a directory. cmd/vxbench is the command
// (`make bench`). Everything runs as root inside namespaces that Run makes
// and removes, also when ctx is cancelled.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// Case names, in the order they run and are shown.
const (
	Underlay = "underlay"
	Kernel   = "kernel"
	VXSwitch = "vxswitch"
)

// CaseNames returns every case name in order.
func CaseNames() []string { return []string{Underlay, Kernel, VXSwitch} }

// Metric keys: the names of the figures in Results and in the JSON.
const (
	TCP1      = "tcp1_gbps"                 // iperf3 TCP, 1 stream, receiver's Gbit/s
	TCP4      = "tcp4_gbps"                 // iperf3 TCP, 4 streams (-P 4), receiver's Gbit/s
	UDP64     = "udp64_pps"                 // iperf3 UDP, 64-byte payloads, received packets/s
	CPUPerGB1 = "machine_cpu_s_per_gb_tcp1" // busy CPU time of the machine per GB received, TCP1, s
	CPUPerGB4 = "machine_cpu_s_per_gb_tcp4" // ... TCP4
	LatAvg    = "latency_avg_us"            // ping round trip, average, µs
	LatP99    = "latency_p99_us"            // ping round trip, 99th percentile, µs
	CPUTCP1   = "cpu_tcp1_pct"              // vxswitch daemons' CPU during TCP1, % of one core (both daemons)
	CPUTCP4   = "cpu_tcp4_pct"              // ... during TCP4
	CPUUDP64  = "cpu_udp64_pct"             // ... during UDP64
	CPULat    = "cpu_latency_pct"           // ... during the ping run
	RSSPeak   = "rss_peak_mib"              // peak RSS (VmHWM) of the larger daemon, MiB
	aggMedian = "median"
	aggMax    = "max"
)

// Metric describes one figure.
type Metric struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	Unit  string `json:"unit"`
	// LowerIsBetter is set for latencies, CPU and memory.
	LowerIsBetter bool `json:"lower_is_better"`
	// DaemonOnly figures exist for the vxswitch case alone.
	DaemonOnly bool `json:"daemon_only"`
	// Aggregate is how repetitions combine: "median", or "max" for the
	// peak RSS (a peak over the whole run).
	Aggregate string `json:"aggregate"`
}

// Metrics returns every figure Run measures, in the order shown.
func Metrics() []Metric {
	return []Metric{
		{Key: TCP1, Label: "TCP, 1 stream", Unit: "Gbit/s", Aggregate: aggMedian},
		{Key: TCP4, Label: "TCP, 4 streams", Unit: "Gbit/s", Aggregate: aggMedian},
		{Key: CPUPerGB1, Label: "machine CPU, TCP 1 stream", Unit: "CPU-s/GB", LowerIsBetter: true, Aggregate: aggMedian},
		{Key: CPUPerGB4, Label: "machine CPU, TCP 4 streams", Unit: "CPU-s/GB", LowerIsBetter: true, Aggregate: aggMedian},
		{Key: UDP64, Label: "UDP 64 B, received", Unit: "packets/s", Aggregate: aggMedian},
		{Key: LatAvg, Label: "latency, avg", Unit: "µs", LowerIsBetter: true, Aggregate: aggMedian},
		{Key: LatP99, Label: "latency, p99", Unit: "µs", LowerIsBetter: true, Aggregate: aggMedian},
		{Key: CPUTCP1, Label: "daemon CPU, TCP 1 stream", Unit: "% of a core", LowerIsBetter: true, DaemonOnly: true, Aggregate: aggMedian},
		{Key: CPUTCP4, Label: "daemon CPU, TCP 4 streams", Unit: "% of a core", LowerIsBetter: true, DaemonOnly: true, Aggregate: aggMedian},
		{Key: CPUUDP64, Label: "daemon CPU, UDP 64 B", Unit: "% of a core", LowerIsBetter: true, DaemonOnly: true, Aggregate: aggMedian},
		{Key: CPULat, Label: "daemon CPU, ping", Unit: "% of a core", LowerIsBetter: true, DaemonOnly: true, Aggregate: aggMedian},
		{Key: RSSPeak, Label: "daemon peak RSS", Unit: "MiB", LowerIsBetter: true, DaemonOnly: true, Aggregate: aggMax},
	}
}

// Options configure Run. The zero value is the full benchmark.
type Options struct {
	// Duration of every iperf3 run and every ping run; 0 means 10 s
	// (2 s with Smoke). iperf3 counts whole seconds, so it is rounded up.
	Duration time.Duration
	// Repeat is how many rounds run; 0 means 3 (1 with Smoke).
	Repeat int
	// Cases is a subset of CaseNames; empty means all. Ratios need both
	// kernel and vxswitch.
	Cases []string
	// Smoke is a short run for tests: 2 s per figure, 1 round, unless
	// Duration or Repeat say otherwise.
	Smoke bool
	// Binary is the vxswitch executable; empty means build one (with
	// topo.BuildBinary, from the vxswitch module this program was built
	// with) into a temporary directory.
	Binary string
	// DaemonArgs are extra flags for every vxswitch daemon, such as
	// "--offload=off".
	DaemonArgs []string
	// NoPin leaves the iperf3 client and server where the scheduler puts
	// them. By default (where this process may use two CPUs or more)
	// the client runs on the first it may use and the server on the
	// second (see placement), as on two hosts they never share a CPU:
	// unpinned, the kernel's 4-stream figure swings between about 15
	// Gbit/s (both on one CPU) and 34 (one each) from round to round on a
	// 2-core machine, whereas vxswitch's stays put.
	NoPin bool
	// PinLatency runs the ping test with ping, and in the vxswitch case
	// every thread of both daemons, on one CPU (the first this process may
	// use), restoring the daemons' affinity afterwards: no wake-up then
	// crosses CPUs, which separates the datapath's own cost from the
	// machine's cross-CPU wake-ups (see WakeupFloor). A diagnostic: on
	// two hosts a daemon never shares ping's CPU by design. (A Go ≥ 1.25
	// daemon follows its CPU mask with GOMAXPROCS within about a second,
	// so it runs most of the pinned test with GOMAXPROCS 1.)
	PinLatency bool
}

// placement is where a run's threads and processes go, worked out once
// from this process's CPU mask.
type placement struct {
	// cpus are the CPUs this process may use: the daemons inherit them
	// and iperf3 is pinned within them. Their busy time is the machine's
	// cost of a TCP test.
	cpus unix.CPUSet
	// first are the first two of them (the same one twice if there is
	// only one): the wake-up floor's two threads run there.
	first [2]int
	// affinity is iperf3's -A argument ("client,server": the first two
	// CPUs), or empty with Options.NoPin or a single CPU.
	affinity string
	// pinCPU is the CPU of ping and of the daemons' threads during the
	// ping test with Options.PinLatency (the first CPU), or -1.
	pinCPU int
}

func newPlacement(o Options) (placement, error) {
	p := placement{pinCPU: -1}
	if err := unix.SchedGetaffinity(0, &p.cpus); err != nil {
		return p, fmt.Errorf("sched_getaffinity: %w", err)
	}
	first, err := firstTwo(&p.cpus)
	if err != nil {
		return p, err
	}
	p.first = first
	if !o.NoPin && first[0] != first[1] {
		p.affinity = fmt.Sprintf("%d,%d", first[0], first[1])
	}
	if o.PinLatency {
		p.pinCPU = first[0]
	}
	return p, nil
}

// Defaults of the full run and of the smoke run.
const (
	defaultDuration = 10 * time.Second
	defaultRepeat   = 3
	smokeDuration   = 2 * time.Second
	smokeRepeat     = 1
	// pingInterval is the gap between pings: iputils' floor for root, so a
	// 10 s run gives 5000 samples, enough for a p99 of 50 samples.
	pingInterval = 2 * time.Millisecond
	underlayMTU  = 1500
	overlayMTU   = underlayMTU - 50
)

// ErrMissingTool is returned when a program the benchmark runs (iperf3,
// ping, nsenter, ss) is not installed.
var ErrMissingTool = errors.New("missing tool")

// Tools are the programs Run with options o needs in PATH: taskset only
// pins ping for PinLatency.
func (o Options) Tools() []string {
	tools := []string{"iperf3", "ping", "nsenter", "ss"}
	if o.PinLatency {
		tools = append(tools, "taskset")
	}
	return tools
}

// Results of one run.
type Results struct {
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	Metrics  []Metric `json:"metrics"`
	// Cases in the order they ran.
	Cases []CaseResult `json:"cases"`
	// Ratios are vxswitch's figure ÷ the kernel's, per metric key, for
	// every figure both have (for latency, lower is better).
	Ratios map[string]float64 `json:"ratios,omitempty"`
	// Wakeup is the machine's wake-up floor, measured in every round (see
	// WakeupFloor).
	Wakeup *WakeupFloor `json:"wakeup_floor,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPU    string `json:"cpu"`    // model name from /proc/cpuinfo
	Cores  int    `json:"cores"`  // CPUs this process may use
	Kernel string `json:"kernel"` // uname -r
	Go     string `json:"go"`     // the Go that built the harness
	Iperf3 string `json:"iperf3"` // first line of iperf3 --version
	Date   string `json:"date"`   // start of the run, RFC 3339, UTC
	// Load is /proc/loadavg's 1-minute figure at the start: anything else
	// running on the machine makes the figures noisier.
	Load string `json:"load"`
}

// Settings are what the run was asked to do.
type Settings struct {
	DurationS       float64  `json:"duration_s"`
	Repeat          int      `json:"repeat"`
	Cases           []string `json:"cases"`
	UnderlayMTU     int      `json:"underlay_mtu"`
	OverlayMTU      int      `json:"overlay_mtu"`
	PingIntervalMS  float64  `json:"ping_interval_ms"`
	VXSwitchVersion string   `json:"vxswitch_version,omitempty"`
	DaemonArgs      []string `json:"daemon_args,omitempty"`
	Smoke           bool     `json:"smoke,omitempty"`
	// IperfAffinity is iperf3's -A: "client,server" CPUs, or empty.
	IperfAffinity string `json:"iperf_affinity,omitempty"`
	// PinLatencyCPU is the CPU of ping and the daemons during the ping
	// test with Options.PinLatency; absent without.
	PinLatencyCPU *int `json:"pin_latency_cpu,omitempty"`
}

// CaseResult holds one case's figures.
type CaseResult struct {
	Name string `json:"name"`
	// Runs has one map per round, metric key → value.
	Runs []map[string]float64 `json:"runs"`
	// Summary combines the rounds (see Metric.Aggregate).
	Summary map[string]float64 `json:"summary"`
}

// Case returns the named case's result, or nil.
func (r *Results) Case(name string) *CaseResult {
	for i := range r.Cases {
		if r.Cases[i].Name == name {
			return &r.Cases[i]
		}
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Duration == 0 {
		o.Duration = defaultDuration
		if o.Smoke {
			o.Duration = smokeDuration
		}
	}
	if o.Duration < time.Second {
		return o, fmt.Errorf("duration %v is too short: iperf3 needs at least 1 s", o.Duration)
	}
	o.Duration = o.Duration.Round(time.Second)
	if o.Repeat == 0 {
		o.Repeat = defaultRepeat
		if o.Smoke {
			o.Repeat = smokeRepeat
		}
	}
	if o.Repeat < 0 {
		return o, fmt.Errorf("repeat %d: must be at least 1", o.Repeat)
	}
	if len(o.Cases) == 0 {
		o.Cases = CaseNames()
	}
	var cases []string
	for _, c := range CaseNames() { // canonical order, no duplicates
		if slices.Contains(o.Cases, c) {
			cases = append(cases, c)
		}
	}
	for _, c := range o.Cases {
		if !slices.Contains(CaseNames(), c) {
			return o, fmt.Errorf("unknown case %q (cases: %s)", c, strings.Join(CaseNames(), ", "))
		}
	}
	o.Cases = cases
	return o, nil
}

// Run builds the test beds, measures every case Repeat times and removes
// everything it made before it returns, also when ctx is cancelled (then
// it returns ctx's error). progress gets one line per figure measured.
func Run(ctx context.Context, opts Options, progress io.Writer) (*Results, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the benchmark builds network namespaces and must run as root")
	}
	for _, tool := range opts.Tools() {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%w: %s is not in PATH; install it (Debian: apt-get install iperf3 iputils-ping util-linux iproute2)", ErrMissingTool, tool)
		}
	}
	pl, err := newPlacement(opts)
	if err != nil {
		return nil, err
	}
	res := &Results{
		Machine: machineInfo(ctx),
		Settings: Settings{
			DurationS: opts.Duration.Seconds(), Repeat: opts.Repeat, Cases: opts.Cases,
			UnderlayMTU: underlayMTU, OverlayMTU: overlayMTU,
			PingIntervalMS: float64(pingInterval) / float64(time.Millisecond),
			DaemonArgs:     opts.DaemonArgs, Smoke: opts.Smoke,
			IperfAffinity: pl.affinity,
		},
		Metrics: Metrics(),
	}
	fmt.Fprintf(progress, "machine: %s\n", res.Machine)

	if slices.Contains(opts.Cases, VXSwitch) {
		if opts.Binary == "" {
			dir, err := os.MkdirTemp("", "vxbench-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			fmt.Fprintln(progress, "building vxswitch ...")
			if opts.Binary, err = topo.BuildBinary(dir); err != nil {
				return nil, fmt.Errorf("%w (or pass a built binary with -binary)", err)
			}
		} else if opts.Binary, err = filepath.Abs(opts.Binary); err != nil {
			return nil, err
		}
		if _, err := os.Stat(opts.Binary); err != nil {
			return nil, fmt.Errorf("vxswitch binary: %w", err)
		}
		res.Settings.VXSwitchVersion = binaryVersion(ctx, opts.Binary)
	}

	if pl.pinCPU >= 0 {
		res.Settings.PinLatencyCPU = &pl.pinCPU
	}

	// Every case's bed exists for the whole run, each in namespaces of its
	// own (the kernel's vxlan and vxswitch both want UDP 4789 in their host
	// namespace); idle beds cost nothing.
	var beds []*bed
	defer func() {
		for i := len(beds) - 1; i >= 0; i-- {
			beds[i].close()
		}
	}()
	for i, name := range opts.Cases {
		start := time.Now()
		b, err := setup(ctx, name, 5201+i, opts, pl)
		if b != nil {
			beds = append(beds, b)
		}
		if err != nil {
			return nil, fmt.Errorf("set up %s: %w", name, err)
		}
		fmt.Fprintf(progress, "set up %-8s %s (%.1f s)\n", name, b.describe(), time.Since(start).Seconds())
	}

	res.Wakeup = &WakeupFloor{CPUs: pl.first, GapMS: res.Settings.PingIntervalMS, Samples: wakeupSamples}
	if opts.Smoke {
		res.Wakeup.Samples = wakeupSmokeSamples
	}
	runs := make(map[string][]map[string]float64)
	for round := 1; round <= opts.Repeat; round++ {
		w, err := measureWakeups(ctx, pl.first, res.Wakeup.Samples, pingInterval)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("interrupted: %w", ctx.Err())
			}
			return nil, fmt.Errorf("wake-up floor, round %d: %w", round, err)
		}
		res.Wakeup.Rounds = append(res.Wakeup.Rounds, w)
		fmt.Fprintf(progress, "round %d/%d %-8s %s\n", round, opts.Repeat, "wake-up", w)
		for _, b := range beds {
			tag := fmt.Sprintf("round %d/%d %-8s", round, opts.Repeat, b.name)
			figs, err := b.measure(ctx, opts.Duration, func(line string) { fmt.Fprintf(progress, "%s %s\n", tag, line) })
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("interrupted: %w", ctx.Err())
				}
				return nil, fmt.Errorf("%s, round %d: %w", b.name, round, err)
			}
			runs[b.name] = append(runs[b.name], figs)
		}
	}
	for _, name := range opts.Cases {
		res.Cases = append(res.Cases, CaseResult{Name: name, Runs: runs[name], Summary: summarize(runs[name])})
	}
	res.Ratios = ratios(res)
	res.Wakeup.summarize()
	return res, nil
}

// summarize combines rounds per metric.
func summarize(runs []map[string]float64) map[string]float64 {
	out := make(map[string]float64)
	for _, m := range Metrics() {
		var vals []float64
		for _, r := range runs {
			if v, ok := r[m.Key]; ok {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			continue
		}
		if m.Aggregate == aggMax {
			out[m.Key] = slices.Max(vals)
		} else {
			out[m.Key] = median(vals)
		}
	}
	return out
}

func median(vals []float64) float64 {
	s := slices.Clone(vals)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratios divides vxswitch's summary by the kernel's, figure by figure.
func ratios(r *Results) map[string]float64 {
	k, v := r.Case(Kernel), r.Case(VXSwitch)
	if k == nil || v == nil {
		return nil
	}
	out := make(map[string]float64)
	for _, m := range Metrics() {
		kv, ok1 := k.Summary[m.Key]
		vv, ok2 := v.Summary[m.Key]
		if ok1 && ok2 && kv > 0 {
			out[m.Key] = vv / kv
		}
	}
	return out
}
