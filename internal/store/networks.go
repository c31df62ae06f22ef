package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxswitch/vxswitch/encap"
)

// maxAttempts bounds the retries of a transaction that lost a race (with
// hosts allocating at the same moment, a try loses only to a winner, so
// every retry makes progress somewhere).
const maxAttempts = 64

func networkKey(name string) string { return pNetworks + name }
func vniKey(vni uint32) string      { return pVNIs + strconv.FormatUint(uint64(vni), 10) }

// CreateNetwork creates n. With n.VNI zero it takes the lowest free VNI
// from FirstVNI up; a given VNI that is taken is refused (ErrTaken), as is
// an existing name (ErrExists). The name and the VNI are claimed in one
// transaction.
func (s *Store) CreateNetwork(ctx context.Context, n Network) (Network, error) {
	for range maxAttempts {
		vni := n.VNI
		if vni == 0 {
			var err error
			if vni, err = s.freeVNI(ctx); err != nil {
				return Network{}, err
			}
		}
		n2 := n
		n2.VNI = vni
		c, cancel := s.ctx(ctx)
		resp, err := s.cli.Txn(c).If(
			clientv3.Compare(clientv3.CreateRevision(networkKey(n.Name)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(vniKey(vni)), "=", 0),
		).Then(
			clientv3.OpPut(networkKey(n.Name), encode(n2)),
			clientv3.OpPut(vniKey(vni), n.Name),
		).Else(
			clientv3.OpGet(networkKey(n.Name)),
			clientv3.OpGet(vniKey(vni)),
		).Commit()
		cancel()
		if err != nil {
			return Network{}, s.wrap(err)
		}
		if resp.Succeeded {
			n2.Revision = resp.Header.Revision
			return n2, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			return Network{}, fmt.Errorf("%w: network %s already exists in the cluster", ErrExists, n.Name)
		}
		if n.VNI != 0 {
			owner := "another network"
			if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
				owner = "network " + string(kvs[0].Value)
			}
			return Network{}, fmt.Errorf("%w: VNI %d is already used by %s", ErrTaken, n.VNI, owner)
		}
		// Another host took the VNI we picked: pick again.
	}
	return Network{}, fmt.Errorf("%w: could not claim a VNI after %d tries; too many networks are being created at once", ErrUnavailable, maxAttempts)
}

// freeVNI returns the lowest VNI from FirstVNI up that no network holds.
func (s *Store) freeVNI(ctx context.Context) (uint32, error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(c, pVNIs, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, s.wrap(err)
	}
	used := map[uint32]bool{}
	for _, kv := range resp.Kvs {
		if v, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), pVNIs), 10, 32); err == nil {
			used[uint32(v)] = true
		}
	}
	for v := uint32(FirstVNI); v <= encap.MaxVNI; v++ {
		if !used[v] {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: every VNI from %d to %d is used", ErrFull, FirstVNI, encap.MaxVNI)
}

// Network returns the named network.
func (s *Store) Network(ctx context.Context, name string) (Network, error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(c, networkKey(name))
	if err != nil {
		return Network{}, s.wrap(err)
	}
	if len(resp.Kvs) == 0 {
		return Network{}, fmt.Errorf("%w: no network named %s in the cluster (see `vxswitch network ls`)", ErrNotFound, name)
	}
	var n Network
	if err := decode("network", name, resp.Kvs[0].Value, &n); err != nil {
		return Network{}, err
	}
	n.Revision = resp.Kvs[0].CreateRevision
	return n, nil
}

// DeleteNetwork removes the named network with its allocations, and
// refuses (ErrInUse) while any host has an endpoint on it.
func (s *Store) DeleteNetwork(ctx context.Context, name string) error {
	for range maxAttempts {
		n, err := s.Network(ctx, name)
		if err != nil {
			return err
		}
		eps := pEndpoints + name + "/"
		c, cancel := s.ctx(ctx)
		resp, err := s.cli.Txn(c).If(
			clientv3.Compare(clientv3.CreateRevision(networkKey(name)), "=", n.Revision),
			clientv3.Compare(clientv3.CreateRevision(eps), "=", 0).WithPrefix(),
		).Then(
			clientv3.OpDelete(networkKey(name)),
			clientv3.OpDelete(vniKey(n.VNI)),
			clientv3.OpDelete(pAlloc+name+"/", clientv3.WithPrefix()),
			clientv3.OpDelete(pPublished+name+"/", clientv3.WithPrefix()),
		).Else(
			clientv3.OpGet(eps, clientv3.WithPrefix()),
		).Commit()
		cancel()
		if err != nil {
			return s.wrap(err)
		}
		if resp.Succeeded {
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // the network changed under us; look again
		}
		var hosts []string
		for _, kv := range kvs {
			var e Endpoint
			if decode("endpoint", string(kv.Key), kv.Value, &e) == nil && !slices.Contains(hosts, e.Host.String()) {
				hosts = append(hosts, e.Host.String())
			}
		}
		slices.Sort(hosts)
		return fmt.Errorf("%w: network %s has %d endpoint(s), on %s; detach them first", ErrInUse, name, len(kvs), hostList(hosts))
	}
	return fmt.Errorf("%w: network %s kept changing while it was being removed; try again", ErrUnavailable, name)
}

func hostList(hosts []string) string {
	if len(hosts) == 1 {
		return "host " + hosts[0]
	}
	return "hosts " + strings.Join(hosts, ", ")
}

// vtepKey is the key form of a VTEP address (no zone: a zone names an
// interface of one host only).
func vtepKey(a netip.Addr) string { return a.WithZone("").String() }
