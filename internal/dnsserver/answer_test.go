package dnsserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/vxswitch/vxswitch/internal/dnsserver"
)

// fakeRecords is a Records that also checks the contract: the server asks
// only for normalized names and unmapped addresses.
type fakeRecords struct {
	t     *testing.T
	names map[string][]netip.Addr
	addrs map[netip.Addr][]string

	mu    sync.Mutex
	asked []string
}

func newFake(t *testing.T) *fakeRecords {
	f := &fakeRecords{t: t, names: map[string][]netip.Addr{}, addrs: map[netip.Addr][]string{}}
	f.add("web", "10.0.0.2", "fd00::2")
	f.add("db", "10.0.0.3")
	f.add("v6only", "fd00::4")
	f.add("multi", "10.0.0.11", "10.0.0.12", "10.0.0.13")
	f.add("fifty", seq(50)...)
	f.add("many", seq(100)...)
	return f
}

// seq returns n addresses in 10.1.0.0/16.
func seq(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250))
	}
	return s
}

func (f *fakeRecords) add(name string, addrs ...string) {
	for _, a := range addrs {
		ip := netip.MustParseAddr(a)
		f.names[name] = append(f.names[name], ip)
		f.addrs[ip] = append(f.addrs[ip], name)
	}
}

func (f *fakeRecords) Lookup(name string) []netip.Addr {
	if name == "" || name != strings.ToLower(name) || strings.HasSuffix(name, ".") {
		f.t.Errorf("Lookup(%q): not a normalized name", name)
	}
	f.mu.Lock()
	f.asked = append(f.asked, name)
	f.mu.Unlock()
	return f.names[name]
}

func (f *fakeRecords) Reverse(ip netip.Addr) []string {
	if ip.Is4In6() || ip.Zone() != "" {
		f.t.Errorf("Reverse(%s): not an unmapped address without zone", ip)
	}
	return f.addrs[ip]
}

// fakeWriter is a dns.ResponseWriter that keeps what the server wrote, as
// bytes (what would go on the wire) and unpacked.
type fakeWriter struct {
	tcp bool
	raw []byte
	msg *dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 53}
}

func (w *fakeWriter) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 40000}
}

func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *fakeWriter) Write(b []byte) (int, error) {
	if w.msg != nil {
		return 0, errors.New("second answer to one query")
	}
	w.raw = slices.Clone(b)
	w.msg = new(dns.Msg)
	return len(b), w.msg.Unpack(b)
}

func (w *fakeWriter) Close() error        { return nil }
func (w *fakeWriter) TsigStatus() error   { return nil }
func (w *fakeWriter) TsigTimersOnly(bool) {}
func (w *fakeWriter) Hijack()             {}

// query is one question, as a client would send it.
type query struct {
	name  string
	qtype uint16
	tcp   bool
	edns  uint16 // EDNS0 buffer size; 0: no OPT
}

func (q query) msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	if q.edns > 0 {
		m.SetEdns0(q.edns, false)
	}
	return m
}

// ask sends q through the server's handler (wire format both ways) and
// returns the answer and its size on the wire.
func ask(t *testing.T, s *dnsserver.Server, q query) (*dns.Msg, int) {
	t.Helper()
	b, err := q.msg().Pack()
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatal(err)
	}
	w := &fakeWriter{tcp: q.tcp}
	s.Serve(w, r)
	if w.msg == nil {
		t.Fatalf("%s %s: no answer", q.name, dns.TypeToString[q.qtype])
	}
	if w.msg.Id != r.Id || !w.msg.Response {
		t.Fatalf("%s: answer with id %d response %v, want the query's id %d", q.name, w.msg.Id, w.msg.Response, r.Id)
	}
	return w.msg, len(w.raw)
}

// noUpstream is a resolv.conf without nameservers.
func noUpstream(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("search example\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestServer(t *testing.T, cfg dnsserver.Config) *dnsserver.Server {
	t.Helper()
	if cfg.Records == nil {
		cfg.Records = newFake(t)
	}
	if !cfg.Addr.IsValid() {
		cfg.Addr = netip.MustParseAddr("10.0.0.1")
	}
	if cfg.ResolvConf == "" && len(cfg.Upstreams) == 0 {
		cfg.ResolvConf = noUpstream(t)
	}
	s, err := dnsserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// answers returns the answer section as strings: addresses for A and
// AAAA, targets for PTR, owner names checked against owner.
func answers(t *testing.T, m *dns.Msg, owner string) []string {
	t.Helper()
	var out []string
	for _, rr := range m.Answer {
		if rr.Header().Name != owner {
			t.Errorf("answer owner %q, want %q as asked", rr.Header().Name, owner)
		}
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.PTR:
			out = append(out, rr.Ptr)
		default:
			t.Errorf("unexpected answer %s", rr)
		}
		if rr.Header().Ttl != dnsserver.TTL {
			t.Errorf("%s: TTL %d, want %d", rr, rr.Header().Ttl, dnsserver.TTL)
		}
	}
	slices.Sort(out)
	return out
}

func reverse(t *testing.T, ip string) string {
	r, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Local answers: every name form, type and transport.
func TestLocalAnswers(t *testing.T) {
	s := newTestServer(t, dnsserver.Config{Domain: "MyNet."})
	nodata := []string{}
	tests := []struct {
		q    query
		want []string // nil: forwarded (here SERVFAIL, there is no upstream)
	}{
		{query{name: "web.", qtype: dns.TypeA}, []string{"10.0.0.2"}},
		{query{name: "web.", qtype: dns.TypeAAAA}, []string{"fd00::2"}},
		{query{name: "web.mynet.", qtype: dns.TypeA}, []string{"10.0.0.2"}},
		{query{name: "WeB.MyNeT.", qtype: dns.TypeAAAA}, []string{"fd00::2"}},
		{query{name: "WEB.", qtype: dns.TypeA, tcp: true}, []string{"10.0.0.2"}},
		{query{name: "web.", qtype: dns.TypeANY}, []string{"10.0.0.2", "fd00::2"}},
		{query{name: "multi.", qtype: dns.TypeA}, []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}},
		{query{name: "multi.mynet.", qtype: dns.TypeA, tcp: true}, []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}},
		// Known names, other types: NODATA.
		{query{name: "db.", qtype: dns.TypeAAAA}, nodata},
		{query{name: "db.mynet.", qtype: dns.TypeAAAA, tcp: true}, nodata},
		{query{name: "v6only.", qtype: dns.TypeA}, nodata},
		{query{name: "web.", qtype: dns.TypeMX}, nodata},
		{query{name: "web.mynet.", qtype: dns.TypeTXT}, nodata},
		// Reverse.
		{query{name: reverse(t, "10.0.0.2"), qtype: dns.TypePTR}, []string{"web.mynet."}},
		{query{name: strings.ToUpper(reverse(t, "fd00::2")), qtype: dns.TypePTR, tcp: true}, []string{"web.mynet."}},
		{query{name: reverse(t, "10.0.0.3"), qtype: dns.TypeA}, nodata},
		// Not ours: forwarded.
		{query{name: "nosuch.", qtype: dns.TypeA}, nil},
		{query{name: "nosuch.mynet.", qtype: dns.TypeA}, nil},
		{query{name: "mynet.", qtype: dns.TypeA}, nil},
		{query{name: "x.web.", qtype: dns.TypeA}, nil},
		{query{name: "web.othernet.", qtype: dns.TypeA}, nil},
		{query{name: reverse(t, "10.0.0.99"), qtype: dns.TypePTR}, nil},
		{query{name: "0.0.10.in-addr.arpa.", qtype: dns.TypePTR}, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/tcp=%v", tt.q.name, dns.TypeToString[tt.q.qtype], tt.q.tcp), func(t *testing.T) {
			m, _ := ask(t, s, tt.q)
			if tt.want == nil {
				if m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 {
					t.Errorf("rcode %s with %d answers, want SERVFAIL from forwarding with no upstream", dns.RcodeToString[m.Rcode], len(m.Answer))
				}
				return
			}
			if m.Rcode != dns.RcodeSuccess || !m.Authoritative || !m.RecursionAvailable {
				t.Errorf("rcode %s aa %v ra %v, want NOERROR aa ra", dns.RcodeToString[m.Rcode], m.Authoritative, m.RecursionAvailable)
			}
			if m.Truncated {
				t.Error("truncated")
			}
			if got := answers(t, m, tt.q.name); !slices.Equal(got, tt.want) {
				t.Errorf("answers %q, want %q", got, tt.want)
			}
		})
	}
}

// Without a domain, names are answered bare and PTR targets have none.
func TestNoDomain(t *testing.T) {
	s := newTestServer(t, dnsserver.Config{})
	m, _ := ask(t, s, query{name: reverse(t, "10.0.0.2"), qtype: dns.TypePTR})
	if got := answers(t, m, m.Question[0].Name); !slices.Equal(got, []string{"web."}) {
		t.Errorf("PTR %q, want web.", got)
	}
	m, _ = ask(t, s, query{name: "web.", qtype: dns.TypeA})
	if got := answers(t, m, "web."); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("A %q", got)
	}
}

// Several addresses come back in a rotating order, every one every time.
func TestRotation(t *testing.T) {
	s := newTestServer(t, dnsserver.Config{})
	firsts := map[string]bool{}
	for range 3 {
		m, _ := ask(t, s, query{name: "multi.", qtype: dns.TypeA})
		if len(m.Answer) != 3 {
			t.Fatalf("%d answers, want 3", len(m.Answer))
		}
		firsts[m.Answer[0].(*dns.A).A.String()] = true
	}
	if len(firsts) != 3 {
		t.Errorf("first addresses of three answers: %v, want all three", firsts)
	}
}

// UDP answers fit 512 bytes or the client's EDNS0 size (up to 1232), with
// TC set when records were left out; TCP answers are whole.
func TestTruncation(t *testing.T) {
	s := newTestServer(t, dnsserver.Config{Domain: "mynet"})
	tests := []struct {
		q       query
		limit   int
		answers int // -1: fewer than all, with TC
	}{
		{query{name: "fifty.", qtype: dns.TypeA}, 512, -1},
		{query{name: "fifty.", qtype: dns.TypeA, edns: 1232}, 1232, 50},
		{query{name: "fifty.", qtype: dns.TypeA, edns: 100}, 512, -1}, // below 512 counts as 512
		{query{name: "many.", qtype: dns.TypeA, edns: 4096}, 1232, -1},
		{query{name: "many.", qtype: dns.TypeA, edns: 65000}, 1232, -1},
		{query{name: "many.", qtype: dns.TypeA, tcp: true}, 65535, 100},
		{query{name: "many.mynet.", qtype: dns.TypeA, tcp: true, edns: 1232}, 65535, 100},
		{query{name: "multi.", qtype: dns.TypeA}, 512, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/tcp=%v/edns=%d", tt.q.name, tt.q.tcp, tt.q.edns), func(t *testing.T) {
			before := s.Stats().Truncated
			m, size := ask(t, s, tt.q)
			if size > tt.limit {
				t.Errorf("answer of %d bytes, limit %d", size, tt.limit)
			}
			if tt.q.edns > 0 && m.IsEdns0() == nil {
				t.Error("no OPT in the answer to an EDNS0 query")
			}
			truncated := s.Stats().Truncated - before
			if tt.answers < 0 {
				all := map[string]int{"fifty.": 50, "many.": 100}[tt.q.name]
				if !m.Truncated || len(m.Answer) >= all || truncated != 1 {
					t.Errorf("TC %v with %d answers (truncated count +%d), want TC and fewer answers", m.Truncated, len(m.Answer), truncated)
				}
				return
			}
			if m.Truncated || len(m.Answer) != tt.answers || truncated != 0 {
				t.Errorf("TC %v with %d answers (truncated count +%d), want %d whole", m.Truncated, len(m.Answer), truncated, tt.answers)
			}
		})
	}
}

// Whatever cannot be forwarded gets SERVFAIL: no resolv.conf, one without
// nameservers, upstreams that cannot be reached.
func TestForwardFailures(t *testing.T) {
	unreachable := func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, fmt.Errorf("dial %s %s: %w", network, address, errors.ErrUnsupported)
	}
	for name, cfg := range map[string]dnsserver.Config{
		"no nameserver lines": {ResolvConf: noUpstream(t)},
		"no resolv.conf":      {ResolvConf: filepath.Join(t.TempDir(), "missing")},
		"unreachable":         {Upstreams: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53"), netip.MustParseAddrPort("[2001:db8::53]:53")}, Dial: unreachable},
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, cfg)
			for _, tcp := range []bool{false, true} {
				m, _ := ask(t, s, query{name: "example.com.", qtype: dns.TypeA, tcp: tcp, edns: 1232})
				if m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 {
					t.Errorf("tcp=%v: rcode %s, %d answers; want SERVFAIL", tcp, dns.RcodeToString[m.Rcode], len(m.Answer))
				}
				if m.IsEdns0() == nil {
					t.Error("no OPT in the answer to an EDNS0 query")
				}
			}
			if st := s.Stats(); st.Failed != 2 || st.Forwarded != 0 || st.Local != 0 {
				t.Errorf("stats %+v, want 2 failed", st)
			}
		})
	}
}

// Other opcodes are not implemented; zone transfers are refused.
func TestOtherRequests(t *testing.T) {
	s := newTestServer(t, dnsserver.Config{})
	r := query{name: "web.", qtype: dns.TypeA}.msg()
	r.Opcode = dns.OpcodeNotify
	w := &fakeWriter{}
	s.Serve(w, r)
	if w.msg == nil || w.msg.Rcode != dns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v, want NOTIMP", w.msg)
	}
	m, _ := ask(t, s, query{name: "mynet.", qtype: dns.TypeAXFR, tcp: true})
	if m.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR: rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
	m, _ = ask(t, s, query{name: "web.", qtype: dns.TypeAXFR, tcp: true})
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AXFR of an endpoint name: rcode %s, want NODATA", dns.RcodeToString[m.Rcode])
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := dnsserver.New(dnsserver.Config{Records: newFake(t)}); err == nil {
		t.Error("no address: no error")
	}
	if _, err := dnsserver.New(dnsserver.Config{Addr: netip.MustParseAddr("10.0.0.1")}); err == nil {
		t.Error("no records: no error")
	}
}

// At most MaxInflight queries are forwarded at once; the next one gets
// SERVFAIL without being forwarded.
func TestInflightLimit(t *testing.T) {
	dialing := make(chan struct{}, dnsserver.MaxInflight+1)
	release := make(chan struct{})
	blocked := func(ctx context.Context, network, address string) (net.Conn, error) {
		dialing <- struct{}{}
		<-release
		return nil, errors.ErrUnsupported
	}
	s := newTestServer(t, dnsserver.Config{Upstreams: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53")}, Dial: blocked})
	r := query{name: "example.com.", qtype: dns.TypeA}.msg()
	var wg sync.WaitGroup
	writers := make([]*fakeWriter, dnsserver.MaxInflight)
	for i := range writers {
		writers[i] = &fakeWriter{}
		wg.Add(1)
		go func() { defer wg.Done(); s.Serve(writers[i], r.Copy()) }()
	}
	for range dnsserver.MaxInflight {
		<-dialing
	}
	m, _ := ask(t, s, query{name: "example.com.", qtype: dns.TypeA})
	if m.Rcode != dns.RcodeServerFailure {
		t.Errorf("query over the limit: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if len(dialing) != 0 {
		t.Error("the query over the limit was forwarded")
	}
	close(release)
	wg.Wait()
	for _, w := range writers {
		if w.msg == nil || w.msg.Rcode != dns.RcodeServerFailure {
			t.Fatalf("a query in flight got %v, want SERVFAIL", w.msg)
		}
	}
	if st := s.Stats(); st.Failed != dnsserver.MaxInflight+1 {
		t.Errorf("stats %+v, want %d failed", st, dnsserver.MaxInflight+1)
	}
}

// The upstreams come from resolv.conf, read again when it is replaced.
func TestResolvConfReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	write := func(content string) {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil { // as resolvconf and systemd-resolved do
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var dialed []string
	record := func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, address)
		mu.Unlock()
		return nil, errors.ErrUnsupported
	}
	write("nameserver 192.0.2.53\nnameserver 2001:db8::53\n")
	s := newTestServer(t, dnsserver.Config{ResolvConf: path, Dial: record})
	steps := []struct {
		content string // "": unchanged
		want    []string
	}{
		{"", []string{"192.0.2.53:53", "[2001:db8::53]:53"}},
		{"", []string{"192.0.2.53:53", "[2001:db8::53]:53"}},
		{"nameserver 192.0.2.54\n", []string{"192.0.2.54:53"}},
		{"# none\n", nil},
		{"nameserver 127.0.0.53\n", []string{"127.0.0.53:53"}},
	}
	for i, st := range steps {
		if st.content != "" {
			write(st.content)
		}
		mu.Lock()
		dialed = nil
		mu.Unlock()
		if m, _ := ask(t, s, query{name: "example.com.", qtype: dns.TypeA}); m.Rcode != dns.RcodeServerFailure {
			t.Errorf("step %d: rcode %s", i, dns.RcodeToString[m.Rcode])
		}
		mu.Lock()
		if !slices.Equal(dialed, st.want) {
			t.Errorf("step %d: dialed %v, want %v", i, dialed, st.want)
		}
		mu.Unlock()
	}
}
