// Package fib is the per-network MAC table (forwarding information base) of
// a VXLAN switch. It maps an inner Ethernet address to the underlay address
// of the VTEP behind it, and holds the flood list: the peer VTEPs that get a
// copy of every broadcast, multicast and unknown-unicast frame (head-end
// replication). It does no I/O.
//
// # Sources
//
// Every entry has a Source. Stronger sources win: Static > Store > Learned.
// A weaker source never overrides a stronger one (Learn reports
// LearnShadowed, Add returns ErrShadowed); a stronger or equal one replaces
// an entry at once (Add is replace, never create-exclusive). Only learned
// entries age, and only they count against Config.MaxLearned.
//
// Static entries come from the user, Store entries from the cluster store,
// learned ones from received frames. A control plane that computes its
// whole view (level triggered) installs it with Sync and SetPeers, which
// diff against what the table holds; Add, Delete, AddPeer and RemovePeer
// are the one-at-a-time forms.
//
// # Aging
//
// A learned entry is stale once Aging has passed since its last-seen time:
// from that moment Lookup treats it as missing, whenever Expire runs. Stale
// entries stay in the table, visible to Get, Entries and Stats and still
// counting against MaxLearned, until Expire removes them or a frame from the
// same MAC refreshes them. The owner calls Expire periodically (every few
// seconds is plenty).
//
// Learn does not store the time of every frame: it stores the new last-seen
// time only when it is at least the refresh granularity later than the stored
// one. The granularity is 1 s, or Aging/64 when that is smaller. So a busy
// MAC costs one shared-memory write per second instead of one per frame, and
// a learned entry becomes stale more than Aging minus the granularity, and at
// most Aging, after the last frame from its MAC (at exactly Aging when no frame arrived
// within the granularity of the stored time).
//
// Time is Unix nanoseconds from Now, which reads Config.Clock. With the wall
// clock Now advances monotonically from New, so stepping the system clock
// neither ages nor revives entries.
//
// # Concurrency
//
// Every method may be called from any number of goroutines at once.
//
//   - Lookup, LookupAt and FloodList do atomic loads only; like Now, they
//     never lock and never allocate.
//   - Learn never allocates and never locks unless it adds or moves an
//     entry. Refreshing a known MAC (the steady state), shadowed learns,
//     invalid frames and refusals when full are lock-free.
//   - Every other method is a control operation: it may take the writer
//     mutex and allocate.
//
// Entries are immutable except for their atomic last-seen time. The table is
// split into shards by a hash of the MAC; each shard is an atomic pointer to
// an immutable map, which writers replace copy-on-write with the writer mutex
// held, so a change copies one shard and readers never wait. The table keeps
// its shards small (16 entries on average, see shardFill) by doubling their
// number as it fills, which it publishes as a new set of shards the same
// way; so a learn copies a few hundred bytes however full the table is,
// and a flood of forged source MACs makes little garbage. The flood list
// is an atomic pointer to an immutable sorted slice, replaced the same way.
//
// A refresh that races with a change to the same MAC (a move, Add, Delete,
// Flush or Expire) may land on the entry being replaced and be lost. At
// worst Expire removes an entry whose frame arrived while it ran, and the
// next frame from that MAC adds it again.
package fib

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by this package, wrapped with the offending value; test
// for them with errors.Is.
var (
	// ErrBadMAC: the text is not an Ethernet address, or the address cannot
	// key an entry (multicast, broadcast or all zeros).
	ErrBadMAC = errors.New("fib: bad MAC address")
	// ErrBadVTEP: the address cannot be a VTEP (invalid, unspecified,
	// multicast or IPv4 broadcast).
	ErrBadVTEP = errors.New("fib: bad VTEP address")
	// ErrNotFound: no such entry (with that source) or peer.
	ErrNotFound = errors.New("fib: not found")
	// ErrShadowed: Add would override an entry of a stronger source.
	ErrShadowed = errors.New("fib: shadowed by a stronger entry")
	// ErrBadConfig: New was given an unusable Config.
	ErrBadConfig = errors.New("fib: bad config")
	// ErrBadSource: Add was given a source other than Static or Store.
	ErrBadSource = errors.New("fib: bad entry source")
)

// Source says where an entry came from. Stronger sources win:
// Static > Store > Learned.
type Source uint8

// Entry sources, weakest first so that they compare by strength.
const (
	Learned Source = iota + 1 // learned from a received frame; ages out
	Store                     // installed from the cluster store (a control plane); never ages
	Static                    // installed by the user (CLI/config); never ages
)

// String returns "learned", "store" or "static", as `fdb show` prints them.
func (s Source) String() string {
	switch s {
	case Learned:
		return "learned"
	case Store:
		return "store"
	case Static:
		return "static"
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// Clock tells the time. Tests inject a fake one so that they never sleep.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Config configures a Table. The zero value is usable.
type Config struct {
	Aging      time.Duration // learned entries expire after this long without traffic; 0 means DefaultAging; negative is an error
	MaxLearned int           // bound on learned entries; 0 means DefaultMaxLearned; negative is an error
	Clock      Clock         // nil means the wall clock
}

const (
	// DefaultAging is the Linux bridge's and vxlan device's default
	// ageing time, so vxswitch forgets MACs when a kernel peer would.
	DefaultAging = 300 * time.Second
	// DefaultMaxLearned bounds a network's learned entries: a flood of
	// forged source MACs costs at most a few MiB, and 64 Ki stations is
	// far more than one overlay network serves.
	DefaultMaxLearned = 65536
)

const (
	// refreshGranularity is the most a stored last-seen time may lag the
	// last frame. 1 s turns per-frame writes to a busy MAC's shared cache
	// line into one write a second, and is 0.3% of the default Aging.
	refreshGranularity = time.Second
	// agingSlices caps the granularity at Aging/64 so that a short Aging
	// (tests, users who want fast moves) still ages within 1.6%.
	agingSlices = 64
	// shardFill is how many entries a shard holds on average at most:
	// the table doubles its shards when it holds more. Adding a MAC
	// copies its shard, so this bounds the garbage a learn makes: filling
	// a default table (65 536 fresh MACs, as a flood of forged ones
	// does) allocates 24 MiB in all, where a fixed 256 shards of up to
	// 256 entries allocated 258 MiB, for which the daemon's heap grew.
	shardFill = 16
	// minShardBits: an empty table has 16 shards (128 bytes of
	// pointers), all sharing one empty map. maxShardBits stops the
	// doubling at 65 536 shards (512 KiB, a table of a million entries);
	// beyond that shards grow instead.
	minShardBits = 4
	maxShardBits = 16
)

// Entry is a snapshot of one table entry.
type Entry struct {
	MAC      MAC
	VTEP     netip.Addr // the remote VTEP's underlay address (IPv4 or IPv6)
	Source   Source
	LastSeen time.Time // learned entries: last refresh by a frame from MAC (see Aging in the package doc); others: install time
}

// LearnResult says what Learn did.
type LearnResult uint8

// Learn results.
const (
	LearnRefreshed      LearnResult = iota // known entry, same VTEP; last-seen time refreshed, or left alone within the refresh granularity
	LearnAdded                             // new learned entry
	LearnMoved                             // learned entry's VTEP changed (MAC moved to another VTEP)
	LearnShadowed                          // a Static or Store entry exists for this MAC: nothing changes
	LearnRefusedFull                       // table at MaxLearned learned entries: refused and counted
	LearnRefusedInvalid                    // multicast/broadcast/zero source MAC or invalid VTEP: refused and counted
)

var learnResultNames = [...]string{"refreshed", "added", "moved", "shadowed", "refused-full", "refused-invalid"}

// String returns a short lowercase name such as "moved".
func (r LearnResult) String() string {
	if int(r) < len(learnResultNames) {
		return learnResultNames[r]
	}
	return "learn-result(" + strconv.Itoa(int(r)) + ")"
}

// Stats counts a table's entries and what Learn and Expire did to them.
type Stats struct {
	// Current entry counts by source; Learned includes stale entries
	// Expire has not removed. MaxLearned is the table's bound on them.
	Learned    int `json:"learned"`
	MaxLearned int `json:"max_learned"`
	Store      int `json:"store"`
	Static     int `json:"static"`
	Peers      int `json:"peers"` // flood list size
	// Learned entries added / moved / aged out since New.
	Added   uint64 `json:"added"`
	Moved   uint64 `json:"moved"`
	Expired uint64 `json:"expired"`
	// Learns refused because MaxLearned entries were learned.
	RefusedFull uint64 `json:"refused_full"`
	// Learns refused for a bad MAC or VTEP.
	RefusedInvalid uint64 `json:"refused_invalid"`
	// Learns ignored because a stronger entry exists with a different VTEP.
	Shadowed uint64 `json:"shadowed"`
}

// entry is immutable once published, except lastSeen.
type entry struct {
	mac      MAC
	src      Source
	vtep     netip.Addr
	lastSeen atomic.Int64 // Unix nanoseconds; only moves forward
}

func newEntry(mac MAC, vtep netip.Addr, src Source, now int64) *entry {
	e := &entry{mac: mac, vtep: vtep, src: src}
	e.lastSeen.Store(now)
	return e
}

func (e *entry) export() Entry {
	return Entry{MAC: e.mac, VTEP: e.vtep, Source: e.src, LastSeen: time.Unix(0, e.lastSeen.Load())}
}

type shard = atomic.Pointer[map[uint64]*entry]

// Table is one network's MAC table and flood list. Create it with New.
type Table struct {
	// Immutable after New.
	clock      Clock
	wall       bool      // clock is the wall clock: Now reads only the monotonic clock, half the cost of time.Now
	start      time.Time // clock reading at New; Now measures from it
	epoch      int64     // start in Unix nanoseconds
	aging      int64     // nanoseconds
	gran       int64     // refresh granularity in nanoseconds
	maxLearned int64

	// Loaded lock-free; stored only with mu held.
	shards  atomic.Pointer[shardSet]
	flood   atomic.Pointer[[]netip.Addr] // sorted
	learned atomic.Int64                 // learned entries held, so that Learn can refuse without locking when full
	// known is the set KnownVTEP reads: the flood list and the VTEPs of
	// static and store entries, zones dropped.
	known atomic.Pointer[map[netip.Addr]struct{}]

	mu sync.Mutex // serialises every writer
	// Guarded by mu.
	store, static         int
	added, moved, expired uint64
	vtepRefs              map[netip.Addr]int // static and store entries per VTEP

	// Counted lock-free by Learn.
	refusedFull, refusedInvalid, shadowed atomic.Uint64
}

// New returns an empty table. It fails with ErrBadConfig for a negative
// Aging or MaxLearned.
func New(cfg Config) (*Table, error) {
	if cfg.Aging < 0 {
		return nil, fmt.Errorf("%w: Aging %v is negative; use 0 for the default %v", ErrBadConfig, cfg.Aging, DefaultAging)
	}
	if cfg.MaxLearned < 0 {
		return nil, fmt.Errorf("%w: MaxLearned %d is negative; use 0 for the default %d", ErrBadConfig, cfg.MaxLearned, DefaultMaxLearned)
	}
	if cfg.Aging == 0 {
		cfg.Aging = DefaultAging
	}
	if cfg.MaxLearned == 0 {
		cfg.MaxLearned = DefaultMaxLearned
	}
	t := &Table{
		clock:      cfg.Clock,
		wall:       cfg.Clock == nil,
		aging:      int64(cfg.Aging),
		gran:       int64(min(refreshGranularity, cfg.Aging/agingSlices)),
		maxLearned: int64(cfg.MaxLearned),
	}
	if t.wall {
		t.clock = wallClock{}
	}
	t.start = t.clock.Now()
	t.epoch = t.start.UnixNano()
	ss := &shardSet{shift: 64 - minShardBits, s: make([]shard, 1<<minShardBits)}
	empty := &map[uint64]*entry{}
	for i := range ss.s {
		ss.s[i].Store(empty)
	}
	t.shards.Store(ss)
	t.flood.Store(new([]netip.Addr))
	t.known.Store(&map[netip.Addr]struct{}{})
	t.vtepRefs = map[netip.Addr]int{}
	return t, nil
}

// Now returns the table clock's time in Unix nanoseconds, the unit of
// Learn's and LookupAt's now. It equals Clock.Now().UnixNano() except that
// with the wall clock it advances monotonically from New.
func (t *Table) Now() int64 {
	if t.wall {
		return t.epoch + int64(time.Since(t.start))
	}
	return t.epoch + int64(t.clock.Now().Sub(t.start))
}

// Aging returns how long a learned entry lives without traffic.
func (t *Table) Aging() time.Duration { return time.Duration(t.aging) }

// Lookup returns the VTEP behind mac. A stale learned entry counts as
// missing. It reads the clock only when it finds a learned entry; callers
// that already hold a batch's now should use LookupAt.
func (t *Table) Lookup(mac MAC) (vtep netip.Addr, ok bool) {
	e := t.find(mac.key())
	if e == nil || e.src == Learned && t.stale(e, t.Now()) {
		return netip.Addr{}, false
	}
	return e.vtep, true
}

// LookupAt is Lookup with the time supplied by the caller, as from Now.
func (t *Table) LookupAt(mac MAC, now int64) (vtep netip.Addr, ok bool) {
	e := t.find(mac.key())
	if e == nil || e.src == Learned && t.stale(e, now) {
		return netip.Addr{}, false
	}
	return e.vtep, true
}

// FloodList returns the peer VTEPs, sorted. The slice is shared and
// immutable: callers must not modify it. AddPeer and RemovePeer publish a new
// slice and leave the returned one intact.
func (t *Table) FloodList() []netip.Addr { return *t.flood.Load() }

// Learn records that a frame with source address mac arrived from vtep. now
// is the table's time (Now), read once per batch by the caller; a now older
// than the stored last-seen time never moves it back. IPv4-mapped IPv6
// addresses are stored as IPv4.
func (t *Table) Learn(mac MAC, vtep netip.Addr, now int64) LearnResult {
	vtep = vtep.Unmap()
	if !mac.unicast() || !validVTEP(vtep) {
		t.refusedInvalid.Add(1)
		return LearnRefusedInvalid
	}
	k := mac.key()
	if r, done := t.settle(t.find(k), vtep, now); done {
		return r
	}
	return t.learnLocked(mac, k, vtep, now)
}

// settle completes every learn that changes no entry. It reports false when
// the learn must take the writer mutex: to add a MAC (e nil, table not full)
// or to move a learned one (e from another VTEP).
func (t *Table) settle(e *entry, vtep netip.Addr, now int64) (LearnResult, bool) {
	switch {
	case e == nil:
		if t.learned.Load() < t.maxLearned {
			return 0, false
		}
		t.refusedFull.Add(1)
		return LearnRefusedFull, true
	case e.vtep == vtep:
		if e.src != Learned {
			return LearnShadowed, true
		}
		// Write only when the time advanced by the granularity, so a busy
		// MAC does not bounce its cache line between cores on every frame;
		// the CAS keeps racing refreshes from moving it back.
		if last := e.lastSeen.Load(); now-last >= t.gran {
			e.lastSeen.CompareAndSwap(last, now)
		}
		return LearnRefreshed, true
	case e.src != Learned:
		t.shadowed.Add(1)
		return LearnShadowed, true
	}
	return 0, false
}

func (t *Table) learnLocked(mac MAC, k uint64, vtep netip.Addr, now int64) LearnResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.find(k) // again: another writer may have changed it
	if r, done := t.settle(e, vtep, now); done {
		return r
	}
	t.set(k, newEntry(mac, vtep, Learned, now))
	if e == nil {
		t.learned.Add(1)
		t.added++
		return LearnAdded
	}
	t.moved++
	return LearnMoved
}

// Add installs a Static or Store entry, replacing any entry of the same or
// a weaker source at once. It returns ErrShadowed if a stronger entry exists,
// ErrBadSource for any other source, ErrBadMAC for a multicast or zero MAC
// and ErrBadVTEP for an address that cannot be a VTEP. Added entries never
// age and do not count against MaxLearned.
func (t *Table) Add(mac MAC, vtep netip.Addr, src Source) error {
	vtep = vtep.Unmap()
	switch {
	case src != Static && src != Store:
		return fmt.Errorf("%w: cannot add a %s entry for %s; only static and store entries are added, learned ones come from Learn", ErrBadSource, src, mac)
	case !mac.unicast():
		return fmt.Errorf("%w %s: an entry needs a unicast, non-zero MAC", ErrBadMAC, mac)
	case !validVTEP(vtep):
		return fmt.Errorf("%w %s for %s: want a unicast IPv4 or IPv6 address", ErrBadVTEP, vtep, mac)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := mac.key()
	if e := t.find(k); e != nil {
		if e.src > src {
			return fmt.Errorf("%w: %s has a %s entry to %s, which a %s entry cannot replace; delete it first", ErrShadowed, mac, e.src, e.vtep, src)
		}
		t.count(e.src, e.vtep, -1)
	}
	t.set(k, newEntry(mac, vtep, src, t.Now()))
	t.count(src, vtep, +1)
	t.publishKnown()
	return nil
}

// Delete removes mac's entry if its source is src, and returns ErrNotFound
// otherwise.
func (t *Table) Delete(mac MAC, src Source) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := mac.key()
	e := t.find(k)
	if e == nil {
		return fmt.Errorf("%w: no entry for %s", ErrNotFound, mac)
	}
	if e.src != src {
		return fmt.Errorf("%w: no %s entry for %s (it has a %s entry)", ErrNotFound, src, mac, e.src)
	}
	t.set(k, nil)
	t.count(src, e.vtep, -1)
	t.publishKnown()
	return nil
}

// FlushVTEP removes every entry of source src that points to vtep and
// returns how many it removed.
func (t *Table) FlushVTEP(vtep netip.Addr, src Source) int {
	vtep = vtep.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.removeIf(func(e *entry) bool { return e.src == src && e.vtep == vtep })
}

// Flush removes every entry of source src and returns how many it removed.
func (t *Table) Flush(src Source) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.removeIf(func(e *entry) bool { return e.src == src })
}

// Expire removes the learned entries that are stale by the table's clock,
// counts them in Stats.Expired and returns how many it removed.
func (t *Table) Expire() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	n := t.removeIf(func(e *entry) bool { return e.src == Learned && t.stale(e, now) })
	t.expired += uint64(n)
	return n
}

// SyncResult says what Sync changed.
type SyncResult struct {
	Added, Replaced, Removed int
	// Shadowed counts wanted entries left out because a stronger entry
	// (a static one, for Store) holds the MAC; Sync them again after that
	// entry goes.
	Shadowed int
}

// Sync makes the entries of source src (Store or Static) exactly want:
// entries of src whose MAC is not in want, or that point elsewhere, are
// removed or replaced, and the missing ones added over any weaker entry
// (a learned one). A MAC held by a stronger source is left alone and
// counted as shadowed. It is the control plane's one call per change:
// the control plane computes the whole set from its view (level
// triggered) and never needs to remember what it installed before.
// Invalid MACs or VTEPs in want are an error and change nothing.
func (t *Table) Sync(src Source, want map[MAC]netip.Addr) (SyncResult, error) {
	var r SyncResult
	if src != Static && src != Store {
		return r, fmt.Errorf("%w: cannot sync %s entries; only static and store entries are installed", ErrBadSource, src)
	}
	for mac := range want { // MACs first, so that the error is the same whatever the map's order
		if !mac.unicast() {
			return r, fmt.Errorf("%w %s: an entry needs a unicast, non-zero MAC", ErrBadMAC, mac)
		}
	}
	for mac, vtep := range want {
		if !validVTEP(vtep.Unmap()) {
			return r, fmt.Errorf("%w %s for %s: want a unicast IPv4 or IPv6 address", ErrBadVTEP, vtep, mac)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r.Removed = t.removeIf(func(e *entry) bool {
		v, ok := want[e.mac]
		return e.src == src && (!ok || v.Unmap() != e.vtep)
	})
	now := t.Now()
	for mac, vtep := range want {
		vtep = vtep.Unmap()
		k := mac.key()
		e := t.find(k)
		switch {
		case e != nil && e.src == src:
			continue // the same entry, kept above
		case e != nil && e.src > src:
			r.Shadowed++
			continue
		case e != nil:
			t.count(e.src, e.vtep, -1)
			r.Replaced++
		default:
			r.Added++
		}
		t.set(k, newEntry(mac, vtep, src, now))
		t.count(src, vtep, +1)
	}
	t.publishKnown()
	return r, nil
}

// Entries returns a snapshot of every entry, stale ones included, sorted by
// MAC.
func (t *Table) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	es := make([]Entry, 0, int(t.learned.Load())+t.store+t.static)
	ss := t.shards.Load()
	for i := range ss.s {
		for _, e := range *ss.s[i].Load() {
			es = append(es, e.export())
		}
	}
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.MAC.key(), b.MAC.key()) })
	return es
}

// All yields every entry, stale ones included, in MAC order, as Entries
// returns them but without copying the table: it sorts the MACs alone (8
// bytes an entry) and looks each up as it yields it. It takes no lock, so
// it is no snapshot: an entry that changes meanwhile is yielded as it is
// then, one removed meanwhile is skipped, and one added meanwhile may be
// missed. A full default table lists in under 1 MiB this way, where
// Entries takes 4 MiB; the control API streams `fdb show` with it.
func (t *Table) All() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		keys := make([]uint64, 0, t.learned.Load()+64)
		ss := t.shards.Load()
		for i := range ss.s {
			for k := range *ss.s[i].Load() {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			if e := t.find(k); e != nil && !yield(e.export()) {
				return
			}
		}
	}
}

// Get returns mac's entry, stale or not.
func (t *Table) Get(mac MAC) (Entry, bool) {
	e := t.find(mac.key())
	if e == nil {
		return Entry{}, false
	}
	return e.export(), true
}

// AddPeer adds vtep to the flood list. Adding a present peer does nothing.
// It returns ErrBadVTEP for an address that cannot be a VTEP.
func (t *Table) AddPeer(vtep netip.Addr) error {
	vtep = vtep.Unmap()
	if !validVTEP(vtep) {
		return fmt.Errorf("%w %s: a peer needs a unicast IPv4 or IPv6 address", ErrBadVTEP, vtep)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.flood.Load()
	i, found := slices.BinarySearchFunc(old, vtep, netip.Addr.Compare)
	if !found {
		fl := slices.Concat(old[:i], []netip.Addr{vtep}, old[i:])
		t.flood.Store(&fl)
		t.publishKnown()
	}
	return nil
}

// RemovePeer removes vtep from the flood list, or returns ErrNotFound.
func (t *Table) RemovePeer(vtep netip.Addr) error {
	vtep = vtep.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.flood.Load()
	i, found := slices.BinarySearchFunc(old, vtep, netip.Addr.Compare)
	if !found {
		return fmt.Errorf("%w: peer %s is not in the flood list", ErrNotFound, vtep)
	}
	fl := slices.Concat(old[:i], old[i+1:])
	t.flood.Store(&fl)
	t.publishKnown()
	return nil
}

// SetPeers replaces the flood list with peers (duplicates are dropped)
// and reports whether it changed. A control plane that computes the whole
// list from its view calls it instead of AddPeer and RemovePeer. It
// returns ErrBadVTEP, changing nothing, if an address cannot be a VTEP.
func (t *Table) SetPeers(peers []netip.Addr) (bool, error) {
	fl := make([]netip.Addr, 0, len(peers))
	for _, p := range peers {
		p = p.Unmap()
		if !validVTEP(p) {
			return false, fmt.Errorf("%w %s: a peer needs a unicast IPv4 or IPv6 address", ErrBadVTEP, p)
		}
		fl = append(fl, p)
	}
	slices.SortFunc(fl, netip.Addr.Compare)
	fl = slices.Compact(fl)
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Equal(fl, *t.flood.Load()) {
		return false, nil
	}
	t.flood.Store(&fl)
	t.publishKnown()
	return true, nil
}

// Peers returns a sorted copy of the flood list.
func (t *Table) Peers() []netip.Addr { return slices.Clone(t.FloodList()) }

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{
		Learned:        int(t.learned.Load()),
		MaxLearned:     int(t.maxLearned),
		Store:          t.store,
		Static:         t.static,
		Peers:          len(*t.flood.Load()),
		Added:          t.added,
		Moved:          t.moved,
		Expired:        t.expired,
		RefusedFull:    t.refusedFull.Load(),
		RefusedInvalid: t.refusedInvalid.Load(),
		Shadowed:       t.shadowed.Load(),
	}
}

// shardSet is the table's shards; the table replaces it with one of twice
// as many shards as it fills (grow). Its slice never changes once
// published; the shards' map pointers are stored only with mu held.
type shardSet struct {
	shift uint // 64 minus log2(len(s)): see of
	s     []shard
}

// of returns k's shard. Fibonacci hashing mixes the low octets (where
// MACs of one vendor differ) into the top bits, which pick the shard; so
// doubling the shards splits shard i into 2i and 2i+1.
func (ss *shardSet) of(k uint64) *shard { return &ss.s[k*0x9e3779b97f4a7c15>>ss.shift] }

func (t *Table) find(k uint64) *entry { return (*t.shards.Load().of(k).Load())[k] }

// stale reports whether learned entry e has gone Aging without a refresh.
func (t *Table) stale(e *entry, now int64) bool { return now-e.lastSeen.Load() >= t.aging }

// set publishes a copy of k's shard in which k maps to e, or is absent if e
// is nil. t.mu must be held.
func (t *Table) set(k uint64, e *entry) {
	ss := t.shards.Load()
	if e != nil && int(t.learned.Load())+t.store+t.static >= len(ss.s)*shardFill && ss.shift > 64-maxShardBits {
		ss = t.grow(ss)
	}
	s := ss.of(k)
	m := make(map[uint64]*entry, len(*s.Load())+1)
	maps.Copy(m, *s.Load())
	if e == nil {
		delete(m, k)
	} else {
		m[k] = e
	}
	s.Store(&m)
}

// grow publishes and returns a copy of ss with twice the shards, each
// old shard's entries split between its two successors. Lock-free
// readers still holding ss find every entry in it as before. t.mu must be
// held.
func (t *Table) grow(ss *shardSet) *shardSet {
	next := &shardSet{shift: ss.shift - 1, s: make([]shard, 2*len(ss.s))}
	for i := range ss.s {
		old := *ss.s[i].Load()
		lo := make(map[uint64]*entry, len(old)/2+1)
		hi := make(map[uint64]*entry, len(old)/2+1)
		for k, e := range old {
			if next.of(k) == &next.s[2*i] {
				lo[k] = e
			} else {
				hi[k] = e
			}
		}
		next.s[2*i].Store(&lo)
		next.s[2*i+1].Store(&hi)
	}
	t.shards.Store(next)
	return next
}

// removeIf removes the entries for which drop reports true, copying only
// the shards that change, and returns how many it removed. t.mu must be held.
func (t *Table) removeIf(drop func(*entry) bool) int {
	n := 0
	ss := t.shards.Load()
	for i := range ss.s {
		old := *ss.s[i].Load()
		var m map[uint64]*entry
		for k, e := range old {
			if !drop(e) {
				continue
			}
			if m == nil {
				m = maps.Clone(old)
			}
			delete(m, k)
			t.count(e.src, e.vtep, -1)
			n++
		}
		if m != nil {
			ss.s[i].Store(&m)
		}
	}
	if n > 0 {
		t.publishKnown()
	}
	return n
}

// count adjusts the entry count of src by d for an entry to vtep. t.mu
// must be held.
func (t *Table) count(src Source, vtep netip.Addr, d int) {
	switch src {
	case Learned:
		t.learned.Add(int64(d))
		return
	case Store:
		t.store += d
	case Static:
		t.static += d
	}
	v := vtep.WithZone("")
	t.vtepRefs[v] += d
	if t.vtepRefs[v] <= 0 {
		delete(t.vtepRefs, v)
	}
}

// publishKnown publishes the set KnownVTEP reads, if it changed: the
// flood list and every VTEP of a static or store entry. It costs a map of
// the VTEPs (hosts, not MACs) per change. t.mu must be held.
func (t *Table) publishKnown() {
	fl := *t.flood.Load()
	m := make(map[netip.Addr]struct{}, len(fl)+len(t.vtepRefs))
	for _, v := range fl {
		m[v.WithZone("")] = struct{}{}
	}
	for v := range t.vtepRefs {
		m[v] = struct{}{}
	}
	if !maps.Equal(m, *t.known.Load()) {
		t.known.Store(&m)
	}
}

// KnownVTEP reports whether vtep is one the control plane told the table
// about: a peer on the flood list or the VTEP of a static or store entry
// (learned entries do not count: anyone can be learned). Zones are
// ignored. It loads atomically and never locks or allocates.
func (t *Table) KnownVTEP(vtep netip.Addr) bool {
	_, ok := (*t.known.Load())[vtep.Unmap().WithZone("")]
	return ok
}

var ipv4Broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// validVTEP reports whether the unmapped address a can be a VTEP: a unicast
// underlay destination.
func validVTEP(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a != ipv4Broadcast
}
