package docker

// The plugin protocol's messages, as libnetwork (the Docker engine's
// networking, moby/libnetwork, vendored by Docker 20.10) sends and reads
// them: drivers/remote/api/api.go for the network driver,
// ipams/remote/api/api.go for the IPAM driver, described in docs/remote.md
// and docs/ipam.md. Every call is an HTTP POST of a JSON object to
// /<Interface>.<Method>; the answer is a JSON object, with an error in
// Err (network driver) or Error (IPAM driver) and status 200.

// ContentType is the plugin protocol's media type (pkg/plugins).
const ContentType = "application/vnd.docker.plugins.v1.2+json"

// activateResponse answers /Plugin.Activate: which interfaces the plugin
// implements. One socket serves both drivers under one name.
type activateResponse struct {
	Implements []string
}

// Network driver (NetworkDriver.*).

type errResponse struct {
	Err string `json:",omitempty"`
}

type capabilitiesResponse struct {
	errResponse
	Scope             string
	ConnectivityScope string
}

// ipamData is libnetwork's driverapi.IPAMData in JSON: CIDR strings.
type ipamData struct {
	AddressSpace string
	Pool         string            // the subnet, 10.0.0.0/24
	Gateway      string            // the gateway with the pool's length, 10.0.0.1/24
	AuxAddresses map[string]string `json:",omitempty"`
}

type createNetworkRequest struct {
	NetworkID string
	// Options: "com.docker.network.generic" holds the -o options
	// (map[string]string in JSON), "com.docker.network.enable_ipv6" a
	// bool.
	Options            map[string]any
	IPv4Data, IPv6Data []ipamData
}

type networkRequest struct {
	NetworkID string
}

type endpointInterface struct {
	Address     string `json:",omitempty"` // CIDR
	AddressIPv6 string `json:",omitempty"` // CIDR
	MacAddress  string `json:",omitempty"`
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	// Interface holds what the IPAM driver gave (Address, AddressIPv6)
	// and a MAC the user asked for (docker run --mac-address). The
	// answer may fill in only what is empty here: libnetwork refuses to
	// change an address or MAC it already has.
	Interface *endpointInterface
	Options   map[string]any
}

type createEndpointResponse struct {
	errResponse
	Interface *endpointInterface `json:",omitempty"`
}

type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

type operInfoResponse struct {
	errResponse
	Value map[string]any
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string // the container's namespace, as the engine sees it
	Options    map[string]any
}

// interfaceName names the interface the engine moves into the container:
// SrcName in the engine's namespace, renamed DstPrefix plus an index.
type interfaceName struct {
	SrcName   string
	DstPrefix string
}

// staticRoute is a route the engine adds in the container: RouteType 0
// with a NextHop, or 1 (connected) without.
type staticRoute struct {
	Destination string
	RouteType   int
	NextHop     string `json:",omitempty"`
}

// joinResponse answers Join. Without a Gateway and without a default
// route in StaticRoutes (and without DisableGatewayService), the engine
// gives the container a second interface on its docker_gwbridge with the
// default route, as it does for its own overlay driver.
type joinResponse struct {
	errResponse
	InterfaceName         *interfaceName
	Gateway               string        `json:",omitempty"`
	GatewayIPv6           string        `json:",omitempty"`
	StaticRoutes          []staticRoute `json:",omitempty"`
	DisableGatewayService bool          `json:",omitempty"`
}

// IPAM driver (IpamDriver.*).

type ipamErrResponse struct {
	Error string `json:",omitempty"`
}

type ipamCapabilitiesResponse struct {
	ipamErrResponse
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type addressSpacesResponse struct {
	ipamErrResponse
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string // CIDR; "" asks the driver to pick one
	SubPool      string // --ip-range
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	ipamErrResponse
	PoolID string
	Pool   string
	Data   map[string]string
}

type requestAddressRequest struct {
	PoolID  string
	Address string // a bare address asked for; "" picks one
	// Options: RequestAddressType is com.docker.network.gateway for the
	// network's gateway, asked before the network exists.
	Options map[string]string
}

type requestAddressResponse struct {
	ipamErrResponse
	Address string // CIDR
	Data    map[string]string
}

type releaseAddressRequest struct {
	PoolID  string
	Address string
}

// Option keys and values libnetwork uses (netlabel, ipamapi).
const (
	optGeneric         = "com.docker.network.generic"
	optMTU             = "com.docker.network.driver.mtu"
	optRequestAddrType = "RequestAddressType"
	addrTypeGateway    = "com.docker.network.gateway"
)
