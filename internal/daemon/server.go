package daemon

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/internal/api"
)

// maxBody bounds request bodies; the largest request is a few hundred
// bytes.
const maxBody = 64 << 10

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathInfo, d.handle(func(r *http.Request) (any, error) {
		return api.Info{Version: d.cfg.Version, VTEP: d.cfg.VTEP.String(), Port: d.cfg.Port, Offload: d.cfg.Offload,
			RunDir: d.cfg.RunDir, StateDir: d.cfg.StateDir, PID: os.Getpid()}, nil
	}))
	mux.HandleFunc("GET "+api.PathNetworks, d.handle(func(r *http.Request) (any, error) {
		out := []api.Network{}
		for _, n := range d.sortedNets() {
			out = append(out, n.view())
		}
		return out, nil
	}))
	mux.HandleFunc("POST "+api.PathNetworks, d.handle(func(r *http.Request) (any, error) {
		var req api.NetworkCreate
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		n, err := d.createNetwork(req)
		if err != nil {
			return nil, err
		}
		return n.view(), nil
	}))
	mux.HandleFunc("GET "+api.PathNetwork, d.handle(func(r *http.Request) (any, error) {
		n, ok := d.nets[r.PathValue("name")]
		if !ok {
			return nil, notFound("no network named %s (see `vxswitch network ls`)", r.PathValue("name"))
		}
		return n.view(), nil
	}))
	mux.HandleFunc("DELETE "+api.PathNetwork, d.handle(func(r *http.Request) (any, error) {
		return nil, d.removeNetwork(r.PathValue("name"))
	}))
	mux.HandleFunc("POST "+api.PathEndpoints, d.handle(func(r *http.Request) (any, error) {
		var req api.Attach
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.attach(r.PathValue("name"), req)
	}))
	mux.HandleFunc("DELETE "+api.PathEndpoints, d.handle(func(r *http.Request) (any, error) {
		var req api.Detach
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return nil, d.detach(r.PathValue("name"), req)
	}))
	mux.HandleFunc("GET "+api.PathPeers, d.handle(func(r *http.Request) (any, error) {
		n, ok := d.nets[r.PathValue("name")]
		if !ok {
			return nil, notFound("no network named %s (see `vxswitch network ls`)", r.PathValue("name"))
		}
		return n.view().Peers, nil
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
		out := []api.FDBEntry{}
		now := d.now()
		for _, n := range d.sortedNets() {
			out = append(out, d.fdb(n, now)...)
		}
		return out, nil
	}))
	mux.HandleFunc("GET "+api.PathFDB, d.handle(func(r *http.Request) (any, error) {
		n, ok := d.nets[r.PathValue("name")]
		if !ok {
			return nil, notFound("no network named %s (see `vxswitch network ls`)", r.PathValue("name"))
		}
		return d.fdb(n, d.now()), nil
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
		name := r.URL.Query().Get("network")
		out := api.Stats{Switch: d.sw.Stats(), Networks: []api.NetworkStats{}}
		if name != "" {
			if _, ok := d.nets[name]; !ok {
				return nil, notFound("no network named %s (see `vxswitch network ls`)", name)
			}
		}
		for _, n := range d.sortedNets() {
			if (name != "" && n.Name != name) || n.sw == nil {
				continue
			}
			out.Networks = append(out.Networks, api.NetworkStats{
				Network: n.Name, VNI: n.VNI, Counters: n.sw.Stats(), FIB: n.sw.FIB().Stats(),
			})
		}
		return out, nil
	}))
	return mux
}

func (d *Daemon) now() time.Time {
	if d.cfg.Clock != nil {
		return d.cfg.Clock.Now()
	}
	return time.Now()
}

// handle runs fn under the daemon's mutex and writes its result as JSON,
// or its error as {"error": ...} with a status that says what kind of
// error it was.
func (d *Daemon) handle(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		out, err := fn(r)
		d.mu.Unlock()
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
		json.NewEncoder(w).Encode(out)
	}
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bad("bad request body: %v", err)
	}
	return nil
}
