// Package daemon is the vxswitch daemon as a library: it owns the Switch,
// the networks' namespaces, bridges, TAPs and endpoints, the persisted state,
// and the control API on a unix socket. cmd/vxswitch only parses flags and
// calls New and Run.
//
// Every control operation runs under one mutex (they are rare and each is a
// handful of netlink calls); the datapath never takes it.
//
// An operation that creates things undoes what it made if a later step
// fails, and the state file is saved before the operation reports success,
// so a user never sees a half-made network or endpoint and never loses a
// configuration that was acknowledged.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/dnsserver"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	vswitch "github.com/vxswitch/vxswitch/switch"
	"github.com/vxswitch/vxswitch/switch/udp"
)

// Defaults for the daemon's flags.
const (
	DefaultRunDir   = "/run/vxswitch"
	DefaultStateDir = "/var/lib/vxswitch"
	SocketName      = "vxswitch.sock"
)

// Config configures a daemon.
type Config struct {
	// VTEP is this host's underlay address; datagrams are sent from it and
	// received on it. Required. An IPv6 link-local address names its
	// interface as the zone (fe80::1%eth0), and its peers are then
	// link-local VTEPs on that link, as with the kernel's vxlan `local
	// fe80::1 dev eth0`.
	VTEP netip.Addr
	// Port is the VXLAN UDP port; 0 means 4789.
	Port uint16
	// RunDir holds the socket and the networks' namespaces (RunDir/netns);
	// StateDir holds the configuration. Two daemons on one machine need
	// different directories.
	RunDir, StateDir string
	// Netns is the path of the underlay namespace the UDP socket lives in;
	// empty means the daemon's own.
	Netns string
	// Offload turns on the fast path: TAPs with virtio-net headers and
	// TSO, UDP GSO and GRO on the underlay. Where the kernel refuses a
	// TAP offload, that network falls back to the simple path.
	Offload bool
	// SrcPortMin and SrcPortMax bound the outer UDP source ports (0, 0:
	// 49152-65535).
	SrcPortMin, SrcPortMax uint16
	// BusyPoll keeps the datapath loops polling for this long after they
	// last found work before they sleep (0: never poll).
	BusyPoll time.Duration
	// PeersOnly accepts VXLAN datagrams for a network only from the VTEPs
	// it knows: its peers (static, or from the store) and the VTEPs of
	// its static and store MAC entries (vswitch.Config.PeersOnly).
	PeersOnly bool
	// Aging and MaxLearned configure every network's MAC table (zero: 300
	// s and 65536).
	Aging      time.Duration
	MaxLearned int
	// Logger; nil means zap.NewNop.
	Logger *zap.Logger
	// Clock drives MAC aging; nil means the wall clock.
	Clock fib.Clock
	// Version is reported by the info API.
	Version string
	// Store connects the daemon to a cluster store; its zero value means
	// none: every host is configured by hand, as without Docker's
	// --cluster-store.
	Store StoreConfig
	// DNSUpstreams are where the networks' DNS servers forward names they
	// do not know; nil means the nameservers of /etc/resolv.conf.
	DNSUpstreams []netip.AddrPort
	// EgressSubnet is the IPv4 subnet of the host's egress bridge, for
	// endpoints of --egress networks; invalid means DefaultEgressSubnet.
	EgressSubnet netip.Prefix
	// SocketGID is the group the control socket (mode 0660) is given, so
	// that its members may use it besides root; 0 leaves the daemon's.
	SocketGID int
	// ReservationTTL is how long ReserveAddress holds an address no
	// endpoint claims (0: DefaultReservationTTL).
	ReservationTTL time.Duration
	// MetricsAddr, when set, is a TCP address (host:port, in the
	// daemon's own network namespace) to serve Prometheus metrics on,
	// at /metrics.
	MetricsAddr string
}

// Daemon is a running vxswitch daemon.
type Daemon struct {
	cfg      Config
	log      *zap.Logger
	sw       *vswitch.Switch
	ulIf     ulLink // the underlay interface that holds the VTEP; its mtu is kept current (mtu.go) under mu
	locks    []*os.File
	ln       net.Listener
	srv      *http.Server
	swDone   chan error
	closeOne sync.Once
	closeErr error
	// stopping is closed when Close begins; the goroutines started with
	// goBackground (healTAP, watchUnderlay) stop on it and are counted
	// in bg; bgMu orders starting one before Close's wait.
	stopping chan struct{}
	bgMu     sync.Mutex

	// metricsSrv serves /metrics (Config.MetricsAddr); nil without.
	metricsSrv *http.Server

	cluster *cluster // nil without a store
	ipam    ipam

	// The daemon's own background work (the reservation sweeper, and
	// what goBackground starts), stopped by Close before it takes mu.
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	mu   sync.Mutex // guards nets and every change to namespaces, links and state
	nets map[string]*network

	gone goneWatch // endpoints whose container went without a detach (watch.go)
}

// network is a configured network and what the daemon made for it.
type network struct {
	netState
	netns   string            // RunDir/netns/vx-<vni>
	sw      *vswitch.Network  // nil while the network is down (problem set)
	problem string            // why it is down, for `network inspect`
	epProbs map[string]string // endpoint ID → problem
	// dns serves the network's names at its gateway (cluster networks);
	// dnsRecs are the names it answers, replaced by syncNetwork.
	dns     *dnsserver.Server
	dnsRecs *dnsserver.Live
	// storeMACs are the store's MAC entries last installed, whose
	// changes logStoreEntries logs.
	storeMACs map[fib.MAC]netip.Addr
}

// New checks the configuration, takes the run and state directories,
// opens the underlay socket, restores every network from the state file and
// starts listening on the control socket. Run serves it.
func New(cfg Config) (*Daemon, error) {
	if !cfg.VTEP.IsValid() || cfg.VTEP.IsUnspecified() || cfg.VTEP.IsMulticast() {
		return nil, fmt.Errorf("--vtep must be this host's unicast underlay address, got %q", cfg.VTEP)
	}
	cfg.VTEP = cfg.VTEP.Unmap()
	switch ll := cfg.VTEP.IsLinkLocalUnicast(); {
	case ll && cfg.VTEP.Is6() && cfg.VTEP.Zone() == "":
		return nil, fmt.Errorf("--vtep %s is link-local: name its interface too, as in %s%%eth0", cfg.VTEP, cfg.VTEP)
	case !ll && cfg.VTEP.Zone() != "":
		return nil, fmt.Errorf("--vtep %s: only a link-local address takes an interface after %%", cfg.VTEP)
	}
	if cfg.Port == 0 {
		cfg.Port = vswitch.DefaultPort
	}
	if cfg.RunDir == "" {
		cfg.RunDir = DefaultRunDir
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if !cfg.EgressSubnet.IsValid() {
		cfg.EgressSubnet = DefaultEgressSubnet
	}
	if !cfg.EgressSubnet.Addr().Is4() || cfg.EgressSubnet.Bits() > 28 || cfg.EgressSubnet.Masked() != cfg.EgressSubnet {
		return nil, fmt.Errorf("bad --egress-subnet %s: want an IPv4 subnet of /28 or larger, such as %s", cfg.EgressSubnet, DefaultEgressSubnet)
	}
	if cfg.Aging < 0 || cfg.MaxLearned < 0 {
		return nil, errors.New("--aging and --max-learned must not be negative")
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, nets: map[string]*network{}, stopping: make(chan struct{})}
	if err := d.open(); err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

// open does New's work; on error New releases what it took.
func (d *Daemon) open() error {
	cfg := d.cfg
	for _, dir := range []string{cfg.RunDir, filepath.Join(cfg.RunDir, "netns"), cfg.StateDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	locks := []string{cfg.RunDir}
	if filepath.Clean(cfg.StateDir) != filepath.Clean(cfg.RunDir) {
		locks = append(locks, cfg.StateDir)
	}
	for _, dir := range locks {
		if err := d.lock(dir); err != nil {
			return err
		}
	}
	st, err := loadState(cfg.StateDir)
	if err != nil {
		return err
	}
	if d.ulIf, err = underlayLink(cfg.Netns, cfg.VTEP); err != nil {
		return err
	}
	// Lowered by any route through the link that sets an MTU (mtu.go).
	if mtu, err := underlayMTU(cfg.Netns, d.ulIf.index, cfg.VTEP.Is4()); err == nil {
		d.ulIf.mtu = mtu
	}
	var ul *udp.Underlay
	err = nsutil.Do(cfg.Netns, func() (err error) {
		ul, err = udp.Listen(udp.Config{
			Local:      netip.AddrPortFrom(cfg.VTEP, cfg.Port),
			SrcPortMin: cfg.SrcPortMin, SrcPortMax: cfg.SrcPortMax, NoOffload: !cfg.Offload, Logger: d.log,
		})
		return err
	})
	if err != nil {
		return err
	}
	d.sw, err = vswitch.New(vswitch.Config{Underlay: ul, Port: cfg.Port, Logger: d.log, Clock: cfg.Clock, BusyPoll: cfg.BusyPoll,
		PeersOnly: cfg.PeersOnly, MaxInnerFrame: d.maxInnerFrame()})
	if err != nil {
		ul.Close()
		return err
	}
	d.swDone = make(chan error, 1)
	go func() { d.swDone <- d.sw.Run(context.Background()) }()

	d.ipam = localIPAM{}
	if cfg.Store.URL != "" {
		if d.cluster, err = newCluster(d); err != nil {
			return err
		}
		d.ipam = storeIPAM{d.cluster}
	}
	for _, ns := range st.Networks {
		d.restore(ns)
	}
	d.sweepLeftovers(st.loaded)
	if !st.loaded {
		// From now on a state file says what the run dir holds, so
		// that a crash in the first operation is swept at the next start.
		if err := d.save(); err != nil {
			return err
		}
	}
	if d.cluster != nil {
		// Networks and endpoints are up from the state file already:
		// the datapath does not wait for the store.
		d.cluster.start()
	}

	sock := filepath.Join(cfg.RunDir, SocketName)
	// The run dir lock is ours, so a socket file left there is stale.
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", sock, err)
	}
	d.ln, err = net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		return err
	}
	if cfg.SocketGID != 0 {
		if err := os.Chown(sock, -1, cfg.SocketGID); err != nil {
			return fmt.Errorf("give %s to group %d (--socket-group): %w", sock, cfg.SocketGID, err)
		}
	}
	// A port in use fails New, before the background work starts.
	if err := d.startMetrics(); err != nil {
		return err
	}
	// Requests are a few hundred bytes from a local client: a client that
	// takes longer than this is stuck, and must not hold a connection.
	d.srv = &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	bgCtx, cancel := context.WithCancel(context.Background())
	d.bgCancel = cancel
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		d.sweepReservations(bgCtx)
	}()
	d.goBackground(d.watchUnderlay)
	d.goBackground(d.watchGone)
	d.log.Info("vxswitch daemon ready", zap.Stringer("vtep", cfg.VTEP), zap.Uint16("port", cfg.Port), zap.Bool("offload", cfg.Offload),
		zap.String("socket", sock), zap.String("state_dir", cfg.StateDir), zap.Int("networks", len(d.nets)))
	return nil
}

// lock takes an exclusive lock on dir/vxswitch.lock so that two daemons
// never share a run or state directory.
func (d *Daemon) lock(dir string) error {
	path := filepath.Join(dir, "vxswitch.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("another vxswitch daemon is using %s (lock %s is held); give this one other --run-dir and --state-dir", dir, path)
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	d.locks = append(d.locks, f)
	return nil
}

// goBackground runs fn on a goroutine Close waits for, unless the daemon
// is closing.
func (d *Daemon) goBackground(fn func()) {
	d.bgMu.Lock()
	defer d.bgMu.Unlock()
	select {
	case <-d.stopping:
		return
	default:
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		fn()
	}()
}

// Socket is the path of the control socket.
func (d *Daemon) Socket() string { return filepath.Join(d.cfg.RunDir, SocketName) }

// Run serves the control API until ctx is done, then closes the daemon.
// The networks' namespaces, bridges and endpoints stay, so containers keep
// their configuration; the TAPs go with the process and are made again by
// the next daemon, which restores everything from the state file.
func (d *Daemon) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- d.srv.Serve(d.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	case err = <-d.swDone:
		if err != nil {
			err = fmt.Errorf("datapath stopped: %w", err)
		}
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops the API and the datapath and releases the directories. It
// leaves the networks' namespaces in place (see Run).
func (d *Daemon) Close() error {
	d.closeOne.Do(func() {
		d.bgMu.Lock()
		close(d.stopping)
		d.bgMu.Unlock()
		if d.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d.srv.Shutdown(ctx)
			cancel()
		}
		if d.cluster != nil {
			d.cluster.stop() // its callbacks take d.mu
		}
		d.stopBackground()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.closeErr = d.release()
		d.log.Info("vxswitch daemon stopped")
	})
	return d.closeErr
}

// stopBackground stops the daemon's background work and waits for it;
// it must be called without d.mu.
func (d *Daemon) stopBackground() {
	if d.bgCancel != nil {
		d.bgCancel()
		d.bg.Wait()
		d.bgCancel = nil
	}
}

func (d *Daemon) release() error {
	var err error
	d.stopMetrics()
	if d.ln != nil {
		d.ln.Close()
		os.Remove(d.Socket())
	}
	if d.cluster != nil {
		d.cluster.stop()
	}
	for _, n := range d.nets {
		if n.dns != nil {
			n.dns.Close()
			n.dns = nil
		}
	}
	if d.sw != nil {
		err = d.sw.Close()
	}
	for _, f := range d.locks {
		f.Close()
	}
	d.locks = nil
	return err
}

// snapshot returns the configuration as it should be saved.
func (d *Daemon) snapshot() state {
	st := state{Version: stateVersion}
	for _, n := range d.sortedNets() {
		st.Networks = append(st.Networks, n.netState)
	}
	return st
}

func (d *Daemon) save() error { return saveState(d.cfg.StateDir, d.snapshot()) }

func (d *Daemon) sortedNets() []*network {
	out := make([]*network, 0, len(d.nets))
	for _, n := range d.nets {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ulLink is the underlay interface that holds the VTEP address.
type ulLink struct {
	name  string
	index int
	mtu   int
	up    bool // administratively up, with a carrier
}

// tentativeWait bounds how long the daemon waits at start for a VTEP
// address still under duplicate address detection (a second or two after
// its link came up), which cannot be bound yet.
const tentativeWait = 10 * time.Second

// underlayLink finds the interface that holds vtep in the underlay
// namespace (for a link-local vtep, the interface its zone names), waiting
// while the address is still tentative.
func underlayLink(netnsPath string, vtep netip.Addr) (ulLink, error) {
	deadline := time.Now().Add(tentativeWait)
	for {
		l, flags, err := findVTEP(netnsPath, vtep)
		switch {
		case err != nil:
			return l, err
		case flags&unix.IFA_F_DADFAILED != 0:
			return l, fmt.Errorf("--vtep %s failed duplicate address detection on %s: another host on the link has it", vtep, l.name)
		case flags&unix.IFA_F_TENTATIVE == 0:
			return l, nil
		case !l.up:
			return l, fmt.Errorf("--vtep %s: interface %s is down or has no carrier, and its IPv6 addresses stay tentative until it is up", vtep, l.name)
		case time.Now().After(deadline):
			return l, fmt.Errorf("--vtep %s on %s is still tentative (duplicate address detection) after %v", vtep, l.name, tentativeWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func findVTEP(netnsPath string, vtep netip.Addr) (ulLink, int, error) {
	h, err := nsutil.Handle(netnsPath)
	if err != nil {
		return ulLink{}, 0, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return ulLink{}, 0, err
	}
	zone := vtep.Zone()
	for _, l := range links {
		at := l.Attrs()
		if zone != "" && zone != at.Name && zone != strconv.Itoa(at.Index) {
			continue
		}
		addrs, err := h.AddrList(l, 0)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vtep.WithZone("") {
				up := at.Flags&net.FlagUp != 0 && at.RawFlags&unix.IFF_LOWER_UP != 0
				return ulLink{name: at.Name, index: at.Index, mtu: at.MTU, up: up}, a.Flags, nil
			}
		}
	}
	if zone != "" {
		return ulLink{}, 0, fmt.Errorf("--vtep %s: interface %s in this network namespace has no address %s; use one that `ip addr show %s` shows", vtep, zone, vtep.WithZone(""), zone)
	}
	return ulLink{}, 0, fmt.Errorf("--vtep %s is not an address of any interface in this network namespace; use one that `ip addr` shows", vtep)
}
