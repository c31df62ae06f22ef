// Command vxbench measures vxswitch against the kernel's vxlan and the bare
// underlay (package bench) and writes a table, JSON and an SVG chart. Run
// it as root from the repository: `make bench`. With -scale it runs the
// scale benchmark of the cluster store instead (bench.RunScale: many
// daemons, one etcd member, a series of attaches) and writes scale.json:
// `make bench-scale`.
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
	)
	flag.DurationVar(&opts.Duration, "duration", 0, "length of every iperf3 and ping run (default 10s, 2s with -smoke)")
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
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vxbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if bad := misplacedFlags(scale); len(bad) > 0 {
		if scale {
			fmt.Fprintf(os.Stderr, "vxbench: flags that -scale does not take: %s (drop them)\n", strings.Join(bad, ", "))
		} else {
			fmt.Fprintf(os.Stderr, "vxbench: flags for -scale only: %s (add -scale, or drop them)\n", strings.Join(bad, ", "))
		}
		os.Exit(2)
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

// scaleOnly and benchOnly are the flags of one mode that the other does
// not take (-binary, -daemon-args and -out serve both).
var (
	scaleOnly = []string{"hosts", "attaches", "poll", "idle", "gap", "store-ttl", "etcd", "poll-during-attach"}
	benchOnly = []string{"duration", "repeat", "cases", "smoke", "no-pin", "pin-latency"}
)

// misplacedFlags lists the flags set on the command line that the mode
// does not take, as -name.
func misplacedFlags(scale bool) []string {
	other := scaleOnly
	if scale {
		other = benchOnly
	}
	var bad []string
	flag.Visit(func(f *flag.Flag) {
		if slices.Contains(other, f.Name) {
			bad = append(bad, "-"+f.Name)
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
