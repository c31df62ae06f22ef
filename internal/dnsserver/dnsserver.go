// Package dnsserver is the embedded DNS server that each vxswitch host runs
// for each overlay network, as Docker's embedded DNS does for its networks:
// containers on the network use the gateway address as their name server
// (`nameserver <gateway>` in /etc/netns/NS/resolv.conf, which `ip netns
// exec NS` shows its commands, or in a container's own resolv.conf), and
// find every endpoint of the network by name, on whichever host it runs.
//
// # What is answered
//
// A server listens on UDP and TCP port 53 at the network's gateway address,
// inside the network's namespace (where that address is on br0). From the
// network's endpoints (Records, which the daemon fills from the cluster
// store) it answers, authoritatively and case-insensitively:
//
//   - A and AAAA for NAME and NAME.NETWORK of every endpoint (with or
//     without a trailing dot: on the wire every name is absolute). When
//     several endpoints share a name, every address is returned, rotated by
//     one at each query so that clients that take the first one spread out.
//   - PTR for every endpoint address, under in-addr.arpa and ip6.arpa, with
//     NAME.NETWORK as the target, as Docker does.
//   - NODATA (NOERROR, no answer) for any other type of a known name (AAAA
//     of an IPv4-only endpoint, MX, TXT...): the name exists, so it is
//     neither NXDOMAIN nor forwarded (a forwarded "web" would get the
//     upstream's NXDOMAIN, and a client that asked A and AAAA would give up
//     on a name that has an A record).
//
// Local answers have a TTL of TTL seconds (see there for why), and NODATA
// answers carry no SOA, so they are not cached at all (RFC 2308). Zone
// transfers are refused and opcodes other than QUERY are not implemented.
//
// # What is forwarded
//
// Every other query (other names, PTR of other addresses, other classes)
// is forwarded as it came, with a new ID, to the host's resolvers: the
// nameserver lines of the daemon's /etc/resolv.conf (re-read when the file
// changes), or Config.Upstreams. They are tried in order over the client's
// transport (UDP or TCP), one try each, Config.Timeout per try and
// Config.TotalTimeout for the whole query; the first answer that is not
// SERVFAIL or REFUSED goes back to the client, with the upstream's TTLs and
// rcode (NXDOMAIN included). When none answers in time, or there is none,
// the client gets SERVFAIL: never silence, so a client never waits out its
// own timeout. The defaults (2 s per try, 4 s in all) finish before glibc's
// and musl's 5 s timeout, so the stub sees the SERVFAIL instead of timing
// out and retrying a query that is already failing, while one slow
// recursive lookup (a cold cache upstream) still gets 2 s.
//
// Forwarding sockets are opened in the namespace of the goroutine that
// serves the query, which is the daemon's own (the process's), never the
// network's: the network's namespace has no route out, and a loopback
// resolver such as systemd-resolved's 127.0.0.53 is reachable only from
// the daemon's. At most 256 queries per server are forwarded at once (each
// holds a socket for up to TotalTimeout); more get SERVFAIL at once, so a
// flood from one container cannot exhaust the daemon's descriptors.
//
// # Sizes
//
// Over UDP an answer is cut to 512 bytes, or to the client's EDNS0 buffer
// size up to 1232 (the DNS flag day 2020 size, which also fits a 1450-byte
// overlay MTU unfragmented), with TC set, so that the client asks again
// over TCP, where nothing is cut. This applies to forwarded answers too.
//
// # Logging
//
// Start and Close log one line each, and a line when the upstreams read
// from resolv.conf change (or are missing); nothing is logged per query
// except at debug level (behind the level check). Stats counts what
// happened.
//
// # Use
//
// The daemon starts one Server per gateway address of a network when it
// makes the network's namespace and br0 (after the address is on br0), and
// closes it before removing the namespace:
//
//	recs := new(dnsserver.Live) // one per network, shared by its servers
//	recs.Store(dnsserver.NewTable(dnsserver.Entry{Name: "web", Addrs: addrs}))
//	srv, err := dnsserver.Start(dnsserver.Config{
//		Netns:   netnsPath,
//		Addr:    gateway,
//		Domain:  networkName,
//		Records: recs,
//		Logger:  log,
//	})
//	if err != nil { ... } // errors.Is(err, dnsserver.ErrAddrNotAvailable): add the address first
//	defer srv.Close()
//	...
//	recs.Store(dnsserver.NewTable(entries...)) // on every change of the network's endpoints
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// TTL is the time to live, in seconds, of every local answer. Docker uses
// 600, but containers come and go and a restarted one may get another
// address: with 2 s a cache (nscd, systemd-resolved or dnsmasq in a
// container, a JVM) sees the new address about as soon as the store has
// it, while a client that resolves the same name for each of a burst of
// connections still asks only once per burst. Answering costs a map
// lookup, so short TTLs cost nothing here.
const TTL = 2

// Defaults of the Config fields left zero.
const (
	DefaultPort       = 53
	DefaultTimeout    = 2 * time.Second
	DefaultResolvConf = "/etc/resolv.conf"
)

const (
	// maxUDPSize caps UDP answers: the DNS flag day 2020 EDNS0 size,
	// which fits in one packet on a 1450-byte overlay.
	maxUDPSize = 1232
	// readBufSize is the UDP read buffer per query; queries are small,
	// but EDNS0 options (cookies, padding) may make them longer than 512.
	readBufSize = 4096
	// maxInflight bounds the queries forwarded at once per server.
	maxInflight = 256
)

// ErrAddrNotAvailable is returned by Start when Addr is not configured in
// the namespace (yet): the daemon must put the gateway address on br0
// first (an IPv6 one with IFA_F_NODAD, or after DAD finished).
var ErrAddrNotAvailable = errors.New("address not configured in the namespace")

// Config configures a Server.
type Config struct {
	// Netns is the path of the network namespace whose sockets the server
	// listens on; empty means the caller's.
	Netns string
	// Addr is the address to listen on: the network's gateway. A network
	// with an IPv4 and an IPv6 gateway runs two servers.
	Addr netip.Addr
	// Port is the port to listen on; 0 means 53.
	Port uint16
	// Domain is the network's name: NAME.Domain is answered as NAME, and
	// PTR answers are NAME.Domain. Empty: only bare names.
	Domain string
	// Records holds the network's endpoints. Required.
	Records Records
	// Upstreams are the resolvers to forward to, in order; empty means
	// the nameservers of ResolvConf.
	Upstreams []netip.AddrPort
	// ResolvConf is read for upstreams when Upstreams is empty, and again
	// whenever it changes; empty means /etc/resolv.conf. A file without
	// nameserver lines (or none at all) means nothing is forwarded and
	// other names get SERVFAIL.
	ResolvConf string
	// Timeout bounds one try of one upstream; 0 means 2 s.
	Timeout time.Duration
	// TotalTimeout bounds forwarding one query, all upstreams together;
	// 0 means twice Timeout.
	TotalTimeout time.Duration
	// Dial opens a connection to an upstream ("udp" or "tcp", "ip:port").
	// Nil means a net.Dialer, whose sockets are in the namespace of the
	// goroutine that serves the query: the process's. Tests, and a daemon
	// that must forward from another namespace, provide their own.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Logger receives the start and stop lines (and per-query lines at
	// debug level); nil means none.
	Logger *zap.Logger
}

// Stats counts a server's answers since Start.
type Stats struct {
	Local     uint64 // answered from Records (NODATA included)
	Forwarded uint64 // answered by an upstream
	Failed    uint64 // SERVFAIL: no upstream answered in time, none is configured, or too many in flight
	Truncated uint64 // UDP answers sent with TC set
}

// Server is a running DNS server; its methods may be called concurrently.
type Server struct {
	addr    netip.AddrPort
	suffix  string // "." + Domain, or "" when Domain is empty
	records Records
	static  []netip.AddrPort // Config.Upstreams; when empty, resolv is used
	resolv  *resolvConf
	timeout time.Duration
	total   time.Duration
	dial    func(ctx context.Context, network, address string) (net.Conn, error)
	log     *zap.Logger

	// ctx is cancelled by Close, which aborts queries being forwarded.
	ctx      context.Context
	cancel   context.CancelFunc
	inflight chan struct{} // a token per query being forwarded
	rotate   atomic.Uint32 // rotates answers with several addresses

	local, forwarded, failed, truncated atomic.Uint64

	udp, tcp  *dns.Server    // nil until Start has them serving
	wg        sync.WaitGroup // the two serving goroutines
	closeOnce sync.Once
}

// newServer checks cfg and fills in the defaults, without opening sockets.
func newServer(cfg Config) (*Server, error) {
	if !cfg.Addr.IsValid() {
		return nil, errors.New("dns server: no address to listen on; set Config.Addr to the network's gateway")
	}
	if cfg.Records == nil {
		return nil, errors.New("dns server: no Records")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TotalTimeout <= 0 {
		cfg.TotalTimeout = 2 * cfg.Timeout
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	domain := normalize(cfg.Domain)
	s := &Server{
		addr:     netip.AddrPortFrom(cfg.Addr.Unmap(), cfg.Port),
		records:  cfg.Records,
		static:   slices.Clone(cfg.Upstreams),
		timeout:  cfg.Timeout,
		total:    cfg.TotalTimeout,
		dial:     cfg.Dial,
		inflight: make(chan struct{}, maxInflight),
	}
	if domain != "" {
		s.suffix = "." + domain
	}
	s.log = cfg.Logger.With(zap.String("network", domain), zap.String("netns", cfg.Netns), zap.Stringer("addr", s.addr))
	s.resolv = &resolvConf{path: cfg.ResolvConf, log: s.log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start opens the UDP and TCP sockets at cfg.Addr inside cfg.Netns and
// serves them until Close. It fails with ErrAddrNotAvailable when the
// address is not configured there.
func Start(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	pc, ln, err := listen(cfg.Netns, s.addr)
	if err != nil {
		s.cancel()
		return nil, err
	}
	h := dns.HandlerFunc(s.serveDNS)
	s.udp = &dns.Server{PacketConn: pc, Handler: h, UDPSize: readBufSize}
	s.tcp = &dns.Server{Listener: ln, Handler: h}
	// Wait until both serve (Close may only shut down a started
	// dns.Server) or failed to start.
	var startErr error
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started, exited := s.serve(srv)
		select {
		case <-started:
		case err := <-exited:
			startErr = errors.Join(startErr, err)
		}
	}
	if startErr != nil {
		s.cancel()
		s.udp.Shutdown() // an error for the one that never started
		s.tcp.Shutdown()
		pc.Close()
		ln.Close()
		s.wg.Wait()
		return nil, fmt.Errorf("dns server on %s in %s: %w", s.addr, nsutil.Describe(cfg.Netns), startErr)
	}
	s.log.Info("dns server listening")
	return s, nil
}

// serve runs srv.ActivateAndServe on a goroutine of s.wg; started is
// closed once it serves, and exited gets its result.
func (s *Server) serve(srv *dns.Server) (started <-chan struct{}, exited <-chan error) {
	up := make(chan struct{})
	done := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(up) }
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := srv.ActivateAndServe()
		if err != nil {
			transport := "udp"
			if srv.Listener != nil {
				transport = "tcp"
			}
			s.log.Error("dns server stopped serving", zap.String("transport", transport), zap.Error(err))
		}
		done <- err
	}()
	return up, done
}

// listen opens the UDP socket and TCP listener at ap inside the namespace
// at netns; they stay there when served from other threads.
func listen(netns string, ap netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	udpNet, tcpNet := "udp4", "tcp4"
	if ap.Addr().Is6() {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	var pc *net.UDPConn
	var ln *net.TCPListener
	err := nsutil.Do(netns, func() (err error) {
		if pc, err = net.ListenUDP(udpNet, net.UDPAddrFromAddrPort(ap)); err != nil {
			return err
		}
		if ln, err = net.ListenTCP(tcpNet, net.TCPAddrFromAddrPort(ap)); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, nil, fmt.Errorf("dns server: listen on %s in %s: %w; put the gateway address on br0 there first", ap, nsutil.Describe(netns), ErrAddrNotAvailable)
	case err != nil:
		return nil, nil, fmt.Errorf("dns server: listen on %s in %s: %w", ap, nsutil.Describe(netns), err)
	}
	return pc, ln, nil
}

// Close stops both listeners, aborts the queries being forwarded (their
// clients get SERVFAIL), and returns when every goroutine of the server has
// ended. Calling it again does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		if s.udp == nil {
			return // made by newServer only (tests)
		}
		// Shutdown waits for the queries in progress, which the
		// cancellation above cut short; it fails only for a server
		// that is not started, which Start ruled out.
		s.udp.Shutdown()
		s.tcp.Shutdown()
		s.wg.Wait()
		s.log.Info("dns server stopped")
	})
	return nil
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Local:     s.local.Load(),
		Forwarded: s.forwarded.Load(),
		Failed:    s.failed.Load(),
		Truncated: s.truncated.Load(),
	}
}
