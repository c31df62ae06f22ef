package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/fib"
)

// network returns the named network.
func (d *Daemon) network(name string) (*network, error) {
	n, ok := d.nets[name]
	if !ok {
		return nil, notFound("no network named %s (see `vxswitch network ls`)", name)
	}
	return n, nil
}

// running returns the named network if it is up.
func (d *Daemon) running(name string) (*network, error) {
	n, err := d.network(name)
	if err != nil {
		return nil, err
	}
	if n.sw == nil {
		return nil, conflict("network %s is down: %s", name, n.problem)
	}
	return n, nil
}

// parseVTEP checks a remote VTEP's address and returns it without a
// zone. A link-local VTEP is only reachable from a link-local --vtep, on
// its interface, and a routable one only from a routable --vtep (the
// kernel's vxlan has the same rule for local and remote).
func (d *Daemon) parseVTEP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, bad("bad VTEP IP %q: want a unicast underlay address such as 198.18.0.2", s)
	}
	a = a.Unmap()
	own := d.cfg.VTEP
	if a.Is4() != own.Is4() {
		return netip.Addr{}, bad("bad VTEP IP %s: this daemon's underlay is %s", a, family(own))
	}
	zone := a.Zone()
	a = a.WithZone("")
	switch {
	case a == own.WithZone(""):
		return netip.Addr{}, bad("VTEP %s is this host's own address", a)
	case zone != "" && !a.IsLinkLocalUnicast():
		return netip.Addr{}, bad("VTEP %s: only a link-local address takes an interface after %%", s)
	case a.IsLinkLocalUnicast() != own.IsLinkLocalUnicast() && a.Is6():
		return netip.Addr{}, bad("VTEP %s and this host's --vtep %s: a link-local VTEP and a routable one cannot reach each other", a, own)
	case zone != "" && zone != d.ulIf.name && zone != strconv.Itoa(d.ulIf.index):
		return netip.Addr{}, bad("VTEP %s: link-local VTEPs are reached on --vtep's interface (%%%s), not %%%s", s, d.ulIf.name, zone)
	}
	return a, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// configurable returns the named network for a change of its peers or
// static entries: a network that is up, or a cluster network's copy
// that is idle here (no endpoints), whose settings wait for its next
// endpoint.
func (d *Daemon) configurable(name string) (*network, error) {
	n, err := d.network(name)
	if err != nil {
		if d.cluster != nil {
			return nil, notFound("network %s has no endpoints on this host; peers and static entries of a cluster network are set on a host that has its namespace (attach an endpoint first)", name)
		}
		return nil, err
	}
	if n.sw == nil && !n.Cluster {
		return nil, conflict("network %s is down: %s", name, n.problem)
	}
	return n, nil
}

func (d *Daemon) addPeer(name, vtep string) (err error) {
	n, err := d.configurable(name)
	if err != nil {
		return err
	}
	a, err := d.parseVTEP(vtep)
	if err != nil {
		return err
	}
	if slices.Contains(n.Peers, a) {
		return nil // adding a peer twice is not an error, as with `bridge fdb append`
	}
	var u undo
	defer u.onError(&err)
	old := n.Peers
	n.Peers = append(slices.Clone(n.Peers), a)
	u.push(func() { n.Peers = old })
	if err := d.commit(); err != nil {
		return err
	}
	d.syncNetwork(n)
	d.log.Info("peer added", zap.String("network", name), zap.Stringer("vtep", a))
	return nil
}

func (d *Daemon) removePeer(name, vtep string) (err error) {
	n, err := d.configurable(name)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(vtep)
	if err != nil {
		return bad("bad VTEP IP %q", vtep)
	}
	a = a.Unmap().WithZone("")
	i := slices.Index(n.Peers, a)
	if i < 0 {
		return notFound("%s is not a peer of network %s", vtep, name)
	}
	var u undo
	defer u.onError(&err)
	old := n.Peers
	n.Peers = slices.Delete(slices.Clone(n.Peers), i, i+1)
	u.push(func() { n.Peers = old })
	if err := d.commit(); err != nil {
		return err
	}
	d.syncNetwork(n)
	d.dropIfIdle(n)
	if n.sw != nil {
		// Frames learned from a peer that left would be black-holed
		// until they age out.
		n.sw.FIB().FlushVTEP(a, fib.Learned)
	}
	d.log.Info("peer removed", zap.String("network", name), zap.Stringer("vtep", a))
	return nil
}

func (d *Daemon) addFDB(name string, e api.FDBEntry) (err error) {
	n, err := d.configurable(name)
	if err != nil {
		return err
	}
	mac, err := fib.ParseMAC(e.MAC)
	if err != nil || mac.IsMulticast() || mac.IsZero() {
		return bad("bad MAC %q: want a unicast address such as 02:42:0a:00:00:03", e.MAC)
	}
	vtep, err := d.parseVTEP(e.VTEP)
	if err != nil {
		return err
	}
	se := staticEntry{MAC: mac.String(), VTEP: vtep}
	for _, s := range e.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" || !(n.Subnet.Contains(ip) || n.Subnet6.Contains(ip)) {
			return bad("bad IP %q for static entry %s: want an address in network %s's subnet %s", s, mac, name, subnetsText(n))
		}
		se.IPs = append(se.IPs, ip)
	}
	var u undo
	defer u.onError(&err)
	old := n.Static
	n.Static = slices.DeleteFunc(slices.Clone(n.Static), func(s staticEntry) bool { return s.MAC == mac.String() })
	n.Static = append(n.Static, se)
	u.push(func() { n.Static = old })
	if err := d.commit(); err != nil {
		return err
	}
	d.syncNetwork(n)
	d.log.Info("static entry added", zap.String("network", name), zap.Stringer("mac", mac), zap.Stringer("vtep", vtep), zap.Stringers("ips", se.IPs))
	return nil
}

// dropIfIdle drops a cluster network's copy that nothing keeps here any
// more: no endpoints, no peers, no static entries.
func (d *Daemon) dropIfIdle(n *network) {
	if n.Cluster && d.cluster != nil && len(n.Endpoints) == 0 && !n.hasStatic() {
		d.dropNetwork(n)
	}
}

// subnetsText is the network's subnets for messages.
func subnetsText(n *network) string {
	if n.Subnet6.IsValid() {
		return n.Subnet.String() + " or " + n.Subnet6.String()
	}
	return n.Subnet.String()
}

func (d *Daemon) removeFDB(name, macText string) (err error) {
	n, err := d.configurable(name)
	if err != nil {
		return err
	}
	mac, err := fib.ParseMAC(macText)
	if err != nil {
		return bad("bad MAC %q", macText)
	}
	i := slices.IndexFunc(n.Static, func(s staticEntry) bool { return s.MAC == mac.String() })
	if i < 0 {
		// Not configured: allow flushing a learned entry, as
		// `bridge fdb del` does.
		if n.sw == nil {
			return notFound("no static entry for %s in network %s", mac, name)
		}
		if err := n.sw.FIB().Delete(mac, fib.Learned); err != nil {
			if errors.Is(err, fib.ErrNotFound) {
				return notFound("no static or learned entry for %s in network %s", mac, name)
			}
			return err
		}
		d.log.Info("learned entry flushed", zap.String("network", name), zap.Stringer("mac", mac))
		return nil
	}
	var u undo
	defer u.onError(&err)
	old := n.Static
	n.Static = slices.Delete(slices.Clone(n.Static), i, i+1)
	u.push(func() { n.Static = old })
	if err := d.commit(); err != nil {
		return err
	}
	d.syncNetwork(n)
	d.dropIfIdle(n)
	d.log.Info("static entry removed", zap.String("network", name), zap.Stringer("mac", mac))
	return nil
}

// fdbList is MAC tables as `fdb show` lists them: each network's
// entries in MAC order, then its flood list as all-zero MACs (as `bridge
// fdb show` prints a kernel vxlan's default destinations). The control API writes it
// out entry by entry (writeJSON) instead of building its JSON whole: a
// table a MAC flood has filled holds 65 536 entries, and building their
// JSON in memory took the daemon's peak RSS from 40 to 100 MiB.
type fdbList []fdbTable

// fdbTable is one network's table, taken with the daemon's mutex held;
// the table itself may be read without it.
type fdbTable struct {
	name string
	vni  uint32
	fib  *fib.Table
}

// fdbListOf lists the tables of those of nets that are up.
func fdbListOf(nets ...*network) fdbList {
	l := fdbList{}
	for _, n := range nets {
		if n.sw != nil {
			l = append(l, fdbTable{name: n.Name, vni: n.VNI, fib: n.sw.FIB()})
		}
	}
	return l
}

// writeJSON writes the list as a JSON array of api.FDBEntry. It reuses
// one entry for all, so that a long list makes little garbage.
func (l fdbList) writeJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	bw.WriteByte('[')
	var fe api.FDBEntry
	var age float64
	sep := false
	put := func() error {
		if sep {
			bw.WriteByte(',')
		}
		sep = true
		return enc.Encode(&fe)
	}
	for _, t := range l {
		// Ages count on the table's own clock, which LastSeen comes from.
		now := t.fib.Now()
		for e := range t.fib.All() {
			fe = api.FDBEntry{Network: t.name, VNI: t.vni, MAC: e.MAC.String(), VTEP: e.VTEP.String(), Source: e.Source.String()}
			if e.Source == fib.Learned {
				age = time.Duration(now - e.LastSeen.UnixNano()).Truncate(time.Second).Seconds()
				fe.Age = &age
			}
			if err := put(); err != nil {
				return err
			}
		}
		for _, p := range t.fib.FloodList() {
			fe = api.FDBEntry{Network: t.name, VNI: t.vni, MAC: fib.MAC{}.String(), VTEP: p.String(), Source: "flood"}
			if err := put(); err != nil {
				return err
			}
		}
	}
	bw.WriteString("]\n")
	return bw.Flush()
}
