package dnsserver

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
)

// Records is where a Server finds the endpoints of its network. The
// server calls it once or twice per query, from many goroutines at once,
// so it must be safe for concurrent use and cheap: a lookup in an
// immutable snapshot (a Live holding the Table that the daemon replaces
// when the store changes), not a call to the store. The server
// never modifies a slice it gets.
type Records interface {
	// Lookup returns the addresses of every endpoint named name, IPv4
	// and IPv6 mixed, or none when no endpoint has that name. name is
	// lowercase, without a trailing dot and never empty; it is the bare
	// endpoint name (the server strips ".NETWORK" itself).
	Lookup(name string) []netip.Addr
	// Reverse returns the names, as Lookup takes them, of the endpoints
	// that have the address ip (unmapped, without a zone), or none.
	Reverse(ip netip.Addr) []string
}

// Entry is one endpoint's name and addresses, for NewTable.
type Entry struct {
	Name  string
	Addrs []netip.Addr
}

// Table is an immutable Records: build one with NewTable from the
// network's endpoints (all hosts'), and build a new one when they change.
// A nil *Table knows no names.
type Table struct {
	names map[string][]netip.Addr
	addrs map[netip.Addr][]string
}

// NewTable indexes entries by name and by address. Names are folded to
// lowercase and lose a trailing dot; IPv4-mapped IPv6 addresses become
// IPv4 and zones are dropped; entries sharing a name pool their addresses
// (every one is answered); empty names, invalid addresses and duplicates
// are skipped. Addresses are kept sorted, IPv4 first.
func NewTable(entries ...Entry) *Table {
	t := &Table{names: make(map[string][]netip.Addr), addrs: make(map[netip.Addr][]string)}
	for _, e := range entries {
		name := normalize(e.Name)
		if name == "" {
			continue
		}
		for _, a := range e.Addrs {
			if !a.IsValid() {
				continue
			}
			a = a.Unmap().WithZone("")
			if !slices.Contains(t.names[name], a) {
				t.names[name] = append(t.names[name], a)
			}
			if !slices.Contains(t.addrs[a], name) {
				t.addrs[a] = append(t.addrs[a], name)
			}
		}
	}
	for _, as := range t.names {
		slices.SortFunc(as, netip.Addr.Compare)
	}
	for _, ns := range t.addrs {
		slices.Sort(ns)
	}
	return t
}

// Lookup implements Records.
func (t *Table) Lookup(name string) []netip.Addr {
	if t == nil {
		return nil
	}
	return t.names[name]
}

// Reverse implements Records.
func (t *Table) Reverse(ip netip.Addr) []string {
	if t == nil {
		return nil
	}
	return t.addrs[ip]
}

// normalize folds a DNS name to the form Records takes: lowercase (ASCII
// only: the wire form escapes every other byte), without the trailing dot.
func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// Live is a Records whose Table is replaced as a whole (Store) while
// servers read it, without a lock: the daemon keeps one per network and
// stores a new Table whenever the network's endpoints change. Its zero
// value knows no names.
type Live struct{ t atomic.Pointer[Table] }

// Store makes t the table that the next queries see.
func (l *Live) Store(t *Table) { l.t.Store(t) }

// Lookup implements Records.
func (l *Live) Lookup(name string) []netip.Addr { return l.t.Load().Lookup(name) }

// Reverse implements Records.
func (l *Live) Reverse(ip netip.Addr) []string { return l.t.Load().Reverse(ip) }
