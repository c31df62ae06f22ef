package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/daemon"
	"github.com/vxswitch/vxswitch/internal/veth"
)

// NetConfig describes an overlay network on one host.
type NetConfig struct {
	Name string // vxswitch network name; default "net<VNI>"
	// VNI 0 lets a vxswitch daemon pick the lowest free one from 256 up
	// (cluster-wide with a store); a kernel network needs one.
	VNI    uint32
	Subnet string // IPv4 CIDR
	// Subnet6 makes the network dual-stack: an IPv6 CIDR of /16 to /64
	// (e.g. fd00:1::/64) from which every endpoint also gets an address,
	// the prefix and the modified EUI-64 of its MAC unless a vxswitch
	// attach asks for another (api.Attach.IP6). A kernel network gives
	// its endpoints the same addresses vxswitch would.
	Subnet6 string
	Gateway string // optional IPv4 address in Subnet, set on br0; with a store it defaults to Subnet's first
	MTU     int    // 0: underlay MTU − 50 (IPv4 VTEPs) or − 70 (IPv6)
}

// Network is one host's side of an overlay network, made by vxswitch or by
// the kernel.
type Network interface {
	// Host is the host the network lives on.
	Host() *Host
	// Attach joins c to the network with address ip (CIDR) and returns the
	// endpoint's MAC (02:42 followed by the IPv4 address). On a vxswitch
	// network ip may be "": the daemon takes the next free address
	// (cluster-wide with a store). In a dual-stack network (Subnet6) the
	// endpoint gets an IPv6 address too.
	Attach(c *Container, ip string) (net.HardwareAddr, error)
	// AddPeer adds a remote VTEP to the flood list.
	AddPeer(vtep netip.Addr) error
	// Netns is the network's namespace (with br0).
	Netns() string
}

// Mesh makes every network a peer of every other (full mesh of flood
// lists), the way Docker's overlay driver learns peers from its store.
func Mesh(nets ...Network) error {
	for _, a := range nets {
		for _, b := range nets {
			if a != b {
				if err := a.AddPeer(b.Host().Addr); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// KernelNet is a network made with the kernel's vxlan device, in the
// layout of Docker's overlay driver: a namespace with br0 holding a vxlan
// port that was created in the host namespace (where its UDP socket lives)
// and moved in.
type KernelNet struct {
	host  *Host
	ns    *NS
	cfg   NetConfig
	mtu   int
	mu    sync.Mutex
	count int
}

// KernelVXLAN makes a kernel overlay network on h.
func (h *Host) KernelVXLAN(cfg NetConfig) (*KernelNet, error) {
	t := h.topo
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = t.opts.MTU - 50 // Ethernet, IPv4, UDP and VXLAN headers
		if h.Addr.Is6() {
			mtu -= 20
		}
	}
	ns, err := t.newNS(h.Name[len(t.prefix)+1:] + "-kvx" + strconv.Itoa(int(cfg.VNI)))
	if err != nil {
		return nil, err
	}
	k := &KernelNet{host: h, ns: ns, cfg: cfg, mtu: mtu}
	nh, err := ns.Handle()
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	if err := nh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0", MTU: mtu}}); err != nil {
		return nil, fmt.Errorf("kernel overlay br0: %w", err)
	}
	br, err := nh.LinkByName("br0")
	if err != nil {
		return nil, err
	}
	if cfg.Gateway != "" {
		gw, err := netip.ParseAddr(cfg.Gateway)
		if err != nil {
			return nil, err
		}
		subnet, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil {
			return nil, err
		}
		if err := nh.AddrAdd(br, &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}); err != nil {
			return nil, err
		}
	}
	if err := nh.LinkSetUp(br); err != nil {
		return nil, err
	}

	// Created in the host namespace, so the device's UDP socket is bound
	// there (on the underlay), then moved into the network's namespace.
	hh, err := h.Handle()
	if err != nil {
		return nil, err
	}
	defer hh.Close()
	name := "vxlan" + strconv.Itoa(int(cfg.VNI))
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
		VxlanId:   int(cfg.VNI),
		SrcAddr:   h.Addr.AsSlice(),
		Port:      4789,
		Learning:  true,
		Age:       300,
	}
	if h.Addr.Zone() != "" {
		// A link-local VTEP: `local fe80::N dev eth0`.
		ul, err := hh.LinkByName(h.Addr.Zone())
		if err != nil {
			return nil, err
		}
		vx.VtepDevIndex = ul.Attrs().Index
	}
	if err := hh.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("kernel vxlan %s: %w", name, err)
	}
	l, err := hh.LinkByName(name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		hh.LinkDel(l)
		return nil, err
	}
	defer unix.Close(fd)
	if err := hh.LinkSetNsFd(l, fd); err != nil {
		hh.LinkDel(l)
		return nil, fmt.Errorf("move %s into %s: %w", name, ns.Name, err)
	}
	if l, err = nh.LinkByName(name); err != nil {
		return nil, err
	}
	if err := nh.LinkSetMaster(l, br); err != nil {
		return nil, err
	}
	if err := nh.LinkSetUp(l); err != nil {
		return nil, err
	}
	return k, nil
}

// Host implements Network.
func (k *KernelNet) Host() *Host { return k.host }

// Netns implements Network.
func (k *KernelNet) Netns() string { return k.ns.Path }

// NS is the network's namespace.
func (k *KernelNet) NS() *NS { return k.ns }

// AddPeer appends an all-zeros FDB entry (`bridge fdb append
// 00:00:00:00:00:00 dev vxlanN dst VTEP`), the kernel's flood list.
func (k *KernelNet) AddPeer(vtep netip.Addr) error {
	nh, err := k.ns.Handle()
	if err != nil {
		return err
	}
	defer nh.Close()
	l, err := nh.LinkByName("vxlan" + strconv.Itoa(int(k.cfg.VNI)))
	if err != nil {
		return err
	}
	return nh.NeighAppend(&netlink.Neigh{
		LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, HardwareAddr: make(net.HardwareAddr, 6), IP: vtep.AsSlice(),
	})
}

// Attach implements Network: a veth pair between br0 and c, as vxswitch
// makes it, with the MAC derived from the address as Docker does.
func (k *KernelNet) Attach(c *Container, ip string) (net.HardwareAddr, error) {
	p, err := netip.ParsePrefix(ip)
	if err != nil {
		return nil, err
	}
	a := p.Addr().As4()
	mac := net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
	var ip6 netip.Prefix
	if k.cfg.Subnet6 != "" {
		if ip6, err = EUI64(k.cfg.Subnet6, mac); err != nil {
			return nil, err
		}
	}
	k.mu.Lock()
	k.count++
	host := "veth" + strconv.Itoa(k.count)
	k.mu.Unlock()
	var gw netip.Addr
	if k.cfg.Gateway != "" {
		gw, _ = netip.ParseAddr(k.cfg.Gateway)
	}
	err = veth.Attach(veth.Spec{BridgeNetns: k.ns.Path, Bridge: "br0", HostName: host, Netns: c.Path,
		IfName: "eth0", MAC: mac, IP: p, IP6: ip6, Gateway: gw, MTU: k.mtu})
	return mac, err
}

// EUI64 is the address a dual-stack network gives the endpoint with MAC
// mac: subnet6's prefix followed by the MAC's modified EUI-64 interface
// ID (RFC 4291 appendix A), as SLAAC would make it and vxswitch does
// (fd00:1::42:aff:fe00:2/64 for 02:42:0a:00:00:02 in fd00:1::/64).
func EUI64(subnet6 string, mac net.HardwareAddr) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(subnet6)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() > 64 {
		return netip.Prefix{}, fmt.Errorf("bad IPv6 subnet %q: want an IPv6 CIDR of /64 or shorter", subnet6)
	}
	if len(mac) != 6 {
		return netip.Prefix{}, fmt.Errorf("bad MAC %s: want 6 bytes", mac)
	}
	a := p.Masked().Addr().As16()
	copy(a[8:], []byte{mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	return netip.PrefixFrom(netip.AddrFrom16(a), p.Bits()), nil
}

// Client is the daemon's control API client, what the vxswitch CLI uses:
// the public package github.com/vxswitch/vxswitch/cmd/vxswitch/api, whose
// request and reply types (api.Attach, api.Endpoint, ...) go with it.
type Client = api.Client

// NetworkStats are one network's counters and MAC table figures, as
// `vxswitch stats --json` prints them (api.NetworkStats).
type NetworkStats = api.NetworkStats

// DaemonOptions configure a vxswitch daemon started by a Topo.
type DaemonOptions struct {
	// Binary, when set, runs that vxswitch executable as a process in the
	// host's namespace (BuildBinary builds one); otherwise the daemon runs
	// inside the test process.
	Binary string
	// Aging of learned MAC entries (0: 300 s).
	Aging time.Duration
	// Args are extra daemon flags (binary mode only).
	Args []string
	// NoOffload runs an in-process daemon with --offload=off.
	NoOffload bool
	// Logger for an in-process daemon; nil discards logs.
	Logger *zap.Logger
	// Store, when set, joins the daemon to that etcd cluster as its
	// cluster store (--store, with the cluster's TLS files if it has
	// them), advertising the host's address.
	Store *Etcd
	// StoreTTL is the host's lease TTL in the store (0: the daemon's
	// default, 10 s). Tests of liveness shorten it.
	StoreTTL time.Duration
	// DNSUpstreams are where the networks' DNS servers forward other
	// names (--dns-upstream); nil: the daemon's resolv.conf.
	DNSUpstreams []netip.AddrPort
}

// Daemon is a vxswitch daemon on a host.
type Daemon struct {
	Host     *Host
	RunDir   string
	StateDir string
	Client   *Client
	opts     DaemonOptions

	proc   *Proc          // binary mode
	d      *daemon.Daemon // in-process mode
	cancel context.CancelFunc
	done   chan error
}

// VXSwitch starts a vxswitch daemon on h with VTEP h.Addr.
func (h *Host) VXSwitch(opts DaemonOptions) (*Daemon, error) {
	t := h.topo
	run, err := t.runDir(h, "run")
	if err != nil {
		return nil, err
	}
	st, err := t.runDir(h, "state")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Host: h, RunDir: run, StateDir: st, opts: opts,
		Client: api.NewClient(filepath.Join(run, daemon.SocketName))}
	if err := d.Start(); err != nil {
		return nil, err
	}
	t.onClose(func() error { return d.Stop() })
	return d, nil
}

// Socket is the daemon's control socket.
func (d *Daemon) Socket() string { return filepath.Join(d.RunDir, daemon.SocketName) }

// Output is what a binary-mode daemon has written to stdout and stderr
// (its log) since it last started; "" for an in-process daemon.
func (d *Daemon) Output() string {
	if d.proc == nil {
		return ""
	}
	return d.proc.Output()
}

// Start starts the daemon (again, after Stop) with the same directories.
func (d *Daemon) Start() error {
	if d.opts.Binary != "" {
		args := []string{"daemon", "--vtep", d.Host.Addr.String(), "--run-dir", d.RunDir, "--state-dir", d.StateDir}
		if d.opts.Aging > 0 {
			args = append(args, "--aging", d.opts.Aging.String())
		}
		if e := d.opts.Store; e != nil {
			args = append(args, "--store", e.StoreURL())
			if e.CACert != "" {
				args = append(args, "--store-cacert", e.CACert, "--store-cert", e.ClientCert, "--store-key", e.ClientKey)
			}
		}
		if d.opts.StoreTTL > 0 {
			args = append(args, "--store-ttl", d.opts.StoreTTL.String())
		}
		for _, u := range d.opts.DNSUpstreams {
			args = append(args, "--dns-upstream", u.String())
		}
		args = append(args, d.opts.Args...)
		// Without a cleanup of its own: the one VXSwitch registers stops
		// whichever process runs then, in the daemon's place in the
		// Topo's order (a restarted daemon must not stop before what was
		// made after it first started, such as a Docker engine).
		p, err := d.Host.startEnv(os.Environ(), d.opts.Binary, args...)
		if err != nil {
			return err
		}
		d.proc = p
		if err := d.waitReady(p.Done()); err != nil {
			p.Stop()
			d.proc = nil
			return err
		}
		return nil
	}
	log := d.opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg := daemon.Config{VTEP: d.Host.Addr, RunDir: d.RunDir, StateDir: d.StateDir, Offload: !d.opts.NoOffload,
		Netns: d.Host.Path, Aging: d.opts.Aging, Logger: log.With(zap.String("host", d.Host.Name)), DNSUpstreams: d.opts.DNSUpstreams}
	if e := d.opts.Store; e != nil {
		cfg.Store = daemon.StoreConfig{URL: e.StoreURL(), CACert: e.CACert, Cert: e.ClientCert, Key: e.ClientKey, TTL: d.opts.StoreTTL}
	}
	dd, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.d, d.cancel, d.done = dd, cancel, make(chan error, 1)
	go func() { d.done <- dd.Run(ctx) }()
	return nil
}

// waitReady waits until the daemon answers on its socket.
func (d *Daemon) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("vxswitch daemon on %s exited at start: %v; output: %s", d.Host.Name, d.proc.err, d.proc.Output())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Client.Info(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("vxswitch daemon on %s did not answer on %s", d.Host.Name, d.Socket())
}

// Stop stops the daemon: SIGTERM for a process, Close for an in-process
// one. The networks' namespaces stay, as they do for a real restart.
func (d *Daemon) Stop() error {
	switch {
	case d.proc != nil:
		d.proc.Stop()
		if tb := d.Host.topo.tb; tb != nil && tb.Failed() {
			tb.Logf("vxswitch daemon on %s said:\n%s", d.Host.Name, d.proc.Output())
		}
		d.proc = nil
	case d.d != nil:
		d.cancel()
		err := <-d.done
		d.d = nil
		return err
	}
	return nil
}

// CLI runs the vxswitch binary (binary mode) as a client of this daemon
// and returns its standard output and standard error.
func (d *Daemon) CLI(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	if d.opts.Binary == "" {
		return "", "", errors.New("CLI needs DaemonOptions.Binary")
	}
	return RunCLI(ctx, d.opts.Binary, d.Socket(), args...)
}

// RunCLI runs `bin --socket socket args...` and returns its output.
func RunCLI(ctx context.Context, bin, socket string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--socket", socket}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// VXNet is a vxswitch network on one host.
type VXNet struct {
	d   *Daemon
	cfg NetConfig

	mu    sync.Mutex
	netns string // the network's namespace, once the host has made it
}

// Network creates a network on the daemon. With a store (DaemonOptions.
// Store) the network is the cluster's: create it on one daemon and open
// it on the others with OpenNetwork.
func (d *Daemon) Network(cfg NetConfig) (*VXNet, error) {
	if cfg.Name == "" {
		cfg.Name = "net" + strconv.Itoa(int(cfg.VNI))
	}
	n, err := d.Client.CreateNetwork(context.Background(), api.NetworkCreate{
		Name: cfg.Name, VNI: cfg.VNI, Subnet: cfg.Subnet, Subnet6: cfg.Subnet6, Gateway: cfg.Gateway, MTU: cfg.MTU})
	if err != nil {
		return nil, err
	}
	return d.netOf(n), nil
}

// OpenNetwork returns the daemon's network name, which exists already: a
// cluster network that another host created, or one this daemon
// restored at its start.
func (d *Daemon) OpenNetwork(name string) (*VXNet, error) {
	n, err := d.Client.Network(context.Background(), name)
	if err != nil {
		return nil, err
	}
	return d.netOf(n), nil
}

// netOf is the VXNet for n as the daemon reported it.
func (d *Daemon) netOf(n api.Network) *VXNet {
	return &VXNet{d: d, netns: n.Netns, cfg: NetConfig{Name: n.Name, VNI: n.VNI, Subnet: n.Subnet, Subnet6: n.Subnet6, Gateway: n.Gateway, MTU: n.MTU}}
}

// Host implements Network.
func (v *VXNet) Host() *Host { return v.d.Host }

// Netns implements Network. A cluster network has a namespace on a host
// only once an endpoint attached there: until then it is "".
func (v *VXNet) Netns() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.netns == "" {
		if n, err := v.Inspect(); err == nil {
			v.netns = n.Netns
		}
	}
	return v.netns
}

// Inspect returns the network as its daemon reports it now (`vxswitch
// network inspect`): its endpoints (every host's, with a store), peers
// and static entries.
func (v *VXNet) Inspect() (api.Network, error) {
	return v.d.Client.Network(context.Background(), v.cfg.Name)
}

// Config is the network's configuration as its daemon reported it when
// it was created or opened: a VNI or Gateway it chose is filled in.
func (v *VXNet) Config() NetConfig { return v.cfg }

// Name is the network's name on its daemon.
func (v *VXNet) Name() string { return v.cfg.Name }

// Daemon is the daemon serving the network.
func (v *VXNet) Daemon() *Daemon { return v.d }

// AddPeer implements Network.
func (v *VXNet) AddPeer(vtep netip.Addr) error {
	return v.d.Client.AddPeer(context.Background(), v.cfg.Name, vtep.String())
}

// Attach implements Network.
func (v *VXNet) Attach(c *Container, ip string) (net.HardwareAddr, error) {
	ep, err := v.AttachEndpoint(c, api.Attach{IP: ip})
	if err != nil {
		return nil, err
	}
	return net.ParseMAC(ep.MAC)
}

// AttachEndpoint joins c to the network as `vxswitch network attach`
// does, with everything the API takes (req.Netns is c's): a name and
// aliases that other hosts resolve with a store, an ID, addresses, a
// MAC. It returns the endpoint as the daemon made it.
func (v *VXNet) AttachEndpoint(c *Container, req api.Attach) (api.Endpoint, error) {
	req.Netns = c.Path
	return v.d.Client.Attach(context.Background(), v.cfg.Name, req)
}

// Detach removes c from the network.
func (v *VXNet) Detach(c *Container) error {
	return v.d.Client.Detach(context.Background(), v.cfg.Name, api.Detach{Netns: c.Path})
}

// Stats returns the network's counters.
func (v *VXNet) Stats() (NetworkStats, error) {
	st, err := v.d.Client.Stats(context.Background(), v.cfg.Name)
	if err != nil {
		return NetworkStats{}, err
	}
	if len(st.Networks) != 1 {
		return NetworkStats{}, fmt.Errorf("network %s is down", v.cfg.Name)
	}
	return st.Networks[0], nil
}

// KillForTest sends sig to a binary-mode daemon without waiting, to
// simulate a crash; Stop then reaps it.
func (d *Daemon) KillForTest(sig syscall.Signal) {
	if d.proc != nil {
		d.proc.Cmd.Process.Signal(sig)
		<-d.proc.Done()
	}
}
