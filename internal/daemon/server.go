package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/pprof"
	"os"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/fib"
	vswitch "github.com/vxswitch/vxswitch/switch"
)

// maxBody bounds request bodies; the largest request is a few hundred
// bytes.
const maxBody = 64 << 10

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathInfo, d.handle(func(r *http.Request) (any, error) {
		info := api.Info{Version: d.cfg.Version, VTEP: d.cfg.VTEP.String(), Port: d.cfg.Port, Offload: d.cfg.Offload,
			RunDir: d.cfg.RunDir, StateDir: d.cfg.StateDir, PID: os.Getpid()}
		if d.cluster != nil {
			info.Store = d.cluster.info()
		}
		return info, nil
	}))
	mux.HandleFunc("GET "+api.PathNetworks, d.handle(func(r *http.Request) (any, error) {
		return d.networks(r.Context()), nil
	}))
	mux.HandleFunc("POST "+api.PathNetworks, d.handle(func(r *http.Request) (any, error) {
		var req api.NetworkCreate
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.createNetwork(r.Context(), req)
	}))
	mux.HandleFunc("GET "+api.PathNetwork, d.handle(func(r *http.Request) (any, error) {
		return d.inspect(r.Context(), r.PathValue("name"))
	}))
	mux.HandleFunc("DELETE "+api.PathNetwork, d.handle(func(r *http.Request) (any, error) {
		return nil, d.removeNetwork(r.Context(), r.PathValue("name"))
	}))
	mux.HandleFunc("POST "+api.PathEndpoints, d.handle(func(r *http.Request) (any, error) {
		var req api.Attach
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.attach(r.Context(), r.PathValue("name"), req)
	}))
	mux.HandleFunc("DELETE "+api.PathEndpoints, d.handle(func(r *http.Request) (any, error) {
		var req api.Detach
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return nil, d.detach(r.Context(), r.PathValue("name"), req)
	}))
	mux.HandleFunc("GET "+api.PathPeers, d.handle(func(r *http.Request) (any, error) {
		n, err := d.network(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		return d.networkView(n).Peers, nil
	}))
	mux.HandleFunc("GET "+api.PathHosts, d.handle(func(r *http.Request) (any, error) {
		if d.cluster == nil {
			return nil, bad("this daemon has no cluster store (start it with --store etcd://HOST:PORT)")
		}
		return d.cluster.hosts(r.Context()), nil
	}))
	mux.HandleFunc("DELETE "+api.PathHost, d.handle(func(r *http.Request) (any, error) {
		return nil, d.removeHost(r.Context(), r.PathValue("vtep"))
	}))
	mux.HandleFunc("POST "+api.PathPeers, d.handle(func(r *http.Request) (any, error) {
		var req api.Peer
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return nil, d.addPeer(r.PathValue("name"), req.VTEP)
	}))
	mux.HandleFunc("DELETE "+api.PathPeers, d.handle(func(r *http.Request) (any, error) {
		var req api.Peer
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return nil, d.removePeer(r.PathValue("name"), req.VTEP)
	}))
	mux.HandleFunc("GET "+api.PathAllFDB, d.handle(func(r *http.Request) (any, error) {
		return fdbListOf(d.sortedNets()...), nil
	}))
	mux.HandleFunc("GET "+api.PathFDB, d.handle(func(r *http.Request) (any, error) {
		n, err := d.network(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		return fdbListOf(n), nil
	}))
	mux.HandleFunc("POST "+api.PathFDB, d.handle(func(r *http.Request) (any, error) {
		var req api.FDBEntry
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return nil, d.addFDB(r.PathValue("name"), req)
	}))
	mux.HandleFunc("DELETE "+api.PathFDB, d.handle(func(r *http.Request) (any, error) {
		var req api.FDBEntry
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return nil, d.removeFDB(r.PathValue("name"), req.MAC)
	}))
	mux.HandleFunc("GET "+api.PathStats, d.handle(func(r *http.Request) (any, error) {
		return d.stats(r.URL.Query().Get("network"))
	}))
	mux.HandleFunc("GET "+api.PathTrace, d.serveTrace)
	// Profiles for finding where the datapath spends its time: `curl
	// --unix-socket RUN_DIR/vxswitch.sock http://x/debug/pprof/profile`.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// stats returns the counters of the switch and of network name (every
// network if ""). With d.mu held.
func (d *Daemon) stats(name string) (api.Stats, error) {
	out := api.Stats{Switch: apiSwitchCounters(d.sw.Stats()), Networks: []api.NetworkStats{}}
	if name != "" {
		if _, err := d.network(name); err != nil {
			return out, err
		}
	}
	for _, n := range d.sortedNets() {
		if (name != "" && n.Name != name) || n.sw == nil {
			continue
		}
		out.Networks = append(out.Networks, api.NetworkStats{
			Network: n.Name, VNI: n.VNI, Counters: apiCounters(n.sw.Stats()), FIB: apiFIBStats(n.sw.FIB().Stats()),
			Peers: apiPeers(n.sw.PeerStats()),
		})
	}
	return out, nil
}

// handle runs fn under the daemon's mutex and writes its result as JSON,
// or its error as {"error": ...} with a status that says what kind of
// error it was.
func (d *Daemon) handle(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Read the body before taking the lock, so a slow client cannot
		// hold every other request up.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		var out any
		if errors.As(err, new(*http.MaxBytesError)) {
			err = bad("request body over %d bytes: a request is one small JSON object", maxBody)
		} else if err != nil {
			err = bad("bad request body: %v", err)
		} else {
			r.Body = io.NopCloser(bytes.NewReader(body))
			d.mu.Lock()
			out, err = fn(r)
			d.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, errBadRequest):
				code = http.StatusBadRequest
			case errors.Is(err, errNotFound):
				code = http.StatusNotFound
			case errors.Is(err, errConflict):
				code = http.StatusConflict
			case errors.Is(err, errUnavailable):
				code = http.StatusServiceUnavailable
			default:
				d.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
			}
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
			return
		}
		if out == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if s, ok := out.(jsonWriter); ok {
			s.writeJSON(w) // a long list, written as it is made
			return
		}
		json.NewEncoder(w).Encode(out)
	}
}

// apiCounters is the datapath's counters as the control API reports them.
// The API has types of its own so that a change to the datapath's structs
// never changes the wire format by accident; TestAPICounters checks that
// every datapath counter gets here.
func apiCounters(c vswitch.Counters) api.Counters {
	return api.Counters{
		TXFrames: c.TXFrames, TXBytes: c.TXBytes, TXFlooded: c.TXFlooded, TXDatagrams: c.TXDatagrams, TXDrained: c.TXDrained,
		RXFrames: c.RXFrames, RXBytes: c.RXBytes, RXCsumRepaired: c.RXCsumRepaired, RXSplit: c.RXSplit, RXCoalesced: c.RXCoalesced,
		ARPProxied: c.ARPProxied, NDProxied: c.NDProxied, PMTUAnswered: c.PMTUAnswered,
		Drops: c.Drops, RXDrops: c.RXDrops, // fresh maps per snapshot
	}
}

// apiSwitchCounters is the switch-level counters as the control API
// reports them.
func apiSwitchCounters(c vswitch.SwitchCounters) api.SwitchCounters {
	return api.SwitchCounters{RXDatagrams: c.RXDatagrams, RXOverflow: c.RXOverflow, TXGSOSplit: c.TXGSOSplit, Drops: c.Drops}
}

// apiPeers is a network's per-VTEP counters as the control API reports
// them.
func apiPeers(ps []vswitch.PeerCounters) []api.PeerCounters {
	out := make([]api.PeerCounters, len(ps))
	for i, p := range ps {
		v := "other"
		if p.VTEP.IsValid() {
			v = p.VTEP.String()
		}
		out[i] = api.PeerCounters{VTEP: v, TXDatagrams: p.TXDatagrams, TXBytes: p.TXBytes, RXFrames: p.RXFrames, RXBytes: p.RXBytes, Drops: p.Drops}
	}
	return out
}

// apiFIBStats is a MAC table's figures as the control API reports them.
func apiFIBStats(s fib.Stats) api.FIBStats {
	return api.FIBStats{
		Learned: s.Learned, MaxLearned: s.MaxLearned, Store: s.Store, Static: s.Static, Peers: s.Peers,
		Added: s.Added, Moved: s.Moved, Expired: s.Expired,
		RefusedFull: s.RefusedFull, RefusedInvalid: s.RefusedInvalid, Shadowed: s.Shadowed,
	}
}

// jsonWriter is a result that writes its JSON itself, piece by piece,
// instead of being built whole by json.Encoder.
type jsonWriter interface{ writeJSON(io.Writer) error }

// decode reads and checks a request body (validate.go).
func decode(r *http.Request, v any) error { return decodeRequest(r.Body, v) }
