package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrDaemonDown is returned when nothing answers at the socket.
var ErrDaemonDown = errors.New("vxswitch daemon not running")

// StatusError is an error the daemon reported.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// Client talks to a daemon over its unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon listening at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}
	// Creating a network or attaching runs netlink work in the daemon;
	// a minute is far beyond what that takes, yet a hung daemon does not
	// hang scripts forever.
	return &Client{socket: socket, hc: &http.Client{Transport: tr, Timeout: time.Minute}}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vxswitch"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w at %s (start it with `vxswitch daemon`, or point --socket / VXSWITCH_SOCKET at its socket)", ErrDaemonDown, c.socket)
		}
		return fmt.Errorf("talk to vxswitch daemon at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read reply from vxswitch daemon: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode reply from vxswitch daemon: %w", err)
		}
	}
	return nil
}

// path fills a route pattern's {name} with a network name.
func path(pattern, name string) string {
	return strings.Replace(pattern, "{name}", url.PathEscape(name), 1)
}

// Info describes the daemon.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var out Info
	return out, c.do(ctx, http.MethodGet, PathInfo, nil, &out)
}

// CreateNetwork creates a network.
func (c *Client) CreateNetwork(ctx context.Context, req NetworkCreate) (Network, error) {
	var out Network
	return out, c.do(ctx, http.MethodPost, PathNetworks, req, &out)
}

// Networks lists networks sorted by name.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var out []Network
	return out, c.do(ctx, http.MethodGet, PathNetworks, nil, &out)
}

// Network returns one network.
func (c *Client) Network(ctx context.Context, name string) (Network, error) {
	var out Network
	return out, c.do(ctx, http.MethodGet, path(PathNetwork, name), nil, &out)
}

// RemoveNetwork removes a network that has no endpoints.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, path(PathNetwork, name), nil, nil)
}

// Attach joins a namespace to a network.
func (c *Client) Attach(ctx context.Context, network string, req Attach) (Endpoint, error) {
	var out Endpoint
	return out, c.do(ctx, http.MethodPost, path(PathEndpoints, network), req, &out)
}

// Detach removes a namespace from a network.
func (c *Client) Detach(ctx context.Context, network string, req Detach) error {
	return c.do(ctx, http.MethodDelete, path(PathEndpoints, network), req, nil)
}

// AddPeer adds a VTEP to a network's flood list.
func (c *Client) AddPeer(ctx context.Context, network, vtep string) error {
	return c.do(ctx, http.MethodPost, path(PathPeers, network), Peer{VTEP: vtep}, nil)
}

// RemovePeer removes a VTEP from a network's flood list.
func (c *Client) RemovePeer(ctx context.Context, network, vtep string) error {
	return c.do(ctx, http.MethodDelete, path(PathPeers, network), Peer{VTEP: vtep}, nil)
}

// Peers lists a network's flood list.
func (c *Client) Peers(ctx context.Context, network string) ([]string, error) {
	var out []string
	return out, c.do(ctx, http.MethodGet, path(PathPeers, network), nil, &out)
}

// FDB lists MAC table entries of one network, or of all when network is "".
func (c *Client) FDB(ctx context.Context, network string) ([]FDBEntry, error) {
	var out []FDBEntry
	p := PathAllFDB
	if network != "" {
		p = path(PathFDB, network)
	}
	return out, c.do(ctx, http.MethodGet, p, nil, &out)
}

// AddFDB installs a static entry; with ips the switch also answers ARP
// and neighbour solicitations for them.
func (c *Client) AddFDB(ctx context.Context, network, mac, vtep string, ips ...string) error {
	return c.do(ctx, http.MethodPost, path(PathFDB, network), FDBEntry{MAC: mac, VTEP: vtep, IPs: ips}, nil)
}

// RemoveFDB removes a static (or learned) entry.
func (c *Client) RemoveFDB(ctx context.Context, network, mac string) error {
	return c.do(ctx, http.MethodDelete, path(PathFDB, network), FDBEntry{MAC: mac}, nil)
}

// Stats returns counters of one network, or of all when network is "".
func (c *Client) Stats(ctx context.Context, network string) (Stats, error) {
	var out Stats
	p := PathStats
	if network != "" {
		p += "?network=" + url.QueryEscape(network)
	}
	return out, c.do(ctx, http.MethodGet, p, nil, &out)
}

// Hosts lists the cluster's hosts (with a store).
func (c *Client) Hosts(ctx context.Context) ([]Host, error) {
	var out []Host
	return out, c.do(ctx, http.MethodGet, PathHosts, nil, &out)
}

// RemoveHost releases everything of a host that is not alive.
func (c *Client) RemoveHost(ctx context.Context, vtep string) error {
	return c.do(ctx, http.MethodDelete, strings.Replace(PathHost, "{vtep}", url.PathEscape(vtep), 1), nil, nil)
}
