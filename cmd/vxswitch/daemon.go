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
	"github.com/vxswitch/vxswitch/internal/docker"
)

func newDaemonCmd() *cobra.Command {
	var (
		vtep, logLevel, logFormat, offload, srcPorts string
		advertise, egressSubnet                      string
		dnsUpstreams                                 []string
		dockerPlugin, dockerHost                     string
		socketGroup                                  string
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
exec', whose private mount namespace would hide the networks' namespaces.

With --store etcd://HOST:PORT the hosts share one etcd cluster, as Docker's
--cluster-store: a network is created once on any host, addresses are
unique cluster-wide, and every host learns the others' endpoints (MAC
entries, flood lists, ARP/ND answers and DNS names) from the store.

With --docker-plugin /run/docker/plugins/vxswitch.sock it is also the
Docker engine's network and IPAM driver "vxswitch" (the socket's base
name): docker network create -d vxswitch --ipam-driver vxswitch --subnet
10.0.0.0/24 mynet maps to the cluster network mynet on every engine.`,
		Example: `  vxswitch daemon --vtep 192.0.2.10                                          # by hand
  vxswitch daemon --vtep 198.18.0.1 --store etcd://198.18.0.100:2379 --socket-group vxswitch
  nsenter --net=/run/netns/h1 vxswitch daemon --vtep 198.18.0.1 --run-dir /run/vxswitch-h1 --state-dir /var/lib/vxswitch-h1`,
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
			if advertise != "" {
				if cfg.Store.Advertise, err = netip.ParseAddr(advertise); err != nil {
					return fmt.Errorf("bad --advertise %q: want the IP address other hosts reach this one's VTEP at", advertise)
				}
				if cfg.Store.URL == "" {
					return fmt.Errorf("--advertise is for the cluster store: give --store etcd://HOST:PORT too")
				}
			}
			if egressSubnet != "" {
				if cfg.EgressSubnet, err = netip.ParsePrefix(egressSubnet); err != nil {
					return fmt.Errorf("bad --egress-subnet %q: want an IPv4 CIDR such as %s", egressSubnet, daemon.DefaultEgressSubnet)
				}
			}
			for _, u := range dnsUpstreams {
				ap, err := parseUpstream(u)
				if err != nil {
					return err
				}
				cfg.DNSUpstreams = append(cfg.DNSUpstreams, ap)
			}
			cfg.Logger = log
			cfg.Version = version
			if dockerPlugin == "" && cmd.Flags().Changed("docker-host") {
				return fmt.Errorf("--docker-host is for the Docker plugin: give --docker-plugin /run/docker/plugins/vxswitch.sock too")
			}
			if cfg.SocketGID, err = lookupGroup(socketGroup); err != nil {
				return err
			}
			if err := daemon.CheckMountNamespace(cfg.RunDir); err != nil {
				return err // started with ip netns exec: its namespaces would die with it
			}
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if dockerPlugin == "" {
				return d.Run(ctx)
			}
			p, err := docker.Listen(docker.Config{Ops: d, Socket: dockerPlugin, Engine: dockerHost, StateDir: cfg.StateDir, Logger: log})
			if err != nil {
				d.Close()
				return err
			}
			return runWithPlugin(ctx, d, p)
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
	f.BoolVar(&cfg.PeersOnly, "peers-only", false, "accept VXLAN only from VTEPs a network knows (its peers, static and store entries); drop the rest as unknown_vtep")
	f.DurationVar(&cfg.Aging, "aging", fib.DefaultAging, "age after which a learned MAC entry without traffic is removed")
	f.IntVar(&cfg.MaxLearned, "max-learned", fib.DefaultMaxLearned, "learned MAC entries per network at most")
	f.StringVar(&cfg.MetricsAddr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (HOST:PORT in the daemon's network namespace; see docs/metrics.md)")
	f.StringVar(&cfg.Store.URL, "store", "", "cluster store: etcd://HOST:PORT[,HOST:PORT...] (default: none; every host configured by hand)")
	f.StringVar(&cfg.Store.CACert, "store-cacert", "", "CA certificate (PEM) of etcd's server certificates: reach etcd over TLS")
	f.StringVar(&cfg.Store.Cert, "store-cert", "", "client certificate (PEM) for etcd's --client-cert-auth")
	f.StringVar(&cfg.Store.Key, "store-key", "", "key (PEM) of --store-cert")
	f.StringVar(&advertise, "advertise", "", "VTEP address other hosts send to (default: --vtep)")
	f.DurationVar(&cfg.Store.TTL, "store-ttl", daemon.DefaultStoreTTL, "lease of this host in the store: how soon others drop its endpoints after it dies")
	f.StringArrayVar(&dnsUpstreams, "dns-upstream", nil, "where the networks' DNS forwards other names, IP[:PORT] (repeatable; default: /etc/resolv.conf's nameservers)")
	f.StringVar(&egressSubnet, "egress-subnet", daemon.DefaultEgressSubnet.String(), "subnet of this host's egress bridge vxgw0, for endpoints of --egress networks")
	f.StringVar(&dockerPlugin, "docker-plugin", "", "serve Docker's network and IPAM driver on this unix socket, e.g. /run/docker/plugins/vxswitch.sock (the driver's name is its base name)")
	f.StringVar(&dockerHost, "docker-host", docker.DefaultEngine, "the Docker engine's API, for names the plugin is not told (unix:///PATH or tcp://HOST:PORT)")
	f.StringVar(&socketGroup, "socket-group", "", "group (name or GID) whose members may use the control socket, besides root (mode 0660)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "console", "console or json")
	cmd.MarkFlagRequired("vtep")
	return cmd
}

// runWithPlugin runs the daemon and its Docker plugin until ctx ends or
// either stops; the plugin stops first, so that no call from the engine
// reaches a daemon that is closing.
func runWithPlugin(ctx context.Context, d *daemon.Daemon, p *docker.Plugin) error {
	dctx, dcancel := context.WithCancel(context.Background())
	defer dcancel()
	derr := make(chan error, 1)
	go func() { derr <- d.Run(dctx) }()
	perr := make(chan error, 1)
	go func() { perr <- p.Serve() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-perr:
		if err != nil {
			err = fmt.Errorf("docker plugin: %w", err)
		}
	case err = <-derr:
		p.Close()
		return err
	}
	p.Close()
	dcancel()
	if derr := <-derr; err == nil {
		err = derr
	}
	return err
}

// parseUpstream reads a --dns-upstream: IP, or IP:PORT ([IPv6]:PORT).
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53), nil
	}
	return netip.AddrPort{}, fmt.Errorf("bad --dns-upstream %q: want IP or IP:PORT, e.g. 192.0.2.53 or [2001:db8::53]:53", s)
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
