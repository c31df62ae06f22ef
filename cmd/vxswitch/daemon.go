package main

import (
	"context"
	"fmt"
	"net/netip"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/daemon"
)

func newDaemonCmd() *cobra.Command {
	var (
		vtep, logLevel, logFormat, offload, srcPorts string
		cfg                                          daemon.Config
	)
	cmd := &cobra.Command{
		Use:   "daemon --vtep IP",
		Short: "Run the switch for this host in the foreground",
		Long: `Run the switch in the foreground, in the current network namespace (the
underlay). It listens for VXLAN on --vtep:--port, serves the control API on
RUN_DIR/vxswitch.sock, keeps each network's namespace under RUN_DIR/netns and
its configuration in STATE_DIR/state.json. On restart it restores every
network, endpoint, peer and static entry. SIGINT or SIGTERM stop it; the
networks' namespaces and endpoints stay for the next start. In a named
namespace, start it with 'nsenter --net=/run/netns/NAME', not 'ip netns
exec', whose private mount namespace would hide the networks' namespaces.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ip, err := netip.ParseAddr(vtep)
			if err != nil {
				return fmt.Errorf("bad --vtep %q: want this host's underlay IP address", vtep)
			}
			cfg.VTEP = ip
			if cfg.Port == 0 {
				return fmt.Errorf("bad --port 0: want a UDP port, 1 to 65535 (VXLAN's is 4789)")
			}
			switch offload {
			case "on":
				cfg.Offload = true
			case "off":
			default:
				return fmt.Errorf("bad --offload %q: want on or off", offload)
			}
			if _, err := fmt.Sscanf(srcPorts, "%d-%d", &cfg.SrcPortMin, &cfg.SrcPortMax); err != nil ||
				cfg.SrcPortMin == 0 || cfg.SrcPortMax < cfg.SrcPortMin {
				return fmt.Errorf("bad --src-port-range %q: want MIN-MAX such as 49152-65535", srcPorts)
			}
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			defer log.Sync()
			cfg.Logger = log
			cfg.Version = version
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&vtep, "vtep", "", "this host's underlay IP address (required)")
	f.Uint16Var(&cfg.Port, "port", 4789, "VXLAN UDP port")
	f.StringVar(&cfg.RunDir, "run-dir", daemon.DefaultRunDir, "socket and network namespaces")
	f.StringVar(&cfg.StateDir, "state-dir", daemon.DefaultStateDir, "persistent configuration")
	f.StringVar(&offload, "offload", "on", "on: TAP TSO/checksum offloads and UDP GSO/GRO; off: one frame per system call")
	f.StringVar(&srcPorts, "src-port-range", "49152-65535", "outer UDP source ports, chosen per inner flow (RFC 7348)")
	f.DurationVar(&cfg.BusyPoll, "busy-poll", 0, "keep polling this long after the last frame before sleeping (lower latency, more CPU; e.g. 50us)")
	f.DurationVar(&cfg.Aging, "aging", fib.DefaultAging, "age after which a learned MAC entry without traffic is removed")
	f.IntVar(&cfg.MaxLearned, "max-learned", fib.DefaultMaxLearned, "learned MAC entries per network at most")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "console", "console or json")
	cmd.MarkFlagRequired("vtep")
	return cmd
}

func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("bad --log-level %q: want debug, info, warn or error", level)
	}
	var zc zap.Config
	switch format {
	case "json":
		zc = zap.NewProductionConfig()
	case "console":
		zc = zap.NewDevelopmentConfig()
		zc.Development = false
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout(time.RFC3339)
	default:
		return nil, fmt.Errorf("bad --log-format %q: want console or json", format)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.DisableCaller = true
	return zc.Build()
}
