package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/store"
)

// ipam hands out endpoints' addresses and MACs. Without a store each host
// allocates on its own (localIPAM); with one, the store makes them unique
// cluster-wide (storeIPAM). The policy (the lowest free IPv4 address, a
// MAC made from it, an IPv6 address from the MAC; or what the caller asked
// for, checked) is the same for both: network.pick.
type ipam interface {
	// allocate fills in ep's IP, MAC and IP6 as req asks and reserves
	// them (and ep's ID).
	allocate(ctx context.Context, n *network, req api.Attach, ep *epState) error
	// release frees what allocate reserved for ep. Releasing an endpoint
	// that holds nothing is not an error.
	release(ctx context.Context, n *network, ep epState) error
	// replace turns what old holds into ep's (ID, addresses and MAC as
	// req asks, filled in), keeping what both hold: a reservation
	// claimed by its endpoint. On error old holds what it held.
	replace(ctx context.Context, n *network, old epState, req api.Attach, ep *epState) error
}

// taken is what a network's endpoints hold: addresses and MACs, each with
// its holder (for messages).
type taken struct {
	ips  map[netip.Addr]string
	macs map[string]string
	// remoteMAC, when set, reports whether a MAC is seen behind another
	// VTEP: a host allocating on its own skips addresses whose MAC
	// another host handed out.
	remoteMAC func(fib.MAC) bool
}

// pick fills in ep's IP, MAC and IP6 as req asks, given what is taken.
func (n *network) pick(req api.Attach, t taken, ep *epState) (err error) {
	if ep.IP, err = n.pickIP(req.IP, t); err != nil {
		return err
	}
	if ep.MAC, err = n.pickMAC(req.MAC, ep.IP.Addr(), t); err != nil {
		return err
	}
	ep.IP6, err = n.pickIP6(req.IP6, ep.MAC, t)
	return err
}

// localTaken is what the network's endpoints on this host hold.
func (n *network) localTaken() taken { return n.localTakenExcept("") }

// localTakenExcept is localTaken without what endpoint id holds (what a
// replacement of it may keep).
func (n *network) localTakenExcept(id string) taken {
	t := taken{ips: map[netip.Addr]string{}, macs: map[string]string{}, remoteMAC: n.remoteHasMAC}
	for _, e := range n.Endpoints {
		if id != "" && e.ID == id {
			continue
		}
		t.ips[e.IP.Addr()] = e.holder()
		if e.IP6.IsValid() {
			t.ips[e.IP6.Addr()] = e.holder()
		}
		t.macs[e.MAC] = e.holder()
	}
	return t
}

// localIPAM allocates from this host's endpoints alone.
type localIPAM struct{}

func (localIPAM) allocate(_ context.Context, n *network, req api.Attach, ep *epState) error {
	return n.pick(req, n.localTaken(), ep)
}

func (localIPAM) release(context.Context, *network, epState) error { return nil }

func (localIPAM) replace(_ context.Context, n *network, old epState, req api.Attach, ep *epState) error {
	return n.pick(req, n.localTakenExcept(old.ID), ep)
}

// storeIPAM allocates in the cluster store: an endpoint's ID, addresses
// and MAC are claimed in one transaction, unique across every host.
type storeIPAM struct{ c *cluster }

func (s storeIPAM) allocate(ctx context.Context, n *network, req api.Attach, ep *epState) error {
	rec := store.Endpoint{ID: ep.ID, Name: ep.Name, Aliases: ep.Aliases, Host: s.c.advertise}
	got, err := s.c.st.CreateEndpoint(ctx, n.storeNetwork(), rec, storePicker(n, req))
	if err != nil {
		return storeErr(err)
	}
	ep.IP, ep.MAC, ep.IP6 = got.IP, got.MAC, got.IP6
	return nil
}

func (s storeIPAM) replace(ctx context.Context, n *network, old epState, req api.Attach, ep *epState) error {
	rec := store.Endpoint{ID: ep.ID, Name: ep.Name, Aliases: ep.Aliases, Host: s.c.advertise}
	got, err := s.c.st.ReplaceEndpoint(ctx, n.storeNetwork(), old.ID, rec, storePicker(n, req))
	if err != nil {
		return storeErr(err)
	}
	ep.IP, ep.MAC, ep.IP6 = got.IP, got.MAC, got.IP6
	return nil
}

// storePicker is network.pick as the store calls it, on what every host's
// endpoints hold.
func storePicker(n *network, req api.Attach) store.Picker {
	return func(st store.Taken, e *store.Endpoint) error {
		t := taken{ips: map[netip.Addr]string{}, macs: map[string]string{}}
		for a, id := range st.IPs {
			t.ips[a] = "endpoint " + id
		}
		for m, id := range st.MACs {
			t.macs[m] = "endpoint " + id
		}
		var tmp epState
		if err := n.pick(req, t, &tmp); err != nil {
			return err
		}
		e.IP, e.MAC, e.IP6 = tmp.IP, tmp.MAC, tmp.IP6
		return nil
	}
}

func (s storeIPAM) release(ctx context.Context, n *network, ep epState) error {
	err := s.c.st.DeleteEndpoint(ctx, n.Name, ep.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // released already (host rm, or a retry)
	}
	return storeErr(err)
}

// storeNetwork is the store's record of a cluster network, as this host
// keeps a copy of it.
func (n *network) storeNetwork() store.Network {
	return store.Network{Name: n.Name, VNI: n.VNI, Subnet: n.Subnet, Subnet6: n.Subnet6, Gateway: n.Gateway, MTU: n.MTU, MaxLearned: n.MaxLearned, Revision: n.Revision}
}

// storeErr gives a store error the kind the API maps to a status; user
// errors made by pick pass through.
func storeErr(err error) error {
	var ue *userError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		return err
	case errors.Is(err, store.ErrUnavailable):
		return &userError{errUnavailable, err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return &userError{errNotFound, strings.TrimPrefix(err.Error(), store.ErrNotFound.Error()+": ")}
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrTaken), errors.Is(err, store.ErrInUse), errors.Is(err, store.ErrFull):
		msg := err.Error()
		for _, k := range []error{store.ErrExists, store.ErrTaken, store.ErrInUse, store.ErrFull} {
			msg = strings.TrimPrefix(msg, k.Error()+": ")
		}
		return &userError{errConflict, msg}
	}
	return err
}
