package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/store"
)

// StoreConfig connects a daemon to a cluster store.
type StoreConfig struct {
	// URL is etcd://HOST:PORT[,HOST:PORT...]; empty means no store.
	URL string
	// CACert, Cert and Key: TLS to etcd (see store.Config).
	CACert, Cert, Key string
	// Advertise is the VTEP other hosts send to; invalid means the
	// daemon's VTEP.
	Advertise netip.Addr
	// TTL of the host's lease: how long after this host stops answering
	// (a crash, a partition) the others drop its endpoints. 0 means
	// DefaultStoreTTL.
	TTL time.Duration
	// RequestTimeout bounds each store request (0: the store's default).
	RequestTimeout time.Duration
}

// DefaultStoreTTL is the host lease's default TTL.
const DefaultStoreTTL = 10 * time.Second

// cluster is the daemon's side of the cluster store: the host's session
// (lease, registration, publishing its endpoints), the follower that
// keeps a view of the store current, and the reconciler that turns each
// view into local effects. It is level triggered: each view is the whole
// truth, and every network converges on it (MAC entries of source store,
// the flood list, the ARP/ND proxy's table and DNS answers) whatever
// events came before.
//
// The datapath never waits for it: while etcd is away the switch keeps
// forwarding on the last view.
type cluster struct {
	d         *Daemon
	st        *store.Store
	advertise netip.Addr
	ttl       time.Duration
	log       *zap.Logger
	resync    chan struct{}
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	stopOnce  sync.Once

	// Guarded by d.mu.
	view  *store.View // the last view; never nil once New returned
	lease store.Lease // zero while not registered

	// Guarded by cmu: the view cache's pending write.
	cmu        sync.Mutex
	pending    *viewCache
	cacheTimer *time.Timer

	// Guarded by smu: the link's state, for logs and `vxswitch info`.
	smu       sync.Mutex
	reachable bool
	since     time.Time
	lastErr   error
}

// newCluster connects to the store; it does not wait for etcd.
func newCluster(d *Daemon) (*cluster, error) {
	cfg := d.cfg.Store
	adv := cfg.Advertise
	if !adv.IsValid() {
		adv = d.cfg.VTEP
	}
	adv = adv.Unmap().WithZone("")
	if adv.Is4() != d.cfg.VTEP.Is4() {
		return nil, fmt.Errorf("--advertise %s and --vtep %s: one is IPv4 and the other IPv6", adv, d.cfg.VTEP)
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultStoreTTL
	}
	if ttl < 2*time.Second {
		return nil, fmt.Errorf("--store-ttl %v is too short: at least 2s (the lease is renewed every third of it)", ttl)
	}
	st, err := store.Open(store.Config{URL: cfg.URL, CACert: cfg.CACert, Cert: cfg.Cert, Key: cfg.Key,
		RequestTimeout: cfg.RequestTimeout, Netns: d.cfg.Netns, Logger: d.log})
	if err != nil {
		return nil, err
	}
	return &cluster{d: d, st: st, advertise: adv, ttl: ttl, log: d.log.With(zap.String("store", cfg.URL)),
		resync: make(chan struct{}, 1), view: loadCachedView(d.cfg.StateDir), reachable: true, since: time.Now()}, nil
}

func emptyView() *store.View {
	return &store.View{Networks: map[string]store.Network{}, Endpoints: map[string]map[string]store.Endpoint{},
		Published: map[string]map[string]store.Endpoint{}, Hosts: map[netip.Addr]store.Host{}, Live: map[netip.Addr]store.Live{}}
}

// start runs the session and the follower until stop.
func (c *cluster) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.session(ctx)
	}()
	go func() {
		defer c.wg.Done()
		c.st.Follow(ctx, store.FollowConfig{OnView: c.apply, OnError: c.followError, Resync: c.resync})
	}()
}

// stop ends the session and the follower and closes the connection. The
// lease is left to expire (see store.Close): must be called without d.mu.
func (c *cluster) stop() {
	c.stopOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
			c.wg.Wait()
		}
		c.st.Close()
		c.cmu.Lock()
		if c.cacheTimer != nil && c.cacheTimer.Stop() {
			c.cacheTimer = nil
			c.cmu.Unlock()
			c.writeCache() // the last view, not lost to a quick restart
			return
		}
		c.cmu.Unlock()
	})
}

// session registers the host under a lease, publishes its endpoints and
// keeps the lease alive; when the lease is lost (etcd away for longer
// than the TTL) it registers again, with backoff while etcd is away.
func (c *cluster) session(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		lease, err := c.st.Register(ctx, c.live(), c.ttl)
		if err == nil {
			if err = c.registered(ctx, lease); err != nil {
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				c.st.Revoke(rctx, lease)
				cancel()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.setReachable(false, err)
			if !sleepCtx(ctx, backoff/2+rand.N(backoff/2)) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		c.setReachable(true, nil)
		c.keepAlive(ctx, lease)
		c.d.mu.Lock()
		c.lease = store.Lease{}
		c.d.mu.Unlock()
		if ctx.Err() == nil {
			c.log.Warn("cluster store lease lost (etcd was unreachable for longer than its TTL); registering again",
				zap.Duration("ttl", c.ttl))
		}
	}
}

// live is what this host announces.
func (c *cluster) live() store.Live {
	host, _ := os.Hostname()
	return store.Live{VTEP: c.advertise, Hostname: host, PID: os.Getpid(), Version: c.d.cfg.Version, Since: time.Now().UTC()}
}

// keepAlive keeps lease alive until it is lost or ctx is done, and marks
// the store unreachable when keep-alive answers stop coming.
func (c *cluster) keepAlive(ctx context.Context, lease store.Lease) {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := c.st.KeepAlive(kctx, lease)
	if err != nil {
		c.setReachable(false, err)
		return
	}
	// Answers come every TTL/3; two missed ones mean etcd is away.
	late := 2 * lease.TTL / 3
	tick := time.NewTicker(lease.TTL / 6)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-ch:
			if !ok {
				return
			}
			if r != nil {
				last = time.Now()
				c.setReachable(true, nil)
			}
		case <-tick.C:
			if since := time.Since(last); since > late {
				c.setReachable(false, fmt.Errorf("no answer to the lease keep-alive for %v", since.Truncate(time.Second)))
			}
		}
	}
}

// registered makes the store agree with this host under a new lease: each
// local endpoint's record is there (reclaimed if it went missing, as after
// a `host rm` while this host was away) and published under the lease;
// records and publications of this host that it no longer has (a crash
// between the store and the state file) are released. Nothing is
// duplicated: an endpoint is published under its ID, replacing what a
// previous run published.
func (c *cluster) registered(ctx context.Context, lease store.Lease) error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	view, err := c.st.View(ctx)
	if err != nil {
		return err
	}
	// local: this host's endpoints (records it keeps); joined: those it
	// publishes.
	local := map[string]map[string]bool{}
	joined := map[string]map[string]bool{}
	var published int
	for _, n := range d.sortedNets() {
		if !n.Cluster {
			continue
		}
		local[n.Name], joined[n.Name] = map[string]bool{}, map[string]bool{}
		sn, netOK := view.Networks[n.Name]
		for _, ep := range n.Endpoints {
			local[n.Name][ep.ID] = true
			rec := ep.record(n.Name, c.advertise)
			if !netOK || sn.Revision != n.Revision {
				n.epProbs[ep.ID] = fmt.Sprintf("network %s is no longer in the cluster store; detach the endpoint", n.Name)
				continue
			}
			if _, ok := view.Endpoints[n.Name][ep.ID]; !ok {
				if err := c.st.Reclaim(ctx, sn, rec); err != nil {
					if errors.Is(err, store.ErrUnavailable) {
						return err
					}
					n.epProbs[ep.ID] = fmt.Sprintf("its record was released from the cluster store (host rm) and cannot be taken back: %v; detach it", err)
					c.log.Error("cannot reclaim an endpoint", zap.String("network", n.Name), zap.String("id", ep.ID), zap.Error(err))
					continue
				}
				c.log.Info("endpoint reclaimed in the cluster store", zap.String("network", n.Name), zap.String("id", ep.ID), zap.Stringer("ip", ep.IP))
			}
			delete(n.epProbs, ep.ID)
			if !ep.joined() {
				continue // created or reserved: published once it joins
			}
			if err := c.st.Publish(ctx, lease.ID, rec); err != nil {
				return err
			}
			joined[n.Name][ep.ID] = true
			published++
		}
	}
	released := 0
	for netName, eps := range view.Endpoints {
		for id, e := range eps {
			if e.Host != c.advertise || local[netName][id] {
				continue
			}
			if err := c.st.DeleteEndpoint(ctx, netName, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			c.log.Info("released an endpoint this host no longer has", zap.String("network", netName), zap.String("id", id), zap.Stringer("ip", e.IP))
			released++
		}
	}
	for netName, eps := range view.Published {
		for id, e := range eps {
			if e.Host == c.advertise && !joined[netName][id] {
				if err := c.st.Unpublish(ctx, netName, id); err != nil {
					return err
				}
			}
		}
	}
	c.lease = lease
	c.log.Info("registered in the cluster store", zap.Stringer("vtep", c.advertise), zap.String("lease", strconv.FormatInt(int64(lease.ID), 16)),
		zap.Duration("ttl", lease.TTL), zap.Int("published", published), zap.Int("released", released))
	return nil
}

// publish publishes a new endpoint under the current lease. Without one
// (etcd is away) the next registration publishes it.
func (c *cluster) publish(ctx context.Context, n *network, ep epState) {
	if c.lease.ID == 0 {
		return
	}
	if err := c.st.Publish(ctx, c.lease.ID, ep.record(n.Name, c.advertise)); err != nil {
		c.log.Warn("cannot publish the endpoint now; it is published when the store answers again",
			zap.String("network", n.Name), zap.String("id", ep.ID), zap.Error(err))
		return
	}
	c.log.Info("endpoint published to the cluster store", zap.String("network", n.Name), zap.String("id", ep.ID), zap.String("mac", ep.MAC))
}

// record is the store's form of a local endpoint.
func (e epState) record(network string, host netip.Addr) store.Endpoint {
	return store.Endpoint{ID: e.ID, Network: network, Name: e.Name, Aliases: e.Aliases, Host: host, MAC: e.MAC, IP: e.IP, IP6: e.IP6}
}

// followError is the follower's report: etcd is away, or back (nil).
func (c *cluster) followError(err error) { c.setReachable(err == nil, err) }

// setReachable records the link's state and logs only its changes, so an
// outage is one line however long it lasts. Coming back asks the
// follower to list everything again.
func (c *cluster) setReachable(ok bool, err error) {
	c.smu.Lock()
	changed := c.reachable != ok
	if changed {
		c.reachable, c.since = ok, time.Now()
	}
	if err != nil {
		c.lastErr = err
	}
	c.smu.Unlock()
	if !changed {
		return
	}
	if ok {
		c.log.Info("cluster store reachable again; resynchronising")
		select {
		case c.resync <- struct{}{}:
		default:
		}
		return
	}
	c.log.Warn("cluster store unreachable; forwarding on the last known state and retrying", zap.Error(err))
}

// info is the link's state for the API.
func (c *cluster) info() *api.StoreInfo {
	c.smu.Lock()
	defer c.smu.Unlock()
	si := &api.StoreInfo{URL: c.st.URL(), Advertise: c.advertise.String(), State: "connected", Since: c.since.UTC().Format(time.RFC3339)}
	if !c.reachable {
		si.State = "unreachable"
		if c.lastErr != nil {
			si.Error = c.lastErr.Error()
		}
	}
	if c.lease.ID != 0 {
		si.Lease = strconv.FormatInt(int64(c.lease.ID), 16)
	}
	return si
}

// stale says, while the store is unreachable, that what is shown is what
// this host last saw.
func (c *cluster) stale() string {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.reachable {
		return ""
	}
	return fmt.Sprintf("the cluster store is unreachable since %s; this is what this host last saw", c.since.UTC().Format(time.RFC3339))
}

// apply is the follower's callback: converge every local network on v.
func (c *cluster) apply(v *store.View) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c.logHosts(c.view, v)
	c.view = v
	for _, n := range d.sortedNets() {
		if !n.Cluster {
			continue
		}
		sn, ok := v.Networks[n.Name]
		if ok && sn.Revision == n.Revision {
			d.syncNetwork(n)
			continue
		}
		// Removed from the store (or removed and made again). With
		// endpoints here that cannot happen (rm is refused while any host
		// has one) unless this host was removed with `host rm` while
		// away: the endpoints stay, with a problem, until detached.
		if len(n.Endpoints) > 0 {
			d.syncNetwork(n)
			continue
		}
		c.log.Info("network left the cluster store; dropping this host's copy", zap.String("network", n.Name))
		d.dropNetwork(n)
	}
	c.cacheView()
}

// remote returns what the view says of network n beyond this host: the
// published endpoints of other hosts.
func (c *cluster) remote(n *network) []store.Endpoint {
	sn, ok := c.view.Networks[n.Name]
	if !ok || sn.Revision != n.Revision {
		return nil
	}
	var out []store.Endpoint
	for _, e := range c.view.SortedPublished(n.Name) {
		if e.Host != c.advertise {
			out = append(out, e)
		}
	}
	return out
}

// hosts lists the cluster's hosts from a fresh view (or the last one
// while the store is unreachable).
func (c *cluster) hosts(ctx context.Context) []api.Host {
	v := c.freshView(ctx)
	count := map[netip.Addr]int{}
	for _, eps := range v.Endpoints {
		for _, e := range eps {
			count[e.Host]++
		}
	}
	var out []api.Host
	for vtep, h := range v.Hosts {
		ah := api.Host{VTEP: vtep.String(), Hostname: h.Hostname, State: "down", Self: vtep == c.advertise,
			Endpoints: count[vtep], Joined: h.Joined.UTC().Format(time.RFC3339)}
		if l, ok := v.Live[vtep]; ok {
			ah.State, ah.Version, ah.Since = "alive", l.Version, l.Since.UTC().Format(time.RFC3339)
			if l.Hostname != "" {
				ah.Hostname = l.Hostname
			}
		}
		out = append(out, ah)
	}
	slices.SortFunc(out, func(a, b api.Host) int {
		return netip.MustParseAddr(a.VTEP).Compare(netip.MustParseAddr(b.VTEP))
	})
	return out
}

// freshView reads the store now, for commands that show the cluster; while
// etcd is away it returns the follower's last view. d.mu must be held.
func (c *cluster) freshView(ctx context.Context) *store.View {
	v, err := c.st.View(ctx)
	if err != nil {
		c.setReachable(false, err)
		return c.view
	}
	return v
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// removeHost releases everything of a host that will not come back.
func (d *Daemon) removeHost(ctx context.Context, vtep string) error {
	if d.cluster == nil {
		return bad("this daemon has no cluster store (start it with --store etcd://HOST:PORT)")
	}
	a, err := netip.ParseAddr(vtep)
	if err != nil {
		return bad("bad VTEP %q: want the host's address as `vxswitch host ls` shows it", vtep)
	}
	a = a.Unmap().WithZone("")
	if a == d.cluster.advertise {
		return conflict("%s is this host; detach its endpoints here instead", a)
	}
	released, err := d.cluster.st.RemoveHost(ctx, a)
	if err != nil {
		return storeErr(err)
	}
	d.log.Info("host removed from the cluster store", zap.Stringer("vtep", a), zap.Int("endpoints_released", released))
	return nil
}

// viewCacheName keeps, under the state dir, what the last view said of
// the networks this host has (their records and the other hosts'
// published endpoints), so that a daemon restarted while etcd is away
// still forwards to the other hosts instead of starting with empty
// tables. It is a cache: written at most every viewCacheEvery, never
// fsynced, and replaced by the first view the store gives.
const (
	viewCacheName  = "store-view.json"
	viewCacheEvery = time.Second
)

type viewCache struct {
	Networks []cachedNetwork `json:"networks"`
}

type cachedNetwork struct {
	Network   store.Network    `json:"network"`
	Revision  int64            `json:"revision"`
	Published []store.Endpoint `json:"published"`
}

// cacheView schedules a write of the cache for the networks this host
// has. d.mu must be held.
func (c *cluster) cacheView() {
	var vc viewCache
	for _, n := range c.d.sortedNets() {
		sn, ok := c.view.Networks[n.Name]
		if !n.Cluster || !ok {
			continue
		}
		vc.Networks = append(vc.Networks, cachedNetwork{Network: sn, Revision: sn.Revision, Published: c.view.SortedPublished(n.Name)})
	}
	c.cmu.Lock()
	c.pending = &vc
	if c.cacheTimer == nil {
		c.cacheTimer = time.AfterFunc(viewCacheEvery, c.writeCache)
	}
	c.cmu.Unlock()
}

func (c *cluster) writeCache() {
	c.cmu.Lock()
	vc := c.pending
	c.pending, c.cacheTimer = nil, nil
	c.cmu.Unlock()
	if vc == nil {
		return
	}
	data, err := json.Marshal(vc)
	if err == nil {
		err = replaceFile(filepath.Join(c.d.cfg.StateDir, viewCacheName), data, 0o600)
	}
	if err != nil {
		c.log.Warn("cannot write the cache of the store's view", zap.Error(err))
	}
}

// loadCachedView is the view the last run cached, marked as old (revision
// 0), or an empty view.
func loadCachedView(stateDir string) *store.View {
	v := emptyView()
	os.Remove(filepath.Join(stateDir, viewCacheName+".tmp")) // a write a crash cut short
	data, err := os.ReadFile(filepath.Join(stateDir, viewCacheName))
	if err != nil {
		return v
	}
	var vc viewCache
	if json.Unmarshal(data, &vc) != nil {
		return v
	}
	for _, cn := range vc.Networks {
		n := cn.Network
		n.Revision = cn.Revision
		v.Networks[n.Name] = n
		eps := map[string]store.Endpoint{}
		for _, e := range cn.Published {
			eps[e.ID] = e
		}
		v.Published[n.Name] = eps
		v.Endpoints[n.Name] = eps // what inspect shows until the store answers
	}
	return v
}
