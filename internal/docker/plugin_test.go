package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap/zaptest"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/daemon"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// fakeEngine serves the Docker engine API calls the plugin makes, from
// what the test puts in it: the engine's side of the protocol without a
// dockerd (cmd/vxswitch's Docker tests run real engines).
type fakeEngine struct {
	mu         sync.Mutex
	networks   map[string]engineNetwork
	containers map[string]engineContainer
	sock       string
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	f := &fakeEngine{networks: map[string]engineNetwork{}, containers: map[string]engineContainer{},
		sock: filepath.Join(t.TempDir(), "docker.sock")}
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /networks", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []engineNetwork{}
		for _, n := range f.networks {
			out = append(out, n)
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n, ok := f.networks[r.PathValue("id")]
		if !ok {
			http.Error(w, `{"message": "network not found"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(n)
	})
	mux.HandleFunc("GET /containers/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		c, ok := f.containers[r.PathValue("id")]
		if !ok {
			http.Error(w, `{"message": "no such container"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(c)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

// store records a network as the engine does once CreateNetwork returned.
func (f *fakeEngine) store(id, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.networks[id] = engineNetwork{ID: id, Name: name, Driver: "vxswitch", Containers: map[string]engineEndpoint{}}
}

// run puts container cid, named name, on network id as endpoint eid.
func (f *fakeEngine) run(id, cid, name, eid string, aliases ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.networks[id].Containers[cid] = engineEndpoint{Name: name, EndpointID: eid}
	c := engineContainer{ID: cid, Name: "/" + name}
	c.NetworkSettings.Networks = map[string]struct {
		Aliases    []string
		EndpointID string
	}{f.networks[id].Name: {Aliases: aliases, EndpointID: eid}}
	f.containers[cid] = c
}

func (f *fakeEngine) remove(id, cid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.networks[id].Containers, cid)
	delete(f.containers, cid)
}

// rig is a daemon (in-process, without a store) with the plugin on a
// host of a Topo, and the fake engine; restart closes and reopens both
// on the same directories.
type rig struct {
	t      *testing.T
	h      *topo.Host
	eng    *fakeEngine
	dir    string
	d      *daemon.Daemon
	p      *Plugin
	dctx   context.CancelFunc
	done   chan struct{}
	client *http.Client
}

func newRig(t *testing.T) *rig {
	t.Helper()
	tp := topo.New(t)
	r := &rig{t: t, h: tp.MustHost("h1"), eng: newFakeEngine(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(func() {
		r.stop()
		// The daemon leaves its networks' namespaces for its next start.
		ents, _ := os.ReadDir(filepath.Join(r.dir, "run", "netns"))
		for _, e := range ents {
			nsutil.Delete(filepath.Join(r.dir, "run", "netns", e.Name()))
		}
	})
	return r
}

func (r *rig) sock() string { return filepath.Join(r.dir, "plugins", "vxswitch.sock") }

func (r *rig) start() {
	t := r.t
	var err error
	r.d, err = daemon.New(daemon.Config{VTEP: r.h.Addr, RunDir: filepath.Join(r.dir, "run"), StateDir: filepath.Join(r.dir, "state"),
		Netns: r.h.Path, ReservationTTL: 3 * time.Second, Logger: zaptest.NewLogger(t).Named("daemon")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.dctx, r.done = cancel, make(chan struct{})
	go func() { r.d.Run(ctx); close(r.done) }()
	r.p, err = Listen(Config{Ops: r.d, Socket: r.sock(), Engine: "unix://" + r.eng.sock, StateDir: filepath.Join(r.dir, "state"),
		Logger: zaptest.NewLogger(t).Named("plugin")})
	if err != nil {
		t.Fatal(err)
	}
	go r.p.Serve()
	sock := r.sock()
	r.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

func (r *rig) stop() {
	if r.p == nil {
		return
	}
	r.p.Close()
	r.dctx()
	<-r.done
	r.p = nil
}

// call makes one plugin call as the engine does and decodes the answer
// into out; it returns the answer's error text (Err or Error).
func (r *rig) call(method string, req, out any) string {
	r.t.Helper()
	body, _ := json.Marshal(req)
	if req == nil {
		body = nil
	}
	resp, err := r.client.Post("http://plugin/"+method, ContentType, bytes.NewReader(body))
	if err != nil {
		r.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("%s: status %s", method, resp.Status)
	}
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	var e struct{ Err, Error string }
	json.Unmarshal(raw.Bytes(), &e)
	if out != nil {
		if err := json.Unmarshal(raw.Bytes(), out); err != nil {
			r.t.Fatalf("%s: %v: %s", method, err, raw.String())
		}
	}
	return e.Err + e.Error
}

// ok is call that must succeed.
func (r *rig) ok(method string, req, out any) {
	r.t.Helper()
	if msg := r.call(method, req, out); msg != "" {
		r.t.Fatalf("%s: %s", method, msg)
	}
}

func (r *rig) endpoints(network string) []daemon.EndpointInfo { return r.d.Endpoints(network) }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	net1 = "1111111111111111111111111111111111111111111111111111111111111111"
	net2 = "2222222222222222222222222222222222222222222222222222222222222222"
	ep1  = "e111111111111111111111111111111111111111111111111111111111111111"
	ep2  = "e222222222222222222222222222222222222222222222222222222222222222"
)

// The engine's whole conversation with the plugin for one network and
// two containers, as libnetwork holds it, checked against what the
// daemon then has: the network made under the Docker network's name, an
// address reserved before its endpoint exists and claimed by it, a MAC
// answered only when the engine has none, the container end of a veth
// left in the host's namespace for the engine, the container's names,
// and everything released again.
func TestProtocol(t *testing.T) {
	r := newRig(t)
	var act activateResponse
	r.ok("Plugin.Activate", nil, &act)
	if !slices.Equal(act.Implements, []string{"NetworkDriver", "IpamDriver"}) {
		t.Errorf("Activate: %v", act.Implements)
	}
	var caps capabilitiesResponse
	r.ok("NetworkDriver.GetCapabilities", nil, &caps)
	if caps.Scope != "local" || caps.ConnectivityScope != "global" {
		t.Errorf("capabilities %+v", caps)
	}
	var icaps ipamCapabilitiesResponse
	r.ok("IpamDriver.GetCapabilities", nil, &icaps)
	if icaps.RequiresMACAddress || icaps.RequiresRequestReplay {
		t.Errorf("IPAM capabilities %+v", icaps)
	}

	// docker network create -d vxswitch --ipam-driver vxswitch --subnet 10.0.0.0/24 mynet
	for _, bad := range []struct {
		req  requestPoolRequest
		want string
	}{
		{requestPoolRequest{V6: true, Pool: "fd00::/64"}, "IPv6 through Docker is not supported"},
		{requestPoolRequest{}, "give the network's subnet with --subnet"},
		{requestPoolRequest{Pool: "10.0.0.0/24", SubPool: "10.0.0.0/25"}, "--ip-range 10.0.0.0/25 is not supported"},
		{requestPoolRequest{Pool: "10.0.0.1/24"}, "did you mean 10.0.0.0/24"},
	} {
		if msg := r.call("IpamDriver.RequestPool", bad.req, nil); !strings.HasPrefix(msg, "vxswitch: ") || !strings.Contains(msg, bad.want) {
			t.Errorf("RequestPool %+v: %q, want %q", bad.req, msg, bad.want)
		}
	}
	var pool requestPoolResponse
	r.ok("IpamDriver.RequestPool", requestPoolRequest{AddressSpace: "vxswitch", Pool: "10.0.0.0/24"}, &pool)
	if pool.PoolID != "vxswitch:10.0.0.0/24" || pool.Pool != "10.0.0.0/24" {
		t.Errorf("pool %+v", pool)
	}
	var gw requestAddressResponse
	r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{optRequestAddrType: addrTypeGateway}}, &gw)
	if gw.Address != "10.0.0.1/24" {
		t.Errorf("gateway %q, want 10.0.0.1/24", gw.Address)
	}
	if msg := r.call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool.PoolID, Address: "10.0.0.9"}, nil); !strings.Contains(msg, "--aux-address is not supported") {
		t.Errorf("an address before the network exists: %q", msg)
	}
	create := createNetworkRequest{NetworkID: net1, Options: map[string]any{optGeneric: map[string]any{}},
		IPv4Data: []ipamData{{AddressSpace: "vxswitch", Pool: "10.0.0.0/24", Gateway: "10.0.0.1/24"}}}
	r.ok("NetworkDriver.CreateNetwork", create, nil)
	// The engine has the network (and its name) once CreateNetwork
	// returned; the plugin makes the network then.
	r.eng.store(net1, "mynet")
	eventually(t, "network mynet made", func() bool { return r.d.Endpoints("mynet") != nil }) // nil: no such network
	if msg := r.call("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: net2,
		IPv4Data: []ipamData{{Pool: "10.0.0.0/24", Gateway: "10.0.0.1/24"}}}, nil); !strings.Contains(msg, "subnet 10.0.0.0/24 is Docker network mynet's") {
		t.Errorf("a second Docker network with the subnet: %q", msg)
	}

	// docker run --network mynet --name web --network-alias www
	var addr requestAddressResponse
	r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool.PoolID}, &addr)
	if addr.Address != "10.0.0.2/24" {
		t.Fatalf("first address %q, want 10.0.0.2/24", addr.Address)
	}
	if eps := r.endpoints("mynet"); len(eps) != 1 || eps[0].Reserved.IsZero() || eps[0].IP.String() != "10.0.0.2/24" {
		t.Fatalf("after RequestAddress: %+v, want one reservation of 10.0.0.2", eps)
	}
	var ce createEndpointResponse
	r.ok("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: net1, EndpointID: ep1,
		Interface: &endpointInterface{Address: addr.Address}}, &ce)
	if ce.Interface == nil || ce.Interface.MacAddress != "02:42:0a:00:00:02" || ce.Interface.Address != "" {
		t.Errorf("CreateEndpoint answered %+v, want only the MAC 02:42:0a:00:00:02", ce.Interface)
	}
	// A retry of the same call (the engine retries a plugin that did not
	// answer) is answered the same.
	var again createEndpointResponse
	r.ok("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: net1, EndpointID: ep1, Interface: &endpointInterface{Address: addr.Address}}, &again)
	if again.Interface == nil || again.Interface.MacAddress != "02:42:0a:00:00:02" {
		t.Errorf("CreateEndpoint again answered %+v", again.Interface)
	}
	eps := r.endpoints("mynet")
	if len(eps) != 1 || eps[0].ID != ep1 || !eps[0].Reserved.IsZero() || eps[0].Joined || eps[0].MAC != "02:42:0a:00:00:02" {
		t.Fatalf("after CreateEndpoint: %+v, want endpoint %s, created, not joined", eps, ep1)
	}
	var join joinResponse
	r.ok("NetworkDriver.Join", joinRequest{NetworkID: net1, EndpointID: ep1, SandboxKey: "/var/run/docker/netns/0123456789ab"}, &join)
	if join.InterfaceName == nil || !strings.HasPrefix(join.InterfaceName.SrcName, "vxc") || join.InterfaceName.DstPrefix != "eth" ||
		join.Gateway != "" || len(join.StaticRoutes) != 0 || join.DisableGatewayService {
		t.Fatalf("Join answered %+v (%+v), want a vxc interface for eth, no gateway, no routes", join, join.InterfaceName)
	}
	// The container end waits in the host's namespace, down, with the
	// network's MTU and the endpoint's MAC; the other end is on br0.
	hh, err := nsutil.Handle(r.h.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	peer, err := hh.LinkByName(join.InterfaceName.SrcName)
	if err != nil {
		t.Fatalf("the container end %s is not in the host's namespace: %v", join.InterfaceName.SrcName, err)
	}
	if a := peer.Attrs(); a.MTU != 1450 || a.HardwareAddr.String() != "02:42:0a:00:00:02" || a.OperState == netlink.OperUp || len(mustAddrs(t, hh, peer)) != 0 {
		t.Errorf("container end: MTU %d, MAC %s, state %s; want 1450, 02:42:0a:00:00:02, down, no address", a.MTU, a.HardwareAddr, a.OperState)
	}
	ep, _ := r.d.Endpoint("mynet", ep1)
	nh, err := nsutil.Handle(filepath.Join(r.dir, "run", "netns", "vx-256"))
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	br, _ := nh.LinkByName("br0")
	if l, err := nh.LinkByName(ep.Veth); err != nil || br == nil || l.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("bridge end %s: %v, not on br0", ep.Veth, err)
	}
	// The container's name and aliases, read from the engine once it
	// shows the endpoint in a container; one that cannot be a DNS name
	// is left out.
	r.eng.run(net1, "c1", "web", ep1, "www", "bad name!", "web")
	eventually(t, "web's names set", func() bool {
		ep, _ := r.d.Endpoint("mynet", ep1)
		return ep.Name == "web" && slices.Equal(ep.Aliases, []string{"www"})
	})

	// A second container, with a MAC of its own (docker run
	// --mac-address): the engine has a MAC, so none is answered.
	r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool.PoolID}, &addr)
	var ce2 createEndpointResponse
	r.ok("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: net1, EndpointID: ep2,
		Interface: &endpointInterface{Address: addr.Address, MacAddress: "02:00:00:00:00:aa"}}, &ce2)
	if ce2.Interface != nil && ce2.Interface.MacAddress != "" {
		t.Errorf("CreateEndpoint answered a MAC the engine has: %+v", ce2.Interface)
	}
	if ep, err := r.d.Endpoint("mynet", ep2); err != nil || ep.MAC != "02:00:00:00:00:aa" || ep.IP.String() != "10.0.0.3/24" {
		t.Errorf("second endpoint %+v, %v", ep, err)
	}

	// docker rm -f web: Leave, DeleteEndpoint, ReleaseAddress.
	r.ok("NetworkDriver.Leave", endpointRequest{NetworkID: net1, EndpointID: ep1}, nil)
	if ep, _ := r.d.Endpoint("mynet", ep1); ep.Joined {
		t.Error("joined after Leave")
	}
	r.ok("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: net1, EndpointID: ep1}, nil)
	r.ok("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: pool.PoolID, Address: "10.0.0.2"}, nil)
	if _, err := hh.LinkByName(join.InterfaceName.SrcName); err == nil {
		t.Error("the veth pair is left after DeleteEndpoint")
	}
	if _, err := r.d.Endpoint("mynet", ep1); err == nil {
		t.Error("the endpoint is left after DeleteEndpoint")
	}
	// Calls for what is gone already succeed (the engine goes on anyway).
	r.ok("NetworkDriver.Leave", endpointRequest{NetworkID: net1, EndpointID: ep1}, nil)
	r.ok("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: net1, EndpointID: ep1}, nil)

	// An address the engine asked for and gave back before its endpoint
	// (a failed start) is released; one it never comes back for is
	// released after the reservation TTL.
	r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool.PoolID}, &addr)
	if addr.Address != "10.0.0.2/24" {
		t.Errorf("the released address is not the next: %s", addr.Address)
	}
	r.ok("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: pool.PoolID, Address: "10.0.0.2"}, nil)
	r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool.PoolID, Address: "10.0.0.7"}, &addr)
	if addr.Address != "10.0.0.7/24" {
		t.Errorf("asked for 10.0.0.7, got %s", addr.Address)
	}
	eventually(t, "the abandoned reservation released", func() bool {
		for _, ep := range r.endpoints("mynet") {
			if !ep.Reserved.IsZero() {
				return false
			}
		}
		return true
	})
	if eps := r.endpoints("mynet"); len(eps) != 1 || eps[0].ID != ep2 {
		t.Errorf("left: %+v, want only %s", eps, ep2)
	}
}

func mustAddrs(t *testing.T, h *netlink.Handle, l netlink.Link) []netlink.Addr {
	t.Helper()
	a, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The plugin keeps its Docker networks across a restart of the daemon
// (the engine does not create them again), releases what the engine
// removed meanwhile, sets names it did not get to, and refuses a Docker
// network whose name is a network's with another subnet, saying so.
func TestRestartAndMismatch(t *testing.T) {
	r := newRig(t)
	pool := "vxswitch:10.0.0.0/24"
	r.ok("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: net1, IPv4Data: []ipamData{{Pool: "10.0.0.0/24", Gateway: "10.0.0.1/24"}}}, nil)
	r.eng.store(net1, "mynet")
	start := func(eid string) {
		var addr requestAddressResponse
		r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool}, &addr)
		r.ok("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: net1, EndpointID: eid, Interface: &endpointInterface{Address: addr.Address}}, nil)
		r.ok("NetworkDriver.Join", joinRequest{NetworkID: net1, EndpointID: eid, SandboxKey: "/var/run/docker/netns/" + eid[:12]}, nil)
	}
	start(ep1)
	r.eng.run(net1, "c1", "web", ep1)
	eventually(t, "web named", func() bool { ep, _ := r.d.Endpoint("mynet", ep1); return ep.Name == "web" })
	start(ep2) // stopped before the engine shows it in a container
	r.stop()
	if b, err := os.ReadFile(filepath.Join(r.dir, "state", StateFile)); err != nil || !strings.Contains(string(b), `"name": "mynet"`) {
		t.Fatalf("%s: %v\n%s", StateFile, err, b)
	}

	// Meanwhile the engine removed web (it goes on without a driver that
	// does not answer) and started the second container.
	r.eng.remove(net1, "c1")
	r.eng.run(net1, "c2", "db", ep2, "database")
	r.start()
	eventually(t, "web's endpoint released and db named", func() bool {
		_, err := r.d.Endpoint("mynet", ep1)
		ep, _ := r.d.Endpoint("mynet", ep2)
		return err != nil && ep.Name == "db" && slices.Equal(ep.Aliases, []string{"database"})
	})
	// New containers join the network the engine created before.
	start("e333333333333333333333333333333333333333333333333333333333333333")

	// A Docker network named as a network with another subnet.
	if _, err := r.d.EnsureNetwork(context.Background(), daemon.NetworkSpec{Name: "other", Subnet: netip.MustParsePrefix("10.8.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	r.ok("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: net2, IPv4Data: []ipamData{{Pool: "10.9.0.0/24", Gateway: "10.9.0.1/24"}}}, nil)
	r.eng.store(net2, "other")
	msg := r.call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: "vxswitch:10.9.0.0/24"}, nil)
	if !strings.Contains(msg, "network other exists with subnet 10.8.0.0/24, not 10.9.0.0/24; give --subnet 10.8.0.0/24") {
		t.Errorf("mismatched subnet: %q", msg)
	}
	// Removing the Docker network forgets it; the cluster network stays.
	r.ok("NetworkDriver.DeleteNetwork", networkRequest{NetworkID: net2}, nil)
	if msg := r.call("IpamDriver.RequestAddress", requestAddressRequest{PoolID: "vxswitch:10.9.0.0/24"}, nil); !strings.Contains(msg, "no Docker network with subnet 10.9.0.0/24") {
		t.Errorf("after DeleteNetwork: %q", msg)
	}
	if _, err := r.d.EnsureNetwork(context.Background(), daemon.NetworkSpec{Name: "other", Subnet: netip.MustParsePrefix("10.8.0.0/24")}); err != nil {
		t.Errorf("the network went with the Docker network: %v", err)
	}
}

// A network made with --internal has no way out through Docker either:
// Join asks the engine for no gateway service (no docker_gwbridge).
func TestInternal(t *testing.T) {
	r := newRig(t)
	c := api.NewClient(filepath.Join(r.dir, "run", "vxswitch.sock"))
	if _, err := c.CreateNetwork(context.Background(), api.NetworkCreate{Name: "closed", Subnet: "10.5.0.0/24", Internal: true}); err != nil {
		t.Fatal(err)
	}
	r.ok("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: net1, IPv4Data: []ipamData{{Pool: "10.5.0.0/24", Gateway: "10.5.0.1/24"}}}, nil)
	r.eng.store(net1, "closed")
	var addr requestAddressResponse
	r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: "vxswitch:10.5.0.0/24"}, &addr)
	r.ok("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: net1, EndpointID: ep1, Interface: &endpointInterface{Address: addr.Address}}, nil)
	var join joinResponse
	r.ok("NetworkDriver.Join", joinRequest{NetworkID: net1, EndpointID: ep1, SandboxKey: "/var/run/docker/netns/0123456789ab"}, &join)
	if !join.DisableGatewayService || join.Gateway != "" {
		t.Errorf("Join on an internal network answered %+v, want the gateway service disabled", join)
	}
}
