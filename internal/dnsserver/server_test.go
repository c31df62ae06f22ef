package dnsserver_test

// Tests of the listening server. Each makes its own namespaces (root, see
// topo.RequireRoot): a "network" one where the server listens at the
// gateway address on br0, and a "host" one with fake upstream resolvers
// on its loopback, reached through Config.Dial. Nothing is bound in the
// root namespace.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/dnsserver"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/veth"
)

// clientDeadline bounds every test query. The server must answer long
// before (it never lets a query hang); this only keeps a broken server
// from hanging the test.
const clientDeadline = time.Minute

var (
	gw4 = netip.MustParseAddr("10.0.0.1")
	gw6 = netip.MustParseAddr("fd00::1")
)

// loUp sets lo up in the namespace at path.
func loUp(t *testing.T, path string) {
	t.Helper()
	h, err := nsutil.Handle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up in %s: %v", path, err)
	}
}

// setupNetwork lays out the namespace at path as the daemon does a
// network's: lo up, and a bridge br0 up with the gateways 10.0.0.1/24 and
// fd00::1/64 (without DAD).
func setupNetwork(t *testing.T, path string) {
	t.Helper()
	loUp(t, path)
	h, err := nsutil.Handle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		t.Fatalf("add br0: %v", err)
	}
	br, err := h.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if err := nsutil.SetSysctl(path, "net/ipv6/conf/br0/disable_ipv6", "0"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*netlink.Addr{
		{IPNet: &net.IPNet{IP: gw4.AsSlice(), Mask: net.CIDRMask(24, 32)}},
		{IPNet: &net.IPNet{IP: gw6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD},
	} {
		if err := h.AddrAdd(br, a); err != nil {
			t.Fatalf("add %s to br0: %v", a.IPNet, err)
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
}

// hostNS makes a namespace standing for the daemon's own, with lo up.
func hostNS(t *testing.T) string {
	path := topo.TempNS(t, "host")
	loUp(t, path)
	return path
}

// nsDial is a Config.Dial that opens its sockets in the namespace at path.
func nsDial(path string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var c net.Conn
		err := nsutil.Do(path, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, address)
			return err
		})
		return c, err
	}
}

// serveInTest runs srv (a dns.Server over sockets already open) until the
// test ends.
func serveInTest(t *testing.T, srv *dns.Server) {
	t.Helper()
	started, done := make(chan struct{}), make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(); <-done })
}

// listenIn opens a UDP socket and a TCP listener at ap in the namespace.
func listenIn(t *testing.T, ns string, ap netip.AddrPort) (*net.UDPConn, *net.TCPListener) {
	t.Helper()
	var pc *net.UDPConn
	var ln *net.TCPListener
	err := nsutil.Do(ns, func() (err error) {
		if pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap)); err != nil {
			return err
		}
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", ap, ns, err)
	}
	return pc, ln
}

// startUpstream runs a resolver at ip:53 (UDP and TCP) in the namespace
// ns: example.test has A 192.0.2.1 (TTL 300), big.test 100 A records,
// every other name is NXDOMAIN.
func startUpstream(t *testing.T, ns, ip string) netip.AddrPort {
	t.Helper()
	ap := netip.AddrPortFrom(netip.MustParseAddr(ip), 53)
	pc, ln := listenIn(t, ns, ap)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		a := func(ip string) dns.RR {
			return &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP(ip)}
		}
		switch strings.ToLower(q.Name) {
		case "example.test.":
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, a("192.0.2.1"))
			}
		case "big.test.":
			for i := range 100 {
				m.Answer = append(m.Answer, a(fmt.Sprintf("198.51.100.%d", i+1)))
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
			m.Truncate(dns.MinMsgSize)
		}
		w.WriteMsg(m)
	})
	serveInTest(t, &dns.Server{PacketConn: pc, Handler: h})
	serveInTest(t, &dns.Server{Listener: ln, Handler: h})
	return ap
}

// startSilent listens at ip:53 (UDP and TCP) in ns and never answers: it
// reads queries, accepts connections and reads from them. asked gets a
// value for each query or connection.
func startSilent(t *testing.T, ns, ip string) (netip.AddrPort, <-chan struct{}) {
	t.Helper()
	ap := netip.AddrPortFrom(netip.MustParseAddr(ip), 53)
	pc, ln := listenIn(t, ns, ap)
	asked := make(chan struct{}, 64)
	signal := func() {
		select {
		case asked <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			signal()
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			signal()
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ap, asked
}

func startServer(t *testing.T, cfg dnsserver.Config) *dnsserver.Server {
	t.Helper()
	if cfg.Records == nil {
		cfg.Records = newFake(t)
	}
	if cfg.Domain == "" {
		cfg.Domain = "mynet"
	}
	s, err := dnsserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchange sends m to server over network ("udp" or "tcp") from inside
// the namespace ns, and returns the answer and its size.
func exchange(t *testing.T, ns, network string, server netip.AddrPort, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	r, size, err := tryExchange(ns, network, server, m)
	if err != nil {
		t.Fatal(err)
	}
	return r, size
}

// tryExchange is exchange for goroutines other than the test's.
func tryExchange(ns, network string, server netip.AddrPort, m *dns.Msg) (*dns.Msg, int, error) {
	var c net.Conn
	if err := nsutil.Do(ns, func() (err error) { c, err = net.Dial(network, server.String()); return err }); err != nil {
		return nil, 0, fmt.Errorf("dial %s %s: %w", network, server, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(clientDeadline))
	co := &dns.Conn{Conn: c, UDPSize: dns.MaxMsgSize}
	if err := co.WriteMsg(m); err != nil {
		return nil, 0, err
	}
	b, err := co.ReadMsgHeader(nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%s query %s to %s: %w", network, m.Question[0].Name, server, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		return nil, 0, err
	}
	if r.Id != m.Id {
		return nil, 0, fmt.Errorf("answer id %d, want %d", r.Id, m.Id)
	}
	return r, len(b), nil
}

// The server answers in the namespace, over UDP and TCP, on IPv4 and IPv6:
// local names, forwarded names, truncation.
func TestServe(t *testing.T) {
	netNS := topo.TempNS(t, "net")
	setupNetwork(t, netNS)
	host := hostNS(t)
	up := startUpstream(t, host, "127.0.0.1")

	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string // sorted answers; nil: none
		udpTC bool     // over UDP: truncated, fewer answers, at most 512 bytes
		count int      // when want is nil: the number of answers over TCP
	}{
		{name: "web.", qtype: dns.TypeA, want: []string{"10.0.0.2"}},
		{name: "WEB.MyNet.", qtype: dns.TypeAAAA, want: []string{"fd00::2"}},
		{name: "db.", qtype: dns.TypeAAAA},
		{name: "db.mynet.", qtype: dns.TypeMX},
		{name: "multi.mynet.", qtype: dns.TypeA, want: []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}},
		{name: reverse(t, "10.0.0.2"), qtype: dns.TypePTR, want: []string{"web.mynet."}},
		{name: reverse(t, "fd00::2"), qtype: dns.TypePTR, want: []string{"web.mynet."}},
		{name: "many.", qtype: dns.TypeA, udpTC: true, count: 100},
		{name: "example.test.", qtype: dns.TypeA, want: []string{"192.0.2.1"}},
		{name: "nosuch.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "big.test.", qtype: dns.TypeA, udpTC: true, count: 100},
	}
	for _, gw := range []netip.Addr{gw4, gw6} {
		s := startServer(t, dnsserver.Config{Netns: netNS, Addr: gw, Upstreams: []netip.AddrPort{up}, Dial: nsDial(host)})
		server := netip.AddrPortFrom(gw, 53)
		for _, network := range []string{"udp", "tcp"} {
			for _, tt := range tests {
				t.Run(fmt.Sprintf("%s/%s/%s/%s", gw, network, tt.name, dns.TypeToString[tt.qtype]), func(t *testing.T) {
					m, size := exchange(t, netNS, network, server, query{name: tt.name, qtype: tt.qtype}.msg())
					if m.Rcode != tt.rcode {
						t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
					}
					if tt.udpTC && network == "udp" {
						if !m.Truncated || len(m.Answer) >= tt.count || size > dns.MinMsgSize {
							t.Errorf("TC %v, %d answers in %d bytes; want TC, fewer than %d, at most 512 bytes", m.Truncated, len(m.Answer), size, tt.count)
						}
						return
					}
					if m.Truncated {
						t.Error("truncated")
					}
					if tt.count > 0 {
						if len(m.Answer) != tt.count {
							t.Errorf("%d answers, want %d", len(m.Answer), tt.count)
						}
						return
					}
					var got []string
					for _, rr := range m.Answer {
						got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
					}
					slices.Sort(got)
					if !slices.Equal(got, tt.want) {
						t.Errorf("answers %q, want %q", got, tt.want)
					}
				})
			}
		}
		st := s.Stats()
		if st.Local == 0 || st.Forwarded == 0 || st.Failed != 0 || st.Truncated == 0 {
			t.Errorf("%s: stats %+v", gw, st)
		}
	}
}

// A dead upstream is skipped after its per-try timeout; with only dead
// ones the answer is SERVFAIL, over UDP and TCP; and the total bound ends
// forwarding even when each try may take longer.
func TestForwardTimeouts(t *testing.T) {
	netNS := topo.TempNS(t, "net")
	setupNetwork(t, netNS)
	host := hostNS(t)
	good := startUpstream(t, host, "127.0.0.1")
	dead, asked := startSilent(t, host, "127.0.0.2")
	dead2, _ := startSilent(t, host, "127.0.0.3")

	tests := []struct {
		name      string
		upstreams []netip.AddrPort
		timeout   time.Duration
		total     time.Duration
		rcode     int
	}{
		{"dead then good", []netip.AddrPort{dead, good}, 200 * time.Millisecond, 0, dns.RcodeSuccess},
		{"only dead", []netip.AddrPort{dead}, 200 * time.Millisecond, 0, dns.RcodeServerFailure},
		// Each try could take an hour; the total bound answers.
		{"total bound", []netip.AddrPort{dead, dead2, good}, time.Hour, 300 * time.Millisecond, dns.RcodeServerFailure},
	}
	for i, tt := range tests {
		port := uint16(5301 + i)
		startServer(t, dnsserver.Config{Netns: netNS, Addr: gw4, Port: port, Upstreams: tt.upstreams,
			Timeout: tt.timeout, TotalTimeout: tt.total, Dial: nsDial(host)})
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				m, _ := exchange(t, netNS, network, netip.AddrPortFrom(gw4, port), query{name: "example.test.", qtype: dns.TypeA}.msg())
				if m.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
				}
				if tt.rcode == dns.RcodeSuccess && len(m.Answer) != 1 {
					t.Errorf("%d answers, want 1 from the live upstream", len(m.Answer))
				}
				select {
				case <-asked:
				default:
					t.Error("the dead upstream was not asked")
				}
			})
		}
	}
}

// Close cuts short the queries being forwarded (their clients get
// SERVFAIL), stops listening, and leaves no goroutine behind (TestMain
// checks).
func TestCloseDuringForward(t *testing.T) {
	netNS := topo.TempNS(t, "net")
	setupNetwork(t, netNS)
	host := hostNS(t)
	dead, asked := startSilent(t, host, "127.0.0.2")
	s, err := dnsserver.Start(dnsserver.Config{Netns: netNS, Addr: gw4, Records: newFake(t), Domain: "mynet",
		Upstreams: []netip.AddrPort{dead}, Timeout: time.Hour, Dial: nsDial(host)})
	if err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(gw4, 53)
	var wg sync.WaitGroup
	for _, network := range []string{"udp", "tcp"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _, err := tryExchange(netNS, network, server, query{name: "example.test.", qtype: dns.TypeA}.msg())
			if err != nil {
				t.Errorf("%s: %v", network, err)
			} else if m.Rcode != dns.RcodeServerFailure {
				t.Errorf("%s: rcode %s, want SERVFAIL", network, dns.RcodeToString[m.Rcode])
			}
		}()
	}
	// Both are being forwarded once the upstream got the UDP query and
	// the TCP connection.
	for range 2 {
		select {
		case <-asked:
		case <-time.After(clientDeadline):
			t.Fatal("the queries did not reach the upstream")
		}
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err = nsutil.Do(netNS, func() error {
		c, err := net.Dial("tcp", server.String())
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("TCP connect after Close: %v, want connection refused", err)
	}
}

func TestStartErrors(t *testing.T) {
	netNS := topo.TempNS(t, "net")
	setupNetwork(t, netNS)
	recs := newFake(t)
	_, err := dnsserver.Start(dnsserver.Config{Netns: netNS, Addr: netip.MustParseAddr("10.0.0.99"), Records: recs})
	if !errors.Is(err, dnsserver.ErrAddrNotAvailable) || !strings.Contains(err.Error(), "br0") {
		t.Errorf("unconfigured address: %v, want ErrAddrNotAvailable naming br0", err)
	}
	_, err = dnsserver.Start(dnsserver.Config{Netns: netNS + "-missing", Addr: gw4, Records: recs})
	if !errors.Is(err, nsutil.ErrNotFound) {
		t.Errorf("missing netns: %v, want ErrNotFound", err)
	}
	startServer(t, dnsserver.Config{Netns: netNS, Addr: gw4})
	_, err = dnsserver.Start(dnsserver.Config{Netns: netNS, Addr: gw4, Records: recs})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second server on one address: %v, want address in use", err)
	}
}

// What users do: a container on the network's bridge resolves through
// glibc (`ip netns exec C getent ...`) with the resolv.conf the daemon
// writes for it, and through the Go client over IPv6.
func TestContainerResolves(t *testing.T) {
	tp := topo.New(t, topo.Options{IPv6: true})
	netC := tp.MustContainer("net")
	c1 := tp.MustContainer("c1")
	setupNetwork(t, netC.Path)
	err := veth.Attach(veth.Spec{BridgeNetns: netC.Path, Bridge: "br0", HostName: "vc1", Netns: c1.Path, IfName: "eth0",
		IP: netip.MustParsePrefix("10.0.0.2/24"), IP6: netip.MustParsePrefix("fd00::2/64"), MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	host := hostNS(t)
	up := startUpstream(t, host, "127.0.0.1")
	for _, gw := range []netip.Addr{gw4, gw6} {
		startServer(t, dnsserver.Config{Netns: netC.Path, Addr: gw, Upstreams: []netip.AddrPort{up}, Dial: nsDial(host)})
	}
	writeNetnsResolvConf(t, c1.Name, "nameserver 10.0.0.1\nsearch mynet\n")

	tests := []struct {
		args []string
		want []string // each in the output; nil: not found (exit status 2)
	}{
		{[]string{"ahostsv4", "web"}, []string{"10.0.0.2"}},
		{[]string{"hosts", "web."}, []string{"fd00::2"}},
		{[]string{"hosts", "WEB.mynet"}, []string{"fd00::2"}},
		{[]string{"hosts", "db"}, []string{"10.0.0.3"}}, // AAAA is NODATA, A answers
		{[]string{"ahostsv4", "multi.mynet."}, []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}},
		{[]string{"hosts", "10.0.0.2"}, []string{"web.mynet"}},
		{[]string{"hosts", "fd00::2"}, []string{"web.mynet"}},
		{[]string{"ahostsv4", "example.test"}, []string{"192.0.2.1"}},
		{[]string{"hosts", "nosuch.test"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
			defer cancel()
			out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c1.Name, "getent"}, tt.args...)...).CombinedOutput()
			if tt.want == nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 2 {
					t.Errorf("getent: %v, %q; want exit status 2 (not found)", err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("getent: %v: %s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("getent said %q, want %s in it", out, w)
				}
			}
		})
	}

	m, _ := exchange(t, c1.Path, "udp", netip.AddrPortFrom(gw6, 53), query{name: "web.mynet.", qtype: dns.TypeAAAA}.msg())
	if len(m.Answer) != 1 || m.Answer[0].(*dns.AAAA).AAAA.String() != "fd00::2" {
		t.Errorf("over IPv6 from the container: %v", m.Answer)
	}
}

// writeNetnsResolvConf writes the resolv.conf that `ip netns exec name`
// shows its commands, as the daemon does, and removes it when the test
// ends.
func writeNetnsResolvConf(t *testing.T, name, content string) {
	t.Helper()
	_, err := os.Stat("/etc/netns")
	madeBase := errors.Is(err, os.ErrNotExist)
	dir := filepath.Join("/etc/netns", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		if madeBase {
			os.Remove("/etc/netns") // only if empty: another test may use it
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// childEnv marks the re-executed test binary of TestForwardFromOwnNamespace.
const childEnv = "VXSWITCH_DNSSERVER_CHILD"

// With the default Dial, queries are forwarded from the process's own
// namespace, not from the network's. The test binary runs itself in a new
// network namespace of its own (so that its "own" namespace is not the
// root one), where the upstream listens on 127.0.0.1; the network's
// namespace cannot reach it.
func TestForwardFromOwnNamespace(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		forwardFromOwnNamespace(t)
		return
	}
	topo.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestForwardFromOwnNamespace$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestForwardFromOwnNamespace") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func forwardFromOwnNamespace(t *testing.T) {
	self, err := nsutil.Inode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if parent, err := nsutil.Inode(fmt.Sprintf("/proc/%d/ns/net", os.Getppid())); err != nil || parent == self {
		t.Fatalf("the child runs in its parent's namespace (%v): it must have its own", err)
	}
	loUp(t, "")
	up := startUpstream(t, "", "127.0.0.1")
	netNS := topo.TempNS(t, "net")
	setupNetwork(t, netNS)
	// From the network's namespace, 127.0.0.1:53 is nobody.
	err = nsutil.Do(netNS, func() error {
		c, err := net.Dial("tcp", up.String())
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the upstream is reachable from the network's namespace (%v): the test would prove nothing", err)
	}
	startServer(t, dnsserver.Config{Netns: netNS, Addr: gw4, Upstreams: []netip.AddrPort{up}})
	for _, network := range []string{"udp", "tcp"} {
		m, _ := exchange(t, netNS, network, netip.AddrPortFrom(gw4, 53), query{name: "example.test.", qtype: dns.TypeA}.msg())
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Errorf("%s: rcode %s, %d answers; want the upstream's answer", network, dns.RcodeToString[m.Rcode], len(m.Answer))
		}
	}
}
