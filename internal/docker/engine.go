package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultEngine is where the Docker engine's API is, as the docker CLI's
// default -H.
const DefaultEngine = "unix:///var/run/docker.sock"

// errEngineNotFound: the engine has no such network or container.
var errEngineNotFound = errors.New("not found in the Docker engine")

// engine is a client of the few Docker engine API calls the plugin needs:
// libnetwork tells a driver neither a network's name nor an endpoint's
// container (moby/libnetwork#139, #514), so the plugin reads them from
// the engine. Paths are unversioned: the engine answers in its own API
// version, and the fields read here are in every version since 1.24.
type engine struct {
	host string // as configured, for messages
	base string // http://docker or http://HOST:PORT
	http *http.Client
}

// newEngine makes a client for host: unix:///path or tcp://HOST:PORT.
func newEngine(host string) (*engine, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("bad --docker-host %q: want unix:///var/run/docker.sock or tcp://HOST:PORT", host)
	}
	e := &engine{host: host}
	tr := &http.Transport{MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Host + u.Path
		}
		if path == "" {
			return nil, fmt.Errorf("bad --docker-host %q: unix:// needs the socket's path, as in %s", host, DefaultEngine)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		e.base = "http://docker"
	case "tcp", "http":
		if u.Host == "" {
			return nil, fmt.Errorf("bad --docker-host %q: want tcp://HOST:PORT", host)
		}
		e.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("bad --docker-host %q: want unix:///var/run/docker.sock or tcp://HOST:PORT", host)
	}
	// Every call is a small GET on a local engine: a minute without an
	// answer means the engine is stuck.
	e.http = &http.Client{Transport: tr, Timeout: time.Minute}
	return e, nil
}

// engineNetwork is what GET /networks/{id} says of a network.
type engineNetwork struct {
	ID     string
	Name   string
	Driver string
	// Containers maps a container ID (or "ep-" and the endpoint ID for an
	// endpoint without a sandbox yet) to its endpoint.
	Containers map[string]engineEndpoint
}

type engineEndpoint struct {
	Name       string // the container's name
	EndpointID string
}

// engineContainer is what GET /containers/{id}/json says of a container.
type engineContainer struct {
	ID              string
	Name            string // with a leading slash
	NetworkSettings struct {
		Networks map[string]struct {
			Aliases    []string
			EndpointID string
		}
	}
}

func (e *engine) network(ctx context.Context, id string) (engineNetwork, error) {
	var n engineNetwork
	err := e.get(ctx, "/networks/"+url.PathEscape(id), &n)
	return n, err
}

func (e *engine) networks(ctx context.Context) ([]engineNetwork, error) {
	var ns []engineNetwork
	err := e.get(ctx, "/networks", &ns)
	return ns, err
}

func (e *engine) container(ctx context.Context, id string) (engineContainer, error) {
	var c engineContainer
	err := e.get(ctx, "/containers/"+url.PathEscape(id)+"/json", &c)
	return c, err
}

func (e *engine) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("the Docker engine at %s: %w (is dockerd running? see --docker-host)", e.host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("the Docker engine at %s: GET %s: %w", e.host, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("GET %s: %w", path, errEngineNotFound)
	case resp.StatusCode != http.StatusOK:
		var m struct{ Message string }
		json.Unmarshal(body, &m)
		return fmt.Errorf("the Docker engine at %s: GET %s: %s: %s", e.host, path, resp.Status, strings.TrimSpace(m.Message))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the Docker engine at %s: GET %s: %w", e.host, path, err)
	}
	return nil
}
