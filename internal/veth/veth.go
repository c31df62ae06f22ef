// Package veth joins a network namespace to a bridge with a veth pair: the
// one mechanism behind `vxswitch network attach` and the test fixtures'
// kernel-overlay endpoints, so both lay out containers exactly alike.
package veth

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// ErrIfNameExists is returned when the interface name is taken in the
// endpoint's namespace.
var ErrIfNameExists = errors.New("interface name already in use in the namespace")

// Spec describes one endpoint.
type Spec struct {
	BridgeNetns string // namespace holding the bridge
	Bridge      string // bridge name there (br0)
	HostName    string // bridge-side veth name
	Netns       string // the endpoint's namespace (a container)
	IfName      string // interface name inside Netns
	MAC         net.HardwareAddr
	IP          netip.Prefix // IPv4 address and prefix of IfName
	IP6         netip.Prefix // when valid: IPv6 address and prefix of IfName
	Gateway     netip.Addr   // when valid: default route through it, unless one exists
	MTU         int
	// Isolated makes the bridge port isolated (bridge_slave isolated on):
	// it talks to the bridge and non-isolated ports only, never to other
	// isolated ports, as Docker's docker_gwbridge keeps its containers
	// apart.
	Isolated bool
}

// Attach creates the veth pair with its peer directly in the endpoint's
// namespace, puts the host side on the bridge, and configures the peer. On
// failure the pair is deleted, which removes both ends wherever they are.
func Attach(s Spec) (err error) {
	bh, err := nsutil.Handle(s.BridgeNetns)
	if err != nil {
		return err
	}
	defer bh.Close()
	eh, err := nsutil.Handle(s.Netns)
	if err != nil {
		return err
	}
	defer eh.Close()
	if _, err := eh.LinkByName(s.IfName); err == nil {
		return fmt.Errorf("%s in %s: %w", s.IfName, s.Netns, ErrIfNameExists)
	}
	br, err := bh.LinkByName(s.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s in %s: %w", s.Bridge, s.BridgeNetns, err)
	}
	target, err := netns.GetFromPath(s.Netns)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", s.Netns, err)
	}
	defer target.Close()
	v := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: s.HostName, MTU: s.MTU, MasterIndex: br.Attrs().Index},
		PeerName:         s.IfName,
		PeerHardwareAddr: s.MAC,
		PeerNamespace:    netlink.NsFd(target),
		PeerMTU:          uint32(s.MTU),
	}
	if err := bh.LinkAdd(v); err != nil {
		return fmt.Errorf("create veth %s: %w", s.HostName, err)
	}
	defer func() {
		if err != nil {
			Delete(s.BridgeNetns, s.HostName)
		}
	}()
	host, err := bh.LinkByName(s.HostName)
	if err != nil {
		return err
	}
	if s.Isolated {
		if err := bh.LinkSetIsolated(host, true); err != nil {
			return fmt.Errorf("isolate %s on %s: %w", s.HostName, s.Bridge, err)
		}
	}
	if err := bh.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", s.HostName, err)
	}
	return configurePeer(eh, s)
}

// Stage creates the veth pair for a runtime that configures the
// container end itself (Docker moves it into the container, names it and
// sets its address, MAC and routes from what the network driver answered):
// the host side goes on the bridge and up, and the peer, named s.IfName,
// is made in s.Netns ("" is the caller's namespace) with s.MTU and s.MAC,
// down and without addresses. s.IP, s.IP6 and s.Gateway are not used. On
// failure the pair is deleted.
func Stage(s Spec) (err error) {
	bh, err := nsutil.Handle(s.BridgeNetns)
	if err != nil {
		return err
	}
	defer bh.Close()
	br, err := bh.LinkByName(s.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s in %s: %w", s.Bridge, s.BridgeNetns, err)
	}
	path := s.Netns
	if path == "" {
		path = "/proc/self/ns/net" // the process's own: its main thread never leaves it
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsutil.Describe(s.Netns), err)
	}
	defer target.Close()
	v := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: s.HostName, MTU: s.MTU, MasterIndex: br.Attrs().Index},
		PeerName:         s.IfName,
		PeerHardwareAddr: s.MAC,
		PeerNamespace:    netlink.NsFd(target),
		PeerMTU:          uint32(s.MTU),
	}
	if err := bh.LinkAdd(v); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create veth %s/%s: %w", s.HostName, s.IfName, ErrIfNameExists)
		}
		return fmt.Errorf("create veth %s: %w", s.HostName, err)
	}
	defer func() {
		if err != nil {
			Delete(s.BridgeNetns, s.HostName)
		}
	}()
	host, err := bh.LinkByName(s.HostName)
	if err != nil {
		return err
	}
	if err := bh.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", s.HostName, err)
	}
	return nil
}

func configurePeer(h *netlink.Handle, s Spec) error {
	link, err := h.LinkByName(s.IfName)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: s.IP.Addr().AsSlice(), Mask: net.CIDRMask(s.IP.Bits(), s.IP.Addr().BitLen())}}
	if err := h.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("set %s on %s: %w", s.IP, s.IfName, err)
	}
	if s.IP6.IsValid() {
		if err := enableIPv6(s.Netns, s.IfName); err != nil {
			return err
		}
		// No duplicate address detection, as Docker does: the address
		// is usable at once, and its uniqueness is the daemon's to keep.
		addr6 := &netlink.Addr{IPNet: &net.IPNet{IP: s.IP6.Addr().AsSlice(), Mask: net.CIDRMask(s.IP6.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
		if err := h.AddrReplace(link, addr6); err != nil {
			return fmt.Errorf("set %s on %s: %w", s.IP6, s.IfName, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", s.IfName, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		h.LinkSetUp(lo)
	}
	if s.IP6.IsValid() {
		waitIPv6Route(h, s.IP6)
	}
	if !s.Gateway.IsValid() {
		return nil
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst == nil || r.Dst.IP.IsUnspecified() }) {
		return nil
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: s.Gateway.AsSlice()}); err != nil {
		return fmt.Errorf("add default route via %s: %w", s.Gateway, err)
	}
	return nil
}

// waitIPv6Route waits, briefly, until the namespace can use the IPv6
// address p: its local route is there (the kernel adds it from a work
// queue once the address is no longer tentative, also without DAD) and
// so is the route to p's prefix. On a busy machine, packets sent right
// after the address was added otherwise find no route (Ip6OutNoRoutes,
// and a ping says "Network unreachable"). Attach returns an endpoint
// that can talk at once.
func waitIPv6Route(h *netlink.Handle, p netip.Prefix) {
	deadline := time.Now().Add(5 * time.Second)
	own, peer := p.Addr().AsSlice(), p.Masked().Addr().Next().AsSlice()
	for time.Now().Before(deadline) {
		local, err := h.RouteGet(own)
		if err == nil && len(local) > 0 && local[0].Type == unix.RTN_LOCAL {
			if rs, err := h.RouteGet(peer); err == nil && len(rs) > 0 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// enableIPv6 turns IPv6 on for ifname in the namespace at path, which may
// have it off by default (net.ipv6.conf.default.disable_ipv6), and has it
// ignore router advertisements: the address is static, and a router
// advertisement on the overlay (a container running radvd) must not add
// addresses and default routes to every container. The keys are slashed:
// interface names may contain dots.
func enableIPv6(path, ifname string) error {
	for _, k := range []string{"accept_ra", "disable_ipv6"} {
		if err := nsutil.SetSysctl(path, "net/ipv6/conf/"+ifname+"/"+k, "0"); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the veth pair whose bridge side is name in netnsPath; a
// pair that is already gone is not an error.
func Delete(netnsPath, name string) error {
	h, err := nsutil.Handle(netnsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	return h.LinkDel(l)
}

// DeleteStale removes the interface ifname from the namespace at netnsPath
// if it is a veth with the given MAC: the container end of an endpoint
// whose bridge end is gone (its network's namespace was deleted), which
// the kernel removes only when it gets to it. It reports whether it
// deleted anything; any other interface of that name is left alone.
func DeleteStale(netnsPath, ifname string, mac net.HardwareAddr) (bool, error) {
	h, err := nsutil.Handle(netnsPath)
	if err != nil {
		return false, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return false, nil
	}
	if _, ok := l.(*netlink.Veth); !ok || !bytes.Equal(l.Attrs().HardwareAddr, mac) {
		return false, nil
	}
	return true, h.LinkDel(l)
}
