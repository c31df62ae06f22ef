package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/api"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/veth"
)

// defaultIfName is the interface name an endpoint gets in its namespace.
const defaultIfName = "eth0"

// attach joins a namespace to a network with a veth pair: one end on the
// network's br0, the other in the namespace with the endpoint's address.
func (d *Daemon) attach(name string, req api.Attach) (api.Endpoint, error) {
	n, err := d.running(name)
	if err != nil {
		return api.Endpoint{}, err
	}
	path, err := nsutil.Resolve(req.Netns)
	if err != nil {
		if errors.Is(err, nsutil.ErrNotFound) {
			return api.Endpoint{}, notFound("netns %q not found (give a name from `ip netns` or a path such as /proc/PID/ns/net)", req.Netns)
		}
		return api.Endpoint{}, bad("%v", err)
	}
	if slices.ContainsFunc(n.Endpoints, func(e epState) bool { return e.Netns == path }) {
		return api.Endpoint{}, conflict("netns %s is already attached to network %s", req.Netns, name)
	}
	ino, err := nsutil.Inode(path)
	if err != nil {
		return api.Endpoint{}, err
	}
	ep := epState{Netns: path, NetnsInode: ino, IfName: req.IfName}
	if ep.IfName == "" {
		ep.IfName = defaultIfName
	}
	if len(ep.IfName) > 15 || ep.IfName == "." || ep.IfName == ".." || !nameRE.MatchString(ep.IfName) {
		return api.Endpoint{}, bad("bad interface name %q: 1 to 15 letters, digits, '_', '.', '-'", ep.IfName)
	}
	if ep.IP, err = n.pickIP(req.IP); err != nil {
		return api.Endpoint{}, err
	}
	if ep.MAC, err = n.pickMAC(req.MAC, ep.IP.Addr()); err != nil {
		return api.Endpoint{}, err
	}
	if ep.IP6, err = n.pickIP6(req.IP6, ep.MAC); err != nil {
		return api.Endpoint{}, err
	}
	if ep.Veth, err = vethName(); err != nil {
		return api.Endpoint{}, err
	}
	if err := d.plumb(n, ep); err != nil {
		return api.Endpoint{}, err
	}
	n.Endpoints = append(n.Endpoints, ep)
	if err := d.save(); err != nil {
		n.Endpoints = n.Endpoints[:len(n.Endpoints)-1]
		d.unplumb(n, ep)
		return api.Endpoint{}, err
	}
	d.log.Info("endpoint attached", zap.String("network", name), zap.String("netns", path),
		zap.Stringer("ip", ep.IP), zap.String("ip6", prefixString(ep.IP6)), zap.String("mac", ep.MAC))
	return api.Endpoint{Netns: path, IfName: ep.IfName, IP: ep.IP.String(), IP6: prefixString(ep.IP6), MAC: ep.MAC, Veth: ep.Veth}, nil
}

// pickIP validates a requested address or allocates the lowest free one.
func (n *network) pickIP(want string) (netip.Prefix, error) {
	used := map[netip.Addr]bool{n.Gateway: true}
	for _, e := range n.Endpoints {
		used[e.IP.Addr()] = true
	}
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
		if used[p.Addr()] {
			return p, conflict("IP %s is already used in network %s", p.Addr(), n.Name)
		}
		return p, nil
	}
	// Each daemon allocates on its own (there is no cluster store yet), so
	// also skip addresses whose Docker-style MAC is already seen behind a
	// remote VTEP: another host handed that address out.
	for a := n.Subnet.Addr().Next(); n.Subnet.Contains(a); a = a.Next() {
		if usableHost(n.Subnet, a) && !used[a] && !n.remoteHasMAC(dockerMAC(a)) {
			return netip.PrefixFrom(a, n.Subnet.Bits()), nil
		}
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
func (n *network) pickIP6(want, mac string) (netip.Prefix, error) {
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
	for _, e := range n.Endpoints {
		if e.IP6.Addr() != p.Addr() {
			continue
		}
		if want == "" {
			return p, conflict("IPv6 address %s, made from MAC %s, is already used in network %s by netns %s (its --ip6); give --ip6 or --mac", p.Addr(), mac, n.Name, e.Netns)
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
func (n *network) pickMAC(want string, ip netip.Addr) (string, error) {
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
	for _, e := range n.Endpoints {
		if e.MAC == mac.String() {
			return "", conflict("MAC %s is already used in network %s", mac, n.Name)
		}
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

func vethName() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "veth" + hex.EncodeToString(b[:]), nil
}

// plumb makes the endpoint's veth pair and configures both ends; on
// failure nothing is left.
func (d *Daemon) plumb(n *network, ep epState) error {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return err
	}
	err = veth.Attach(veth.Spec{
		BridgeNetns: n.netns, Bridge: bridgeName, HostName: ep.Veth,
		Netns: ep.Netns, IfName: ep.IfName, MAC: mac, IP: ep.IP, IP6: ep.IP6, Gateway: n.Gateway, MTU: n.MTU,
	})
	if errors.Is(err, veth.ErrIfNameExists) {
		return conflict("interface %s already exists in netns %s; pick another with --ifname", ep.IfName, ep.Netns)
	}
	return err
}

// unplumb deletes the endpoint's veth pair.
func (d *Daemon) unplumb(n *network, ep epState) error { return veth.Delete(n.netns, ep.Veth) }

// detach removes an endpoint.
func (d *Daemon) detach(name string, req api.Detach) error {
	n, err := d.network(name)
	if err != nil {
		return err
	}
	// The endpoint is stored under the path its name resolved to; the
	// namespace may be gone by now, so match names without resolving.
	want := []string{req.Netns}
	if !strings.Contains(req.Netns, "/") {
		want = append(want, filepath.Join(nsutil.DefaultDir, req.Netns))
	} else if abs, err := filepath.Abs(req.Netns); err == nil {
		want = append(want, abs)
	}
	i := slices.IndexFunc(n.Endpoints, func(e epState) bool { return slices.Contains(want, e.Netns) })
	if i < 0 {
		return notFound("netns %q is not attached to network %s", req.Netns, name)
	}
	ep := n.Endpoints[i]
	n.Endpoints = slices.Delete(slices.Clone(n.Endpoints), i, i+1)
	if err := d.save(); err != nil {
		n.Endpoints = slices.Insert(n.Endpoints, i, ep)
		return err
	}
	delete(n.epProbs, ep.Netns)
	if err := d.unplumb(n, ep); err != nil {
		d.log.Warn("endpoint detached but its veth could not be deleted", zap.String("veth", ep.Veth), zap.Error(err))
	}
	d.log.Info("endpoint detached", zap.String("network", name), zap.String("netns", ep.Netns))
	return nil
}

// restoreEndpoint checks an endpoint at restart: its veth survives a
// daemon restart inside the network's namespace, so usually there is
// nothing to do; if the namespace was made again (after a reboot, say) and
// the endpoint's namespace still exists, the veth is made again.
func (d *Daemon) restoreEndpoint(n *network, ep epState) error {
	nh, err := nsutil.Handle(n.netns)
	if err != nil {
		return err
	}
	defer nh.Close()
	if l, err := nh.LinkByName(ep.Veth); err == nil {
		if br, err := nh.LinkByName(bridgeName); err == nil && l.Attrs().MasterIndex != br.Attrs().Index {
			nh.LinkSetMaster(l, br)
		}
		return nh.LinkSetUp(l)
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
	return d.plumb(n, ep)
}
