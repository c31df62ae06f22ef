// Command vxbench measures vxswitch against the kernel's vxlan and the bare
// underlay (package bench) and writes a table, JSON and an SVG chart. Run
// it as root from the repository: `make bench`. With -scale it runs the
// scale benchmark of the cluster store instead (bench.RunScale: many
// daemons, one etcd member, a series of attaches) and writes scale.json:
// `make bench-scale`. With -soak it runs the soak instead (bench.RunSoak:
// TCP and UDP both ways through two daemons for -duration, 10 minutes by
// default, every byte checked, each daemon's RSS, goroutines and open
// fds sampled) and writes soak.json and soak.svg: `make soak`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/vxswitch/vxswitch/bench"
)

func main() {
	var (
		opts       bench.Options
		cases      string
		daemonArgs string
		out        string
		scale      bool
		sopts      bench.ScaleOptions
		soak       bool
		kopts      bench.SoakOptions
	)
	flag.DurationVar(&opts.Duration, "duration", 0, "length of every iperf3 and ping run (default 10s, 2s with -smoke); with -soak, of the soak (default 10m)")
	flag.IntVar(&opts.Repeat, "repeat", 0, "rounds over every case; figures are medians (default 3, 1 with -smoke)")
	flag.StringVar(&cases, "cases", strings.Join(bench.CaseNames(), ","), "comma-separated subset of the cases to run")
	flag.BoolVar(&opts.Smoke, "smoke", false, "short run: a few seconds per figure, one round")
	flag.StringVar(&opts.Binary, "binary", "", "vxswitch binary for the daemons (default: build one into a temporary directory)")
	flag.StringVar(&daemonArgs, "daemon-args", "", `extra flags for every vxswitch daemon, e.g. "--offload=off"`)
	flag.StringVar(&out, "out", "bench/results", "directory for latest.json and latest.svg (scale.json with -scale)")
	flag.BoolVar(&opts.NoPin, "no-pin", false, "leave iperf3's client and server unpinned (default: client on the first CPU this process may use, server on the second, as on two hosts)")
	flag.BoolVar(&opts.PinLatency, "pin-latency", false, "a diagnostic: run the ping test with ping and every daemon thread on one CPU, so that no wake-up crosses CPUs")
	flag.BoolVar(&scale, "scale", false, "run the scale benchmark of the cluster store instead (writes scale.json): daemons on many hosts, one etcd member, a series of attaches")
	flag.IntVar(&sopts.Hosts, "hosts", 0, "with -scale: hosts, each with a daemon (default 16)")
	flag.IntVar(&sopts.Attaches, "attaches", 0, "with -scale: attaches in the series, rotating over the hosts (default 100)")
	flag.DurationVar(&sopts.PollInterval, "poll", 0, "with -scale: gap between two polls of one daemon for the new entry (default 2ms)")
	flag.DurationVar(&sopts.Idle, "idle", 0, "with -scale: window without attaches that measures the lease keep-alives (default: two store TTLs)")
	flag.DurationVar(&sopts.Gap, "gap", 0, "with -scale: pause between one attach reaching every host and the next (default 100ms)")
	flag.DurationVar(&sopts.StoreTTL, "store-ttl", 0, "with -scale: every host's lease TTL (default: the daemon's, 10s)")
	flag.StringVar(&sopts.Etcd, "etcd", "", "with -scale: etcd binary (default: etcd from PATH, Debian's etcd-server)")
	flag.BoolVar(&sopts.PollDuringAttach, "poll-during-attach", false, "with -scale: poll the other hosts from the attach request on instead of from its reply (sees hosts quicker than the reply; the polls slow the attach down)")
	flag.BoolVar(&soak, "soak", false, "run the soak instead (writes soak.json and soak.svg): TCP and UDP both ways through two daemons, checked, with the daemons' resources sampled")
	flag.DurationVar(&kopts.Sample, "sample", 0, "with -soak: time between two samples of the daemons (default 5s)")
	flag.DurationVar(&kopts.Warmup, "warmup", 0, "with -soak: time from the start to the first sample the figures count (default a tenth of -duration)")
	flag.IntVar(&kopts.UDPRate, "udp-rate", 0, "with -soak: UDP datagrams a second each way (default 5000)")
	flag.Int64Var(&kopts.TCPChunk, "tcp-chunk", 0, "with -soak: bytes of one TCP transfer (default 64 MiB)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vxbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if scale && soak {
		fmt.Fprintln(os.Stderr, "vxbench: -scale and -soak are two runs: give one of them")
		os.Exit(2)
	}
	if bad := misplacedFlags(mode(scale, soak)); len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "vxbench: %s does not take %s (drop them, or give the run they belong to)\n", mode(scale, soak), strings.Join(bad, ", "))
		os.Exit(2)
	}
	if soak {
		kopts.Duration, kopts.Binary, kopts.DaemonArgs = opts.Duration, opts.Binary, strings.Fields(daemonArgs)
		if err := runSoak(kopts, out); err != nil {
			fmt.Fprintf(os.Stderr, "vxbench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if scale {
		sopts.Binary, sopts.DaemonArgs = opts.Binary, strings.Fields(daemonArgs)
		if err := runScale(sopts, out); err != nil {
			fmt.Fprintf(os.Stderr, "vxbench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	for c := range strings.SplitSeq(cases, ",") {
		if c = strings.TrimSpace(c); c != "" {
			opts.Cases = append(opts.Cases, c)
		}
	}
	opts.DaemonArgs = strings.Fields(daemonArgs)
	if err := run(opts, out); err != nil {
		fmt.Fprintf(os.Stderr, "vxbench: %v\n", err)
		os.Exit(1)
	}
}

func run(opts bench.Options, out string) error {
	// Ctrl-C cancels the run; Run then removes everything it made.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, opts, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Println()
	if err := res.WriteTable(os.Stdout); err != nil {
		return err
	}
	jsonPath, svgPath, err := res.Save(out)
	if err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	fmt.Printf("\nwrote %s and %s\n", jsonPath, svgPath)
	return nil
}

// modeFlags are the flags each run takes besides -binary, -daemon-args
// and -out, which serve them all.
var modeFlags = map[string][]string{
	"the benchmark": {"duration", "repeat", "cases", "smoke", "no-pin", "pin-latency"},
	"-scale":        {"hosts", "attaches", "poll", "idle", "gap", "store-ttl", "etcd", "poll-during-attach"},
	"-soak":         {"duration", "sample", "warmup", "udp-rate", "tcp-chunk"},
}

// mode names the run the command line asks for.
func mode(scale, soak bool) string {
	switch {
	case scale:
		return "-scale"
	case soak:
		return "-soak"
	}
	return "the benchmark"
}

// misplacedFlags lists the flags set on the command line that the run m
// does not take, as -name.
func misplacedFlags(m string) []string {
	var bad []string
	flag.Visit(func(f *flag.Flag) {
		if slices.Contains(modeFlags[m], f.Name) {
			return
		}
		for _, fs := range modeFlags {
			if slices.Contains(fs, f.Name) {
				bad = append(bad, "-"+f.Name)
				return
			}
		}
	})
	return bad
}

func runScale(opts bench.ScaleOptions, out string) error {
	// Ctrl-C cancels the run; RunScale then removes everything it made.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.RunScale(ctx, opts, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Println()
	if err := res.WriteTable(os.Stdout); err != nil {
		return err
	}
	path, err := res.Save(out)
	if err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	fmt.Printf("\nwrote %s\n", path)
	return nil
}

func runSoak(opts bench.SoakOptions, out string) error {
	// Ctrl-C cancels the run; RunSoak then removes everything it made.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.RunSoak(ctx, opts, os.Stderr)
	if res != nil {
		fmt.Println()
		if werr := res.WriteTable(os.Stdout); werr != nil {
			return werr
		}
		jsonPath, svgPath, serr := res.Save(out)
		if serr != nil {
			return fmt.Errorf("writing results: %w", serr)
		}
		fmt.Printf("\nwrote %s and %s\n", jsonPath, svgPath)
	}
	return err
}
