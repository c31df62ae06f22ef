package store

import (
	"net/netip"
	"slices"
	"sort"
	"time"
)

// FirstVNI is the lowest VNI the store hands out, as Docker's overlay
// driver does (VNIs below are left for hand-made networks).
const FirstVNI = 256

// Network is a cluster network.
type Network struct {
	Name    string       `json:"name"`
	VNI     uint32       `json:"vni"`
	Subnet  netip.Prefix `json:"subnet"`
	Subnet6 netip.Prefix `json:"subnet6,omitzero"`
	Gateway netip.Addr   `json:"gateway"`
	// MTU of the overlay, the same on every host (one L2 segment has one
	// MTU); a host whose underlay cannot carry it refuses to attach.
	MTU int `json:"mtu"`
	// Egress: every endpoint gets a way out through its host's gateway
	// bridge. Internal: no default route at all.
	Egress   bool `json:"egress,omitempty"`
	Internal bool `json:"internal,omitempty"`
	// MaxLearned bounds the network's learned MAC entries on every
	// host; 0 (and records written before it existed): each daemon's
	// own --max-learned.
	MaxLearned int        `json:"max_learned,omitempty"`
	Created    time.Time  `json:"created"`
	CreatedBy  netip.Addr `json:"created_by"` // the VTEP of the host that made it
	// Revision is the create revision of the network's key: it tells a
	// network from one removed and made again under the same name.
	Revision int64 `json:"-"`
}

// Endpoint is a namespace attached to a network on some host: the
// allocation of its addresses and MAC, and what other hosts install.
type Endpoint struct {
	ID      string `json:"id"`
	Network string `json:"network"`
	// Name and Aliases are the names DNS answers for (NAME and
	// NAME.NETWORK); several endpoints may share one.
	Name    string       `json:"name"`
	Aliases []string     `json:"aliases,omitempty"`
	Host    netip.Addr   `json:"host"` // the owning host's advertised VTEP
	MAC     string       `json:"mac"`
	IP      netip.Prefix `json:"ip"`
	IP6     netip.Prefix `json:"ip6,omitzero"`
}

// Names returns the endpoint's name and aliases.
func (e Endpoint) Names() []string {
	if e.Name == "" {
		return e.Aliases
	}
	return append([]string{e.Name}, e.Aliases...)
}

// Host is a host that joined the cluster.
type Host struct {
	VTEP     netip.Addr `json:"vtep"`
	Hostname string     `json:"hostname,omitempty"`
	Joined   time.Time  `json:"joined"`
}

// Live says that a host is up; it lives under the host's lease.
type Live struct {
	VTEP     netip.Addr `json:"vtep"`
	Hostname string     `json:"hostname,omitempty"`
	PID      int        `json:"pid,omitempty"`
	Version  string     `json:"version,omitempty"`
	Since    time.Time  `json:"since"`
	Lease    int64      `json:"lease"`
}

// View is the whole cluster as one revision of the store shows it. Its
// maps must not be modified: views are shared.
type View struct {
	Revision  int64
	Networks  map[string]Network
	Endpoints map[string]map[string]Endpoint // network → ID → allocation
	Published map[string]map[string]Endpoint // network → ID → published (owner alive)
	Hosts     map[netip.Addr]Host
	Live      map[netip.Addr]Live
}

// NetworkNames returns the networks' names, sorted.
func (v *View) NetworkNames() []string {
	out := make([]string, 0, len(v.Networks))
	for n := range v.Networks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// SortedEndpoints returns network's endpoint records sorted by host, then
// address.
func (v *View) SortedEndpoints(network string) []Endpoint {
	return sortEndpoints(v.Endpoints[network])
}

// SortedPublished returns network's published endpoints sorted by host,
// then address.
func (v *View) SortedPublished(network string) []Endpoint {
	return sortEndpoints(v.Published[network])
}

func sortEndpoints(m map[string]Endpoint) []Endpoint {
	out := make([]Endpoint, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if c := a.Host.Compare(b.Host); c != 0 {
			return c
		}
		if c := a.IP.Addr().Compare(b.IP.Addr()); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Alive reports whether the host with VTEP vtep holds a lease.
func (v *View) Alive(vtep netip.Addr) bool {
	_, ok := v.Live[vtep]
	return ok
}
