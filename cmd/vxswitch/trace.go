package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/pcap"
)

func newTraceCmd(c *cli) *cobra.Command {
	var (
		file     string
		opts     api.TraceOptions
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "trace NAME --pcap FILE [--count N] [--duration D]",
		Short: "Record the frames a network forwards, both ways, into a pcap file",
		Long: `trace records the Ethernet frames the switch forwards on network NAME, in both
directions: frames from the network's bridge (its TAP) sent into the overlay,
and frames received from the overlay for the bridge. It writes them to FILE as
a pcap file (Ethernet link type) that tcpdump -r and Wireshark open, until
--count frames were recorded, --duration passed, or Ctrl-C.

Frames are recorded as the switch sees them: with offloads on, a TCP or UDP
superframe from the TAP (up to 64 KiB, GSO) is one record, before it is cut
into segments, and its checksum may still be partial; received segments are
recorded one by one, before they are coalesced (GRO). Received frames are
recorded after the switch's checks (VNI, sender, source MAC, filters), sent
ones after the filters (the gateway filter, the ARP/ND proxy). The pcap
format has no direction: tell them apart by their MAC addresses.

The daemon copies frames into a bounded queue and never waits for this
command: when it cannot keep up, frames are dropped from the trace (not from
the network) and counted; the command prints how many.`,
		Example: `  vxswitch trace app --pcap app.pcap --count 1000    # the next 1000 frames, both ways
  vxswitch trace app --pcap app.pcap --duration 30s   # or Ctrl-C to stop
  tcpdump -nr app.pcap`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("--pcap FILE is required: the file to write the frames to")
			}
			if opts.Count < 0 || duration < 0 {
				return fmt.Errorf("--count and --duration must not be negative")
			}
			opts.Duration = duration
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := c.client().Trace(ctx, args[0], opts)
			if err != nil {
				return err
			}
			defer st.Close()
			f, err := os.Create(file)
			if err != nil {
				return err
			}
			n, err := copyPcap(f, st)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
				return fmt.Errorf("trace %s: %w (%d frames written to %s)", args[0], err, n, file)
			}
			w := cmd.OutOrStdout()
			if dropped, ok := st.Dropped(); ok {
				why := ""
				if dropped > 0 {
					why = " (the trace could not keep up; the network forwarded them)"
				}
				fmt.Fprintf(w, "%d frames recorded to %s, %d dropped%s\n", n, file, dropped, why)
			} else {
				fmt.Fprintf(w, "%d frames recorded to %s (interrupted)\n", n, file)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "pcap", "", "pcap file to write (required)")
	f.IntVar(&opts.Count, "count", 0, "stop after N frames (0: no bound)")
	f.DurationVar(&duration, "duration", 0, "stop after this long, e.g. 10s (0: no bound)")
	return cmd
}

// copyPcap copies the pcap stream r to w packet by packet, so that what
// was written is a whole pcap file even when the stream is cut, and
// returns how many packets it copied.
func copyPcap(w io.Writer, r io.Reader) (int, error) {
	pr, err := pcap.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("read the daemon's pcap stream: %w", err)
	}
	pw := pcap.NewWriter(w)
	if err := pw.WriteFileHeader(pr.SnapLen(), pr.LinkType()); err != nil {
		return 0, err
	}
	n := 0
	for {
		ts, data, orig, err := pr.ReadPacket()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := pw.WritePacket(ts, data, orig); err != nil {
			return n, err
		}
		n++
	}
}
