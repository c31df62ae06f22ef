package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/api"
	"github.com/vxswitch/vxswitch/internal/nsutil"
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
// fragmenting.
func (d *Daemon) maxMTU() int {
	if d.cfg.VTEP.Is4() {
		return d.ulIf.mtu - vxlanOverhead
	}
	return d.ulIf.mtu - vxlanOverhead - 20
}

// validateNetwork checks a create request and turns it into a netState.
func (d *Daemon) validateNetwork(req api.NetworkCreate) (netState, error) {
	var ns netState
	if !nameRE.MatchString(req.Name) {
		return ns, bad("bad network name %q: use 1 to 64 letters, digits, '_', '.', '-', starting with a letter or digit", req.Name)
	}
	if _, ok := d.nets[req.Name]; ok {
		return ns, conflict("network %s already exists", req.Name)
	}
	if req.VNI == 0 || req.VNI > encap.MaxVNI {
		return ns, bad("bad VNI %d: a VNI is 1 to %d", req.VNI, encap.MaxVNI)
	}
	for _, n := range d.nets {
		if n.VNI == req.VNI {
			return ns, conflict("VNI %d is already used by network %s", req.VNI, n.Name)
		}
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
	ns = netState{Name: req.Name, VNI: req.VNI, Subnet: subnet}
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

// createNetwork makes the namespace, bridge and TAP of a new network,
// starts serving it and saves the state; on failure nothing is left.
func (d *Daemon) createNetwork(req api.NetworkCreate) (*network, error) {
	ns, err := d.validateNetwork(req)
	if err != nil {
		return nil, err
	}
	n := &network{netState: ns, netns: d.netnsPath(ns.VNI), epProbs: map[string]string{}}
	if err := d.makeNamespace(n, true); err != nil {
		return nil, err
	}
	if err := d.start(n); err != nil {
		nsutil.Delete(n.netns)
		return nil, err
	}
	d.nets[n.Name] = n
	if err := d.save(); err != nil {
		delete(d.nets, n.Name)
		d.stop(n)
		nsutil.Delete(n.netns)
		return nil, err
	}
	d.log.Info("network created", zap.String("network", n.Name), zap.Uint32("vni", n.VNI),
		zap.Stringer("subnet", n.Subnet), zap.String("subnet6", prefixString(n.Subnet6)), zap.String("netns", n.netns))
	return n, nil
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
	return nil
}

// start creates the network's TAP on br0 and adds the network to the
// switch with its peers and static entries.
func (d *Daemon) start(n *network) error {
	dev, err := tap.Create(tap.Options{
		Netns: n.netns, Name: tapName(n.VNI), Bridge: bridgeName, MTU: n.MTU, Offload: d.cfg.Offload,
		Fallback: func(reason error) {
			d.log.Warn("TAP offloads unavailable; this network uses the simple path", zap.String("network", n.Name), zap.Error(reason))
		},
	})
	if err != nil {
		return err
	}
	swn, err := d.sw.AddNetwork(vswitch.NetworkConfig{
		VNI: n.VNI, TAP: dev, Gateway: n.Gateway, Aging: d.cfg.Aging, MaxLearned: d.cfg.MaxLearned,
	})
	if err != nil {
		dev.Close()
		return err
	}
	for _, p := range n.Peers {
		if err := swn.FIB().AddPeer(p); err != nil {
			d.sw.RemoveNetwork(n.VNI)
			return fmt.Errorf("peer %s: %w", p, err)
		}
	}
	for _, e := range n.Static {
		mac, err := fib.ParseMAC(e.MAC)
		if err == nil {
			err = swn.FIB().Add(mac, e.VTEP, fib.Static)
		}
		if err != nil {
			d.sw.RemoveNetwork(n.VNI)
			return fmt.Errorf("static entry %s: %w", e.MAC, err)
		}
	}
	n.sw, n.problem = swn, ""
	return nil
}

// stop removes the network from the switch (closing its TAP).
func (d *Daemon) stop(n *network) {
	if n.sw != nil {
		d.sw.RemoveNetwork(n.VNI)
		n.sw = nil
	}
}

// removeNetwork deletes a network without endpoints.
func (d *Daemon) removeNetwork(name string) error {
	n, err := d.network(name)
	if err != nil {
		return err
	}
	if len(n.Endpoints) > 0 {
		return conflict("network %s has %d attached endpoint(s); detach them first", name, len(n.Endpoints))
	}
	delete(d.nets, name)
	if err := d.save(); err != nil {
		d.nets[name] = n
		return err
	}
	d.stop(n)
	if err := nsutil.Delete(n.netns); err != nil {
		d.log.Warn("network removed but its namespace could not be deleted", zap.String("netns", n.netns), zap.Error(err))
	}
	d.log.Info("network removed", zap.String("network", name), zap.Uint32("vni", n.VNI))
	return nil
}

// restore brings a network from the state file back: namespace, bridge,
// TAP, switch, then every endpoint. A network that cannot come back is kept
// with its problem shown, never dropped from the configuration.
func (d *Daemon) restore(ns netState) {
	n := &network{netState: ns, netns: d.netnsPath(ns.VNI), epProbs: map[string]string{}}
	d.nets[n.Name] = n
	log := d.log.With(zap.String("network", n.Name), zap.Uint32("vni", n.VNI))
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
	for _, ep := range n.Endpoints {
		if err := d.restoreEndpoint(n, ep); err != nil {
			n.epProbs[ep.Netns] = err.Error()
			log.Warn("cannot restore endpoint", zap.String("netns", ep.Netns), zap.Error(err))
		}
	}
	log.Info("network restored", zap.Int("endpoints", len(n.Endpoints)), zap.Int("peers", len(n.Peers)))
}

// view turns a network into its API form.
func (n *network) view() api.Network {
	v := api.Network{
		Name: n.Name, VNI: n.VNI, Subnet: n.Subnet.String(), Subnet6: prefixString(n.Subnet6), MTU: n.MTU,
		Netns: n.netns, Bridge: bridgeName, TAP: tapName(n.VNI), Problem: n.problem, Offload: n.sw != nil && n.sw.Offload(),
		Peers: []string{}, Static: []api.FDBEntry{}, Endpoints: []api.Endpoint{},
	}
	if n.Gateway.IsValid() {
		v.Gateway = n.Gateway.String()
	}
	if n.sw != nil && n.sw.Err() != nil {
		v.Problem = fmt.Sprintf("TAP %s failed: %v; restart the daemon", v.TAP, n.sw.Err())
	}
	for _, p := range n.Peers {
		v.Peers = append(v.Peers, p.String())
	}
	for _, e := range n.Static {
		v.Static = append(v.Static, api.FDBEntry{MAC: e.MAC, VTEP: e.VTEP.String(), Source: fib.Static.String()})
	}
	for _, e := range n.Endpoints {
		v.Endpoints = append(v.Endpoints, api.Endpoint{
			Netns: e.Netns, IfName: e.IfName, IP: e.IP.String(), IP6: prefixString(e.IP6), MAC: e.MAC, Veth: e.Veth, Problem: n.epProbs[e.Netns],
		})
	}
	return v
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
