// Package api is the vxswitch control API: the JSON types the daemon and
// its clients exchange over the daemon's unix socket, and a Go client for
// it. The `vxswitch` CLI is one such client; programs in other modules
// import this package to drive a daemon the same way:
//
//	c := api.NewClient(api.DefaultSocket)
//	ep, err := c.Attach(ctx, "web-net", api.Attach{Netns: "c1", Name: "web"})
//
// The transport is HTTP/1.1 over the socket, routes under /v1 (the Path
// constants); docs/api.md describes every route with curl examples. A
// request body is one JSON object whose unknown fields are refused; every
// error response carries {"error": "..."} with a one-line message meant
// for the user, and a status that says what kind of error it was (400
// bad request, 404 no such network or endpoint, 409 conflict with what
// exists, 503 the cluster store is unreachable), which the client returns
// as a *StatusError.
//
// The types here are the API's own: the daemon converts its datapath's
// counters into Counters and FIBStats, so the wire format changes only
// when this package does.
package api

// DefaultSocket is where a daemon started with the default --run-dir
// listens (RUN_DIR/vxswitch.sock); the CLI's --socket and
// VXSWITCH_SOCKET override it.
const DefaultSocket = "/run/vxswitch/vxswitch.sock"

// Routes (Go 1.22 ServeMux patterns), all under /v1.
const (
	PathNetworks  = "/v1/networks"
	PathNetwork   = "/v1/networks/{name}"
	PathEndpoints = "/v1/networks/{name}/endpoints"
	PathPeers     = "/v1/networks/{name}/peers"
	PathFDB       = "/v1/networks/{name}/fdb"
	PathTrace     = "/v1/networks/{name}/trace"
	PathAllFDB    = "/v1/fdb"
	PathStats     = "/v1/stats"
	PathInfo      = "/v1/info"
	PathHosts     = "/v1/hosts"
	PathHost      = "/v1/hosts/{vtep}"
)

// NetworkCreate asks for a new network. With a cluster store the network
// is the cluster's, made once on any host.
type NetworkCreate struct {
	Name string `json:"name"`
	// VNI 0 takes the lowest free one from 256 up (cluster-wide with a
	// store).
	VNI    uint32 `json:"vni,omitempty"`
	Subnet string `json:"subnet"` // IPv4 CIDR, e.g. 10.0.0.0/24
	// Gateway is an IPv4 address in Subnet, set on every host's br0. With
	// a store it defaults to the subnet's first address, as with Docker,
	// and every host serves DNS there.
	Gateway string `json:"gateway,omitempty"`
	MTU     int    `json:"mtu,omitempty"` // 0: underlay MTU − 50 (IPv4) or − 70 (IPv6)
	// Subnet6 makes the network dual-stack: an IPv6 CIDR of /16 to /64,
	// e.g. fd00:1::/64, from which every endpoint also gets an address.
	Subnet6 string `json:"subnet6,omitempty"`
	// Egress gives every endpoint a second interface (eth1) on its host's
	// gateway bridge, masqueraded, with the default route through it, as
	// Docker's docker_gwbridge does. Internal networks have no default
	// route at all. Without either, the default route goes to the
	// gateway on br0 (which leads nowhere but the hosts' DNS).
	Egress   bool `json:"egress,omitempty"`
	Internal bool `json:"internal,omitempty"`
	// MaxLearned bounds the network's learned MAC entries on every host
	// (a flood of forged source MACs fills it and no more); 0: each
	// daemon's --max-learned.
	MaxLearned int `json:"max_learned,omitempty"`
}

// Network is a network as the daemon reports it.
type Network struct {
	Name    string `json:"name"`
	VNI     uint32 `json:"vni"`
	Subnet  string `json:"subnet"`
	Subnet6 string `json:"subnet6,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	MTU     int    `json:"mtu"`
	// MaxLearned is how many learned MAC entries the network holds at
	// most on this host: its own limit, or this daemon's --max-learned.
	MaxLearned int `json:"max_learned"`
	// Scope is "local" (this host's own) or "cluster" (in the store).
	Scope    string `json:"scope"`
	Egress   bool   `json:"egress,omitempty"`
	Internal bool   `json:"internal,omitempty"`
	// Netns, Bridge and TAP are this host's: empty for a cluster network
	// without endpoints here (a host makes them with its first endpoint).
	Netns   string `json:"netns,omitempty"`  // path of the network's namespace
	Bridge  string `json:"bridge,omitempty"` // the bridge in that namespace (br0)
	TAP     string `json:"tap,omitempty"`    // the TAP device on that bridge
	Offload bool   `json:"offload"`          // the TAP runs with virtio-net headers and TSO
	// Peers is this host's flood list: the VTEPs of the other hosts with
	// endpoints on the network (from the store) and peers added by hand.
	Peers  []string   `json:"peers"`
	Static []FDBEntry `json:"static_fdb"`
	// Endpoints are this host's, and with a store every other host's too
	// (those have a VTEP and no Netns).
	Endpoints []Endpoint `json:"endpoints"`
	// Stale is set when the cluster store is unreachable and the network
	// is shown as this host last saw it.
	Stale string `json:"stale,omitempty"`
	// Problem is set when the daemon could not bring the network up
	// (for example at restart); its configuration is kept.
	Problem string `json:"problem,omitempty"`
}

// Attach asks to join a network namespace (a container) to a network.
type Attach struct {
	Netns string `json:"netns"` // name in /run/netns or a path
	// ID names the endpoint for whoever attached it (a Docker endpoint
	// ID, say); empty: the daemon makes one. Unique in the network.
	ID string `json:"id,omitempty"`
	// Name is what DNS answers for, as NAME and NAME.NETWORK (with a
	// store); empty: the namespace's name from `ip netns`, if it has one.
	// Aliases answer too; names may be shared by several endpoints.
	Name    string   `json:"name,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	IP      string   `json:"ip,omitempty"`     // CIDR or bare address; empty: the next free one
	IP6     string   `json:"ip6,omitempty"`    // in a dual-stack network; empty: the IPv6 prefix and the MAC's EUI-64
	MAC     string   `json:"mac,omitempty"`    // empty: 02:42 followed by the IPv4 address, as Docker does
	IfName  string   `json:"ifname,omitempty"` // empty: eth0
}

// Endpoint is a namespace attached to a network.
type Endpoint struct {
	ID      string   `json:"id,omitempty"`
	Name    string   `json:"name,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	// VTEP is the host the endpoint is on (with a store).
	VTEP   string `json:"vtep,omitempty"`
	Netns  string `json:"netns,omitempty"` // path; this host's endpoints only
	IfName string `json:"ifname"`
	IP     string `json:"ip"`            // CIDR
	IP6    string `json:"ip6,omitempty"` // CIDR, in a dual-stack network
	MAC    string `json:"mac"`
	Veth   string `json:"veth,omitempty"` // the bridge-side veth in the network's namespace
	// EgressIP is the endpoint's address on its host's egress bridge
	// (eth1), in an --egress network.
	EgressIP string `json:"egress_ip,omitempty"`
	// Sandbox is the runtime's name for the container's namespace of an
	// endpoint a runtime joined (Docker's sandbox key); such an
	// endpoint has no Netns.
	Sandbox string `json:"sandbox,omitempty"`
	// State, with a store: "up" (published), "down" (its host's lease
	// expired; its addresses stay reserved) or "local" (this host's,
	// not published yet: the store is unreachable). With or without a
	// store, "created" is an endpoint that holds its addresses but is not
	// joined to a container (yet), as Docker makes them, and "reserved" an
	// address Docker's IPAM asked for before its endpoint exists.
	// "gone" is one of this host's whose container went without a
	// detach (its namespace was destroyed); Gone says when that was
	// found (RFC 3339). It is released as soon as it can be (the store
	// answers), and then no longer listed.
	State string `json:"state,omitempty"`
	Gone  string `json:"gone,omitempty"`
	// Problem is set when the endpoint could not be restored (its
	// namespace is gone, say); its configuration is kept until detached.
	Problem string `json:"problem,omitempty"`
}

// Detach names the endpoint to remove by its namespace or its ID.
type Detach struct {
	Netns string `json:"netns,omitempty"`
	ID    string `json:"id,omitempty"`
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
	Source  string   `json:"source,omitempty"`      // static, store, learned; "flood" for a flood-list entry (MAC 00:00:00:00:00:00)
	Age     *float64 `json:"age_seconds,omitempty"` // learned entries only
	// IPs of a static entry: the switch answers ARP and neighbour
	// solicitations for them with MAC.
	IPs []string `json:"ips,omitempty"`
}

// Counters are a network's traffic counters (or, in Stats.Switch, the
// drops of datagrams that matched no network).
type Counters struct {
	// TXFrames and TXBytes count frames read from the network's TAP and
	// sent into the overlay (a flooded frame counts once; bytes are inner
	// frame bytes).
	TXFrames uint64 `json:"tx_frames"`
	TXBytes  uint64 `json:"tx_bytes"`
	// TXFlooded counts frames sent to every peer (broadcast, multicast,
	// unknown unicast).
	TXFlooded uint64 `json:"tx_flooded"`
	// TXDatagrams counts VXLAN datagrams sent, replicas included.
	TXDatagrams uint64 `json:"tx_datagrams"`
	// TXDrained counts frames the receive loop took from the TAP right
	// after writing to it (replies its writes provoked).
	TXDrained uint64 `json:"tx_drained"`
	// RXFrames and RXBytes count frames received from the overlay and
	// written to the TAP.
	RXFrames uint64 `json:"rx_frames"`
	RXBytes  uint64 `json:"rx_bytes"`
	// RXCsumRepaired counts received frames whose partial checksum (left
	// by a Linux sender over veth) was completed.
	RXCsumRepaired uint64 `json:"rx_csum_repaired"`
	// RXSplit counts received TCP superframes (from a kernel VTEP on a
	// veth underlay) split into MTU-sized segments.
	RXSplit uint64 `json:"rx_split"`
	// RXCoalesced counts superframes written to the TAP, each made of
	// several received segments.
	RXCoalesced uint64 `json:"rx_coalesced"`
	// ARPProxied and NDProxied count ARP requests and IPv6 neighbour
	// solicitations the switch answered itself, for addresses it knows.
	ARPProxied uint64 `json:"arp_proxied"`
	NDProxied  uint64 `json:"nd_proxied"`
	// PMTUAnswered counts ICMP "fragmentation needed" and ICMPv6 "packet
	// too big" messages the switch wrote into the network for frames too
	// big for the underlay.
	PMTUAnswered uint64 `json:"pmtu_answered"`
	// Drops counts frames and datagrams not forwarded, by reason (short,
	// bad_flags, reserved_bits, unknown_vni, bad_src_mac, no_peers,
	// gateway_local, bad_gso, oversize, send_error, tap_error, ce_not_ect,
	// bad_csum, unknown_vtep, too_big); only reasons with drops appear.
	// RXDrops is the part of it that counts received datagrams.
	Drops   map[string]uint64 `json:"drops,omitempty"`
	RXDrops map[string]uint64 `json:"rx_drops,omitempty"`
}

// SwitchCounters are the daemon's datapath counters before a datagram is
// matched to a network. Every datagram that arrived for the underlay
// socket is in exactly one place: RXDatagrams + RXOverflow are all that
// arrived, and RXDatagrams = Σ Drops + Σ over networks (RXFrames + Σ
// RXDrops).
type SwitchCounters struct {
	// RXDatagrams counts datagrams received (each of a GRO buffer's,
	// empty ones included).
	RXDatagrams uint64 `json:"rx_datagrams"`
	// RXOverflow counts datagrams the kernel dropped for the socket
	// before the daemon read them (a full receive buffer, a bad outer UDP
	// checksum), as the kernel reports it with the next datagram; with
	// UDP GRO a dropped GRO buffer counts once, so it is a lower bound.
	RXOverflow uint64 `json:"rx_overflow"`
	// TXGSOSplit counts UDP GSO messages the kernel refused, sent again
	// one datagram at a time.
	TXGSOSplit uint64 `json:"tx_gso_split"`
	// Drops counts datagrams dropped before a network was found (short,
	// bad_flags, reserved_bits, unknown_vni).
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// FIBStats are a network's MAC table figures.
type FIBStats struct {
	// Entries now, by source; Learned includes stale entries not yet
	// removed, MaxLearned is the bound on them (network create
	// --max-learned, or the daemon's). Peers is the flood list's length.
	Learned    int `json:"learned"`
	MaxLearned int `json:"max_learned"`
	Store      int `json:"store"`
	Static     int `json:"static"`
	Peers      int `json:"peers"`
	// Learned entries added, moved to another VTEP, and aged out.
	Added   uint64 `json:"added"`
	Moved   uint64 `json:"moved"`
	Expired uint64 `json:"expired"`
	// Learns refused: the table was full (--max-learned), the MAC or VTEP
	// was bad, or a stronger entry (static, store) names another VTEP.
	RefusedFull    uint64 `json:"refused_full"`
	RefusedInvalid uint64 `json:"refused_invalid"`
	Shadowed       uint64 `json:"shadowed"`
}

// PeerCounters are a network's counters for one remote VTEP.
type PeerCounters struct {
	// VTEP is the peer's underlay address, or "other" for the entry that
	// counts together the unknown VTEPs beyond the 64 a network keeps
	// counters for (senders it was not told about).
	VTEP string `json:"vtep"`
	// TXDatagrams and TXBytes count datagrams sent to the VTEP and their
	// inner frame bytes (a flooded frame counts for every peer it went
	// to); datagrams the underlay refused count in Drops as send_error.
	TXDatagrams uint64 `json:"tx_datagrams"`
	TXBytes     uint64 `json:"tx_bytes"`
	// RXFrames and RXBytes count frames received from the VTEP that
	// passed the checks in front of the TAP, and their bytes.
	RXFrames uint64 `json:"rx_frames"`
	RXBytes  uint64 `json:"rx_bytes"`
	// Drops counts by reason the datagrams from the VTEP dropped before
	// that (unknown_vtep, short, bad_src_mac, ce_not_ect) and those to it
	// the underlay refused (send_error); only reasons with drops appear.
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// NetworkStats is one network's counters and MAC table figures.
type NetworkStats struct {
	Network string `json:"network"`
	VNI     uint32 `json:"vni"`
	Counters
	FIB FIBStats `json:"fib"`
	// Peers are the counters per remote VTEP: every peer on the flood
	// list and every other VTEP the network exchanged frames with,
	// sorted by address.
	Peers []PeerCounters `json:"peers,omitempty"`
}

// Stats is what `vxswitch stats` shows.
type Stats struct {
	// Switch counts the datagrams received, those the kernel dropped
	// before the daemon read them, and those dropped before they matched
	// a network (short, bad flags, reserved bits, unknown VNI).
	Switch   SwitchCounters `json:"switch"`
	Networks []NetworkStats `json:"networks"`
}

// Info describes the daemon.
type Info struct {
	Version  string     `json:"version"`
	VTEP     string     `json:"vtep"`
	Port     uint16     `json:"port"`
	Offload  bool       `json:"offload"`
	RunDir   string     `json:"run_dir"`
	StateDir string     `json:"state_dir"`
	PID      int        `json:"pid"`
	Store    *StoreInfo `json:"store,omitempty"`
}

// StoreInfo is the daemon's link to the cluster store.
type StoreInfo struct {
	URL       string `json:"url"`
	Advertise string `json:"advertise"` // the VTEP other hosts send to
	// State is "connected" or "unreachable"; Since is when it became so.
	State string `json:"state"`
	Since string `json:"since"`
	Error string `json:"error,omitempty"`
	Lease string `json:"lease,omitempty"` // hex, as etcdctl prints it
}

// Host is a host of the cluster.
type Host struct {
	VTEP     string `json:"vtep"`
	Hostname string `json:"hostname,omitempty"`
	// State is "alive" (it holds its lease) or "down".
	State     string `json:"state"`
	Self      bool   `json:"self,omitempty"`
	Endpoints int    `json:"endpoints"`
	Version   string `json:"version,omitempty"`
	Since     string `json:"since,omitempty"` // alive since
	Joined    string `json:"joined"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}
