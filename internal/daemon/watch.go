package daemon

import (
	"context"
	"fmt"
	"slices"
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
// endpoints and, on each, looks at every joined endpoint of this host:
//
//   - plumbed into a namespace (attach, CNI): gone if the namespace file is
//     gone or names another namespace now; if it is still there but the
//     veth went (deleted from outside), the veth is made again.
//   - handed off to a runtime (Docker's sandbox): gone if its veth went,
//     which only the sandbox's destruction (or the network namespace's)
//     does while it is joined.
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
// daemon was down), after every operation, every goneCheckEvery as a
// fallback (a missed event: the subscription's buffer overflowed), and
// every goneRetryEvery while an endpoint found gone could not be released
// (the store is away): until then `inspect` shows it as state "gone" with
// the time it was found so.

// goneCheckEvery is the fallback look's period.
const goneCheckEvery = 30 * time.Second

// goneRetryEvery is how soon a gone endpoint that could not be released
// is tried again.
const goneRetryEvery = 5 * time.Second

// goneWatch is the watcher's state in the Daemon.
type goneWatch struct {
	// kick asks the watcher to look now (subscribing to new network
	// namespaces first); nil until the watcher runs.
	kick chan struct{}
	// marks are the endpoints found gone and not released yet. Guarded
	// by d.mu.
	marks map[goneKey]goneMark
}

type goneKey struct{ network, id string }

type goneMark struct {
	since time.Time
	err   string // why the last release failed
}

// poke asks the watcher to look now; it never blocks. d.mu is held.
func (g *goneWatch) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
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
	kick := make(chan struct{}, 1)
	d.mu.Lock()
	d.gone.kick = kick
	d.gone.marks = map[goneKey]goneMark{}
	d.mu.Unlock()
	subs := map[string]*linkSub{}
	defer func() {
		for _, s := range subs {
			close(s.done)
		}
	}()
	tick := time.NewTicker(goneCheckEvery)
	defer tick.Stop()
	for {
		// Subscribed before looking: a link deleted after the look is
		// an event.
		d.subscribeLinks(subs, kick)
		var retry <-chan time.Time
		if d.checkGone() {
			retry = time.After(goneRetryEvery)
		}
		select {
		case <-d.stopping:
			return
		case <-kick:
		case <-tick.C:
		case <-retry:
		}
	}
}

// subscribeLinks makes subs the subscriptions the watcher needs: one per
// network namespace that holds veths of this host's endpoints. Each
// subscription pins its namespace (a netlink socket holds a reference),
// so one that is no longer needed is closed at once. Deletions kick.
func (d *Daemon) subscribeLinks(subs map[string]*linkSub, kick chan struct{}) {
	want := map[string]bool{}
	d.mu.Lock()
	for _, n := range d.nets {
		if slices.ContainsFunc(n.Endpoints, func(e epState) bool { return e.Veth != "" }) {
			want[n.netns] = true
		}
	}
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
		s, err := subscribeLinks(path, kick)
		if err != nil {
			// The namespace is not there (yet, or any more): the look
			// after this handles its endpoints, and the next kick or
			// tick tries again.
			d.log.Debug("cannot watch a network's namespace for gone endpoints", zap.String("netns", path), zap.Error(err))
			continue
		}
		subs[path] = s
	}
}

func subscribeLinks(path string, kick chan struct{}) (*linkSub, error) {
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
			select { // resubscribe, unless it was closed on purpose
			case <-s.done:
			case kick <- struct{}{}:
			default:
			}
		}()
		for u := range ch {
			if u.Header.Type != unix.RTM_DELLINK {
				continue
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}()
	return s, nil
}

// checkGone looks at every joined endpoint (see above) and releases the
// gone ones. It reports whether one could not be released now.
func (d *Daemon) checkGone() (pending bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for key := range d.gone.marks {
		if _, i, err := d.endpoint(key.network, key.id); err != nil || i < 0 {
			delete(d.gone.marks, key) // released otherwise meanwhile
		}
	}
	for _, n := range d.sortedNets() {
		var links map[string]bool // the veths in n's namespace; nil until needed
		for _, ep := range slices.Clone(n.Endpoints) {
			if !ep.joined() || ep.Veth == "" {
				continue
			}
			why := ""
			if ep.Netns != "" {
				why = netnsGone(ep)
			}
			if why == "" {
				if links == nil {
					var err error
					if links, err = linkNames(n.netns); err != nil {
						// The network's namespace cannot be read: that is
						// the network's problem, not its endpoints'.
						break
					}
				}
				if links[ep.Veth] {
					continue
				}
				if ep.Netns != "" {
					d.replumb(n, ep)
					continue
				}
				why = fmt.Sprintf("its veth %s is gone: the runtime's sandbox %s was destroyed without a Leave", ep.Veth, ep.Sandbox)
			}
			if !d.releaseGone(n, ep, why) {
				pending = true
			}
		}
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
// outside while its namespace lives on.
func (d *Daemon) replumb(n *network, ep epState) {
	log := d.log.With(zap.String("network", n.Name), zap.String("id", ep.ID), zap.String("netns", ep.Netns), zap.String("veth", ep.Veth))
	if err := d.restoreEndpoint(n, ep); err != nil {
		if n.epProbs[ep.ID] != err.Error() {
			log.Warn("an endpoint's veth was deleted from outside and cannot be made again", zap.Error(err))
		}
		n.epProbs[ep.ID] = err.Error()
		return
	}
	delete(n.epProbs, ep.ID)
	log.Warn("an endpoint's veth was deleted from outside; made it again")
}

// releaseGone releases a gone endpoint as a detach would and reports
// whether it did; if it cannot yet (the store is away) the endpoint is
// marked gone meanwhile. d.mu is held.
func (d *Daemon) releaseGone(n *network, ep epState, why string) bool {
	key := goneKey{n.Name, ep.ID}
	log := d.log.With(zap.String("network", n.Name), zap.String("id", ep.ID), zap.String("name", ep.Name), zap.Stringer("ip", ep.IP),
		zap.String("netns", ep.Netns), zap.String("sandbox", ep.Sandbox))
	m, seen := d.gone.marks[key]
	if !seen {
		m = goneMark{since: time.Now().UTC()}
		d.gone.marks[key] = m
		log.Warn("an endpoint's container is gone without a detach; releasing it", zap.String("why", why))
	}
	i := slices.IndexFunc(n.Endpoints, func(e epState) bool { return e.ID == ep.ID })
	if i < 0 {
		delete(d.gone.marks, key)
		return true
	}
	if n.Cluster && d.cluster != nil && !d.cluster.isReachable() {
		// Not tried while the store is known away: each try would hold
		// d.mu, and every request, for the store's timeout.
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.deleteEndpoint(ctx, n, i); err != nil {
		if m.err != err.Error() {
			log.Warn("cannot release a gone endpoint now; trying again", zap.Duration("in", goneRetryEvery), zap.Error(err))
			m.err = err.Error()
			d.gone.marks[key] = m
		}
		return false
	}
	delete(d.gone.marks, key)
	log.Info("released an endpoint whose container is gone", zap.Duration("gone_for", time.Since(m.since).Truncate(time.Millisecond)))
	return true
}

// released forgets a released endpoint's mark, if it had one, and has
// the watcher look again (its namespace may need no watching now: a
// subscription pins it). d.mu is held.
func (g *goneWatch) released(network, id string) {
	delete(g.marks, goneKey{network, id})
	g.poke()
}

// isReachable reports whether the store answered last time.
func (c *cluster) isReachable() bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.reachable
}
