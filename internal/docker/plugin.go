// Package docker is vxswitch's Docker front end: a remote network driver
// and IPAM driver for the Docker engine (the legacy plugin protocol, JSON
// over HTTP on a unix socket), which translates the engine's calls into
// the daemon's own operations (internal/daemon, ops.go) — the same ones
// `vxswitch network attach` uses.
//
//	docker network create -d vxswitch --ipam-driver vxswitch --subnet 10.0.0.0/24 mynet
//
// maps Docker network mynet to the cluster network mynet (created by the
// first engine, found by the others; a different subnet is an error).
// Addresses come from the cluster's allocation, so containers on
// different engines never collide, and a container's name and aliases
// are its endpoint's DNS names on every host.
//
// # How the engine's calls map
//
// The engine asks its IPAM driver before its network driver, and tells
// neither a network's name nor an endpoint's container (libnetwork
// #139, #514):
//
//	IpamDriver.RequestPool(subnet)        pool ID "vxswitch:SUBNET"; nothing kept
//	IpamDriver.RequestAddress(gateway)    the gateway (asked for, or the subnet's first address)
//	NetworkDriver.CreateNetwork(ID, pool) Docker network ID → subnet, kept (docker.json);
//	                                      its name is read from the engine once it has stored
//	                                      the network, and the cluster network ensured
//	IpamDriver.RequestAddress(pool)       Daemon.ReserveAddress: a provisional endpoint in the
//	                                      Docker network's cluster network (the pool's subnet
//	                                      names the Docker network: one per subnet per engine)
//	NetworkDriver.CreateEndpoint(ID, ip)  Daemon.ClaimReservation: the reservation becomes
//	                                      endpoint ID (Docker's); its MAC is answered
//	NetworkDriver.Join(ID, sandbox)       Daemon.JoinEndpoint, handed off: a veth whose one
//	                                      end is on the network's br0 and whose other end, in
//	                                      this namespace, the engine moves into the container;
//	                                      then the container's name and aliases, read from the
//	                                      engine, become the endpoint's names (SetEndpointNames)
//	NetworkDriver.Leave                   Daemon.LeaveEndpoint: unpublished, names gone
//	NetworkDriver.DeleteEndpoint          Daemon.DeleteEndpoint: released on every host
//	IpamDriver.ReleaseAddress(ip)         Daemon.ReleaseReservation: a reservation never claimed
//	NetworkDriver.DeleteNetwork           the Docker network is forgotten; the cluster network stays
//
// The plugin keeps only the Docker network IDs it must remember (the
// engine does not call CreateNetwork again after it restarts); endpoints
// are the daemon's, under Docker's endpoint IDs.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/internal/daemon"
)

// Ops are the daemon's operations the plugin uses; *daemon.Daemon has
// them.
type Ops interface {
	EnsureNetwork(ctx context.Context, spec daemon.NetworkSpec) (daemon.NetworkInfo, error)
	ReserveAddress(ctx context.Context, network, ip string) (daemon.EndpointInfo, error)
	ClaimReservation(ctx context.Context, network string, ip netip.Addr, spec daemon.EndpointSpec) (daemon.EndpointInfo, error)
	ReleaseReservation(ctx context.Context, network string, ip netip.Addr) (bool, error)
	JoinEndpoint(ctx context.Context, network, id string, j daemon.JoinSpec) (daemon.EndpointInfo, error)
	SetEndpointNames(ctx context.Context, network, id, name string, aliases []string) error
	LeaveEndpoint(ctx context.Context, network, id string) error
	DeleteEndpoint(ctx context.Context, network, id string) error
	Endpoints(network string) []daemon.EndpointInfo
}

// Config configures the plugin.
type Config struct {
	// Ops are the daemon's operations. Required.
	Ops Ops
	// Socket is where the engine finds the plugin; the driver's name is
	// its base name without .sock (/run/docker/plugins/vxswitch.sock:
	// docker network create -d vxswitch --ipam-driver vxswitch).
	Socket string
	// Engine is the Docker engine's API (DefaultEngine if "").
	Engine string
	// StateDir holds StateFile (the daemon's state directory).
	StateDir string
	// Logger; nil means zap.NewNop.
	Logger *zap.Logger
}

// Plugin serves the engine on Config.Socket.
type Plugin struct {
	cfg  Config
	name string
	ops  Ops
	eng  *engine
	log  *zap.Logger
	ln   net.Listener
	srv  *http.Server

	ctx    context.Context // ends with Close; the background work's
	cancel context.CancelFunc
	wg     sync.WaitGroup

	resolveMu sync.Mutex // one resolution of a network's name at a time

	mu   sync.Mutex // guards nets and the state file
	nets map[string]*dockerNet
	// loaded are the Docker networks of the plugin's file, and atStart
	// the daemon's Docker endpoints, when the plugin started: those the
	// engine no longer has are forgotten and released once it answers
	// (not what comes later, which the engine may not have stored yet).
	loaded  map[string]bool
	atStart map[string][]string // cluster network → endpoint IDs
}

// dockerNet is a Docker network of this engine.
type dockerNet struct {
	netRecord
	ensured bool // its cluster network was found or made, with its subnet, in this run
}

// Listen takes the socket and loads the plugin's state; Serve serves it.
func Listen(cfg Config) (*Plugin, error) {
	if cfg.Ops == nil {
		return nil, errors.New("docker plugin: no daemon")
	}
	if cfg.Engine == "" {
		cfg.Engine = DefaultEngine
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	name := strings.TrimSuffix(filepath.Base(cfg.Socket), ".sock")
	if cfg.Socket == "" || !strings.HasSuffix(cfg.Socket, ".sock") || name == "" {
		return nil, fmt.Errorf("bad --docker-plugin %q: want a socket path ending in .sock, such as /run/docker/plugins/vxswitch.sock (the driver's name is its base name)", cfg.Socket)
	}
	eng, err := newEngine(cfg.Engine)
	if err != nil {
		return nil, err
	}
	st, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	p := &Plugin{cfg: cfg, name: name, ops: cfg.Ops, eng: eng, log: cfg.Logger.With(zap.String("plugin", name)),
		nets: map[string]*dockerNet{}, loaded: map[string]bool{}, atStart: map[string][]string{}}
	for _, r := range st.Networks {
		p.nets[r.ID] = &dockerNet{netRecord: r}
		p.loaded[r.ID] = true
		if r.Name == "" {
			continue
		}
		for _, ep := range p.ops.Endpoints(r.Name) {
			if ep.Reserved.IsZero() && ep.Netns == "" {
				p.atStart[r.Name] = append(p.atStart[r.Name], ep.ID)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o755); err != nil {
		return nil, fmt.Errorf("--docker-plugin: %w", err)
	}
	// The daemon holds its run and state directories' locks, so a socket
	// left at this path by an earlier run of it is stale; one that
	// answers belongs to something else.
	if c, err := net.DialTimeout("unix", cfg.Socket, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("--docker-plugin %s: something else serves that socket; stop it, or give another path", cfg.Socket)
	}
	if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--docker-plugin: remove stale socket: %w", err)
	}
	if p.ln, err = net.Listen("unix", cfg.Socket); err != nil {
		return nil, fmt.Errorf("--docker-plugin: %w", err)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	// The engine's calls are small; a slow or stuck client must not hold
	// a connection.
	p.srv = &http.Server{Handler: p.routes(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	p.log.Info("Docker plugin listening", zap.String("socket", cfg.Socket), zap.String("engine", cfg.Engine), zap.Int("networks", len(p.nets)))
	return p, nil
}

// Name is the driver's name, for docker network create -d NAME
// --ipam-driver NAME.
func (p *Plugin) Name() string { return p.name }

// Serve serves the engine until Close, and meanwhile brings what the
// plugin knows up to date with the engine (see reconcile).
func (p *Plugin) Serve() error {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.reconcile(p.ctx)
	}()
	err := p.srv.Serve(p.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving (letting calls in flight finish) and the background
// work, and removes the socket.
func (p *Plugin) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	p.cancel()
	p.wg.Wait()
	os.Remove(p.cfg.Socket)
	return err
}

// maxBody bounds a call's body: the largest is a few hundred bytes.
const maxBody = 1 << 20

// routes are the plugin protocol's calls; any other path is 404, which
// the engine takes as "not implemented".
func (p *Plugin) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, activateResponse{Implements: []string{"NetworkDriver", "IpamDriver"}})
	})
	driver := map[string]func(context.Context, []byte) (any, error){
		"GetCapabilities": func(context.Context, []byte) (any, error) {
			// Local data (the engine keeps its own records; the cluster's
			// are vxswitch's), global connectivity.
			return capabilitiesResponse{Scope: "local", ConnectivityScope: "global"}, nil
		},
		"CreateNetwork":               p.createNetwork,
		"DeleteNetwork":               p.deleteNetwork,
		"CreateEndpoint":              p.createEndpoint,
		"DeleteEndpoint":              p.deleteEndpoint,
		"EndpointOperInfo":            func(context.Context, []byte) (any, error) { return operInfoResponse{Value: map[string]any{}}, nil },
		"Join":                        p.join,
		"Leave":                       p.leave,
		"DiscoverNew":                 empty,
		"DiscoverDelete":              empty,
		"ProgramExternalConnectivity": empty,
		"RevokeExternalConnectivity":  empty,
	}
	for method, fn := range driver {
		mux.HandleFunc("POST /NetworkDriver."+method, p.handle("NetworkDriver."+method, fn, false))
	}
	ipam := map[string]func(context.Context, []byte) (any, error){
		"GetCapabilities": func(context.Context, []byte) (any, error) {
			// Addresses and pools are in the cluster store, so the engine
			// need not replay them after it restarts; the MAC is made
			// from the address, so the engine need not make one first.
			return ipamCapabilitiesResponse{}, nil
		},
		"GetDefaultAddressSpaces": func(context.Context, []byte) (any, error) {
			return addressSpacesResponse{LocalDefaultAddressSpace: p.name, GlobalDefaultAddressSpace: p.name}, nil
		},
		"RequestPool":    p.requestPool,
		"ReleasePool":    empty, // a pool ID only names its subnet: nothing is kept
		"RequestAddress": p.requestAddress,
		"ReleaseAddress": p.releaseAddress,
	}
	for method, fn := range ipam {
		mux.HandleFunc("POST /IpamDriver."+method, p.handle("IpamDriver."+method, fn, true))
	}
	return mux
}

func empty(context.Context, []byte) (any, error) { return struct{}{}, nil }

// handle runs one call: its error goes back in Err (network driver) or
// Error (IPAM driver), with status 200, as libnetwork reads it, and
// prefixed so that the engine's message names vxswitch.
func (p *Plugin) handle(method string, fn func(context.Context, []byte) (any, error), ipam bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		var out any
		if err == nil {
			out, err = fn(r.Context(), body)
		}
		if err != nil {
			p.log.Warn("Docker call failed", zap.String("call", method), zap.ByteString("request", body), zap.Error(err))
			msg := "vxswitch: " + err.Error()
			if ipam {
				out = ipamErrResponse{Error: msg}
			} else {
				out = errResponse{Err: msg}
			}
		} else {
			p.log.Debug("Docker call", zap.String("call", method), zap.ByteString("request", body))
		}
		reply(w, out)
	}
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", ContentType)
	json.NewEncoder(w).Encode(v)
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("bad request from the engine: %v", err)
	}
	return nil
}

// poolPrefix starts every pool ID: the pool's subnet follows.
const poolPrefix = "vxswitch:"

func (p *Plugin) requestPool(_ context.Context, body []byte) (any, error) {
	var req requestPoolRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	switch {
	case req.V6:
		return nil, errors.New("IPv6 through Docker is not supported: create the network without --ipv6 and without an IPv6 --subnet")
	case req.Pool == "":
		return nil, errors.New("give the network's subnet with --subnet (the cluster network's, see `vxswitch network ls`): vxswitch's IPAM picks no pool itself")
	case req.SubPool != "":
		return nil, fmt.Errorf("--ip-range %s is not supported: every address of the subnet is the cluster's to hand out", req.SubPool)
	}
	subnet, err := netip.ParsePrefix(req.Pool)
	if err != nil || !subnet.Addr().Is4() {
		return nil, fmt.Errorf("bad subnet %q: want an IPv4 CIDR such as 10.0.0.0/24", req.Pool)
	}
	if subnet.Masked() != subnet {
		return nil, fmt.Errorf("bad subnet %q: host bits are set; did you mean %s?", req.Pool, subnet.Masked())
	}
	return requestPoolResponse{PoolID: poolPrefix + subnet.String(), Pool: subnet.String(), Data: map[string]string{}}, nil
}

// poolSubnet is the subnet a pool ID names.
func poolSubnet(id string) (netip.Prefix, error) {
	s, ok := strings.CutPrefix(id, poolPrefix)
	p, err := netip.ParsePrefix(s)
	if !ok || err != nil {
		return netip.Prefix{}, fmt.Errorf("unknown pool %q (not one of vxswitch's)", id)
	}
	return p, nil
}

func (p *Plugin) requestAddress(ctx context.Context, body []byte) (any, error) {
	var req requestAddressRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	subnet, err := poolSubnet(req.PoolID)
	if err != nil {
		return nil, err
	}
	if req.Options[optRequestAddrType] == addrTypeGateway {
		// Asked before the network exists: the cluster network's gateway
		// is the subnet's first address unless --gateway says otherwise,
		// and the network's name (read later) is checked against it.
		gw := subnet.Addr().Next()
		if req.Address != "" {
			if gw, err = netip.ParseAddr(req.Address); err != nil || !subnet.Contains(gw) || gw == subnet.Addr() {
				return nil, fmt.Errorf("bad gateway %q: not a host address of %s", req.Address, subnet)
			}
		}
		return requestAddressResponse{Address: netip.PrefixFrom(gw, subnet.Bits()).String(), Data: map[string]string{}}, nil
	}
	dn := p.bySubnet(subnet)
	if dn == "" {
		return nil, fmt.Errorf("no Docker network with subnet %s on this engine yet: --aux-address is not supported by vxswitch's IPAM", subnet)
	}
	name, err := p.resolve(ctx, dn)
	if err != nil {
		return nil, err
	}
	ep, err := p.ops.ReserveAddress(ctx, name, req.Address)
	if err != nil {
		return nil, err
	}
	return requestAddressResponse{Address: ep.IP.String(), Data: map[string]string{}}, nil
}

func (p *Plugin) releaseAddress(ctx context.Context, body []byte) (any, error) {
	var req releaseAddressRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	subnet, err := poolSubnet(req.PoolID)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(req.Address)
	if err != nil {
		return nil, fmt.Errorf("bad address %q", req.Address)
	}
	p.mu.Lock()
	var name string
	if dn := p.nets[p.bySubnetLocked(subnet)]; dn != nil {
		name = dn.Name
	}
	p.mu.Unlock()
	if name == "" {
		return struct{}{}, nil // the network is gone, or its gateway: nothing was reserved
	}
	// An endpoint's address is released with the endpoint (DeleteEndpoint
	// comes first); what is left is a reservation no endpoint claimed.
	if _, err := p.ops.ReleaseReservation(ctx, name, ip); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (p *Plugin) bySubnet(subnet netip.Prefix) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bySubnetLocked(subnet)
}

func (p *Plugin) bySubnetLocked(subnet netip.Prefix) string {
	for id, dn := range p.nets {
		if dn.Subnet == subnet {
			return id
		}
	}
	return ""
}

func (p *Plugin) createNetwork(_ context.Context, body []byte) (any, error) {
	var req createNetworkRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.IPv6Data) > 0 {
		return nil, errors.New("IPv6 through Docker is not supported: create the network without --ipv6")
	}
	if len(req.IPv4Data) != 1 {
		return nil, fmt.Errorf("a vxswitch network has one IPv4 subnet, got %d; give one --subnet", len(req.IPv4Data))
	}
	d := req.IPv4Data[0]
	rec := netRecord{ID: req.NetworkID}
	var err error
	if rec.Subnet, err = netip.ParsePrefix(d.Pool); err != nil {
		return nil, fmt.Errorf("bad pool %q", d.Pool)
	}
	if d.Gateway != "" {
		gw, err := netip.ParsePrefix(d.Gateway)
		if err != nil {
			return nil, fmt.Errorf("bad gateway %q", d.Gateway)
		}
		rec.Gateway = gw.Addr()
	}
	if generic, ok := req.Options[optGeneric].(map[string]any); ok {
		if s, ok := generic[optMTU].(string); ok {
			if rec.MTU, err = strconv.Atoi(s); err != nil || rec.MTU <= 0 {
				return nil, fmt.Errorf("bad -o %s=%s: want the overlay MTU, such as 1450", optMTU, s)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if other := p.bySubnetLocked(rec.Subnet); other != "" && other != rec.ID {
		name := p.nets[other].Name
		if name == "" {
			name = short(other)
		}
		return nil, fmt.Errorf("subnet %s is Docker network %s's on this engine; give each Docker network of vxswitch's its own subnet (its addresses are found by subnet)", rec.Subnet, name)
	}
	p.nets[rec.ID] = &dockerNet{netRecord: rec}
	if err := p.saveLocked(); err != nil {
		delete(p.nets, rec.ID)
		return nil, err
	}
	p.log.Info("Docker network created", zap.String("docker_network", rec.ID), zap.Stringer("subnet", rec.Subnet), zap.Stringer("gateway", rec.Gateway))
	// The engine stores the network, with its name, once this call has
	// returned: learn the name then, and make or find the cluster network.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.resolveLater(rec.ID)
	}()
	return struct{}{}, nil
}

func (p *Plugin) deleteNetwork(_ context.Context, body []byte) (any, error) {
	var req networkRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	dn, ok := p.nets[req.NetworkID]
	if !ok {
		return struct{}{}, nil
	}
	delete(p.nets, req.NetworkID)
	if err := p.saveLocked(); err != nil {
		p.nets[req.NetworkID] = dn
		return nil, err
	}
	// The cluster network stays: other engines and hosts may use it
	// (`vxswitch network rm` removes it once no host has endpoints).
	p.log.Info("Docker network removed", zap.String("docker_network", req.NetworkID), zap.String("network", dn.Name))
	return struct{}{}, nil
}

func (p *Plugin) createEndpoint(ctx context.Context, body []byte) (any, error) {
	var req createEndpointRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	name, err := p.resolve(ctx, req.NetworkID)
	if err != nil {
		return nil, err
	}
	in := req.Interface
	if in == nil || in.Address == "" {
		return nil, errors.New("the endpoint has no IPv4 address: create the network with --ipam-driver " + p.name)
	}
	ip, err := netip.ParsePrefix(in.Address)
	if err != nil {
		return nil, fmt.Errorf("bad address %q", in.Address)
	}
	ep, err := p.ops.ClaimReservation(ctx, name, ip.Addr(), daemon.EndpointSpec{ID: req.EndpointID, MAC: in.MacAddress})
	if err != nil {
		return nil, err
	}
	// Only what the engine does not have yet may be answered.
	out := &endpointInterface{}
	if in.MacAddress == "" {
		out.MacAddress = ep.MAC
	}
	if in.AddressIPv6 == "" && ep.IP6.IsValid() {
		out.AddressIPv6 = ep.IP6.String()
	}
	return createEndpointResponse{Interface: out}, nil
}

func (p *Plugin) deleteEndpoint(ctx context.Context, body []byte) (any, error) {
	var req endpointRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	name := p.knownName(req.NetworkID)
	if name == "" {
		return struct{}{}, nil
	}
	if err := p.ops.DeleteEndpoint(ctx, name, req.EndpointID); err != nil && !errors.Is(err, daemon.ErrNotFound) {
		return nil, err
	}
	return struct{}{}, nil
}

func (p *Plugin) join(ctx context.Context, body []byte) (any, error) {
	var req joinRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	name, err := p.resolve(ctx, req.NetworkID)
	if err != nil {
		return nil, err
	}
	if req.SandboxKey == "" {
		return nil, errors.New("join without a sandbox")
	}
	ep, err := p.ops.JoinEndpoint(ctx, name, req.EndpointID, daemon.JoinSpec{Sandbox: req.SandboxKey})
	if err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.namesLater(req.NetworkID, name, req.EndpointID)
	}()
	// No gateway and no default route: the engine adds its
	// docker_gwbridge for the way out, as with its overlay driver; an
	// --internal network has none.
	return joinResponse{InterfaceName: &interfaceName{SrcName: ep.Peer, DstPrefix: "eth"}, DisableGatewayService: ep.Internal}, nil
}

func (p *Plugin) leave(ctx context.Context, body []byte) (any, error) {
	var req endpointRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	name := p.knownName(req.NetworkID)
	if name == "" {
		return struct{}{}, nil
	}
	if err := p.ops.LeaveEndpoint(ctx, name, req.EndpointID); err != nil && !errors.Is(err, daemon.ErrNotFound) {
		return nil, err
	}
	return struct{}{}, nil
}

// knownName is the cluster network of a Docker network, if known.
func (p *Plugin) knownName(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dn := p.nets[id]; dn != nil {
		return dn.Name
	}
	return ""
}

// resolve returns the cluster network of Docker network id: its name,
// read from the engine if not known yet, with the cluster network found
// or made (EnsureNetwork) with the Docker network's subnet.
func (p *Plugin) resolve(ctx context.Context, id string) (string, error) {
	p.resolveMu.Lock()
	defer p.resolveMu.Unlock()
	p.mu.Lock()
	dn := p.nets[id]
	var rec netRecord
	var ensured bool
	if dn != nil {
		rec, ensured = dn.netRecord, dn.ensured
	}
	p.mu.Unlock()
	if dn == nil {
		return "", fmt.Errorf("unknown Docker network %s: it was not created through this plugin (or its record %s was lost); remove and create it again", short(id), filepath.Join(p.cfg.StateDir, StateFile))
	}
	if rec.Name == "" {
		en, err := p.eng.network(ctx, id)
		if err != nil {
			return "", fmt.Errorf("cannot read the name of Docker network %s: %w", short(id), err)
		}
		rec.Name = en.Name
		p.mu.Lock()
		if dn := p.nets[id]; dn != nil {
			dn.Name = rec.Name
			if err := p.saveLocked(); err != nil {
				p.log.Warn("cannot save the plugin's state; the name is read again after a restart", zap.Error(err))
			}
		}
		p.mu.Unlock()
	}
	if ensured {
		return rec.Name, nil
	}
	info, err := p.ops.EnsureNetwork(ctx, daemon.NetworkSpec{Name: rec.Name, Subnet: rec.Subnet, Gateway: rec.Gateway, MTU: rec.MTU})
	if err != nil {
		return "", fmt.Errorf("docker network %s: %w", rec.Name, err)
	}
	p.mu.Lock()
	if dn := p.nets[id]; dn != nil {
		dn.ensured = true
	}
	p.mu.Unlock()
	p.log.Info("Docker network mapped to its cluster network", zap.String("docker_network", id), zap.String("network", info.Name),
		zap.Uint32("vni", info.VNI), zap.Stringer("subnet", info.Subnet))
	return rec.Name, nil
}

// resolveLater resolves a new Docker network once the engine has stored
// it (right after CreateNetwork returns), so that a wrong subnet shows in
// the log at once; the first endpoint resolves it anyway.
func (p *Plugin) resolveLater(id string) {
	retry(p.ctx, 2*time.Minute, func() (bool, error) {
		_, err := p.resolve(p.ctx, id)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, errEngineNotFound):
			return false, nil // not stored yet
		case errors.Is(err, daemon.ErrConflict), errors.Is(err, daemon.ErrBadRequest):
			p.log.Error("Docker network does not match its cluster network; its containers cannot start", zap.String("docker_network", id), zap.Error(err))
			return true, nil
		}
		p.mu.Lock()
		gone := p.nets[id] == nil
		p.mu.Unlock()
		return gone, err
	}, func(err error) {
		p.log.Warn("cannot map a Docker network to its cluster network yet; its first container tries again", zap.String("docker_network", id), zap.Error(err))
	})
}

// namesLater reads the name and aliases of the container that joined
// endpoint eid from the engine (which has them once the join is done) and
// makes them the endpoint's DNS names.
func (p *Plugin) namesLater(dockerNet, network, eid string) {
	retry(p.ctx, 2*time.Minute, func() (bool, error) {
		name, aliases, err := p.containerNames(p.ctx, dockerNet, eid)
		if err != nil || name == "" {
			return false, err
		}
		err = p.ops.SetEndpointNames(p.ctx, network, eid, name, aliases)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, daemon.ErrNotFound):
			return true, nil // gone meanwhile
		}
		return false, err
	}, func(err error) {
		p.log.Warn("cannot set a container's names on its endpoint", zap.String("network", network), zap.String("id", eid), zap.Error(err))
	})
}

// containerNames returns the name and aliases on Docker network id of the
// container that holds endpoint eid, or "" while the engine does not show
// the endpoint in a container yet. Names that cannot be DNS names are
// left out.
func (p *Plugin) containerNames(ctx context.Context, id, eid string) (string, []string, error) {
	en, err := p.eng.network(ctx, id)
	if err != nil {
		return "", nil, err
	}
	var cid, name string
	for k, e := range en.Containers {
		if e.EndpointID == eid && !strings.HasPrefix(k, "ep-") {
			cid, name = k, e.Name
		}
	}
	if cid == "" {
		return "", nil, nil
	}
	c, err := p.eng.container(ctx, cid)
	if err != nil {
		return "", nil, err
	}
	var aliases []string
	for _, s := range c.NetworkSettings.Networks {
		if s.EndpointID == eid {
			aliases = s.Aliases
		}
	}
	name = strings.TrimPrefix(name, "/")
	var out []string
	for _, a := range aliases {
		if a == name || slices.Contains(out, a) {
			continue
		}
		if !daemon.ValidEndpointName(a) {
			p.log.Warn("leaving out an alias that cannot be a DNS name", zap.String("id", eid), zap.String("alias", a))
			continue
		}
		out = append(out, a)
	}
	if !daemon.ValidEndpointName(name) {
		p.log.Warn("a container name that cannot be a DNS name: only its aliases answer", zap.String("id", eid), zap.String("container", name))
		if len(out) == 0 {
			return "", nil, nil
		}
		name = ""
	}
	return name, out, nil
}

// reconcile brings the plugin up to date with the engine once it answers
// (it may start after vxswitch): Docker networks removed while the plugin
// was away are forgotten, names not read yet are read, and endpoints the
// engine no longer has (a container removed while the plugin was away:
// the engine goes on without its driver then) are released.
func (p *Plugin) reconcile(ctx context.Context) {
	var ens []engineNetwork
	retry(ctx, 0, func() (bool, error) {
		var err error
		ens, err = p.eng.networks(ctx)
		return err == nil, err
	}, func(err error) {
		p.log.Warn("Docker engine not answering yet; trying again", zap.Error(err))
	})
	if ctx.Err() != nil {
		return
	}
	names := map[string]string{}
	for _, en := range ens {
		names[en.ID] = en.Name
	}
	p.mu.Lock()
	changed := false
	var live []netRecord
	for id, dn := range p.nets {
		if !p.loaded[id] {
			continue // created since the plugin started
		}
		name, ok := names[id]
		switch {
		case !ok:
			delete(p.nets, id)
			changed = true
			p.log.Info("forgot a Docker network the engine no longer has", zap.String("docker_network", id), zap.String("network", dn.Name))
			continue
		case dn.Name == "":
			dn.Name, changed = name, true
		}
		live = append(live, dn.netRecord)
	}
	if changed {
		if err := p.saveLocked(); err != nil {
			p.log.Warn("cannot save the plugin's state", zap.Error(err))
		}
	}
	p.mu.Unlock()
	for _, rec := range live {
		// The cluster network now, rather than at the next container, so
		// that a mismatch shows in the log at once.
		if _, err := p.resolve(ctx, rec.ID); err != nil {
			p.log.Error("cannot map a Docker network to its cluster network; its containers cannot start until it can", zap.String("docker_network", rec.ID), zap.Error(err))
		}
		en, err := p.eng.network(ctx, rec.ID)
		if err != nil {
			p.log.Warn("cannot list a Docker network's endpoints", zap.String("docker_network", rec.ID), zap.Error(err))
			continue
		}
		have := map[string]bool{}
		for _, e := range en.Containers {
			have[e.EndpointID] = true
		}
		for _, id := range p.atStart[rec.Name] {
			if have[id] {
				continue
			}
			if err := p.ops.DeleteEndpoint(ctx, rec.Name, id); err != nil && !errors.Is(err, daemon.ErrNotFound) {
				p.log.Warn("cannot release an endpoint the engine no longer has", zap.String("network", rec.Name), zap.String("id", id), zap.Error(err))
				continue
			}
			p.log.Info("released an endpoint the engine no longer has", zap.String("network", rec.Name), zap.String("id", id))
		}
		for _, ep := range p.ops.Endpoints(rec.Name) {
			if ep.Sandbox != "" && ep.Name == "" && len(ep.Aliases) == 0 {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					p.namesLater(rec.ID, rec.Name, ep.ID)
				}()
			}
		}
	}
}

func (p *Plugin) saveLocked() error {
	var st state
	for _, dn := range p.nets {
		st.Networks = append(st.Networks, dn.netRecord)
	}
	slices.SortFunc(st.Networks, func(a, b netRecord) int { return strings.Compare(a.ID, b.ID) })
	return saveState(p.cfg.StateDir, st)
}

// retry calls try until it reports done, ctx ends or (if limit is not 0)
// limit has passed, with a backoff of 50 ms growing to 2 s; fail hears
// the first error and, after the limit, the last.
func retry(ctx context.Context, limit time.Duration, try func() (done bool, err error), fail func(error)) {
	deadline := time.Now().Add(limit)
	backoff := 50 * time.Millisecond
	reported := false
	for {
		done, err := try()
		if done || ctx.Err() != nil {
			return
		}
		if limit > 0 && time.Now().After(deadline) {
			if err != nil {
				fail(err)
			}
			return
		}
		if err != nil && !reported {
			fail(err)
			reported = true
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// short is a Docker ID as the docker CLI shows it.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
