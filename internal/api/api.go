// Package api is the vxswitch control API: the JSON types exchanged over the
// daemon's unix socket, and a client for it. The transport is HTTP/1.1 over
// the socket; every error response carries {"error": "..."} with a one-line
// message meant for the user.
package api

import (
	"github.com/vxswitch/vxswitch/fib"
	vswitch "github.com/vxswitch/vxswitch/switch"
)

// Routes (Go 1.22 ServeMux patterns), all under /v1.
const (
	PathNetworks  = "/v1/networks"
	PathNetwork   = "/v1/networks/{name}"
	PathEndpoints = "/v1/networks/{name}/endpoints"
	PathPeers     = "/v1/networks/{name}/peers"
	PathFDB       = "/v1/networks/{name}/fdb"
	PathAllFDB    = "/v1/fdb"
	PathStats     = "/v1/stats"
	PathInfo      = "/v1/info"
)

// NetworkCreate asks for a new network.
type NetworkCreate struct {
	Name    string `json:"name"`
	VNI     uint32 `json:"vni"`
	Subnet  string `json:"subnet"`            // IPv4 CIDR, e.g. 10.0.0.0/24
	Gateway string `json:"gateway,omitempty"` // IPv4 address in Subnet, set on every host's br0
	MTU     int    `json:"mtu,omitempty"`     // 0: underlay MTU − 50 (IPv4) or − 70 (IPv6)
	// Subnet6 makes the network dual-stack: an IPv6 CIDR of /16 to /64,
	// e.g. fd00:1::/64, from which every endpoint also gets an address.
	Subnet6 string `json:"subnet6,omitempty"`
}

// Network is a network as the daemon reports it.
type Network struct {
	Name      string     `json:"name"`
	VNI       uint32     `json:"vni"`
	Subnet    string     `json:"subnet"`
	Subnet6   string     `json:"subnet6,omitempty"`
	Gateway   string     `json:"gateway,omitempty"`
	MTU       int        `json:"mtu"`
	Netns     string     `json:"netns"`   // path of the network's namespace
	Bridge    string     `json:"bridge"`  // the bridge in that namespace (br0)
	TAP       string     `json:"tap"`     // the TAP device on that bridge
	Offload   bool       `json:"offload"` // the TAP runs with virtio-net headers and TSO
	Peers     []string   `json:"peers"`   // flood list: remote VTEP addresses
	Static    []FDBEntry `json:"static_fdb"`
	Endpoints []Endpoint `json:"endpoints"`
	// Problem is set when the daemon could not bring the network up
	// (for example at restart); its configuration is kept.
	Problem string `json:"problem,omitempty"`
}

// Attach asks to join a network namespace (a container) to a network.
type Attach struct {
	Netns  string `json:"netns"`            // name in /run/netns or a path
	IP     string `json:"ip,omitempty"`     // CIDR or bare address; empty: the next free one
	IP6    string `json:"ip6,omitempty"`    // in a dual-stack network; empty: the IPv6 prefix and the MAC's EUI-64
	MAC    string `json:"mac,omitempty"`    // empty: 02:42 followed by the IPv4 address, as Docker does
	IfName string `json:"ifname,omitempty"` // empty: eth0
}

// Endpoint is a namespace attached to a network.
type Endpoint struct {
	Netns  string `json:"netns"` // path
	IfName string `json:"ifname"`
	IP     string `json:"ip"`            // CIDR
	IP6    string `json:"ip6,omitempty"` // CIDR, in a dual-stack network
	MAC    string `json:"mac"`
	Veth   string `json:"veth"` // the bridge-side veth in the network's namespace
	// Problem is set when the endpoint could not be restored (its
	// namespace is gone, say); its configuration is kept until detached.
	Problem string `json:"problem,omitempty"`
}

// Detach names the endpoint to remove by its namespace.
type Detach struct {
	Netns string `json:"netns"`
}

// Peer names a remote VTEP.
type Peer struct {
	VTEP string `json:"vtep"`
}

// FDBEntry is one MAC table entry.
type FDBEntry struct {
	Network string   `json:"network,omitempty"`
	VNI     uint32   `json:"vni,omitempty"`
	MAC     string   `json:"mac"`
	VTEP    string   `json:"vtep"`
	Source  string   `json:"source,omitempty"`      // static, control, learned; "flood" for a flood-list entry (MAC 00:00:00:00:00:00)
	Age     *float64 `json:"age_seconds,omitempty"` // learned entries only
}

// NetworkStats is one network's counters.
type NetworkStats struct {
	Network string `json:"network"`
	VNI     uint32 `json:"vni"`
	vswitch.Counters
	FIB fib.Stats `json:"fib"`
}

// Stats is what `vxswitch stats` shows.
type Stats struct {
	// Switch counts datagrams dropped before they matched a network
	// (short, bad flags, reserved bits, unknown VNI).
	Switch   vswitch.Counters `json:"switch"`
	Networks []NetworkStats   `json:"networks"`
}

// Info describes the daemon.
type Info struct {
	Version  string `json:"version"`
	VTEP     string `json:"vtep"`
	Port     uint16 `json:"port"`
	Offload  bool   `json:"offload"`
	RunDir   string `json:"run_dir"`
	StateDir string `json:"state_dir"`
	PID      int    `json:"pid"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}
