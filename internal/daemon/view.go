package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/store"
)

// networkView turns a network this host has into its API form; for a
// cluster network it adds the other hosts' endpoints from the view v.
func (d *Daemon) networkView(n *network, v ...*store.View) api.Network {
	out := api.Network{
		Name: n.Name, VNI: n.VNI, Subnet: n.Subnet.String(), Subnet6: prefixString(n.Subnet6), MTU: n.MTU, Scope: "local",
		Egress: n.Egress, Internal: n.Internal, MaxLearned: d.maxLearned(n.MaxLearned),
		Problem: n.problem, Offload: n.sw != nil && n.sw.Offload(),
		Peers: []string{}, Static: []api.FDBEntry{}, Endpoints: []api.Endpoint{},
	}
	if n.Cluster {
		out.Scope = "cluster"
	}
	if n.sw != nil || !n.Cluster {
		out.Netns, out.Bridge, out.TAP = n.netns, bridgeName, tapName(n.VNI)
	}
	if n.Gateway.IsValid() {
		out.Gateway = n.Gateway.String()
	}
	if n.sw != nil && n.sw.Err() != nil {
		out.Problem = fmt.Sprintf("TAP %s failed: %v; the daemon is making it again", out.TAP, n.sw.Err())
	}
	peers := n.Peers
	if n.sw != nil {
		peers = n.sw.FIB().FloodList()
	}
	for _, p := range peers {
		out.Peers = append(out.Peers, p.String())
	}
	for _, e := range n.Static {
		fe := api.FDBEntry{MAC: e.MAC, VTEP: e.VTEP.String(), Source: fib.Static.String()}
		for _, ip := range e.IPs {
			fe.IPs = append(fe.IPs, ip.String())
		}
		out.Static = append(out.Static, fe)
	}
	var view *store.View
	if len(v) > 0 {
		view = v[0]
	}
	for _, e := range n.Endpoints {
		ae := api.Endpoint{
			ID: e.ID, Name: e.Name, Aliases: e.Aliases, Netns: e.Netns, Sandbox: e.Sandbox,
			IfName: e.IfName, IP: e.IP.String(), IP6: prefixString(e.IP6), MAC: e.MAC, Veth: e.Veth, Problem: n.epProbs[e.ID],
			EgressIP: prefixString(e.EgressIP),
		}
		if n.Cluster && d.cluster != nil {
			ae.VTEP, ae.State = d.cluster.advertise.String(), "local"
			if view != nil {
				if _, ok := view.Published[n.Name][e.ID]; ok {
					ae.State = "up"
				}
			}
		}
		if t, ok := d.gone.goneSince(n.Name, e.ID); ok {
			ae.State, ae.Gone = "gone", t.Format(time.RFC3339Nano)
		}
		switch {
		case ae.State == "gone":
		case !e.Reserved.IsZero():
			ae.State = "reserved"
		case !e.joined():
			ae.State = "created"
		}
		out.Endpoints = append(out.Endpoints, ae)
	}
	if n.Cluster && d.cluster != nil && view != nil {
		out.Endpoints = append(out.Endpoints, remoteEndpoints(n.Name, view, d.cluster.advertise)...)
	}
	return out
}

// clusterView is the API form of a cluster network this host has no copy
// of (no endpoints here).
func (d *Daemon) clusterView(sn store.Network, v *store.View) api.Network {
	out := api.Network{
		Name: sn.Name, VNI: sn.VNI, Subnet: sn.Subnet.String(), Subnet6: prefixString(sn.Subnet6), MTU: sn.MTU, Scope: "cluster",
		Egress: sn.Egress, Internal: sn.Internal, MaxLearned: d.maxLearned(sn.MaxLearned),
		Peers: []string{}, Static: []api.FDBEntry{}, Endpoints: remoteEndpoints(sn.Name, v, netip.Addr{}),
	}
	if sn.Gateway.IsValid() {
		out.Gateway = sn.Gateway.String()
	}
	return out
}

// remoteEndpoints lists network's endpoint records in v of every host but
// self, each up (published) or down (its host's lease expired).
func remoteEndpoints(network string, v *store.View, self netip.Addr) []api.Endpoint {
	out := []api.Endpoint{}
	for _, e := range v.SortedEndpoints(network) {
		if e.Host == self {
			continue
		}
		state := "down"
		if _, ok := v.Published[network][e.ID]; ok {
			state = "up"
		} else if v.Alive(e.Host) {
			state = "created" // its host is up and has not joined it (yet)
		}
		out = append(out, api.Endpoint{ID: e.ID, Name: e.Name, Aliases: e.Aliases, VTEP: e.Host.String(),
			IP: e.IP.String(), IP6: prefixString(e.IP6), MAC: e.MAC, State: state})
	}
	return out
}

// networks lists every network: this host's, and with a store the
// cluster's, sorted by name.
func (d *Daemon) networks(ctx context.Context) []api.Network {
	out := []api.Network{}
	if d.cluster == nil {
		for _, n := range d.sortedNets() {
			out = append(out, d.networkView(n))
		}
		return out
	}
	v := d.cluster.freshView(ctx)
	stale := d.cluster.stale()
	names := v.NetworkNames()
	for name := range d.nets {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		var an api.Network
		if n, ok := d.nets[name]; ok {
			an = d.networkView(n, v)
		} else {
			an = d.clusterView(v.Networks[name], v)
		}
		if an.Scope == "cluster" {
			an.Stale = stale
		}
		out = append(out, an)
	}
	return out
}

// inspect returns one network, as networks lists it.
func (d *Daemon) inspect(ctx context.Context, name string) (api.Network, error) {
	if d.cluster == nil {
		n, err := d.network(name)
		if err != nil {
			return api.Network{}, err
		}
		return d.networkView(n), nil
	}
	v := d.cluster.freshView(ctx)
	var an api.Network
	if n, ok := d.nets[name]; ok {
		an = d.networkView(n, v)
	} else if sn, ok := v.Networks[name]; ok {
		an = d.clusterView(sn, v)
	} else {
		return api.Network{}, notFound("no network named %s (see `vxswitch network ls`)", name)
	}
	if an.Scope == "cluster" {
		an.Stale = d.cluster.stale()
	}
	return an, nil
}
