package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// Endpoints whose container goes without a detach, a CNI DEL or a Docker
// Leave (a runtime killed with its containers, `ip netns del` of a
// namespace nobody detached): the watcher notices them and releases them
// as a detach would, on every host (address, MAC, names, store records)
// and its veth pair.
//
// When a network namespace is destroyed the kernel deletes the veth pairs
// with an end in it, so the bridge end of a gone container's pair
// disappears from its network's namespace. The watcher subscribes to
// link deletions (RTM_DELLINK) in every network namespace with joined
// endpoints and, on the deletion of one of their veths, looks at every
// joined endpoint of this host. One whose veth is still in its network's
// namespace is not gone (the pair's other end holds its namespace). One
// whose veth went is
//
//   - plumbed into a namespace (attach, CNI): gone if the namespace file is
//     gone or names another namespace now; if it is still there the veth
//     was deleted from outside and is made again (on an --egress network
//     only the main pair, and the egress pair if it went too). If that
//     fails it is tried again only on the next fallback look, not on the
//     deletion its own cleanup causes.
//   - handed off to a runtime (Docker's sandbox): gone, since only the
//     sandbox's destruction (or the network namespace's) deletes it while
//     it is joined.
//
// Created or reserved endpoints have no veth and are never gone; one that
// left keeps its pair until it is deleted but is not joined, so neither
// is it. Operations delete veths under d.mu after taking the endpoint
// off the list (or marking it not joined), so the event of a deliberate
// detach finds nothing to release: the operation wins.
//
// The kernel destroys namespaces asynchronously, so nothing here waits
// with a timer for that: the event comes when it is done. The same look
// runs at start (after restore, whose namespaces may have gone while the
// daemon was down), after subscribing to a namespace not watched before
// (a deletion before it was no event), every goneCheckEvery as a fallback
// (a missed event: the subscription's buffer overflowed), and every
// goneRetryEvery while an endpoint found gone could not be released (the
// store is away): until then `inspect` shows it as state "gone" with the
// time it was found so. The look reads namespaces without d.mu and takes
// it per endpoint it acts on; the first release that fails for the store
// ends the pass's releases (the rest are marked gone), so a store that
// went away unnoticed costs one store timeout per pass, not one per
// endpoint. Store events do not start a look: only a change of this
// host's set of veths refreshes the subscriptions.

// goneCheckEvery is the fallback look's period.
const goneCheckEvery = 30 * time.Second

// goneRetryEvery is how soon a gone endpoint that could not be released
// is tried again.
const goneRetryEvery = 5 * time.Second

// goneWatch is the watcher's state in the Daemon.
type goneWatch struct {
	// kick asks the watcher to look now; resub to refresh its
	// subscriptions (looking only if it subscribed to a namespace it did
	// not watch). Nil until the watcher runs.
	kick, resub chan struct{}
	// marks are the endpoints found gone and not released yet, as the
	// last look found them. Guarded by d.mu.
	marks map[goneKey]goneMark
	// veths are this host's joined endpoints' veths by network, as
	// syncNetwork last saw them. Guarded by d.mu.
	veths map[string][]string
	// names is the union of veths: a deleted link kicks only if it is
	// one of them. Read without d.mu by the subscriptions.
	names atomic.Pointer[map[string]bool]
	// backoff holds the endpoints whose veth could not be made again:
	// tried again only on the fallback look. The watcher's own.
	backoff map[goneKey]bool
}

type goneKey struct{ network, id string }

type goneMark struct {
	since time.Time
	err   string // why the last release failed
}

// send asks without blocking; a request already queued stands for it.
func send(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sawVeths records network n's joined endpoints' veths (syncNetwork) and
// has the watcher refresh its subscriptions if they changed. d.mu is
// held.
func (g *goneWatch) sawVeths(n *network) {
	var vs []string
	for _, e := range n.Endpoints {
		if e.joined() && e.Veth != "" {
			vs = append(vs, e.Veth)
		}
	}
	slices.Sort(vs)
	if old, ok := g.veths[n.Name]; ok && slices.Equal(old, vs) {
		return
	}
	if g.veths == nil {
		g.veths = map[string][]string{}
	}
	g.veths[n.Name] = vs
	g.setNames()
	send(g.resub)
}

// setNames makes names the union of veths. d.mu is held.
func (g *goneWatch) setNames() {
	names := map[string]bool{}
	for _, vs := range g.veths {
		for _, v := range vs {
			names[v] = true
		}
	}
	g.names.Store(&names)
}

// known reports whether a link named name is one of the endpoints' veths.
func (g *goneWatch) known(name string) bool {
	names := g.names.Load()
	return names != nil && (*names)[name]
}

// goneSince reports when endpoint id of network was found gone, if it
// was and is not released yet. d.mu is held.
func (g *goneWatch) goneSince(network, id string) (time.Time, bool) {
	m, ok := g.marks[goneKey{network, id}]
	return m.since, ok
}

// linkSub is a subscription to link changes in one network namespace.
type linkSub struct {
	ino  uint64        // the namespace's, when subscribed
	done chan struct{} // closing it closes the socket
	dead chan struct{} // closed when the subscription ended
}

// watchGone runs the watcher until the daemon stops.
func (d *Daemon) watchGone() {
	kick, resub := make(chan struct{}, 1), make(chan struct{}, 1)
	d.mu.Lock()
	d.gone.kick, d.gone.resub = kick, resub
	d.gone.marks = map[goneKey]goneMark{}
	d.gone.backoff = map[goneKey]bool{}
	d.mu.Unlock()
	subs := map[string]*linkSub{}
	defer func() {
		for _, s := range subs {
			close(s.done)
		}
	}()
	tick := time.NewTicker(goneCheckEvery)
	defer tick.Stop()
	var retry <-chan time.Time
	resubscribe, look, periodic := true, true, true
	for {
		// Subscribed before looking: a link deleted after the look is
		// an event.
		if resubscribe && d.subscribeLinks(subs) {
			look = true
		}
		if look {
			retry = nil
			if d.checkGone(periodic) {
				retry = time.After(goneRetryEvery)
			}
		}
		resubscribe, look, periodic = false, false, false
		select {
		case <-d.stopping:
			return
		case <-kick:
			look = true
		case <-resub:
			resubscribe = true
		case <-tick.C:
			resubscribe, look, periodic = true, true, true
		case <-retry:
			look = true
		}
	}
}

// subscribeLinks makes subs the subscriptions the watcher needs: one per
// network namespace that holds veths of this host's endpoints. Each
// subscription pins its namespace (a netlink socket holds a reference),
// so one that is no longer needed is closed at once. Deletions of known
// veths kick. It reports whether it subscribed to a namespace anew.
func (d *Daemon) subscribeLinks(subs map[string]*linkSub) (fresh bool) {
	want := map[string]bool{}
	d.mu.Lock()
	g := &d.gone
	for name := range g.veths {
		if _, ok := d.nets[name]; !ok {
			delete(g.veths, name) // deleted
		}
	}
	for _, n := range d.nets {
		if slices.ContainsFunc(n.Endpoints, func(e epState) bool { return e.Veth != "" }) {
			want[n.netns] = true
		}
	}
	g.setNames()
	d.mu.Unlock()
	for path, s := range subs {
		ino, err := nsutil.Inode(path)
		select {
		case <-s.dead:
		default:
			if want[path] && err == nil && ino == s.ino {
				continue
			}
		}
		close(s.done)
		delete(subs, path)
	}
	for path := range want {
		if _, ok := subs[path]; ok {
			continue
		}
		s, err := subscribeLinks(path, g)
		if err != nil {
			// The namespace is not there (yet, or any more): the look
			// after this handles its endpoints, and the next tick tries
			// again.
			d.log.Debug("cannot watch a network's namespace for gone endpoints", zap.String("netns", path), zap.Error(err))
			fresh = true
			continue
		}
		subs[path] = s
		fresh = true
	}
	return fresh
}

func subscribeLinks(path string, g *goneWatch) (*linkSub, error) {
	if !nsutil.IsNetns(path) {
		return nil, fmt.Errorf("%s is not a network namespace", path)
	}
	ino, err := nsutil.Inode(path)
	if err != nil {
		return nil, err
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	s := &linkSub{ino: ino, done: make(chan struct{}), dead: make(chan struct{})}
	ch := make(chan netlink.LinkUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(ch, s.done, netlink.LinkSubscribeOptions{Namespace: &h}); err != nil {
		close(s.done)
		return nil, err
	}
	go func() {
		defer func() {
			close(s.dead)
			select { // resubscribe and look, unless it was closed on purpose
			case <-s.done:
			default:
				send(g.resub)
			}
		}()
		for u := range ch {
			if u.Header.Type == unix.RTM_DELLINK && u.Link != nil && g.known(u.Link.Attrs().Name) {
				send(g.kick)
			}
		}
	}()
	return s, nil
}

// goneFound is an endpoint a look found without its veth: gone (why
// says why) or, if why is "", to be plumbed again.
type goneFound struct {
	network string
	ep      epState
	why     string
}

// checkGone looks at every joined endpoint (see above), makes vanished
// veths again and releases the gone endpoints. The namespaces are read
// without d.mu. A periodic look also retries endpoints in backoff. It
// reports whether a gone one could not be released now.
func (d *Daemon) checkGone(periodic bool) (pending bool) {
	type netEps struct {
		name, netns string
		eps         []epState
	}
	var todo []netEps
	d.mu.Lock()
	for _, n := range d.sortedNets() {
		var eps []epState
		for _, ep := range n.Endpoints {
			if ep.joined() && ep.Veth != "" {
				eps = append(eps, ep)
			}
		}
		if len(eps) > 0 {
			todo = append(todo, netEps{n.Name, n.netns, eps})
		}
	}
	d.mu.Unlock()
	var found []goneFound
	for _, t := range todo {
		links, err := linkNames(t.netns)
		if err != nil {
			// The network's namespace cannot be read: that is the
			// network's problem, not its endpoints'.
			continue
		}
		for _, ep := range t.eps {
			switch {
			case links[ep.Veth]:
				// Its other end holds its namespace: not gone.
				delete(d.gone.backoff, goneKey{t.name, ep.ID})
			case ep.Netns == "":
				found = append(found, goneFound{t.name, ep, fmt.Sprintf("its veth %s is gone: the runtime's sandbox %s was destroyed without a Leave", ep.Veth, ep.Sandbox)})
			default:
				found = append(found, goneFound{t.name, ep, netnsGone(ep)})
			}
		}
	}
	return d.actOnGone(found, periodic)
}

// actOnGone makes again the veths of found endpoints whose namespace
// lives and releases the gone ones, each under d.mu and only if it is
// still as the look found it (an operation on it meanwhile wins). The
// marks become those of the gone ones not released. After the first
// release the store fails, the rest are only marked. It reports whether
// a gone one is left.
func (d *Daemon) actOnGone(found []goneFound, periodic bool) (pending bool) {
	if d.gone.backoff == nil {
		d.gone.backoff = map[goneKey]bool{}
	}
	// current is the endpoint as f found it, if it still is.
	current := func(f goneFound) (*network, int) {
		n, i, err := d.endpoint(f.network, f.ep.ID)
		if err != nil || i < 0 {
			return nil, -1
		}
		if e := n.Endpoints[i]; !e.joined() || e.Veth != f.ep.Veth || e.Netns != f.ep.Netns || e.Sandbox != f.ep.Sandbox {
			return nil, -1
		}
		return n, i
	}
	d.mu.Lock()
	marks := map[goneKey]goneMark{}
	for _, f := range found {
		key := goneKey{f.network, f.ep.ID}
		if f.why == "" {
			continue
		}
		n, _ := current(f)
		if n == nil {
			continue
		}
		m, seen := d.gone.marks[key]
		if !seen {
			m = goneMark{since: time.Now().UTC()}
			d.log.Warn("an endpoint's container is gone without a detach; releasing it", zap.String("network", n.Name), zap.String("id", f.ep.ID),
				zap.String("name", f.ep.Name), zap.Stringer("ip", f.ep.IP), zap.String("netns", f.ep.Netns), zap.String("sandbox", f.ep.Sandbox), zap.String("why", f.why))
		}
		marks[key] = m
	}
	d.gone.marks = marks
	d.mu.Unlock()

	storeFailed := false
	for _, f := range found {
		key := goneKey{f.network, f.ep.ID}
		if f.why == "" {
			if d.gone.backoff[key] && !periodic {
				continue // its own cleanup's deletion, or soon after
			}
			d.mu.Lock()
			if n, _ := current(f); n != nil {
				if d.replumb(n, f.ep) {
					delete(d.gone.backoff, key)
				} else {
					d.gone.backoff[key] = true
				}
			}
			d.mu.Unlock()
			continue
		}
		delete(d.gone.backoff, key)
		d.mu.Lock()
		if n, i := current(f); n == nil {
			delete(d.gone.marks, key)
		} else if storeFailed {
			pending = true
		} else if err := d.releaseGone(n, i); err != nil {
			pending = true
			storeFailed = n.Cluster
		}
		d.mu.Unlock()
	}
	return pending
}

// netnsGone says why a plumbed endpoint's namespace is gone, or "".
func netnsGone(ep epState) string {
	if !nsutil.IsNetns(ep.Netns) {
		return fmt.Sprintf("its netns %s is gone", ep.Netns)
	}
	if ino, err := nsutil.Inode(ep.Netns); err == nil && ep.NetnsInode != 0 && ino != ep.NetnsInode {
		return fmt.Sprintf("its netns %s names another namespace now (made again, or a PID reused)", ep.Netns)
	}
	return ""
}

// linkNames lists the links in a namespace by name.
func linkNames(path string) (map[string]bool, error) {
	h, err := nsutil.Handle(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ls))
	for _, l := range ls {
		out[l.Attrs().Name] = true
	}
	return out, nil
}

// replumb makes a plumbed endpoint's veth again: it was deleted from
// outside while its namespace lives on. It reports whether it did. d.mu
// is held.
func (d *Daemon) replumb(n *network, ep epState) bool {
	log := d.log.With(zap.String("network", n.Name), zap.String("id", ep.ID), zap.String("netns", ep.Netns), zap.String("veth", ep.Veth))
	if err := d.restoreEndpoint(n, ep); err != nil {
		if n.epProbs[ep.ID] != err.Error() {
			log.Warn("an endpoint's veth was deleted from outside and cannot be made again; trying again later", zap.Duration("in", goneCheckEvery), zap.Error(err))
		}
		n.epProbs[ep.ID] = err.Error()
		return false
	}
	delete(n.epProbs, ep.ID)
	log.Warn("an endpoint's veth was deleted from outside; made it again")
	return true
}

// releaseGone releases the gone endpoint i of n as a detach would; if it
// cannot yet (the store is away) its mark says why. d.mu is held.
func (d *Daemon) releaseGone(n *network, i int) error {
	ep := n.Endpoints[i]
	key := goneKey{n.Name, ep.ID}
	m := d.gone.marks[key]
	log := d.log.With(zap.String("network", n.Name), zap.String("id", ep.ID), zap.String("name", ep.Name), zap.Stringer("ip", ep.IP))
	if n.Cluster && d.cluster != nil && !d.cluster.isReachable() {
		// Not tried while the store is known away: each try would hold
		// d.mu, and every request, for the store's timeout.
		return errors.New("the cluster store is unreachable")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.deleteEndpoint(ctx, n, i); err != nil {
		if m.err != err.Error() {
			log.Warn("cannot release a gone endpoint now; trying again", zap.Duration("in", goneRetryEvery), zap.Error(err))
			m.err = err.Error()
			d.gone.marks[key] = m
		}
		return err
	}
	delete(d.gone.marks, key)
	log.Info("released an endpoint whose container is gone", zap.Duration("gone_for", time.Since(m.since).Truncate(time.Millisecond)))
	return nil
}

// released forgets a released endpoint's mark, if it had one, and has
// the watcher refresh its subscriptions (its namespace may need no
// watching now: a subscription pins it). d.mu is held.
func (g *goneWatch) released(network, id string) {
	delete(g.marks, goneKey{network, id})
	send(g.resub)
}

// isReachable reports whether the store answered last time.
func (c *cluster) isReachable() bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.reachable
}
