package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// idRE is what the daemon accepts as an endpoint ID.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func TestEndpointID(t *testing.T) {
	base := EndpointID("mynet", "0123456789abcdef", "eth0")
	if !idRE.MatchString(base) {
		t.Fatalf("EndpointID %q is not a valid endpoint ID", base)
	}
	if again := EndpointID("mynet", "0123456789abcdef", "eth0"); again != base {
		t.Errorf("EndpointID is not stable: %q then %q", base, again)
	}
	// Any part changes it; the network's part is a prefix of its own.
	others := []string{
		EndpointID("mynet", "0123456789abcdef", "eth1"),
		EndpointID("mynet", "0123456789abcdeg", "eth0"),
		EndpointID("other", "0123456789abcdef", "eth0"),
		// No separator confusion: "a"+"bc" is not "ab"+"c".
		EndpointID("mynet", "0123456789abcdef"+"e", "th0"),
	}
	for _, o := range others {
		if o == base {
			t.Errorf("two attachments share endpoint ID %q", o)
		}
	}
	if !strings.HasPrefix(others[0], idPrefix("mynet")) || strings.HasPrefix(others[2], idPrefix("mynet")) {
		t.Errorf("IDs %q and %q: the prefix does not tell the network configuration", others[0], others[2])
	}
	long := EndpointID(strings.Repeat("n", 200), strings.Repeat("c", 500), "eth0")
	if !idRE.MatchString(long) {
		t.Errorf("EndpointID of long inputs %q is not a valid ID", long)
	}
}

func TestEndpointName(t *testing.T) {
	podmanID := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct{ pod, id, want string }{
		{"client", podmanID, "client"},
		{"", podmanID, podmanID[:12]},
		{"", "ctr-1", "ctr-1"},
		{"web.prod", "x", "web.prod"},
		{"bad name", "ctr-1", "ctr-1"},
		{"-bad", "ctr_2", "ctr_2"},
		{"", "bad/id", ""},
		{strings.Repeat("a", 64), "ctr", "ctr"},
		{"a..b", "c", "c"},
	} {
		if got := EndpointName(c.pod, c.id); got != c.want {
			t.Errorf("EndpointName(%q, %q) = %q, want %q", c.pod, c.id, got, c.want)
		}
	}
}

func TestLoadConf(t *testing.T) {
	c, err := LoadConf([]byte(`{"cniVersion": "1.0.0", "name": "mynet", "type": "vxswitch", "network": "web"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "web" || c.Socket != DefaultSocket || c.Name != "mynet" {
		t.Errorf("LoadConf: %+v", c)
	}
	for _, bad := range []struct {
		conf string
		code uint
	}{
		{`{"cniVersion": "1.0.0", "name": "mynet", "type": "vxswitch"}`, types.ErrInvalidNetworkConfig},
		{`{"cniVersion": "1.0.0", "name": "mynet", "type": "vxswitch", "network": 7}`, types.ErrDecodingFailure},
		{`{"cniVersion": "1.0.0", "name": "mynet", "type": "vxswitch", "network": "x", "prevResult": {"ips": 3}}`, types.ErrDecodingFailure},
	} {
		_, err := LoadConf([]byte(bad.conf))
		if code := errCode(err); code != bad.code {
			t.Errorf("LoadConf(%s): %v (code %d), want code %d", bad.conf, err, code, bad.code)
		}
	}
}

func errCode(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// fakeDaemon serves the control API's routes that the plugin uses on a
// unix socket, with canned answers, and records what it was asked.
type fakeDaemon struct {
	socket string
	mu     sync.Mutex
	// net is the one network it has; attach and detach answer with
	// attachErr and detachCode when set.
	net        api.Network
	attachErr  int
	detachCode int
	attached   []api.Attach
	detached   []api.Detach
}

func newFakeDaemon(t *testing.T, n api.Network) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{socket: filepath.Join(t.TempDir(), "vxswitch.sock"), net: n}
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET "+api.PathNetwork, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.PathValue("name") != f.net.Name {
			reply(w, http.StatusNotFound, api.Error{Error: "no network named " + r.PathValue("name")})
			return
		}
		reply(w, http.StatusOK, f.net)
	})
	mux.HandleFunc("POST "+api.PathEndpoints, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var req api.Attach
		json.NewDecoder(r.Body).Decode(&req)
		f.attached = append(f.attached, req)
		if f.attachErr != 0 {
			reply(w, f.attachErr, api.Error{Error: "IP 10.0.0.9 is already used in network " + f.net.Name})
			return
		}
		reply(w, http.StatusOK, api.Endpoint{ID: req.ID, Name: req.Name, Netns: req.Netns, IfName: req.IfName,
			IP: "10.0.0.9/24", MAC: "02:42:0a:00:00:09"})
	})
	mux.HandleFunc("DELETE "+api.PathEndpoints, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var req api.Detach
		json.NewDecoder(r.Body).Decode(&req)
		f.detached = append(f.detached, req)
		switch f.detachCode {
		case 0:
			w.WriteHeader(http.StatusNoContent)
		default:
			reply(w, f.detachCode, api.Error{Error: fmt.Sprintf("detach failed with %d", f.detachCode)})
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeDaemon) conf(network string) []byte {
	return fmt.Appendf(nil, `{"cniVersion": "1.0.0", "name": "cninet", "type": "vxswitch", "network": %q, "socket": %q}`, network, f.socket)
}

// TestFakeDaemon: what the plugin asks the daemon for, and how it turns
// the daemon's answers into CNI results and errors (no root needed).
func TestFakeDaemon(t *testing.T) {
	ctx := context.Background()
	f := newFakeDaemon(t, api.Network{Name: "web", Subnet: "10.0.0.0/24", MTU: 1450, Scope: "local"})
	args := &skel.CmdArgs{ContainerID: "ctr1", Netns: "/run/netns/ctr1", IfName: "net1",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=client;IP=10.0.0.9;MAC=02:42:0a:00:00:09", StdinData: f.conf("web")}
	res, err := Add(ctx, args)
	if err != nil {
		t.Fatal(err)
	}
	want := api.Attach{Netns: "/run/netns/ctr1", ID: EndpointID("cninet", "ctr1", "net1"), Name: "client", IfName: "net1",
		IP: "10.0.0.9", MAC: "02:42:0a:00:00:09"}
	if len(f.attached) != 1 || fmt.Sprint(f.attached[0]) != fmt.Sprint(want) {
		t.Errorf("the daemon was asked %+v, want %+v", f.attached, want)
	}
	// A network without a gateway: no route, no DNS.
	if res.CNIVersion != "1.0.0" || len(res.Interfaces) != 1 || len(res.IPs) != 1 || len(res.Routes) != 0 || !res.DNS.IsEmpty() {
		t.Fatalf("result %+v", res)
	}
	if i := res.Interfaces[0]; i.Name != "net1" || i.Mac != "02:42:0a:00:00:09" || i.Sandbox != "/run/netns/ctr1" || i.Mtu != 0 {
		t.Errorf("interface %+v", i)
	}
	if ip := res.IPs[0]; ip.Address.String() != "10.0.0.9/24" || *ip.Interface != 0 || ip.Gateway != nil {
		t.Errorf("IP %+v", ip)
	}

	// Unknown CNI_ARGS are refused without IgnoreUnknown.
	bad := *args
	bad.Args = "FOO=1"
	if _, err := Add(ctx, &bad); errCode(err) != types.ErrInvalidEnvironmentVariables {
		t.Errorf("ADD with an unknown CNI_ARG: %v", err)
	}
	// A network the daemon does not have: a clear configuration error.
	missing := *args
	missing.StdinData = f.conf("nonet")
	_, err = Add(ctx, &missing)
	if errCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "vxswitch network nonet (in CNI network configuration cninet) does not exist") ||
		!strings.Contains(err.Error(), "vxswitch network create nonet") {
		t.Errorf("ADD to a missing network: %v", err)
	}
	// A refused attach keeps the daemon's message.
	f.attachErr = http.StatusConflict
	if _, err := Add(ctx, args); errCode(err) != ErrRefused || !strings.Contains(err.Error(), "IP 10.0.0.9 is already used in network web") {
		t.Errorf("refused ADD: %v", err)
	}
	f.attachErr = http.StatusServiceUnavailable
	if _, err := Add(ctx, args); errCode(err) != types.ErrTryAgainLater {
		t.Errorf("ADD while the store is away: %v", err)
	}

	// DEL by ID; nothing to detach is success, other failures are not.
	if err := Del(ctx, args); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if len(f.detached) != 1 || f.detached[0].ID != want.ID || f.detached[0].Netns != "" {
		t.Errorf("DEL asked %+v", f.detached)
	}
	f.detachCode = http.StatusNotFound
	if err := Del(ctx, args); err != nil {
		t.Errorf("DEL of what is gone: %v", err)
	}
	if err := Del(ctx, &missing); err != nil {
		t.Errorf("DEL on a network that is gone: %v", err)
	}
	f.detachCode = http.StatusServiceUnavailable
	if err := Del(ctx, args); errCode(err) != types.ErrTryAgainLater || !strings.Contains(err.Error(), "detach failed with 503") {
		t.Errorf("DEL while the store is away: %v", err)
	}

	// No daemon at the socket.
	down := *args
	down.StdinData = []byte(`{"cniVersion": "1.0.0", "name": "cninet", "type": "vxswitch", "network": "web", "socket": "/nonexistent/vxswitch.sock"}`)
	for name, fn := range map[string]func() error{
		"ADD":    func() error { _, err := Add(ctx, &down); return err },
		"DEL":    func() error { return Del(ctx, &down) },
		"CHECK":  func() error { return Check(ctx, &down) },
		"STATUS": func() error { return Status(ctx, &down) },
	} {
		err := fn()
		want := types.ErrTryAgainLater
		if name == "STATUS" {
			want = types.ErrPluginNotAvailable
		}
		if errCode(err) != want || !strings.Contains(err.Error(), "no vxswitch daemon answers at /nonexistent/vxswitch.sock") {
			t.Errorf("%s with no daemon: %v", name, err)
		}
	}
	if err := Status(ctx, args); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	if err := Status(ctx, &missing); errCode(err) != types.ErrPluginNotAvailable {
		t.Errorf("STATUS of a missing network: %v", err)
	}
	f.net.Stale = "the cluster store is unreachable since 07:00"
	if err := Status(ctx, args); errCode(err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("STATUS while the store is away: %v", err)
	}
}
