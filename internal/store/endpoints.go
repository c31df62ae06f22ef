package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func endpointKey(network, id string) string  { return pEndpoints + network + "/" + id }
func publishedKey(network, id string) string { return pPublished + network + "/" + id }
func ipKey(network string, a netip.Addr) string {
	return pAlloc + network + "/ip/" + a.WithZone("").String()
}
func macKey(network, mac string) string { return pAlloc + network + "/mac/" + strings.ToLower(mac) }

// Taken is what a network's endpoints hold: addresses and MACs, each with
// the ID of the endpoint that holds it.
type Taken struct {
	IPs  map[netip.Addr]string
	MACs map[string]string
}

// Picker fills in ep's addresses and MAC (IP, IP6 and MAC) given what is
// taken, or fails (with a user error) when what ep asks for is taken or
// nothing is left. CreateEndpoint calls it again, with what is taken then,
// when another host won a race for something it picked.
type Picker func(t Taken, ep *Endpoint) error

// CreateEndpoint records endpoint ep in network n: its ID, its addresses
// and its MAC are claimed in one transaction, which fails if n was removed
// meanwhile. pick chooses the addresses (see Picker). The endpoint is not
// published: Publish does that under the owning host's lease.
func (s *Store) CreateEndpoint(ctx context.Context, n Network, ep Endpoint, pick Picker) (Endpoint, error) {
	ep.Network = n.Name
	for range maxAttempts {
		taken, err := s.taken(ctx, n.Name)
		if err != nil {
			return Endpoint{}, err
		}
		e := ep
		if err := pick(taken, &e); err != nil {
			return Endpoint{}, err
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(networkKey(n.Name)), "=", n.Revision),
			clientv3.Compare(clientv3.CreateRevision(endpointKey(n.Name, e.ID)), "=", 0),
		}
		ops := []clientv3.Op{clientv3.OpPut(endpointKey(n.Name, e.ID), encode(e))}
		for _, k := range allocKeys(e) {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			ops = append(ops, clientv3.OpPut(k, e.ID))
		}
		c, cancel := s.ctx(ctx)
		resp, err := s.cli.Txn(c).If(cmps...).Then(ops...).Else(
			clientv3.OpGet(networkKey(n.Name)),
			clientv3.OpGet(endpointKey(n.Name, e.ID)),
		).Commit()
		cancel()
		if err != nil {
			return Endpoint{}, s.wrap(err)
		}
		if resp.Succeeded {
			return e, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != n.Revision {
			return Endpoint{}, fmt.Errorf("%w: network %s was removed from the cluster meanwhile", ErrNotFound, n.Name)
		}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			return Endpoint{}, fmt.Errorf("%w: endpoint %s exists already in network %s", ErrExists, e.ID, n.Name)
		}
		// Another host took an address or MAC we picked: pick again.
	}
	return Endpoint{}, fmt.Errorf("%w: could not claim an address in network %s after %d tries; too many endpoints are being attached at once", ErrUnavailable, n.Name, maxAttempts)
}

// allocKeys are the unique keys an endpoint holds.
func allocKeys(e Endpoint) []string {
	keys := []string{ipKey(e.Network, e.IP.Addr()), macKey(e.Network, e.MAC)}
	if e.IP6.IsValid() {
		keys = append(keys, ipKey(e.Network, e.IP6.Addr()))
	}
	return keys
}

// taken lists the addresses and MACs network's endpoints hold.
func (s *Store) taken(ctx context.Context, network string) (Taken, error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(c, pAlloc+network+"/", clientv3.WithPrefix())
	if err != nil {
		return Taken{}, s.wrap(err)
	}
	t := Taken{IPs: map[netip.Addr]string{}, MACs: map[string]string{}}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), pAlloc+network+"/")
		switch kind, v, _ := strings.Cut(rest, "/"); kind {
		case "ip":
			if a, err := netip.ParseAddr(v); err == nil {
				t.IPs[a] = string(kv.Value)
			}
		case "mac":
			t.MACs[v] = string(kv.Value)
		}
	}
	return t, nil
}

// Endpoints returns network's endpoint records (every host's).
func (s *Store) Endpoints(ctx context.Context, network string) ([]Endpoint, error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(c, pEndpoints+network+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, s.wrap(err)
	}
	m := map[string]Endpoint{}
	for _, kv := range resp.Kvs {
		var e Endpoint
		if err := decode("endpoint", string(kv.Key), kv.Value, &e); err != nil {
			return nil, err
		}
		m[e.ID] = e
	}
	return sortEndpoints(m), nil
}

// Endpoint returns one endpoint record.
func (s *Store) Endpoint(ctx context.Context, network, id string) (Endpoint, error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(c, endpointKey(network, id))
	if err != nil {
		return Endpoint{}, s.wrap(err)
	}
	if len(resp.Kvs) == 0 {
		return Endpoint{}, fmt.Errorf("%w: no endpoint %s in network %s", ErrNotFound, id, network)
	}
	var e Endpoint
	err = decode("endpoint", id, resp.Kvs[0].Value, &e)
	return e, err
}

// DeleteEndpoint releases an endpoint: its record, the addresses and MAC
// it holds, and its publication, in one transaction. It returns
// ErrNotFound if there is no such endpoint.
func (s *Store) DeleteEndpoint(ctx context.Context, network, id string) error {
	for range maxAttempts {
		c, cancel := s.ctx(ctx)
		ops, cmps, err := s.deleteEndpointOps(c, network, id)
		if err != nil {
			cancel()
			return err
		}
		resp, err := s.cli.Txn(c).If(cmps...).Then(ops...).Commit()
		cancel()
		if err != nil {
			return s.wrap(err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("%w: endpoint %s of network %s kept changing while it was being released; try again", ErrUnavailable, id, network)
}

// deleteEndpointOps reads an endpoint and its allocation keys and returns
// the operations that delete them, guarded by their revisions; allocation
// keys another endpoint holds (after a reclaim, say) are left alone.
func (s *Store) deleteEndpointOps(ctx context.Context, network, id string) ([]clientv3.Op, []clientv3.Cmp, error) {
	resp, err := s.cli.Get(ctx, endpointKey(network, id))
	if err != nil {
		return nil, nil, s.wrap(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil, fmt.Errorf("%w: no endpoint %s in network %s", ErrNotFound, id, network)
	}
	var e Endpoint
	if err := decode("endpoint", id, resp.Kvs[0].Value, &e); err != nil {
		return nil, nil, err
	}
	e.Network = network
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(endpointKey(network, id)), "=", resp.Kvs[0].ModRevision)}
	ops := []clientv3.Op{clientv3.OpDelete(endpointKey(network, id)), clientv3.OpDelete(publishedKey(network, id))}
	for _, k := range allocKeys(e) {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", id))
		ops = append(ops, clientv3.OpDelete(k))
	}
	// A key held by another endpoint fails its Value compare; find which
	// and leave those out, in the same revision as the record.
	txr, err := s.cli.Txn(ctx).Then(opGets(allocKeys(e))...).Commit()
	if err != nil {
		return nil, nil, s.wrap(err)
	}
	var keepCmps []clientv3.Cmp
	var keepOps []clientv3.Op
	keepCmps = append(keepCmps, cmps[0])
	keepOps = append(keepOps, ops[0], ops[1])
	for i, r := range txr.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 1 && string(kvs[0].Value) == id {
			keepCmps = append(keepCmps, cmps[1+i])
			keepOps = append(keepOps, ops[2+i])
		}
	}
	return keepOps, keepCmps, nil
}

func opGets(keys []string) []clientv3.Op {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	return ops
}

// ReplaceEndpoint turns endpoint oldID's record into one for ep, in one
// transaction: ep may have another ID (a reservation made before its
// endpoint had one, claimed by that endpoint), another MAC and so another
// IPv6 address. pick chooses ep's addresses and MAC given what every
// other endpoint holds (what oldID holds counts as free); what both hold
// stays held throughout, what only ep holds is claimed (compared absent),
// and what only oldID held is released. It fails with ErrNotFound if
// oldID has no record (it was released meanwhile) or the network was
// removed, and ErrExists if ep's ID is another endpoint's. The record is
// not published (see Publish), and a publication of oldID is withdrawn.
func (s *Store) ReplaceEndpoint(ctx context.Context, n Network, oldID string, ep Endpoint, pick Picker) (Endpoint, error) {
	ep.Network = n.Name
	for range maxAttempts {
		c, cancel := s.ctx(ctx)
		resp, err := s.cli.Get(c, endpointKey(n.Name, oldID))
		cancel()
		if err != nil {
			return Endpoint{}, s.wrap(err)
		}
		if len(resp.Kvs) == 0 {
			return Endpoint{}, fmt.Errorf("%w: no endpoint %s in network %s", ErrNotFound, oldID, n.Name)
		}
		var old Endpoint
		if err := decode("endpoint", oldID, resp.Kvs[0].Value, &old); err != nil {
			return Endpoint{}, err
		}
		old.Network = n.Name
		taken, err := s.taken(ctx, n.Name)
		if err != nil {
			return Endpoint{}, err
		}
		// What oldID holds is free for ep; what it held that another
		// endpoint holds now (after a reclaim, say) is not its to release.
		owned := map[string]bool{}
		for a, id := range taken.IPs {
			if id == oldID {
				owned[ipKey(n.Name, a)] = true
				delete(taken.IPs, a)
			}
		}
		for m, id := range taken.MACs {
			if id == oldID {
				owned[macKey(n.Name, m)] = true
				delete(taken.MACs, m)
			}
		}
		e := ep
		if err := pick(taken, &e); err != nil {
			return Endpoint{}, err
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(networkKey(n.Name)), "=", n.Revision),
			clientv3.Compare(clientv3.ModRevision(endpointKey(n.Name, oldID)), "=", resp.Kvs[0].ModRevision),
		}
		var ops []clientv3.Op
		if e.ID != oldID {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(endpointKey(n.Name, e.ID)), "=", 0))
			ops = append(ops, clientv3.OpDelete(endpointKey(n.Name, oldID)))
		}
		ops = append(ops, clientv3.OpDelete(publishedKey(n.Name, oldID)), clientv3.OpPut(endpointKey(n.Name, e.ID), encode(e)))
		newKeys := allocKeys(e)
		for _, k := range newKeys {
			if owned[k] {
				cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", oldID))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			}
			ops = append(ops, clientv3.OpPut(k, e.ID))
		}
		for _, k := range allocKeys(old) {
			if owned[k] && !slices.Contains(newKeys, k) {
				cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", oldID))
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		c, cancel = s.ctx(ctx)
		tr, err := s.cli.Txn(c).If(cmps...).Then(ops...).Else(
			clientv3.OpGet(networkKey(n.Name)),
			clientv3.OpGet(endpointKey(n.Name, e.ID)),
		).Commit()
		cancel()
		if err != nil {
			return Endpoint{}, s.wrap(err)
		}
		if tr.Succeeded {
			return e, nil
		}
		if kvs := tr.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != n.Revision {
			return Endpoint{}, fmt.Errorf("%w: network %s was removed from the cluster meanwhile", ErrNotFound, n.Name)
		}
		if kvs := tr.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 && e.ID != oldID {
			return Endpoint{}, fmt.Errorf("%w: endpoint %s exists already in network %s", ErrExists, e.ID, n.Name)
		}
		// Another host took something we picked, or oldID changed: look again.
	}
	return Endpoint{}, fmt.Errorf("%w: could not replace endpoint %s in network %s after %d tries; too many endpoints are changing at once", ErrUnavailable, oldID, n.Name, maxAttempts)
}

// UpdateEndpoint rewrites an endpoint's record with e's names (its name
// and aliases); what it holds does not change. It returns ErrNotFound if
// there is no such endpoint. A publication is not touched: Publish again.
func (s *Store) UpdateEndpoint(ctx context.Context, network string, e Endpoint) error {
	for range maxAttempts {
		c, cancel := s.ctx(ctx)
		resp, err := s.cli.Get(c, endpointKey(network, e.ID))
		cancel()
		if err != nil {
			return s.wrap(err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: no endpoint %s in network %s", ErrNotFound, e.ID, network)
		}
		var cur Endpoint
		if err := decode("endpoint", e.ID, resp.Kvs[0].Value, &cur); err != nil {
			return err
		}
		cur.Name, cur.Aliases = e.Name, e.Aliases
		c, cancel = s.ctx(ctx)
		tr, err := s.cli.Txn(c).If(
			clientv3.Compare(clientv3.ModRevision(endpointKey(network, e.ID)), "=", resp.Kvs[0].ModRevision),
		).Then(clientv3.OpPut(endpointKey(network, e.ID), encode(cur))).Commit()
		cancel()
		if err != nil {
			return s.wrap(err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("%w: endpoint %s of network %s kept changing while its names were set; try again", ErrUnavailable, e.ID, network)
}

// Reclaim records an endpoint again whose record went missing while its
// host kept it (the host was removed with `host rm` while away, then came
// back): it succeeds only if the endpoint's ID, addresses and MAC are all
// still free, so nothing handed out meanwhile is taken back.
func (s *Store) Reclaim(ctx context.Context, n Network, e Endpoint) error {
	_, err := s.CreateEndpoint(ctx, n, e, func(t Taken, got *Endpoint) error {
		for _, a := range []netip.Addr{e.IP.Addr(), e.IP6.Addr()} {
			if id, ok := t.IPs[a]; ok && a.IsValid() {
				return fmt.Errorf("%w: address %s is held by endpoint %s now", ErrTaken, a, id)
			}
		}
		if id, ok := t.MACs[strings.ToLower(e.MAC)]; ok {
			return fmt.Errorf("%w: MAC %s is held by endpoint %s now", ErrTaken, e.MAC, id)
		}
		*got = e
		return nil
	})
	return err
}

// Publish makes ep visible to other hosts under lease: they install its
// MAC entry, count its host in the network's flood list, answer ARP and
// ND for its addresses and DNS for its names, until it is unpublished or
// the lease expires.
func (s *Store) Publish(ctx context.Context, lease clientv3.LeaseID, ep Endpoint) error {
	c, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Put(c, publishedKey(ep.Network, ep.ID), encode(ep), clientv3.WithLease(lease))
	return s.wrap(err)
}

// Unpublish withdraws an endpoint's publication.
func (s *Store) Unpublish(ctx context.Context, network, id string) error {
	c, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Delete(c, publishedKey(network, id))
	return s.wrap(err)
}
