package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/veth"
)

// defaultIfName is the interface name an endpoint gets in its namespace.
const defaultIfName = "eth0"

// attach joins a namespace to a network with a veth pair: one end on the
// network's br0, the other in the namespace with the endpoint's address.
// It is CreateEndpoint and JoinEndpoint in one step, saved once. With a
// store the address comes from the store, the network's namespace is made
// here with its first endpoint, and the endpoint is published to the
// other hosts. On failure nothing is left, here or in the store.
func (d *Daemon) attach(ctx context.Context, name string, req api.Attach) (_ api.Endpoint, err error) {
	var u undo
	defer u.onError(&err)
	n, err := d.attachable(ctx, name, &u)
	if err != nil {
		return api.Endpoint{}, err
	}
	crashpoint("attach:network")
	tgt, err := d.joinTarget(n, JoinSpec{Netns: req.Netns, IfName: req.IfName})
	if err != nil {
		return api.Endpoint{}, err
	}
	spec := EndpointSpec{ID: req.ID, Name: req.Name, Aliases: req.Aliases, IP: req.IP, IP6: req.IP6, MAC: req.MAC}
	if spec.Name == "" {
		spec.Name = defaultName(tgt.netns)
	}
	ep, err := d.createEndpoint(ctx, n, spec, time.Time{}, &u)
	if err != nil {
		return api.Endpoint{}, err
	}
	i := slices.IndexFunc(n.Endpoints, func(e epState) bool { return e.ID == ep.ID })
	crashpoint("attach:allocated")
	if err := d.joinEndpoint(n, i, tgt, &u); err != nil {
		return api.Endpoint{}, err
	}
	crashpoint("attach:plumbed")
	if err := d.commit(); err != nil {
		return api.Endpoint{}, err
	}
	crashpoint("attach:committed")
	ep = n.Endpoints[i]
	if n.Cluster && d.cluster != nil {
		d.cluster.publish(ctx, n, ep)
	}
	crashpoint("attach:published")
	d.syncNetwork(n)
	d.log.Info("endpoint attached", zap.String("network", name), zap.String("netns", ep.Netns), zap.String("id", ep.ID), zap.String("name", ep.Name),
		zap.Stringer("ip", ep.IP), zap.String("ip6", prefixString(ep.IP6)), zap.String("mac", ep.MAC))
	return api.Endpoint{ID: ep.ID, Name: ep.Name, Aliases: ep.Aliases, Netns: ep.Netns, IfName: ep.IfName, IP: ep.IP.String(),
		IP6: prefixString(ep.IP6), MAC: ep.MAC, Veth: ep.Veth, EgressIP: prefixString(ep.EgressIP)}, nil
}

// idRE is what an endpoint ID may be: it is a key in the store.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// dnsNameRE is what an endpoint's name or alias may be (Docker allows
// '_' in container names, which resolvers take).
var dnsNameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$`)

// attachable returns the network to attach to. With a store that is the
// store's network: this host's copy of it, made now and brought up
// (namespace, br0, TAP, DNS) if it has no endpoints here yet; u gets its
// removal.
func (d *Daemon) attachable(ctx context.Context, name string, u *undo) (*network, error) {
	n, ok := d.nets[name]
	if d.cluster == nil || (ok && !n.Cluster) {
		return d.running(name)
	}
	sn, err := d.cluster.st.Network(ctx, name)
	if err != nil {
		return nil, storeErr(err)
	}
	if ok && n.Revision != sn.Revision {
		return nil, conflict("network %s was removed from the cluster store and made again while this host had endpoints on it; detach them first", name)
	}
	if ok && n.sw != nil {
		return n, nil
	}
	if !ok {
		for _, o := range d.nets {
			if o.VNI == sn.VNI {
				return nil, conflict("network %s has VNI %d, which this host's network %s uses", name, sn.VNI, o.Name)
			}
		}
		if sn.MTU > d.maxMTU() {
			return nil, conflict("network %s has MTU %d, but this host's underlay (MTU %d on %s) carries overlay MTUs up to %d; lower the underlay's MTU elsewhere or make the network with --mtu %d",
				name, sn.MTU, d.ulIf.mtu, d.ulIf.name, d.maxMTU(), d.maxMTU())
		}
		n = &network{netState: netState{Cluster: true, Revision: sn.Revision, Name: sn.Name, VNI: sn.VNI, Subnet: sn.Subnet,
			Subnet6: sn.Subnet6, Gateway: sn.Gateway, MTU: sn.MTU, Egress: sn.Egress, Internal: sn.Internal,
			MaxLearned: sn.MaxLearned},
			netns: d.netnsPath(sn.VNI), epProbs: map[string]string{}}
	}
	if err := d.makeNamespace(n, !ok); err != nil {
		return nil, err
	}
	if err := d.start(n); err != nil {
		if !ok {
			nsutil.Delete(n.netns)
		}
		return nil, err
	}
	u.push(func() {
		if len(n.Endpoints) == 0 && !n.hasStatic() {
			d.stop(n)
			nsutil.Delete(n.netns)
		}
	})
	if !ok {
		d.nets[name] = n
		u.push(func() { delete(d.nets, name) })
	}
	d.log.Info("network's namespace made for its first endpoint on this host", zap.String("network", name), zap.Uint32("vni", n.VNI), zap.String("netns", n.netns))
	return n, nil
}

// hasStatic reports whether the network has peers or static entries
// configured on this host, which keep a cluster network's copy here
// without endpoints.
func (n *network) hasStatic() bool { return len(n.Peers) > 0 || len(n.Static) > 0 }

// undoCtx bounds a store request made to undo a failed operation, which
// may run after the request's own context ended.
func undoCtx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	context.AfterFunc(ctx, cancel)
	return ctx
}

// pickIP validates a requested address or allocates the lowest free one.
func (n *network) pickIP(want string, t taken) (netip.Prefix, error) {
	if want != "" {
		p, ok := parseHostAddr(want, n.Subnet)
		if !ok {
			return p, bad("bad IP %q: want an IPv4 address or CIDR in %s", want, n.Subnet)
		}
		if !p.Addr().Is4() || !usableHost(n.Subnet, p.Addr()) || p.Bits() != n.Subnet.Bits() {
			return p, bad("bad IP %q: not a host address of network %s's subnet %s", want, n.Name, n.Subnet)
		}
		if p.Addr() == n.Gateway {
			return p, conflict("IP %s is network %s's gateway (on br0)", p.Addr(), n.Name)
		}
		if _, ok := t.ips[p.Addr()]; ok {
			return p, conflict("IP %s is already used in network %s", p.Addr(), n.Name)
		}
		return p, nil
	}
	// Without a store each daemon allocates on its own, so it also skips
	// addresses whose Docker-style MAC is already seen behind a remote
	// VTEP: another host handed that address out.
	for a := n.Subnet.Addr().Next(); n.Subnet.Contains(a); a = a.Next() {
		if _, used := t.ips[a]; !usableHost(n.Subnet, a) || used || a == n.Gateway {
			continue
		}
		if t.remoteMAC != nil && t.remoteMAC(dockerMAC(a)) {
			continue
		}
		return netip.PrefixFrom(a, n.Subnet.Bits()), nil
	}
	return netip.Prefix{}, conflict("network %s has no free address left in %s", n.Name, n.Subnet)
}

// parseHostAddr parses what --ip or --ip6 gave: a CIDR, or a bare address
// that takes subnet's prefix length. The caller checks that it fits.
func parseHostAddr(want string, subnet netip.Prefix) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(want); err == nil {
		return p, true
	}
	a, err := netip.ParseAddr(want)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, subnet.Bits()), true
}

// pickIP6 validates a requested IPv6 address or makes one from the
// network's IPv6 prefix and the modified EUI-64 interface ID of the
// endpoint's MAC (RFC 4291 appendix A, as SLAAC would; Docker's bridge
// instead put the bare MAC in the last 48 bits): no allocation state, and
// unique across hosts as long as the MACs are, which each host checks for
// the IPv4 address the MAC comes from (an --ip6 is the user's to keep
// unique). A network without an IPv6 subnet takes no IPv6 address.
func (n *network) pickIP6(want, mac string, t taken) (netip.Prefix, error) {
	if !n.Subnet6.IsValid() {
		if want != "" {
			return netip.Prefix{}, bad("bad IPv6 address %q: network %s has no IPv6 subnet (create it with a second --subnet)", want, n.Name)
		}
		return netip.Prefix{}, nil
	}
	var p netip.Prefix
	if want != "" {
		var ok bool
		if p, ok = parseHostAddr(want, n.Subnet6); !ok {
			return p, bad("bad IPv6 address %q: want an IPv6 address or CIDR in %s", want, n.Subnet6)
		}
		if !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" || !n.Subnet6.Contains(p.Addr()) || p.Addr() == n.Subnet6.Addr() || p.Bits() != n.Subnet6.Bits() || reservedIID(p) {
			return p, bad("bad IPv6 address %q: not a host address of network %s's IPv6 subnet %s", want, n.Name, n.Subnet6)
		}
	} else {
		m, err := fib.ParseMAC(mac)
		if err != nil {
			return p, err
		}
		a := n.Subnet6.Addr().As16()
		copy(a[8:], []byte{m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]})
		p = netip.PrefixFrom(netip.AddrFrom16(a), n.Subnet6.Bits())
	}
	if holder, ok := t.ips[p.Addr()]; ok {
		if want == "" {
			return p, conflict("IPv6 address %s, made from MAC %s, is already used in network %s by %s (its --ip6); give --ip6 or --mac", p.Addr(), mac, n.Name, holder)
		}
		return p, conflict("IPv6 address %s is already used in network %s", p.Addr(), n.Name)
	}
	return p, nil
}

// reservedIID reports whether p's address has one of the interface IDs
// RFC 5453 reserves in a /64: the reserved subnet anycast IDs of RFC 2526
// (fdff:ffff:ffff:ff80 to fdff:ffff:ffff:ffff). (The subnet-router
// anycast ID, all zeros, is refused by the caller for any prefix.)
func reservedIID(p netip.Prefix) bool {
	a := p.Addr().As16()
	return p.Bits() == 64 && a[8] == 0xfd && a[9] == 0xff && a[10] == 0xff && a[11] == 0xff &&
		a[12] == 0xff && a[13] == 0xff && a[14] == 0xff && a[15] >= 0x80
}

// pickMAC validates a requested MAC or derives one from the address the
// way Docker does: 02:42 followed by the four IPv4 bytes, locally
// administered and unique as long as the address is.
func (n *network) pickMAC(want string, ip netip.Addr, t taken) (string, error) {
	var mac fib.MAC
	if want != "" {
		m, err := fib.ParseMAC(want)
		if err != nil || m.IsMulticast() || m.IsZero() {
			return "", bad("bad MAC %q: want a unicast address such as 02:42:0a:00:00:05", want)
		}
		mac = m
	} else {
		mac = dockerMAC(ip)
	}
	if _, ok := t.macs[mac.String()]; ok {
		return "", conflict("MAC %s is already used in network %s", mac, n.Name)
	}
	return mac.String(), nil
}

// dockerMAC is the MAC Docker derives from an IPv4 address.
func dockerMAC(ip netip.Addr) fib.MAC {
	a := ip.As4()
	return fib.MAC{0x02, 0x42, a[0], a[1], a[2], a[3]}
}

// remoteHasMAC reports whether the network's MAC table has mac behind some
// VTEP (learned, static or from a control plane).
func (n *network) remoteHasMAC(mac fib.MAC) bool {
	if n.sw == nil {
		return false
	}
	_, ok := n.sw.FIB().Get(mac)
	return ok
}

// vethName is prefix and 8 random hex digits: an interface name that
// is free in practice wherever it is made.
func vethName(prefix string) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// plumb makes the endpoint's veth pair and configures both ends, and on
// an --egress network its egress pair; on failure nothing is left.
func (d *Daemon) plumb(n *network, ep *epState) (err error) {
	if err := d.plumbMain(n, ep); err != nil || !n.Egress {
		return err
	}
	if err := d.plumbEgress(ep); err != nil {
		veth.Delete(n.netns, ep.Veth)
		if errors.Is(err, veth.ErrIfNameExists) {
			return conflict("interface %s already exists in netns %s, where an --egress network puts its way out", egressIfName, ep.Netns)
		}
		return fmt.Errorf("egress for %s: %w", ep.Netns, err)
	}
	return nil
}

// plumbMain makes the endpoint's veth pair into the network's bridge
// and configures both ends; on failure nothing is left.
func (d *Daemon) plumbMain(n *network, ep *epState) (err error) {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return err
	}
	gw := n.Gateway
	if n.Egress || n.Internal {
		gw = netip.Addr{} // the default route goes through eth1, or nowhere
	}
	err = veth.Attach(veth.Spec{
		BridgeNetns: n.netns, Bridge: bridgeName, HostName: ep.Veth,
		Netns: ep.Netns, IfName: ep.IfName, MAC: mac, IP: ep.IP, IP6: ep.IP6, Gateway: gw, MTU: n.MTU,
	})
	if errors.Is(err, veth.ErrIfNameExists) {
		return conflict("interface %s already exists in netns %s; pick another with --ifname", ep.IfName, ep.Netns)
	}
	return err
}

// unplumb deletes the endpoint's veth pair (and its egress pair).
func (d *Daemon) unplumb(n *network, ep epState) error {
	err := veth.Delete(n.netns, ep.Veth)
	if eerr := d.unplumbEgress(ep); err == nil {
		err = eerr
	}
	return err
}

// detach removes an endpoint, named by its namespace or its ID: it is
// DeleteEndpoint. With a store its address is released there first:
// while the store is away detach fails and nothing changes. The last
// endpoint of a cluster network takes the network's namespace with it.
func (d *Daemon) detach(ctx context.Context, name string, req api.Detach) error {
	n, err := d.network(name)
	if err != nil {
		return err
	}
	i := -1
	switch {
	case req.ID != "":
		i = slices.IndexFunc(n.Endpoints, func(e epState) bool { return e.ID == req.ID })
		if i < 0 {
			return notFound("no endpoint %s on network %s on this host", req.ID, name)
		}
	case req.Netns != "":
		// The endpoint is stored under the path its name resolved to;
		// the namespace may be gone by now, so match names without
		// resolving.
		want := []string{req.Netns}
		if !strings.Contains(req.Netns, "/") {
			want = append(want, filepath.Join(nsutil.DefaultDir, req.Netns))
		} else if abs, err := filepath.Abs(req.Netns); err == nil {
			want = append(want, abs)
		}
		i = slices.IndexFunc(n.Endpoints, func(e epState) bool { return e.Netns != "" && slices.Contains(want, e.Netns) })
		if i < 0 {
			return notFound("netns %q is not attached to network %s", req.Netns, name)
		}
	default:
		return bad("detach needs the endpoint's netns or ID")
	}
	return d.deleteEndpoint(ctx, n, i)
}

// restoreEgress gives an endpoint of an --egress network its egress
// interface back if its pair is gone (deleted from outside).
func (d *Daemon) restoreEgress(n *network, ep epState) error {
	if !n.Egress {
		return nil
	}
	h, err := nsutil.Handle(d.cfg.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.LinkByName(ep.EgressVeth); err == nil {
		return nil
	}
	return d.plumbEgress(&ep) // the container's end went with its pair
}

// restoreEndpoint checks an endpoint at restart: its veth survives a
// daemon restart inside the network's namespace, so usually there is
// nothing to do; if the namespace was made again (after a reboot, say) and
// the endpoint's namespace still exists, the veth is made again.
func (d *Daemon) restoreEndpoint(n *network, ep epState) error {
	if ep.Veth == "" {
		return nil // created, not joined: nothing is plumbed
	}
	nh, err := nsutil.Handle(n.netns)
	if err != nil {
		return err
	}
	defer nh.Close()
	if l, err := nh.LinkByName(ep.Veth); err == nil {
		if br, err := nh.LinkByName(bridgeName); err == nil && l.Attrs().MasterIndex != br.Attrs().Index {
			if err := nh.LinkSetMaster(l, br); err != nil {
				return fmt.Errorf("put %s back on %s: %w", ep.Veth, bridgeName, err)
			}
		}
		if err := nh.LinkSetUp(l); err != nil {
			return err
		}
		if ep.Netns == "" {
			return nil // handed off: the runtime gives the container its way out
		}
		return d.restoreEgress(n, ep)
	}
	if ep.Netns == "" {
		// Handed off: the container end is the runtime's, in a namespace
		// this host cannot plumb into again.
		if ep.Sandbox == "" {
			return nil // left: the pair went with the network's namespace
		}
		return fmt.Errorf("its veth %s went with the network's namespace; reconnect the container (docker network disconnect and connect)", ep.Veth)
	}
	if !nsutil.IsNetns(ep.Netns) {
		return fmt.Errorf("netns %s is gone; detach the endpoint to release %s", ep.Netns, ep.IP.Addr())
	}
	if ino, err := nsutil.Inode(ep.Netns); err != nil || (ep.NetnsInode != 0 && ino != ep.NetnsInode) {
		return fmt.Errorf("netns %s is not the namespace that was attached (it was recreated, or the PID was reused); detach the endpoint to release %s", ep.Netns, ep.IP.Addr())
	}
	// The container may still hold its end of the old pair, if the
	// network's namespace was deleted only moments ago.
	mac, _ := net.ParseMAC(ep.MAC)
	if _, err := veth.DeleteStale(ep.Netns, ep.IfName, mac); err != nil {
		return err
	}
	// Only the main pair: the egress pair may have survived (only the
	// bridge end was deleted), and restoreEgress makes it only if not.
	if err := d.plumbMain(n, &ep); err != nil {
		return err
	}
	return d.restoreEgress(n, ep)
}
