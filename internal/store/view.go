package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// cache is a copy of every key under Prefix at one revision.
type cache struct {
	rev int64
	kvs map[string]*mvccpb.KeyValue
}

// list reads every key under Prefix in one request, at one revision.
func (s *Store) list(ctx context.Context) (*cache, error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(c, Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, s.wrap(err)
	}
	ca := &cache{rev: resp.Header.Revision, kvs: make(map[string]*mvccpb.KeyValue, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		ca.kvs[string(kv.Key)] = kv
	}
	return ca, nil
}

func (ca *cache) apply(evs []*clientv3.Event) {
	for _, ev := range evs {
		switch ev.Type {
		case clientv3.EventTypePut:
			ca.kvs[string(ev.Kv.Key)] = ev.Kv
		case clientv3.EventTypeDelete:
			delete(ca.kvs, string(ev.Kv.Key))
		}
	}
}

// view decodes the cache. Records that do not decode are skipped and
// reported through bad.
func (ca *cache) view(bad func(key string, err error)) *View {
	v := &View{
		Revision:  ca.rev,
		Networks:  map[string]Network{},
		Endpoints: map[string]map[string]Endpoint{},
		Published: map[string]map[string]Endpoint{},
		Hosts:     map[netip.Addr]Host{},
		Live:      map[netip.Addr]Live{},
	}
	for key, kv := range ca.kvs {
		var err error
		switch {
		case strings.HasPrefix(key, pNetworks):
			var n Network
			if err = decode("network", key, kv.Value, &n); err == nil {
				n.Revision = kv.CreateRevision
				v.Networks[n.Name] = n
			}
		case strings.HasPrefix(key, pEndpoints), strings.HasPrefix(key, pPublished):
			var e Endpoint
			if err = decode("endpoint", key, kv.Value, &e); err == nil {
				m := v.Endpoints
				if strings.HasPrefix(key, pPublished) {
					m = v.Published
				}
				if m[e.Network] == nil {
					m[e.Network] = map[string]Endpoint{}
				}
				m[e.Network][e.ID] = e
			}
		case strings.HasPrefix(key, pHosts):
			var h Host
			if err = decode("host", key, kv.Value, &h); err == nil {
				v.Hosts[h.VTEP] = h
			}
		case strings.HasPrefix(key, pLive):
			var l Live
			if err = decode("live host", key, kv.Value, &l); err == nil {
				v.Live[l.VTEP] = l
			}
		}
		if err != nil && bad != nil {
			bad(key, err)
		}
	}
	// A publication of a network that is gone (removed while the owner
	// was away) means nothing.
	for n := range v.Published {
		if _, ok := v.Networks[n]; !ok {
			delete(v.Published, n)
		}
	}
	return v
}

// View reads the whole cluster at one revision.
func (s *Store) View(ctx context.Context) (*View, error) {
	ca, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	return ca.view(s.badRecord), nil
}

func (s *Store) badRecord(key string, err error) {
	s.log.Warn("ignoring a record in the cluster store that does not decode", zap.String("key", key), zap.Error(err))
}

// FollowConfig configures Follow.
type FollowConfig struct {
	// OnView is called with every new view, from Follow's goroutine, one
	// at a time: after every full listing and after every batch of watch
	// events.
	OnView func(*View)
	// OnError is called when listing fails (etcd unreachable) or the
	// watch breaks; Follow lists again with backoff. It is called with
	// nil after the next successful listing.
	OnError func(error)
	// Resync, when it receives, makes Follow list everything again (the
	// daemon sends after it reconnects).
	Resync <-chan struct{}
}

// Backoff bounds for listing again after a failure.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Follow keeps a view of the store current until ctx is done: it lists
// every key, watches from the revision after the listing, and lists again
// when the watch breaks, history was compacted, or Resync asks. A watch
// is a hint and the listing the truth: OnView always gets a whole view,
// so the caller converges on it without depending on having seen every
// event.
func (s *Store) Follow(ctx context.Context, cfg FollowConfig) {
	backoff := minBackoff
	failing := false
	for ctx.Err() == nil {
		ca, err := s.list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failing = true
			if cfg.OnError != nil {
				cfg.OnError(err)
			}
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		if failing && cfg.OnError != nil {
			cfg.OnError(nil)
		}
		failing, backoff = false, minBackoff
		cfg.OnView(ca.view(s.badRecord))
		if err := s.watch(ctx, ca, cfg); err != nil && ctx.Err() == nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				s.log.Info("cluster store history compacted past what this host saw; listing again", zap.Int64("revision", ca.rev))
			} else if cfg.OnError != nil {
				failing = true
				cfg.OnError(s.wrap(err))
			}
			if !sleep(ctx, jitter(minBackoff)) {
				return
			}
		}
	}
}

// watch applies watch events to ca until the watch breaks (its error),
// ctx is done or a resync is asked (nil).
func (s *Store) watch(ctx context.Context, ca *cache, cfg FollowConfig) error {
	// With RequireLeader a member cut off from its cluster ends the
	// watch instead of going quiet, and the next listing finds a member
	// that has a leader.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(ca.rev+1))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cfg.Resync:
			return nil
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				return err
			}
			changed := s.applyResponse(ca, wr)
			// Take every response already queued before building a
			// view: one view per burst, not per event.
		drain:
			for {
				select {
				case wr, ok := <-wch:
					if !ok {
						return errors.New("watch closed")
					}
					if err := wr.Err(); err != nil {
						return err
					}
					changed = s.applyResponse(ca, wr) || changed
				default:
					break drain
				}
			}
			if changed {
				cfg.OnView(ca.view(s.badRecord))
			}
		}
	}
}

func (s *Store) applyResponse(ca *cache, wr clientv3.WatchResponse) bool {
	if wr.Header.Revision > ca.rev {
		ca.rev = wr.Header.Revision
	}
	ca.apply(wr.Events)
	return len(wr.Events) > 0
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
