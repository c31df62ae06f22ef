package store

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func hostKey(vtep netip.Addr) string { return pHosts + vtepKey(vtep) }
func liveKey(vtep netip.Addr) string { return pLive + vtepKey(vtep) }

// Lease is a host's lease: while it is kept alive, the host's live/ key and
// its published endpoints stay.
type Lease struct {
	ID  clientv3.LeaseID
	TTL time.Duration
}

// Register grants a lease of ttl and announces the host under it: its
// live/ key is written (replacing one a previous run of the same host
// left, whose lease then expires with nothing on it) and its hosts/ record
// made if it is new. The caller keeps the lease alive with KeepAlive and
// publishes its endpoints under it.
func (s *Store) Register(ctx context.Context, live Live, ttl time.Duration) (Lease, error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	c, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.cli.Grant(c, secs)
	if err != nil {
		return Lease{}, s.wrap(err)
	}
	live.Lease = int64(g.ID)
	host := Host{VTEP: live.VTEP, Hostname: live.Hostname, Joined: live.Since}
	_, err = s.cli.Txn(c).If(
		clientv3.Compare(clientv3.CreateRevision(hostKey(live.VTEP)), "=", 0),
	).Then(
		clientv3.OpPut(hostKey(live.VTEP), encode(host)),
		clientv3.OpPut(liveKey(live.VTEP), encode(live), clientv3.WithLease(g.ID)),
	).Else(
		clientv3.OpPut(liveKey(live.VTEP), encode(live), clientv3.WithLease(g.ID)),
	).Commit()
	if err != nil {
		// Do not leave a lease behind that nobody keeps alive.
		rc, rcancel := s.ctx(context.Background())
		s.cli.Revoke(rc, g.ID)
		rcancel()
		return Lease{}, s.wrap(err)
	}
	return Lease{ID: g.ID, TTL: time.Duration(g.TTL) * time.Second}, nil
}

// KeepAlive keeps l alive until ctx is done. The channel delivers a
// response about every TTL/3 and is closed when the lease is lost (it
// expired: etcd was unreachable for a TTL) or ctx is done.
func (s *Store) KeepAlive(ctx context.Context, l Lease) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	ch, err := s.cli.KeepAlive(ctx, l.ID)
	return ch, s.wrap(err)
}

// Revoke ends a lease at once, withdrawing everything published under it.
func (s *Store) Revoke(ctx context.Context, l Lease) error {
	c, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Revoke(c, l.ID)
	return s.wrap(err)
}

// RemoveHost releases everything of a host that will not come back: every
// endpoint it had (records, addresses, MACs) and its hosts/ record. It is
// refused (ErrInUse) while the host is alive, and returns ErrNotFound for
// a host the cluster does not know.
func (s *Store) RemoveHost(ctx context.Context, vtep netip.Addr) (released int, err error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(c).Then(
		clientv3.OpGet(hostKey(vtep)),
		clientv3.OpGet(liveKey(vtep)),
		clientv3.OpGet(pEndpoints, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, s.wrap(err)
	}
	if len(resp.Responses[1].GetResponseRange().Kvs) > 0 {
		return 0, fmt.Errorf("%w: host %s is alive (it holds a lease); stop its daemon first, or detach its endpoints there", ErrInUse, vtep)
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return 0, fmt.Errorf("%w: no host %s in the cluster (see `vxswitch host ls`)", ErrNotFound, vtep)
	}
	notAlive := clientv3.Compare(clientv3.CreateRevision(liveKey(vtep)), "=", 0)
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		var e Endpoint
		if decode("endpoint", string(kv.Key), kv.Value, &e) != nil || e.Host.WithZone("") != vtep.WithZone("") {
			continue
		}
		ops, cmps, err := s.deleteEndpointOps(c, e.Network, e.ID)
		if err != nil {
			return released, err
		}
		r, err := s.cli.Txn(c).If(append(cmps, notAlive)...).Then(ops...).Commit()
		if err != nil {
			return released, s.wrap(err)
		}
		if !r.Succeeded {
			return released, fmt.Errorf("%w: host %s came back, or its endpoint %s changed, while it was being removed; look again with `vxswitch host ls`", ErrInUse, vtep, e.ID)
		}
		released++
	}
	r, err := s.cli.Txn(c).If(notAlive).Then(clientv3.OpDelete(hostKey(vtep))).Commit()
	if err != nil {
		return released, s.wrap(err)
	}
	if !r.Succeeded {
		return released, fmt.Errorf("%w: host %s came back while it was being removed", ErrInUse, vtep)
	}
	return released, nil
}
