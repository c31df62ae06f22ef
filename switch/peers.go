package vswitch

import (
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
)

// Per-peer counters: what a network sent to and received from each remote
// VTEP.
//
// Each network keeps one peerCounters per VTEP in a map behind an atomic
// pointer (peerSet), replaced copy-on-write under peerMu when a VTEP is
// first seen or entries are pruned (below); a loop keeps a pointer to an
// entry only while the peerSet it was found in is current. The loops
// never look a VTEP up per frame:
//
//   - the TX side counts per message after the batch's send (flush), in
//     a few slots cached in the loop (peerCache), each holding a VTEP's
//     counters, valid as long as the network's peerSet is the one they
//     were found in, and adds each slot's sum once a batch; a batch of
//     unicast frames or a flood to a handful of peers costs no map
//     lookup and two atomic adds per peer;
//   - the RX side resolves a sender once and keeps the pointer for the
//     slot's other datagrams and the following ones from the same sender,
//     in this batch and the next (rxLoop.peerOf), adding its frames and
//     bytes in the loop and to the peer's atomics when the sender changes
//     or the batch ends. A sender counted with the others (below) is
//     looked up again once a batch, in case it was made known since;
//     the loop remembers the last few such senders of the batch, and a
//     lookup beyond the bound takes no lock, so a flood of forged
//     senders costs a map lookup per sender and batch.
//
// So the cost per frame is a few additions in the loop, and per batch an
// atomic add per peer and counter. A VTEP gets counters of its own if the
// network knows it (fib.Table.KnownVTEP: a peer on the flood list or the
// VTEP of a static or store entry) or while fewer than maxUnknownPeers
// others have them; the rest, a flood of forged senders, say, share one
// entry (Network.otherPeer), reported without a VTEP.
//
// The sweeper prunes them (sweepPeers, once a sweep interval): an entry
// of a VTEP the network no longer knows (it left the flood list, its
// store entries went) that counted nothing for an aging interval (the
// MAC table's) is dropped, and with it its Prometheus series; the bound
// on unknown ones counts the entries left, so a burst of forged senders
// uses it up for an aging interval at most. What a dropped entry had
// counted stays in the network's counters, which are separate; a VTEP
// that comes back starts from zero. A loop that still holds a dropped
// entry may add one batch to it; that batch is counted in the network's
// counters only.
// maxUnknownPeers bounds the VTEPs a network keeps counters for that it
// was not told about (learned ones, strangers): senders are not
// authenticated, so a flood of forged ones must not grow the map.
const maxUnknownPeers = 64

// cacheLine separates the counters the TX loop writes from those the RX
// loop writes, which run on different CPUs.
const cacheLine = 64

// peerCounters are one remote VTEP's counters in one network.
type peerCounters struct {
	vtep netip.Addr // invalid for Network.otherPeer
	// Under peerMu, for sweepPeers: what the entry had counted at the
	// last sweep and the fib time it was made or last seen counting.
	swept uint64
	seen  int64
	// Written by the network's TX loop (or the RX loop draining its TAP,
	// under the same txMu).
	txFrames, txBytes, txFailed atomic.Uint64
	_                           [cacheLine]byte
	// Written by the RX loop.
	rxFrames, rxBytes atomic.Uint64
	rxDrops           [numDropReasons]atomic.Uint64
}

// peerSet is a network's per-VTEP counters: immutable once published.
type peerSet struct {
	m map[netip.Addr]*peerCounters
	// unknown counts the entries made for VTEPs the network did not
	// know then.
	unknown int
}

// peer returns the counters of the VTEP at a, making them if needed. It
// looks a up in a map, and on a miss takes peerMu: the loops call it once
// per batch and sender at most (see the caches above).
func (n *Network) peer(a netip.Addr) *peerCounters {
	if p := n.peers.Load().m[a]; p != nil {
		return p
	}
	return n.addPeer(a)
}

func (n *Network) addPeer(a netip.Addr) *peerCounters {
	if addPeerHook != nil {
		addPeerHook()
	}
	key := a.Unmap().WithZone("")
	// Beyond the bound, a stranger (a forged sender, say) is counted
	// with the others without taking peerMu: KnownVTEP reads a map.
	if old := n.peers.Load(); old.unknown >= maxUnknownPeers && old.m[key] == nil && !n.fib.KnownVTEP(key) {
		return &n.otherPeer
	}
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	old := n.peers.Load()
	if p := old.m[a]; p != nil {
		return p
	}
	p, unknown := old.m[key], old.unknown
	if p == nil {
		known := n.fib.KnownVTEP(key)
		if !known && unknown >= maxUnknownPeers {
			return &n.otherPeer
		}
		if !known {
			unknown++
		}
		p = &peerCounters{vtep: key, seen: n.fib.Now()}
	}
	next := maps.Clone(old.m)
	next[key] = p
	next[a] = p // a mapped or zoned spelling finds it at once next time
	n.peers.Store(&peerSet{m: next, unknown: unknown})
	return p
}

// addPeerHook, when set (by tests), is called on each addPeer: a
// lookup that missed the map.
var addPeerHook func()

// peerCache is a TX loop's last few VTEPs, their counters (valid for
// the peerSet they were found in) and what the batch being counted sent
// to each, added to the counters once a batch.
type peerCache struct {
	set  *peerSet
	slot [8]peerSlot
	next int
}

type peerSlot struct {
	addr                  netip.Addr
	p                     *peerCounters
	frames, bytes, failed uint64
}

// add adds what the slot counted to its peer's counters.
func (s *peerSlot) add() {
	if s.frames != 0 {
		s.p.txFrames.Add(s.frames)
		s.p.txBytes.Add(s.bytes)
	}
	if s.failed != 0 {
		s.p.txFailed.Add(s.failed)
	}
	s.frames, s.bytes, s.failed = 0, 0, 0
}

// get returns the slot of VTEP a of network n, finding its counters if
// the cache does not hold them (and adding what an evicted slot
// counted).
func (c *peerCache) get(n *Network, a netip.Addr) *peerSlot {
	for i := range c.slot {
		if s := &c.slot[i]; s.p != nil && s.addr == a {
			return s
		}
	}
	s := &c.slot[c.next]
	c.next = (c.next + 1) % len(c.slot)
	if s.p != nil {
		s.add()
	}
	*s = peerSlot{addr: a, p: n.peer(a)}
	return s
}

// countPeers adds the batch's messages, sent or failed (SendMsg.Failed),
// to their VTEPs' counters: sent datagrams and their inner frame bytes,
// and failed datagrams as send_error. It counts in the cache's slots
// and adds to each peer's atomics once, at the end.
func (t *txLoop) countPeers() {
	c := &t.peers
	if set := t.n.peers.Load(); set != c.set {
		*c = peerCache{set: set} // a slot's counts are always added before this
	}
	var s *peerSlot
	for i := range t.msgs {
		m := &t.msgs[i]
		if s == nil || m.Dst.Addr() != s.addr {
			s = c.get(t.n, m.Dst.Addr())
		}
		total := 0
		for _, b := range m.Iov {
			total += len(b)
		}
		d := 1
		if m.SegSize > 0 {
			d = max(1, (total+m.SegSize-1)/m.SegSize)
		}
		if m.Failed {
			s.failed += uint64(d)
			continue
		}
		s.frames += uint64(d)
		s.bytes += uint64(total - d*encap.VXLANHeaderLen)
	}
	for i := range c.slot {
		if c.slot[i].p != nil {
			c.slot[i].add()
		}
	}
}

// rxPeer is the RX loop's running count for the sender of the datagrams
// it is handling.
type rxPeer struct {
	m             *RecvMsg // the slot last looked up, in this batch
	n             *Network // kept across batches, even after its removal, until another sender comes
	addr          netip.Addr
	p             *peerCounters
	gen           uint64   // the batch (rxLoop.gen) p was looked up in
	set           *peerSet // the peerSet p was found in
	frames, bytes uint64
	// others are senders found to be counted in n.otherPeer in batch
	// otherGen of network otherNet: a forged flood costs a lookup per
	// sender and batch, not per slot.
	others   [8]netip.Addr
	nothers  int // how many were added to others in otherGen
	otherGen uint64
	otherNet *Network
}

// peerOf returns the counters of the sender of slot m in network n,
// adding what the previous sender's datagrams counted first when the
// sender changes. The RX loop calls it when the slot or the network
// changed: the datagrams of a slot (a GRO buffer) share their sender.
func (r *rxLoop) peerOf(n *Network, m *RecvMsg) *peerCounters {
	c := &r.peer
	a := m.Src.Addr()
	c.m = m
	// A VTEP counted with the others beyond the bound may have been
	// made known since: look it up again, once a batch.
	set := n.peers.Load()
	if c.p != nil && c.n == n && c.addr == a && c.set == set && (c.p != &n.otherPeer || c.gen == r.gen) {
		return c.p
	}
	r.flushPeer()
	c.n, c.addr, c.gen, c.set = n, a, r.gen, set
	if c.otherGen == r.gen && c.otherNet == n && slices.Contains(c.others[:min(c.nothers, len(c.others))], a) {
		c.p = &n.otherPeer
		return c.p
	}
	c.p = n.peer(a)
	if c.p == &n.otherPeer {
		if c.otherGen != r.gen || c.otherNet != n {
			c.otherGen, c.otherNet, c.nothers = r.gen, n, 0
		}
		c.others[c.nothers%len(c.others)] = a
		c.nothers++
	}
	return c.p
}

// flushPeer adds the running count to its peer's counters.
func (r *rxLoop) flushPeer() {
	c := &r.peer
	if c.frames != 0 {
		c.p.rxFrames.Add(c.frames)
		c.p.rxBytes.Add(c.bytes)
		c.frames, c.bytes = 0, 0
	}
}

// PeerCounters are a network's counters for one remote VTEP.
type PeerCounters struct {
	// VTEP is the peer's underlay address; invalid for the entry that
	// counts, together, the VTEPs beyond the bound on unknown ones (see
	// Network.PeerStats).
	VTEP netip.Addr
	// TXDatagrams and TXBytes count datagrams sent to the VTEP and their
	// inner frame bytes (each copy of a flooded frame counts for its
	// peer; a superframe counts as the segments it was cut into).
	// Datagrams the underlay refused count in Drops as send_error
	// instead.
	TXDatagrams uint64
	TXBytes     uint64
	// RXFrames and RXBytes count frames received from the VTEP for this
	// network that passed the checks in front of the TAP (known VTEP,
	// source MAC, filters, ECN), and their bytes; what the TAP or a
	// checksum verification then refuses is counted only in the
	// network's drops.
	RXFrames uint64
	RXBytes  uint64
	// Drops counts, by reason, the received datagrams from the VTEP
	// dropped before that point (unknown_vtep, short, bad_src_mac,
	// ce_not_ect), and datagrams to it the underlay refused
	// (send_error). Only reasons with drops appear; nil when none.
	Drops map[string]uint64
}

func (p *peerCounters) snapshot() PeerCounters {
	s := PeerCounters{
		VTEP:        p.vtep,
		TXDatagrams: p.txFrames.Load(), TXBytes: p.txBytes.Load(),
		RXFrames: p.rxFrames.Load(), RXBytes: p.rxBytes.Load(),
	}
	add := func(r DropReason, v uint64) {
		if v == 0 {
			return
		}
		if s.Drops == nil {
			s.Drops = map[string]uint64{}
		}
		s.Drops[r.String()] += v
	}
	for r := range numDropReasons {
		add(r, p.rxDrops[r].Load())
	}
	add(DropSendError, p.txFailed.Load())
	return s
}

// PeerStats returns the network's counters per remote VTEP, sorted by
// address: every VTEP on its flood list (with zeros if nothing was sent
// or received yet) and every other VTEP it exchanged frames with, until
// the sweeper drops the entry of one it no longer knows that counted
// nothing for an aging interval. The network keeps counters of their own
// for the VTEPs it knows and for at most 64 others; traffic with the
// rest is counted together in a last entry with an invalid VTEP, present
// only when it counted something.
func (n *Network) PeerStats() []PeerCounters {
	for _, v := range n.fib.FloodList() {
		n.peer(v)
	}
	set := n.peers.Load()
	out := make([]PeerCounters, 0, len(set.m)+1)
	seen := make(map[*peerCounters]bool, len(set.m))
	for _, p := range set.m {
		if !seen[p] {
			seen[p] = true
			out = append(out, p.snapshot())
		}
	}
	slices.SortFunc(out, func(a, b PeerCounters) int { return a.VTEP.Compare(b.VTEP) })
	if o := n.otherPeer.snapshot(); o.TXDatagrams+o.RXFrames != 0 || o.Drops != nil {
		out = append(out, o)
	}
	return out
}

// activity is the sum of everything the entry counted.
func (p *peerCounters) activity() uint64 {
	sum := p.txFrames.Load() + p.txFailed.Load() + p.rxFrames.Load()
	for r := range p.rxDrops {
		sum += p.rxDrops[r].Load()
	}
	return sum
}

// sweepPeers notes which entries counted something since the last
// sweep, at fib time now, and drops those of VTEPs the network does not
// know that counted nothing for an aging interval (see above). The
// sweeper calls it once a sweep interval.
func (n *Network) sweepPeers(now int64) {
	aging := int64(n.fib.Aging())
	if aging <= 0 {
		aging = int64(fib.DefaultAging)
	}
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	old := n.peers.Load()
	var drop map[*peerCounters]bool
	for _, p := range old.m {
		if a := p.activity(); a != p.swept {
			p.swept, p.seen = a, now
		}
		if now-p.seen >= aging && !n.fib.KnownVTEP(p.vtep) {
			if drop == nil {
				drop = map[*peerCounters]bool{}
			}
			drop[p] = true
		}
	}
	if drop == nil {
		return
	}
	next := make(map[netip.Addr]*peerCounters, len(old.m))
	counted := map[*peerCounters]bool{}
	unknown := 0
	for a, p := range old.m {
		if drop[p] {
			continue
		}
		next[a] = p
		if !counted[p] {
			counted[p] = true
			if !n.fib.KnownVTEP(p.vtep) {
				unknown++
			}
		}
	}
	n.peers.Store(&peerSet{m: next, unknown: unknown})
}
