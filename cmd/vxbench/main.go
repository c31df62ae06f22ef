// Command vxbench measures vxswitch against the kernel's vxlan and the bare
// underlay (package bench) and writes a table, JSON and an SVG chart. Run
// it as root from the repository: `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
	)
	flag.DurationVar(&opts.Duration, "duration", 0, "length of every iperf3 and ping run (default 10s, 2s with -smoke)")
	flag.IntVar(&opts.Repeat, "repeat", 0, "rounds over every case; figures are medians (default 3, 1 with -smoke)")
	flag.StringVar(&cases, "cases", strings.Join(bench.CaseNames(), ","), "comma-separated subset of the cases to run")
	flag.BoolVar(&opts.Smoke, "smoke", false, "short run: a few seconds per figure, one round")
	flag.StringVar(&opts.Binary, "binary", "", "vxswitch binary for the daemons (default: build one into a temporary directory)")
	flag.StringVar(&daemonArgs, "daemon-args", "", `extra flags for every vxswitch daemon, e.g. "--offload=off"`)
	flag.StringVar(&out, "out", "bench/results", "directory for latest.json and latest.svg")
	flag.BoolVar(&opts.NoPin, "no-pin", false, "leave iperf3's client and server unpinned (default: client on the first CPU this process may use, server on the second, as on two hosts)")
	flag.BoolVar(&opts.PinLatency, "pin-latency", false, "a diagnostic: run the ping test with ping and every daemon thread on one CPU, so that no wake-up crosses CPUs")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vxbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
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
