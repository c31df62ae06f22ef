package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// serve answers requests on a unix socket in a temporary directory with
// handler, as a daemon would, and returns the socket's path.
func serve(t *testing.T, handler http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vxswitch.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// The client sends each request to its route with the name escaped and
// the body as JSON, and decodes the reply.
func TestClientRequest(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathEndpoints, func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var req api.Attach
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Error(err)
		}
		json.NewEncoder(w).Encode(api.Endpoint{ID: req.ID, Name: req.Name, IP: "10.0.0.2/24", MAC: "02:42:0a:00:00:02", IfName: "eth0",
			Netns: r.PathValue("name")}) // echoes the network's name as the server saw it
	})
	mux.HandleFunc("GET "+api.PathStats, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Stats{Networks: []api.NetworkStats{{Network: r.URL.Query().Get("network"),
			Counters: api.Counters{TXFrames: 3, Drops: map[string]uint64{"no_peers": 1}}, FIB: api.FIBStats{Peers: 2}}}})
	})
	c := api.NewClient(serve(t, mux))
	ep, err := c.Attach(context.Background(), "a b/c", api.Attach{Netns: "c1", ID: "x", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (api.Endpoint{ID: "x", Name: "web", IP: "10.0.0.2/24", MAC: "02:42:0a:00:00:02", IfName: "eth0", Netns: "a b/c"}); !equalEndpoint(ep, want) {
		t.Errorf("Attach returned %+v, want %+v", ep, want)
	}
	st, err := c.Stats(context.Background(), "n&1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 || st.Networks[0].Network != "n&1" || st.Networks[0].TXFrames != 3 || st.Networks[0].Drops["no_peers"] != 1 || st.Networks[0].FIB.Peers != 2 {
		t.Errorf("Stats returned %+v", st)
	}
}

func equalEndpoint(a, b api.Endpoint) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// An error reply becomes a *StatusError with the daemon's status and its
// one-line message (or the body as is, when it is not the API's JSON);
// nothing at the socket is ErrDaemonDown.
func TestClientErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathNetwork, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.Error{Error: "no network " + r.PathValue("name")})
	})
	mux.HandleFunc("DELETE "+api.PathNetwork, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not JSON", http.StatusConflict)
	})
	c := api.NewClient(serve(t, mux))
	_, err := c.Network(context.Background(), "web-net")
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || se.Message != "no network web-net" {
		t.Errorf("Network of a missing network: %#v", err)
	}
	err = c.RemoveNetwork(context.Background(), "web-net")
	if !errors.As(err, &se) || se.Code != http.StatusConflict || se.Message != "not JSON" {
		t.Errorf("RemoveNetwork: %#v", err)
	}
	_, err = api.NewClient(filepath.Join(t.TempDir(), "none.sock")).Info(context.Background())
	if !errors.Is(err, api.ErrDaemonDown) {
		t.Errorf("Info with no daemon: %v, want ErrDaemonDown", err)
	}
}
