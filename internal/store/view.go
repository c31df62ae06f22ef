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

// cache is a copy of every key under Prefix at one revision, each value
// decoded once, when it arrives: a view is then built from decoded
// records, so that a change costs one decode and not one per key (at 16
// hosts, decoding every key per event was half of a daemon's CPU).
type cache struct {
	rev  int64
	recs map[string]record
}

// record is one decoded key: exactly one field is set, or err.
type record struct {
	net  *Network
	ep   *Endpoint
	host *Host
	live *Live
	err  error
}

func newCache(rev int64) *cache { return &cache{rev: rev, recs: map[string]record{}} }

// list reads every key under Prefix in one request, at one revision.
func (s *Store) list(ctx context.Context) (*cache, error) {
	c, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(c, Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, s.wrap(err)
	}
	ca := newCache(resp.Header.Revision)
	for _, kv := range resp.Kvs {
		ca.put(kv, s.badRecord)
	}
	return ca, nil
}

// put decodes kv into the cache; a record that does not decode is
// reported to bad (once, as it arrives) and left out of views.
func (ca *cache) put(kv *mvccpb.KeyValue, bad func(key string, err error)) {
	key := string(kv.Key)
	var r record
	switch {
	case strings.HasPrefix(key, pNetworks):
		var n Network
		if r.err = decode("network", key, kv.Value, &n); r.err == nil {
			n.Revision = kv.CreateRevision
			r.net = &n
		}
	case strings.HasPrefix(key, pEndpoints), strings.HasPrefix(key, pPublished):
		var e Endpoint
		if r.err = decode("endpoint", key, kv.Value, &e); r.err == nil {
			r.ep = &e
		}
	case strings.HasPrefix(key, pHosts):
		var h Host
		if r.err = decode("host", key, kv.Value, &h); r.err == nil {
			r.host = &h
		}
	case strings.HasPrefix(key, pLive):
		var l Live
		if r.err = decode("live host", key, kv.Value, &l); r.err == nil {
			r.live = &l
		}
	default:
		return // vnis/ and alloc/: nothing a view shows
	}
	if r.err != nil && bad != nil {
		bad(key, r.err)
	}
	ca.recs[key] = r
}

func (ca *cache) apply(evs []*clientv3.Event, bad func(key string, err error)) {
	for _, ev := range evs {
		switch ev.Type {
		case clientv3.EventTypePut:
			ca.put(ev.Kv, bad)
		case clientv3.EventTypeDelete:
			delete(ca.recs, string(ev.Kv.Key))
		}
	}
}

// view builds a View from the cache, without the records that did not
// decode.
func (ca *cache) view() *View {
	v := &View{
		Revision:  ca.rev,
		Networks:  map[string]Network{},
		Endpoints: map[string]map[string]Endpoint{},
		Published: map[string]map[string]Endpoint{},
		Hosts:     map[netip.Addr]Host{},
		Live:      map[netip.Addr]Live{},
	}
	for key, r := range ca.recs {
		switch {
		case r.err != nil:
		case r.net != nil:
			v.Networks[r.net.Name] = *r.net
		case r.ep != nil:
			m := v.Endpoints
			if strings.HasPrefix(key, pPublished) {
				m = v.Published
			}
			if m[r.ep.Network] == nil {
				m[r.ep.Network] = map[string]Endpoint{}
			}
			m[r.ep.Network][r.ep.ID] = *r.ep
		case r.host != nil:
			v.Hosts[r.host.VTEP] = *r.host
		case r.live != nil:
			v.Live[r.live.VTEP] = *r.live
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
	return ca.view(), nil
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
		cfg.OnView(ca.view())
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
				cfg.OnView(ca.view())
			}
		}
	}
}

func (s *Store) applyResponse(ca *cache, wr clientv3.WatchResponse) bool {
	if wr.Header.Revision > ca.rev {
		ca.rev = wr.Header.Revision
	}
	ca.apply(wr.Events, s.badRecord)
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
