// Package store is vxswitch's cluster store client: the cluster's truth
// (networks, address allocations, hosts, endpoints) kept in etcd under one
// key prefix, the transactions that change it and the snapshots that
// daemons reconcile against. It knows nothing of namespaces, TAPs or MAC
// tables; the daemon (internal/daemon) turns what it reads into those.
//
// # Key layout
//
// Every key lives under Prefix, /vxswitch/v1/. Values are JSON.
//
//	networks/NAME             Network   permanent: the network itself
//	vnis/VNI                  NAME      permanent: makes the VNI unique
//	alloc/NAME/ip/ADDR        ID        permanent: an IPv4 or IPv6 address, taken by endpoint ID
//	alloc/NAME/mac/MAC        ID        permanent: a MAC, taken by endpoint ID
//	endpoints/NAME/ID         Endpoint  permanent: the allocation, which outlives its host's lease
//	published/NAME/ID         Endpoint  under the owning host's lease: what other hosts install
//	hosts/VTEP                Host      permanent: a host that joined (host rm removes it)
//	live/VTEP                 Live      under the host's lease: the host is up
//
// NAME is a network's name, ID an endpoint's ID (caller-chosen, unique in
// its network), VTEP the host's advertised underlay address, ADDR and MAC
// in their usual text forms.
//
// Everything that must be unique is created in one transaction that
// compares the create revision of every unique key with 0 (the key is
// absent), never by reading first and writing after: a network's name and
// VNI; an endpoint's ID, addresses and MAC. A transaction that changes a
// network's contents also compares the network key's create revision, so
// nothing is added to a network that was removed (or removed and made
// again) meanwhile.
//
// Liveness: a host's live/ key and its published/ endpoints are attached to
// its lease. When the lease expires (a crash, a partition) etcd deletes them
// and every other host drops the host's MAC entries and flood-list entry.
// The permanent records stay, so the host's addresses are not handed to
// anyone else while it is away; a host that comes back publishes its
// endpoints again (see Daemon), and `host rm` releases the records of one
// that will not.
package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// Prefix is the root of every key vxswitch writes.
const Prefix = "/vxswitch/v1/"

// Key prefixes under Prefix.
const (
	pNetworks  = Prefix + "networks/"
	pVNIs      = Prefix + "vnis/"
	pAlloc     = Prefix + "alloc/"
	pEndpoints = Prefix + "endpoints/"
	pPublished = Prefix + "published/"
	pHosts     = Prefix + "hosts/"
	pLive      = Prefix + "live/"
)

// Errors callers test with errors.Is. Each is wrapped with a message meant
// for the user.
var (
	// ErrUnavailable: etcd did not answer in time.
	ErrUnavailable = errors.New("cluster store unavailable")
	// ErrExists: a network of that name, or an endpoint of that ID,
	// exists already.
	ErrExists = errors.New("already exists")
	// ErrNotFound: no such network, endpoint or host.
	ErrNotFound = errors.New("not found")
	// ErrTaken: a VNI, an address or a MAC is used by something else.
	ErrTaken = errors.New("taken")
	// ErrInUse: a network still has endpoints, or a host is alive.
	ErrInUse = errors.New("in use")
	// ErrFull: no VNI or address is left.
	ErrFull = errors.New("exhausted")
	// ErrCorrupt: a value under Prefix is not what this version wrote.
	ErrCorrupt = errors.New("corrupt record")
)

// Config says how to reach etcd.
type Config struct {
	// URL is etcd://HOST:PORT[,HOST:PORT...]: the cluster's client
	// endpoints. With CACert it is reached over TLS.
	URL string
	// CACert, Cert and Key are PEM files: the CA that signed etcd's
	// server certificates, and a client certificate and its key (for
	// etcd's --client-cert-auth). Empty CACert means plain HTTP.
	CACert, Cert, Key string
	// RequestTimeout bounds every request that a command waits for; 0
	// means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Netns is the path of the network namespace the connections to
	// etcd are made from (the underlay's); empty means the caller's.
	Netns string
	// Logger; nil means no logging. The etcd client logs through it at
	// warning level and above.
	Logger *zap.Logger
}

// DefaultRequestTimeout bounds one store request: long enough for a
// leader election in a healthy cluster (about a second), short enough that
// a command fails promptly with a clear line while etcd is away.
const DefaultRequestTimeout = 5 * time.Second

// Store is a connection to the cluster store.
type Store struct {
	cli     *clientv3.Client
	url     string
	timeout time.Duration
	log     *zap.Logger
}

// ParseURL turns etcd://HOST:PORT[,HOST:PORT...] into the client's
// endpoint list; tls picks the scheme of each endpoint.
func ParseURL(raw string, tls bool) ([]string, error) {
	rest, ok := strings.CutPrefix(raw, "etcd://")
	if !ok || rest == "" {
		return nil, fmt.Errorf("bad --store %q: want etcd://HOST:PORT[,HOST:PORT...]", raw)
	}
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	var eps []string
	for _, hp := range strings.Split(strings.TrimSuffix(rest, "/"), ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("bad --store %q: %q is not HOST:PORT (etcd's client port is usually 2379)", raw, hp)
		}
		u := url.URL{Host: net.JoinHostPort(host, port)}
		eps = append(eps, scheme+u.Host)
	}
	return eps, nil
}

// Open connects to etcd. It does not wait for etcd to answer: a daemon
// starts while the store is away and catches up later; requests fail with
// ErrUnavailable until it answers.
func Open(cfg Config) (*Store, error) {
	var tc *tls.Config
	if cfg.CACert != "" {
		var err error
		if tc, err = tlsConfig(cfg); err != nil {
			return nil, err
		}
	} else if cfg.Cert != "" || cfg.Key != "" {
		return nil, errors.New("--store-cert and --store-key need --store-cacert (the CA of etcd's server certificates)")
	}
	eps, err := ParseURL(cfg.URL, tc != nil)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: eps,
		TLS:       tc,
		// gRPC connects in the background; a dead endpoint only delays
		// requests until the balancer picks a live one.
		DialTimeout: 2 * time.Second,
		// Keepalive pings notice a vanished member (a partition, a
		// SIGKILL without FIN) within seconds, so requests and watches
		// move to another member.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		PermitWithoutStream:  true,
		DialOptions:          dialOptions(cfg.Netns),
		Logger:               log.Named("etcd").WithOptions(zap.IncreaseLevel(zapcore.WarnLevel)),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster store %s: %w", cfg.URL, err)
	}
	return &Store{cli: cli, url: cfg.URL, timeout: timeout, log: log}, nil
}

// dialOptions makes the client's connections from inside netns: a socket
// belongs to the namespace its creating thread was in.
func dialOptions(netns string) []grpc.DialOption {
	if netns == "" {
		return nil
	}
	return []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := nsutil.Do(netns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	})}
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	pem, err := os.ReadFile(cfg.CACert)
	if err != nil {
		return nil, fmt.Errorf("--store-cacert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--store-cacert %s holds no PEM certificate", cfg.CACert)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	switch {
	case cfg.Cert != "" && cfg.Key != "":
		c, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("--store-cert/--store-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	case cfg.Cert != "" || cfg.Key != "":
		return nil, errors.New("--store-cert and --store-key go together")
	}
	return tc, nil
}

// Close closes the connection. Leases are not revoked: a daemon that stops
// leaves its endpoints published until its lease expires, as a crashed one
// would, so that a quick restart does not disturb other hosts.
func (s *Store) Close() error { return s.cli.Close() }

// URL is the store's address as configured.
func (s *Store) URL() string { return s.url }

// Client is the etcd client, for tests and tools.
func (s *Store) Client() *clientv3.Client { return s.cli }

// ctx bounds one request by the store's request timeout.
func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.timeout)
}

// wrap turns a client error into one line for the user.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isUnavailable(err) {
		return fmt.Errorf("%w: etcd at %s did not answer (%v); the datapath keeps forwarding on what it knows; try again once etcd is back", ErrUnavailable, s.url, shortErr(err))
	}
	return fmt.Errorf("cluster store %s: %w", s.url, err)
}

// isUnavailable reports whether err says that no etcd member answered.
func isUnavailable(err error) bool {
	msg := err.Error()
	for _, s := range []string{"Unavailable", "connection refused", "no route to host", "i/o timeout", "transport is closing", "etcdserver: request timed out", "etcdserver: leader changed", "etcdserver: no leader"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// shortErr is err's message without gRPC's "rpc error: code = ... desc =".
func shortErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "desc = "); i >= 0 {
		msg = msg[i+len("desc = "):]
	}
	return msg
}

func decode(kind, key string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrCorrupt, kind, key, err)
	}
	return nil
}

func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("store: " + err.Error()) // only plain structs are encoded
	}
	return string(b)
}
