package daemon

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/dnsserver"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/store"
	vswitch "github.com/vxswitch/vxswitch/switch"
	"github.com/vxswitch/vxswitch/tap"
)

// bridgeName is the bridge in every network's namespace, as in Docker's
// overlay driver.
const bridgeName = "br0"

// vxlanOverhead is what VXLAN adds in front of an inner frame on an IPv4
// underlay: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
// On IPv6 the outer IP header is 40 bytes, so 20 more.
const vxlanOverhead = 50

// ipv6MinMTU is the smallest MTU on which Linux runs IPv6 (RFC 8200 §5).
const ipv6MinMTU = 1280

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Errors the API maps to status codes.
var (
	errBadRequest = errors.New("bad request")
	errNotFound   = errors.New("not found")
	errConflict   = errors.New("conflict")
	// errUnavailable: the cluster store did not answer.
	errUnavailable = errors.New("unavailable")
)

// userError is an error meant for the user, with a kind for the API status.
type userError struct {
	kind error
	msg  string
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.kind }

func bad(format string, args ...any) error {
	return &userError{errBadRequest, fmt.Sprintf(format, args...)}
}
func notFound(format string, args ...any) error {
	return &userError{errNotFound, fmt.Sprintf(format, args...)}
}
func conflict(format string, args ...any) error {
	return &userError{errConflict, fmt.Sprintf(format, args...)}
}

func (d *Daemon) netnsPath(vni uint32) string {
	return filepath.Join(d.cfg.RunDir, "netns", "vx-"+strconv.FormatUint(uint64(vni), 10))
}

func tapName(vni uint32) string { return "vxlan" + strconv.FormatUint(uint64(vni), 10) }

// maxMTU is the largest overlay MTU the underlay carries without
// fragmenting, by its current MTU (see mtu.go); a new network gets it by
// default.
func (d *Daemon) maxMTU() int {
	if d.cfg.VTEP.Is4() {
		return d.ulIf.mtu - vxlanOverhead
	}
	return d.ulIf.mtu - vxlanOverhead - 20
}

// validateNetwork checks a create request and turns it into a netState.
// A VNI of 0 stays 0 with a store (which allocates it); without one it
// is the lowest free VNI from 256 up on this host.
func (d *Daemon) validateNetwork(req api.NetworkCreate) (netState, error) {
	var ns netState
	if !nameRE.MatchString(req.Name) {
		return ns, bad("bad network name %q: use 1 to 64 letters, digits, '_', '.', '-', starting with a letter or digit", req.Name)
	}
	if n, ok := d.nets[req.Name]; ok && !(n.Cluster && d.cluster != nil) {
		return ns, conflict("network %s already exists", req.Name)
	}
	if req.VNI > encap.MaxVNI {
		return ns, bad("bad VNI %d: a VNI is 1 to %d", req.VNI, encap.MaxVNI)
	}
	for _, n := range d.nets {
		if n.VNI == req.VNI && !n.Cluster {
			return ns, conflict("VNI %d is already used by network %s", req.VNI, n.Name)
		}
	}
	if req.VNI == 0 && d.cluster == nil {
		req.VNI = d.freeVNI()
	}
	subnet, err := netip.ParsePrefix(req.Subnet)
	if err != nil {
		return ns, bad("bad subnet %q: want an IPv4 CIDR such as 10.0.0.0/24", req.Subnet)
	}
	if !subnet.Addr().Is4() {
		return ns, bad("bad subnet %q: the first subnet is the IPv4 one; an IPv6 one goes second (subnet6 in the API)", req.Subnet)
	}
	if subnet.Bits() > 30 || subnet.Bits() < 8 {
		return ns, bad("bad subnet %q: prefix length must be 8 to 30", req.Subnet)
	}
	if subnet.Masked() != subnet {
		return ns, bad("bad subnet %q: host bits are set; did you mean %s?", req.Subnet, subnet.Masked())
	}
	if req.Egress && req.Internal {
		return ns, bad("--egress and --internal exclude each other: an internal network has no way out")
	}
	ns = netState{Name: req.Name, VNI: req.VNI, Subnet: subnet, Cluster: d.cluster != nil, Egress: req.Egress, Internal: req.Internal}
	if req.Subnet6 != "" {
		s6, err := netip.ParsePrefix(req.Subnet6)
		switch {
		case err != nil || !s6.Addr().Is6() || s6.Addr().Is4In6():
			return ns, bad("bad IPv6 subnet %q: want an IPv6 CIDR such as fd00:1::/64", req.Subnet6)
		case s6.Bits() < 16 || s6.Bits() > 64:
			return ns, bad("bad IPv6 subnet %q: prefix length must be 16 to 64 (endpoints get an EUI-64 interface ID)", req.Subnet6)
		case s6.Masked() != s6:
			return ns, bad("bad IPv6 subnet %q: host bits are set; did you mean %s?", req.Subnet6, s6.Masked())
		case !s6.Addr().IsGlobalUnicast():
			return ns, bad("bad IPv6 subnet %q: want a unique local (fd00::/8) or global unicast prefix", req.Subnet6)
		}
		if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
			return ns, bad("IPv6 subnet %s: this host has IPv6 disabled (ipv6.disable=1 on the kernel command line)", s6)
		}
		ns.Subnet6 = s6
	}
	if req.Gateway != "" {
		gw, err := netip.ParseAddr(req.Gateway)
		if err == nil && gw.Is6() {
			return ns, bad("bad gateway %s: IPv6 gateways are not supported (only an IPv4 one, set on br0)", gw)
		}
		if err != nil || !gw.Is4() {
			return ns, bad("bad gateway %q: want an IPv4 address", req.Gateway)
		}
		if !usableHost(subnet, gw) {
			return ns, bad("bad gateway %s: not a host address of subnet %s", gw, subnet)
		}
		ns.Gateway = gw
	}
	if !ns.Gateway.IsValid() && d.cluster != nil {
		// As with Docker: the subnet's first address. Every host has it
		// on br0 and serves DNS there.
		ns.Gateway = subnet.Addr().Next()
	}
	if req.MaxLearned < 0 {
		return ns, bad("bad max-learned %d: give how many learned MAC entries the network holds at most, or 0 for the daemon's --max-learned (%d)", req.MaxLearned, d.maxLearned())
	}
	ns.MaxLearned = req.MaxLearned
	ns.MTU = req.MTU
	if ns.MTU == 0 {
		ns.MTU = d.maxMTU()
	}
	if ns.MTU < 576 || ns.MTU > d.maxMTU() {
		return ns, bad("bad MTU %d: the underlay (MTU %d) carries overlay MTUs of 576 to %d", req.MTU, d.ulIf.mtu, d.maxMTU())
	}
	if ns.Subnet6.IsValid() && ns.MTU < ipv6MinMTU {
		return ns, bad("bad MTU %d for a dual-stack network: IPv6 needs at least %d (the underlay's MTU %d allows up to %d)", ns.MTU, ipv6MinMTU, d.ulIf.mtu, d.maxMTU())
	}
	return ns, nil
}

// maxLearned is the bound on learned MAC entries of a network whose own
// limit is own (0: none): own, or the daemon's --max-learned, or fib's
// default.
func (d *Daemon) maxLearned(own ...int) int {
	switch {
	case len(own) > 0 && own[0] > 0:
		return own[0]
	case d.cfg.MaxLearned > 0:
		return d.cfg.MaxLearned
	}
	return fib.DefaultMaxLearned
}

// freeVNI is the lowest VNI from 256 up that no network of this host
// has, as the store hands them out.
func (d *Daemon) freeVNI() uint32 {
	for v := uint32(store.FirstVNI); ; v++ {
		if !slices.ContainsFunc(d.sortedNets(), func(n *network) bool { return n.VNI == v }) {
			return v
		}
	}
}

// usableHost reports whether ip is in subnet and is neither its network nor
// its broadcast address.
func usableHost(subnet netip.Prefix, ip netip.Addr) bool {
	return subnet.Contains(ip) && ip != subnet.Addr() && ip != broadcast(subnet)
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// createNetwork makes a network. Without a store: its namespace, bridge
// and TAP, served at once, and saved; on failure nothing is left. With a
// store: the cluster's network, in the store only; hosts make its
// namespace when their first endpoint attaches.
func (d *Daemon) createNetwork(ctx context.Context, req api.NetworkCreate) (api.Network, error) {
	ns, err := d.validateNetwork(req)
	if err != nil {
		return api.Network{}, err
	}
	if d.cluster != nil {
		sn, err := d.cluster.st.CreateNetwork(ctx, store.Network{Name: ns.Name, VNI: ns.VNI, Subnet: ns.Subnet, Subnet6: ns.Subnet6,
			Gateway: ns.Gateway, MTU: ns.MTU, Egress: ns.Egress, Internal: ns.Internal, MaxLearned: ns.MaxLearned, Created: time.Now().UTC(), CreatedBy: d.cluster.advertise})
		if err != nil {
			return api.Network{}, storeErr(err)
		}
		crashpoint("create:stored")
		d.log.Info("network created in the cluster store", zap.String("network", sn.Name), zap.Uint32("vni", sn.VNI),
			zap.Stringer("subnet", sn.Subnet), zap.String("subnet6", prefixString(sn.Subnet6)), zap.Stringer("gateway", sn.Gateway))
		return d.clusterView(sn, d.cluster.view), nil
	}
	n := &network{netState: ns, netns: d.netnsPath(ns.VNI), epProbs: map[string]string{}}
	var u undo
	defer u.onError(&err)
	if err := d.makeNamespace(n, true); err != nil {
		return api.Network{}, err
	}
	u.push(func() { nsutil.Delete(n.netns) })
	crashpoint("create:namespace")
	if err := d.start(n); err != nil {
		return api.Network{}, err
	}
	u.push(func() { d.stop(n) })
	crashpoint("create:started")
	d.nets[n.Name] = n
	u.push(func() { delete(d.nets, n.Name) })
	if err = d.commit(); err != nil {
		return api.Network{}, err
	}
	crashpoint("create:committed")
	d.log.Info("network created", zap.String("network", n.Name), zap.Uint32("vni", n.VNI),
		zap.Stringer("subnet", n.Subnet), zap.String("subnet6", prefixString(n.Subnet6)), zap.String("netns", n.netns))
	return d.networkView(n), nil
}

// makeNamespace creates (fresh) or re-uses (at restart) the network's
// namespace and makes sure its bridge is configured.
func (d *Daemon) makeNamespace(n *network, fresh bool) error {
	exists := nsutil.IsNetns(n.netns)
	if fresh && exists {
		// No network owns it (the VNI was free): a leftover of a daemon
		// that crashed between creating it and saving the state.
		d.log.Warn("removing leftover namespace", zap.String("netns", n.netns))
		if err := nsutil.Delete(n.netns); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		if err := nsutil.Delete(n.netns); err != nil { // an empty file left by a crash
			return err
		}
		dir, name := filepath.Split(n.netns)
		if _, err := nsutil.Create(dir, name); err != nil {
			return err
		}
	}
	if err := d.setupBridge(n); err != nil {
		if !exists {
			nsutil.Delete(n.netns)
		}
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// setupBridge makes br0 as the network needs it; it is idempotent, so it
// also repairs a namespace at restart.
func (d *Daemon) setupBridge(n *network) error {
	// The network namespace is a switch, not a host: without IPv6 it sends
	// no router solicitations or MLD reports into the overlay.
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := nsutil.SetSysctl(n.netns, k, "1"); err != nil {
			return err
		}
	}
	h, err := nsutil.Handle(n.netns)
	if err != nil {
		return err
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil {
		h.LinkSetUp(lo)
	}
	br, err := h.LinkByName(bridgeName)
	if err != nil {
		// A MAC set explicitly stays put; otherwise the bridge takes the
		// lowest MAC of its ports and changes it as endpoints come and go,
		// invalidating the containers' ARP entry for the gateway.
		mac, err := randomMAC()
		if err != nil {
			return err
		}
		// Without multicast snooping the bridge floods multicast (as the
		// overlay does anyway) and does not join the IGMP multicast
		// router discovery group, whose reports it would otherwise send
		// into the overlay from its own MAC.
		noSnooping := false
		attrs := netlink.LinkAttrs{Name: bridgeName, MTU: n.MTU, HardwareAddr: mac}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs, MulticastSnooping: &noSnooping}); err != nil {
			return fmt.Errorf("create %s: %w", bridgeName, err)
		}
		if br, err = h.LinkByName(bridgeName); err != nil {
			return err
		}
	}
	if br.Attrs().MTU != n.MTU {
		if err := h.LinkSetMTU(br, n.MTU); err != nil {
			return fmt.Errorf("set %s mtu %d: %w", bridgeName, n.MTU, err)
		}
	}
	if n.Gateway.IsValid() {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
		if err := h.AddrReplace(br, addr); err != nil {
			return fmt.Errorf("set gateway %s on %s: %w", n.Gateway, bridgeName, err)
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("set %s up: %w", bridgeName, err)
	}
	if err := setBridgeMaxLearned(n.netns, br.Attrs().Index, d.maxLearned(n.MaxLearned)+bridgeLearnedSlack); err != nil {
		d.log.Warn("cannot bound the bridge's learned MAC entries; a flood of forged MACs fills the kernel's table",
			zap.String("network", n.Name), zap.String("netns", n.netns), zap.Error(err))
	}
	return nil
}

// bridgeLearnedSlack is how many more learned entries br0 may hold than
// the switch's table: br0 also learns the local endpoints' MACs on their
// veths, and the remote ones the store or static entries place, which
// do not count against the switch's limit. A full br0 still forwards:
// frames to a MAC it did not learn are flooded to its ports.
const bridgeLearnedSlack = 16384

// setBridgeMaxLearned bounds the learned entries of the bridge with
// index idx in namespace netns (fdb_max_learned, Linux 6.7 and later;
// older kernels ignore it). br0 learns the source MAC of every frame the
// TAP writes, those the switch refused to learn included: unbounded, a
// flood of a million forged MACs kept a million entries in the kernel
// for the bridge's ageing time.
func setBridgeMaxLearned(netns string, idx, max int) error {
	return nsutil.Do(netns, func() error {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(idx)
		req.AddData(msg)
		info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
		data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
		data.AddRtAttr(unix.IFLA_BR_FDB_MAX_LEARNED, nl.Uint32Attr(uint32(max)))
		req.AddData(info)
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}

// start creates the network's TAP on br0 and adds the network to the
// switch with its peers and static entries.
func (d *Daemon) start(n *network) error {
	dev, err := d.createTAP(n)
	if err != nil {
		return err
	}
	swn, err := d.sw.AddNetwork(vswitch.NetworkConfig{
		VNI: n.VNI, TAP: dev, Gateway: n.Gateway, Aging: d.cfg.Aging, MaxLearned: d.maxLearned(n.MaxLearned),
		OnTAPFailure: func(swn *vswitch.Network, err error) {
			d.goBackground(func() { d.healTAP(n, swn) })
		},
	})
	if err != nil {
		dev.Close()
		return err
	}
	n.sw, n.problem = swn, ""
	if n.Cluster && n.Gateway.IsValid() {
		// Docker's embedded DNS, at the gateway: every endpoint of the
		// network by name, on whichever host it is.
		n.dnsRecs = new(dnsserver.Live)
		n.dnsRecs.Store(dnsserver.NewTable())
		n.dns, err = dnsserver.Start(dnsserver.Config{Netns: n.netns, Addr: n.Gateway, Domain: n.Name, Records: n.dnsRecs,
			Upstreams: d.cfg.DNSUpstreams, Dial: d.underlayDial(), Logger: d.log.With(zap.String("network", n.Name))})
		if err != nil {
			d.sw.RemoveNetwork(n.VNI)
			n.sw, n.dnsRecs = nil, nil
			return fmt.Errorf("network %s: DNS at %s: %w", n.Name, n.Gateway, err)
		}
	}
	d.syncNetwork(n)
	return nil
}

// createTAP makes the network's TAP in its namespace, on br0.
func (d *Daemon) createTAP(n *network) (tap.Device, error) {
	var dev tap.Device
	err := nsutil.Do(n.netns, func() (err error) {
		dev, err = tap.Create(tap.Options{
			Name: tapName(n.VNI), Bridge: bridgeName, MTU: n.MTU, Offload: d.cfg.Offload,
			Fallback: func(reason error) {
				d.log.Warn("TAP offloads unavailable; this network uses the simple path", zap.String("network", n.Name), zap.Error(reason))
			},
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("network %s (netns %s): %w", n.Name, n.netns, err)
	}
	return dev, nil
}

// healTAP gives a network whose TAP failed (deleted from outside, say)
// a new one on br0, making br0 again if it is gone too, while the switch
// keeps the network's MAC table and counters. It retries, backing off up
// to 5 s, until it succeeds, the network stops, or the daemon does.
func (d *Daemon) healTAP(n *network, swn *vswitch.Network) {
	log := d.log.With(zap.String("network", n.Name), zap.Uint32("vni", n.VNI), zap.String("netns", n.netns))
	log.Warn("the network's TAP failed; making it again", zap.Error(swn.Err()))
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		d.mu.Lock()
		select {
		case <-d.stopping:
			d.mu.Unlock()
			return
		default:
		}
		if n.sw != swn {
			d.mu.Unlock()
			return // stopped, or started again with a TAP of its own
		}
		err := d.setupBridge(n)
		if err == nil {
			err = swn.ReplaceTAP(func() (tap.Device, error) { return d.createTAP(n) })
		}
		d.mu.Unlock()
		switch {
		case err == nil:
			log.Info("the network's TAP is back on its bridge", zap.String("tap", tapName(n.VNI)))
			return
		case errors.Is(err, vswitch.ErrNoNetwork), errors.Is(err, vswitch.ErrClosed):
			return
		}
		log.Warn("cannot make the network's TAP again; retrying", zap.Duration("in", delay), zap.Error(err))
		select {
		case <-d.stopping:
			return
		case <-time.After(delay):
		}
	}
}

// stop removes the network from the switch (closing its TAP) and stops
// its DNS server.
func (d *Daemon) stop(n *network) {
	if n.dns != nil {
		n.dns.Close()
		n.dns, n.dnsRecs = nil, nil
	}
	if n.sw != nil {
		d.sw.RemoveNetwork(n.VNI)
		n.sw = nil
	}
}

// removeNetwork deletes a network without endpoints: this host's, or
// with a store the cluster's, refused while any host has endpoints on it.
func (d *Daemon) removeNetwork(ctx context.Context, name string) (err error) {
	if d.cluster != nil {
		if n, ok := d.nets[name]; !ok || n.Cluster {
			if err := d.cluster.st.DeleteNetwork(ctx, name); err != nil {
				return storeErr(err)
			}
			crashpoint("rm:stored")
			d.log.Info("network removed from the cluster store", zap.String("network", name))
			if ok {
				d.dropNetwork(n) // this host's copy: only static settings were left
			}
			return nil
		}
	}
	n, err := d.network(name)
	if err != nil {
		return err
	}
	if len(n.Endpoints) > 0 {
		return conflict("network %s has %d attached endpoint(s); detach them first", name, len(n.Endpoints))
	}
	var u undo
	defer u.onError(&err)
	delete(d.nets, name)
	u.push(func() { d.nets[name] = n })
	if err := d.commit(); err != nil {
		return err
	}
	crashpoint("rm:committed")
	d.stop(n)
	crashpoint("rm:stopped")
	if err := nsutil.Delete(n.netns); err != nil {
		d.log.Warn("network removed but its namespace could not be deleted", zap.String("netns", n.netns), zap.Error(err))
	}
	d.log.Info("network removed", zap.String("network", name), zap.Uint32("vni", n.VNI))
	return nil
}

// dropNetwork removes a cluster network's local copy: its namespace, TAP
// and DNS server go and it leaves the state file. A failure to save is
// logged: the copy comes back at the next start and is dropped again.
func (d *Daemon) dropNetwork(n *network) {
	delete(d.nets, n.Name)
	if err := d.commit(); err != nil {
		d.log.Error("cannot save the state after dropping a network's copy", zap.String("network", n.Name), zap.Error(err))
	}
	d.stop(n)
	if err := nsutil.Delete(n.netns); err != nil {
		d.log.Warn("cannot delete a network's namespace", zap.String("netns", n.netns), zap.Error(err))
	}
	d.log.Info("network's namespace removed: no endpoints left on this host", zap.String("network", n.Name), zap.Uint32("vni", n.VNI), zap.String("netns", n.netns))
}

// restore brings a network from the state file back: namespace, bridge,
// TAP, switch, then every endpoint. A network that cannot come back is kept
// with its problem shown, never dropped from the configuration.
func (d *Daemon) restore(ns netState) {
	n := &network{netState: ns, netns: d.netnsPath(ns.VNI), epProbs: map[string]string{}}
	for i := range n.Endpoints {
		if n.Endpoints[i].ID == "" {
			// Written by a version that kept no IDs: problems and the
			// operations key endpoints by it. Saved with the next change.
			n.Endpoints[i].ID, _ = randomID("")
		}
	}
	d.nets[n.Name] = n
	log := d.log.With(zap.String("network", n.Name), zap.Uint32("vni", n.VNI))
	if n.Cluster && len(n.Endpoints) == 0 {
		return // idle here: its namespace comes with its next endpoint
	}
	if err := d.makeNamespace(n, false); err != nil {
		n.problem = err.Error()
		log.Error("cannot restore network", zap.Error(err))
		return
	}
	if err := d.start(n); err != nil {
		n.problem = err.Error()
		log.Error("cannot restore network", zap.Error(err))
		return
	}
	if n.Egress {
		if err := d.ensureEgress(); err != nil {
			log.Error("cannot set up the egress bridge", zap.Error(err))
		}
	}
	for _, ep := range n.Endpoints {
		if err := d.restoreEndpoint(n, ep); err != nil {
			n.epProbs[ep.ID] = err.Error()
			log.Warn("cannot restore endpoint", zap.String("id", ep.ID), zap.String("netns", ep.Netns), zap.Error(err))
		}
	}
	log.Info("network restored", zap.Int("endpoints", len(n.Endpoints)), zap.Int("peers", len(n.Peers)))
}

// prefixString is p as text, or "" for the zero prefix.
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, err
	}
	mac[0] = mac[0]&^0x01 | 0x02
	return mac, nil
}

// sweepLeftovers removes, once every network is restored, what an
// operation that a crash (SIGKILL, a power cut) interrupted made and the
// state file does not list: a network's namespace under RunDir/netns
// (made before the create was saved, or kept after the rm was, or made
// for a cluster network's first endpoint here before the attach was
// saved), a veth pair in a network's namespace that no endpoint of it
// names (plumbed before the attach was saved, or kept after the detach
// was; in a namespace that goes too, before it goes), and an egress pair
// on vxgw0 that no endpoint names; deleting a pair's bridge end takes the
// container's end with it at once, so the container can be attached
// again under the same interface name; then the resolv.conf files this
// daemon wrote that no endpoint names (sweepResolvConfs).
//
// "Not in the state file" proves a leftover only when that state file
// is the one the run dir was last used with. When no state file was
// loaded (a new or wiped state dir, or one an operator moved away to
// start empty), or RunDir's owner file names another state dir (a
// second daemon on the same run dir), nothing is removed: what is there
// is logged and recorded as kept in the owner file, and later starts
// keep it too (a new network with the same VNI replaces a kept
// namespace, as makeNamespace does). Only names vxswitch makes are
// touched (vx-VNI, vxe + 8 hex digits).
func (d *Daemon) sweepLeftovers(stateLoaded bool) {
	own := d.readRunDirOwner()
	sweep := stateLoaded && own.StateDir == d.stateDirAbs()
	if sweep {
		defer d.sweepResolvConfs()
	}
	kept := map[string]bool{}
	for _, k := range own.Kept {
		kept[k] = true
	}
	next := runDirOwner{StateDir: d.stateDirAbs()}
	keep := func(name, what string) {
		if !kept[name] {
			d.log.Warn("kept a "+what+" the state file does not list (the state file is new, or another state dir's)", zap.String("name", name))
		}
		next.Kept = append(next.Kept, name)
	}
	owned := map[string]*network{}
	for _, n := range d.nets {
		owned[n.netns] = n
	}
	dir := filepath.Join(d.cfg.RunDir, "netns")
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("cannot look for leftovers of interrupted operations", zap.String("dir", dir), zap.Error(err))
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		n, ok := owned[path]
		if !ok {
			if !netnsNameRE.MatchString(e.Name()) {
				continue
			}
			if !sweep || kept[e.Name()] {
				keep(e.Name(), "namespace")
				continue
			}
			if nsutil.IsNetns(path) {
				d.sweepVeths(&network{netState: netState{Name: e.Name()}, netns: path}) // the containers' ends go now, not when the kernel reaps the namespace
			}
			if err := nsutil.Delete(path); err != nil {
				d.log.Warn("cannot remove a namespace no network owns", zap.String("netns", path), zap.Error(err))
				continue
			}
			d.log.Warn("removed a namespace no network owns: left by an operation a crash interrupted", zap.String("netns", path))
			continue
		}
		if sweep && nsutil.IsNetns(path) {
			d.sweepVeths(n)
		}
	}
	d.sweepEgressVeths(func(name string) bool {
		if !sweep || kept[name] {
			keep(name, "egress veth")
			return false
		}
		return true
	})
	d.writeRunDirOwner(next)
}

// netnsNameRE and egressVethRE match the names vxswitch gives a
// network's namespace and an endpoint's egress veth.
var (
	netnsNameRE  = regexp.MustCompile(`^vx-[0-9]+$`)
	egressVethRE = regexp.MustCompile(`^vxe[0-9a-f]{8}$`)
	// endpointVethRE: vethName's names for an endpoint's pair.
	endpointVethRE = regexp.MustCompile(`^(veth|vxc)[0-9a-f]{8}$`)
)

// runDirOwner is RunDir/owner.json: the state dir whose state file lists
// what RunDir holds, and what a start that could not tell kept (see
// sweepLeftovers). RunDir is a tmpfs: it goes with the namespaces at a
// reboot.
type runDirOwner struct {
	StateDir string   `json:"state_dir"`
	Kept     []string `json:"kept,omitempty"`
}

const ownerFile = "owner.json"

func (d *Daemon) readRunDirOwner() runDirOwner {
	var o runDirOwner
	if b, err := os.ReadFile(filepath.Join(d.cfg.RunDir, ownerFile)); err == nil {
		json.Unmarshal(b, &o) // unreadable: owned by nobody, nothing is swept
	}
	return o
}

func (d *Daemon) writeRunDirOwner(o runDirOwner) {
	path := filepath.Join(d.cfg.RunDir, ownerFile)
	b, _ := json.Marshal(o)
	// Written whole or not at all: a torn file would make the next start
	// keep everything it finds.
	if err := replaceFile(path, append(b, '\n'), 0o644); err != nil {
		d.log.Warn("cannot record the state dir in the run dir; leftovers of a crash will be kept at the next start", zap.String("file", path), zap.Error(err))
	}
}

func (d *Daemon) stateDirAbs() string {
	if p, err := filepath.Abs(d.cfg.StateDir); err == nil {
		return p
	}
	return d.cfg.StateDir
}

// sweepEgressVeths deletes the egress veths on vxgw0 that no endpoint
// names and del allows (see sweepLeftovers): with them go the
// container's eth1 and its egress address, which pickEgressIP would
// otherwise hand out again.
func (d *Daemon) sweepEgressVeths(del func(name string) bool) {
	h, err := nsutil.Handle(d.cfg.Netns)
	if err != nil {
		return
	}
	defer h.Close()
	br, err := h.LinkByName(egressBridge)
	if err != nil {
		return // no egress network was ever made here
	}
	named := map[string]bool{}
	for _, n := range d.nets {
		for _, ep := range n.Endpoints {
			if ep.EgressVeth != "" {
				named[ep.EgressVeth] = true
			}
		}
	}
	links, err := h.LinkList()
	if err != nil {
		return
	}
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "veth" || a.MasterIndex != br.Attrs().Index || !egressVethRE.MatchString(a.Name) || named[a.Name] || !del(a.Name) {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			d.log.Warn("cannot delete an egress veth no endpoint owns", zap.String("veth", a.Name), zap.Error(err))
			continue
		}
		d.log.Warn("deleted an egress veth no endpoint owns: left by an attach or detach a crash interrupted", zap.String("veth", a.Name))
	}
}

// sweepVeths deletes the veths in n's namespace that none of its
// endpoints names (see sweepLeftovers).
func (d *Daemon) sweepVeths(n *network) {
	h, err := nsutil.Handle(n.netns)
	if err != nil {
		return
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return
	}
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() != "veth" || !endpointVethRE.MatchString(name) || slices.ContainsFunc(n.Endpoints, func(e epState) bool { return e.Veth == name || e.Peer == name }) {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			d.log.Warn("cannot delete a veth no endpoint owns", zap.String("network", n.Name), zap.String("veth", name), zap.Error(err))
			continue
		}
		d.log.Warn("deleted a veth no endpoint owns: left by an attach or detach a crash interrupted", zap.String("network", n.Name),
			zap.String("netns", n.netns), zap.String("veth", name))
	}
}
