package daemon

import (
	"context"
	"net"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/dnsserver"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// syncNetwork converges network n's datapath on what it should be: the
// static entries and peers configured here, and for a cluster network the
// store's last view of the other hosts: their endpoints' MAC entries
// (source store), the hosts with endpoints on the network as the flood
// list, the ARP/ND proxy's table (their addresses, and the addresses of
// static entries that carry them) and the DNS names of every endpoint.
// It computes the whole set each time (level triggered), so calling it
// after any change, local or remote, is always right. d.mu must be held.
func (d *Daemon) syncNetwork(n *network) {
	d.gone.sawVeths(n) // a namespace to watch, perhaps
	if n.sw == nil {
		return
	}
	log := d.log.With(zap.String("network", n.Name), zap.Uint32("vni", n.VNI))
	static := map[fib.MAC]netip.Addr{}
	neigh := map[netip.Addr]fib.MAC{}
	for _, s := range n.Static {
		mac, err := fib.ParseMAC(s.MAC)
		if err != nil {
			continue
		}
		static[mac] = s.VTEP
		for _, ip := range s.IPs {
			neigh[ip] = mac
		}
	}
	entries := map[fib.MAC]netip.Addr{}
	peers := slices.Clone(n.Peers)
	var names []dnsserver.Entry
	if n.Cluster && d.cluster != nil {
		for _, e := range d.cluster.remote(n) {
			mac, err := fib.ParseMAC(e.MAC)
			if err != nil {
				continue
			}
			vtep, err := d.parseVTEP(e.Host.String())
			if err != nil {
				log.Warn("ignoring an endpoint of a host this one cannot reach", zap.String("id", e.ID), zap.Stringer("vtep", e.Host), zap.Error(err))
				continue
			}
			entries[mac] = vtep
			peers = append(peers, vtep)
			neigh[e.IP.Addr()] = mac
			if e.IP6.IsValid() {
				neigh[e.IP6.Addr()] = mac
			}
			names = append(names, dnsEntries(e.Names(), e.IP, e.IP6)...)
		}
	}
	for _, ep := range n.Endpoints {
		if ep.joined() {
			names = append(names, dnsEntries(ep.names(), ep.IP, ep.IP6)...)
		}
	}
	t := n.sw.FIB()
	if r, err := t.Sync(fib.Static, static); err != nil {
		log.Error("cannot install static entries", zap.Error(err))
	} else if r.Added+r.Replaced+r.Removed > 0 {
		log.Info("static MAC entries changed", zap.Int("added", r.Added+r.Replaced), zap.Int("removed", r.Removed))
	}
	if r, err := t.Sync(fib.Store, entries); err != nil {
		log.Error("cannot install entries from the cluster store", zap.Error(err))
	} else {
		d.logStoreEntries(log, n, entries, r.Shadowed)
	}
	old := t.FloodList()
	if changed, err := t.SetPeers(peers); err != nil {
		log.Error("cannot set the flood list", zap.Error(err))
	} else if changed {
		now := t.FloodList()
		log.Info("flood list changed", zap.Stringers("added", diffAddrs(now, old)), zap.Stringers("removed", diffAddrs(old, now)),
			zap.Int("peers", len(now)))
	}
	n.sw.SetNeighbors(neigh)
	if n.dnsRecs != nil {
		n.dnsRecs.Store(dnsserver.NewTable(names...))
	}
}

// diffAddrs returns what a has and b does not.
func diffAddrs(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// dnsEntries are the DNS records of an endpoint's names.
func dnsEntries(names []string, ip, ip6 netip.Prefix) []dnsserver.Entry {
	var addrs []netip.Addr
	for _, p := range []netip.Prefix{ip, ip6} {
		if p.IsValid() {
			addrs = append(addrs, p.Addr())
		}
	}
	out := make([]dnsserver.Entry, 0, len(names))
	for _, name := range names {
		out = append(out, dnsserver.Entry{Name: name, Addrs: addrs})
	}
	return out
}

// names are the endpoint's DNS names.
func (e epState) names() []string {
	if e.Name == "" {
		return e.Aliases
	}
	return append([]string{e.Name}, e.Aliases...)
}

// underlayDial dials from the underlay's namespace (the daemon's own
// unless Config.Netns names another): DNS forwarding goes out there.
func (d *Daemon) underlayDial() func(ctx context.Context, network, address string) (net.Conn, error) {
	if d.cfg.Netns == "" {
		return nil
	}
	netns := d.cfg.Netns
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var c net.Conn
		err := nsutil.Do(netns, func() (err error) {
			var dl net.Dialer
			c, err = dl.DialContext(ctx, network, address)
			return err
		})
		return c, err
	}
}
