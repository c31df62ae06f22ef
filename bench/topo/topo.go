package topo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/testenv"
)

// UnderlayKind is how a Topo joins its hosts (Options.Underlay).
type UnderlayKind int

// Underlay kinds.
const (
	// LAN joins every host to one bridge in a namespace of its own, like
	// hosts on a switch. Any number of hosts. The zero value.
	LAN UnderlayKind = iota
	// Direct joins exactly two hosts with one veth pair, the shortest
	// underlay there is (benchmarks use it).
	Direct
)

func (k UnderlayKind) String() string {
	switch k {
	case LAN:
		return "LAN"
	case Direct:
		return "Direct"
	}
	return "UnderlayKind(" + strconv.Itoa(int(k)) + ")"
}

// VTEPFamily is the address family of a Topo's underlay, and so of its
// VTEPs (Options.VTEPs). It is a type of its own so that an underlay kind
// given for it, or the other way round, does not compile.
type VTEPFamily int

// Underlay address families, for Options.VTEPs. Host N gets:
const (
	// IPv4VTEPs: 198.18.0.N/24 (RFC 2544 benchmarking space). The zero
	// value.
	IPv4VTEPs VTEPFamily = iota
	// IPv6VTEPs: 2001:2::N/64 (RFC 5180 benchmarking space).
	IPv6VTEPs
	// LinkLocalVTEPs: fe80::N/64, and Host.Addr names the interface as
	// its zone: fe80::N%eth0.
	LinkLocalVTEPs
)

func (f VTEPFamily) String() string {
	switch f {
	case IPv4VTEPs:
		return "IPv4"
	case IPv6VTEPs:
		return "IPv6"
	case LinkLocalVTEPs:
		return "link-local"
	}
	return "VTEPFamily(" + strconv.Itoa(int(f)) + ")"
}

// Options configure a Topo; the zero value is a LAN with MTU 1500 and
// IPv4 VTEPs.
type Options struct {
	Underlay UnderlayKind
	// MTU of the underlay links; 0 means 1500.
	MTU int
	// IPv6 keeps IPv6 on in hosts and containers. Off by default: the
	// kernel's router solicitations and MLD reports are background
	// traffic that would blur counters in tests. Dual-stack networks
	// (NetConfig.Subnet6) turn it on for their endpoints' interfaces
	// only.
	IPv6 bool
	// VTEPs is the underlay's address family: IPv4VTEPs (the zero
	// value), IPv6VTEPs or LinkLocalVTEPs. IPv6 ones keep IPv6 on in the
	// hosts (not in containers).
	VTEPs VTEPFamily
}

// RunBase is where daemons started by a Topo keep their run and state
// directories (RunBase/<prefix>/<host>/...).
const RunBase = "/run/vxtest"

// Topo is a set of namespaces, links and processes that Close removes.
type Topo struct {
	prefix string
	opts   Options
	tb     testing.TB // nil outside tests; used by the Must helpers

	mu       sync.Mutex
	cleanups []func() error // run last-in first-out by Close
	hosts    []*Host
	lan      *NS
	hasBase  bool // RunBase/<prefix> exists and is removed by Close
	closed   bool

	hasDockerBase bool // DockerBase/<prefix> exists and is removed by Close (docker.go)
}

// New returns a Topo for a test, closed by t.Cleanup. It skips the test
// when not running as root, except under CI=true, where that is a failure.
func New(tb testing.TB, opts ...Options) *Topo {
	tb.Helper()
	RequireRoot(tb)
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	t, err := Open(o)
	if err != nil {
		tb.Fatalf("topo: %v", err)
	}
	t.tb = tb
	tb.Cleanup(func() {
		if err := t.Close(); err != nil {
			tb.Errorf("topo cleanup: %v", err)
		}
	})
	return t
}

// RequireRoot skips tb unless the process runs as root; under CI=true it
// fails instead, so CI can never pass by skipping.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	testenv.RequireRoot(tb)
}

// TempNS makes a bare network namespace named name for the test (which
// needs root, see RequireRoot), under the test's temporary directory,
// and deletes it when the test ends.
func TempNS(tb testing.TB, name string) string {
	tb.Helper()
	return testenv.TempNS(tb, name)
}

var sweepOnce sync.Once

// Open returns a Topo for use outside tests; the caller must Close it.
func Open(opts Options) (*Topo, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root to create network namespaces")
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	sweepOnce.Do(sweepStale)
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &Topo{prefix: fmt.Sprintf("vxt%d-%s", os.Getpid(), hex.EncodeToString(b[:])), opts: opts}, nil
}

// Prefix is the unique prefix of every name this Topo makes.
func (t *Topo) Prefix() string { return t.prefix }

func (t *Topo) onClose(fn func() error) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, fn)
	t.mu.Unlock()
}

// Close stops every process, removes every namespace (and with them every
// link) and every directory the Topo made, in reverse order of creation.
// It returns the first error but always tries everything.
func (t *Topo) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	fns := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	var first error
	for i := len(fns) - 1; i >= 0; i-- {
		if err := fns[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// NS is a named network namespace made by a Topo, visible to `ip netns`
// as Name.
type NS struct {
	Name string // as in `ip netns list`
	Path string // /run/netns/Name
	topo *Topo
}

func (t *Topo) newNS(name string) (*NS, error) { return t.newNSv6(name, t.opts.IPv6) }

// newNSv6 is newNS with IPv6 on or off.
func (t *Topo) newNSv6(name string, ipv6 bool) (*NS, error) {
	full := t.prefix + "-" + name
	path, err := nsutil.Create(nsutil.DefaultDir, full)
	if err != nil {
		return nil, err
	}
	ns := &NS{Name: full, Path: path, topo: t}
	t.onClose(func() error {
		// A daemon with a store writes EtcNetns/NAME/resolv.conf for a
		// namespace it attaches; one still attached when the test ends
		// would leave it behind.
		os.RemoveAll(filepath.Join(EtcNetns, full))
		return nsutil.Delete(path)
	})
	h, err := nsutil.Handle(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return nil, err
		}
	}
	if !ipv6 {
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
			if err := nsutil.SetSysctl(path, k, "1"); err != nil {
				return nil, err
			}
		}
	}
	return ns, nil
}

// Do runs fn on a thread inside the namespace; sockets it opens stay
// there (see nsutil.Do).
func (n *NS) Do(fn func() error) error { return nsutil.Do(n.Path, fn) }

// Handle returns a netlink handle acting in the namespace; the caller
// closes it.
func (n *NS) Handle() (*netlink.Handle, error) { return nsutil.Handle(n.Path) }

// Command returns a command that runs inside the namespace (through
// nsenter, so it shares the caller's mount namespace and sees the same
// files). It dies with the calling process (parent death signal).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path, "--", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// EtcNetns is where `ip netns exec NS` finds files it mounts over /etc for
// NS's commands; attaching a named namespace to a network with a store
// writes NS/resolv.conf there (nameserver: the network's gateway). A
// Topo removes what is there for the namespaces it made.
const EtcNetns = "/etc/netns"

// RunNetnsExec runs a command inside the namespace through `ip netns
// exec`, as a user at a shell would, and returns its combined output.
// Unlike Run it sees EtcNetns/NAME/resolv.conf as /etc/resolv.conf, so
// names resolve through the network's DNS server (`ping web`), but it
// gets a mount namespace of its own (files it mounts stay there).
func (n *NS) RunNetnsExec(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Proc is a background process started by Start.
type Proc struct {
	Cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	err  error
}

// Start starts a long-running command inside the namespace, collecting its
// output (see Output). Close (or Stop) sends it SIGTERM, then SIGKILL after
// five seconds, by PID.
func (n *NS) Start(name string, args ...string) (*Proc, error) {
	cmd := n.Command(context.Background(), name, args...)
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := startOnSpawner(cmd); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, n.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.topo.onClose(func() error { p.Stop(); return nil })
	return p, nil
}

// startOnSpawner starts cmd from the spawner thread (see testenv.Start):
// its parent death signal fires only when the test binary dies.
func startOnSpawner(cmd *exec.Cmd) error { return testenv.Start(cmd) }

// Stop terminates the process (SIGTERM, then SIGKILL after 5 s) and waits
// for it. It returns the process's exit error, if any.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.Cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Output is what the process has written to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Listen opens a listener inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) { ln, err = net.Listen(network, addr); return })
	return ln, err
}

// Dial connects from inside the namespace.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return
	})
	return c, err
}

// ListenPacket opens a packet socket inside the namespace.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() (err error) { c, err = net.ListenPacket(network, addr); return })
	return c, err
}

// Host is a machine: a namespace with one underlay interface, eth0.
type Host struct {
	NS
	Addr netip.Addr // underlay address on eth0
	idx  int
}

// UnderlayIf is the name of every host's underlay interface.
const UnderlayIf = "eth0"

// vtepAddr is host idx's underlay address in the Topo's family.
func (t *Topo) vtepAddr(idx int) netip.Addr {
	switch t.opts.VTEPs {
	case IPv6VTEPs:
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: byte(idx)})
	case LinkLocalVTEPs:
		return netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(idx)}).WithZone(UnderlayIf)
	}
	return netip.AddrFrom4([4]byte{198, 18, 0, byte(idx)})
}

// AddHost adds a host with the next underlay address (198.18.0.1,
// 198.18.0.2, ..., or their IPv6 counterparts: see Options.VTEPs).
func (t *Topo) AddHost(name string) (*Host, error) { return t.addHost(name, nil) }

// addHost is AddHost; join, if not nil, joins the host to the LAN instead
// of joinLAN.
func (t *Topo) addHost(name string, join func(*Host) error) (*Host, error) {
	t.mu.Lock()
	idx := len(t.hosts) + 1
	t.mu.Unlock()
	if t.opts.Underlay == Direct && idx > 2 {
		return nil, errors.New("a Direct underlay joins exactly two hosts; use LAN for more")
	}
	ns, err := t.newNSv6(name, t.opts.IPv6 || t.opts.VTEPs != IPv4VTEPs)
	if err != nil {
		return nil, err
	}
	h := &Host{NS: *ns, Addr: t.vtepAddr(idx), idx: idx}
	switch {
	case join != nil:
		err = join(h)
	case t.opts.Underlay == LAN:
		err = t.joinLAN(h)
	case idx == 2:
		err = t.joinDirect(t.hosts[0], h)
	}
	if err != nil {
		return nil, fmt.Errorf("host %s underlay: %w", name, err)
	}
	t.mu.Lock()
	t.hosts = append(t.hosts, h)
	t.mu.Unlock()
	return h, nil
}

// joinLAN plugs h into the LAN bridge, creating the LAN on first use.
func (t *Topo) joinLAN(h *Host) error {
	if err := t.plugLAN(&h.NS, UnderlayIf, h.idx); err != nil {
		return err
	}
	return h.configureUnderlay()
}

// plugLAN joins interface ifname of ns to the LAN bridge as port
// p<idx>, creating the LAN on first use.
func (t *Topo) plugLAN(ns *NS, ifname string, idx int) error {
	if t.lan == nil {
		lan, err := t.newNS("lan")
		if err != nil {
			return err
		}
		lh, err := lan.Handle()
		if err != nil {
			return err
		}
		defer lh.Close()
		if err := lh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0", MTU: t.opts.MTU}}); err != nil {
			return err
		}
		br, _ := lh.LinkByName("br0")
		if err := lh.LinkSetUp(br); err != nil {
			return err
		}
		t.lan = lan
	}
	lh, err := t.lan.Handle()
	if err != nil {
		return err
	}
	defer lh.Close()
	br, err := lh.LinkByName("br0")
	if err != nil {
		return err
	}
	port := "p" + strconv.Itoa(idx)
	if err := t.vethPair(t.lan, port, ns, ifname); err != nil {
		return err
	}
	l, err := lh.LinkByName(port)
	if err != nil {
		return err
	}
	if err := lh.LinkSetMaster(l, br); err != nil {
		return err
	}
	return lh.LinkSetUp(l)
}

func (t *Topo) joinDirect(a, b *Host) error {
	if err := t.vethPair(&a.NS, UnderlayIf, &b.NS, UnderlayIf); err != nil {
		return err
	}
	if err := a.configureUnderlay(); err != nil {
		return err
	}
	return b.configureUnderlay()
}

// vethPair makes a veth pair with one end in each namespace.
func (t *Topo) vethPair(a *NS, aName string, b *NS, bName string) error {
	ah, err := a.Handle()
	if err != nil {
		return err
	}
	defer ah.Close()
	bfd, err := unix.Open(b.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(bfd)
	v := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: aName, MTU: t.opts.MTU},
		PeerName:  bName, PeerNamespace: netlink.NsFd(bfd), PeerMTU: uint32(t.opts.MTU),
	}
	if err := ah.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s–%s/%s: %w", a.Name, aName, b.Name, bName, err)
	}
	return nil
}

func (h *Host) configureUnderlay() error {
	hh, err := h.Handle()
	if err != nil {
		return err
	}
	defer hh.Close()
	l, err := hh.LinkByName(UnderlayIf)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: h.Addr.AsSlice(), Mask: net.CIDRMask(24, 32)}}
	if h.Addr.Is6() {
		// No duplicate address detection: the address is usable at once.
		addr = &netlink.Addr{IPNet: &net.IPNet{IP: h.Addr.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	}
	if err := hh.AddrAdd(l, addr); err != nil {
		return err
	}
	return hh.LinkSetUp(l)
}

// Container is a namespace standing in for a container: it has only lo
// until an overlay attaches it.
type Container struct{ NS }

// AddContainer adds an empty container namespace.
func (t *Topo) AddContainer(name string) (*Container, error) {
	ns, err := t.newNS(name)
	if err != nil {
		return nil, err
	}
	return &Container{NS: *ns}, nil
}

// runDir returns (and creates) a directory for a daemon of host h under
// RunBase/<prefix>, removed by Close after unmounting any namespace the
// daemon left there.
func (t *Topo) runDir(h *Host, what string) (string, error) {
	base := filepath.Join(RunBase, t.prefix)
	dir := filepath.Join(base, h.Name, what)
	t.mu.Lock()
	if !t.hasBase {
		t.hasBase = true
		t.cleanups = append(t.cleanups, func() error { return removeTree(base) })
	}
	t.mu.Unlock()
	return dir, os.MkdirAll(dir, 0o755)
}

// removeTree unmounts every namespace under dir, then removes dir.
func removeTree(dir string) error {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && nsutil.IsNetns(p) {
			nsutil.Delete(p)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

var staleRE = regexp.MustCompile(`^vxt(\d+)-[0-9a-f]{4}`)

// sweepStale removes what a killed test binary left: namespaces in
// /run/netns, their files in EtcNetns and directories in RunBase whose
// prefix names a process that is gone.
func sweepStale() {
	dead := func(name string) bool {
		m := staleRE.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, err := strconv.Atoi(m[1])
		return err == nil && pid != os.Getpid() && errors.Is(unix.Kill(pid, 0), unix.ESRCH)
	}
	if ents, err := os.ReadDir(nsutil.DefaultDir); err == nil {
		for _, e := range ents {
			if dead(e.Name()) {
				nsutil.Delete(filepath.Join(nsutil.DefaultDir, e.Name()))
			}
		}
	}
	if ents, err := os.ReadDir(EtcNetns); err == nil {
		for _, e := range ents {
			if dead(e.Name()) {
				os.RemoveAll(filepath.Join(EtcNetns, e.Name()))
			}
		}
	}
	if ents, err := os.ReadDir(RunBase); err == nil {
		for _, e := range ents {
			if dead(e.Name()) {
				removeTree(filepath.Join(RunBase, e.Name()))
			}
		}
	}
	sweepDocker(dead)
}
