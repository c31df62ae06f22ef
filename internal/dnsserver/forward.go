package dnsserver

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// forward sends r to the upstreams in turn and returns the first usable
// answer, or SERVFAIL when none comes within the total bound.
func (s *Server) forward(r *dns.Msg, udp bool) *dns.Msg {
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		s.failed.Add(1)
		s.debug("too many queries being forwarded", r, zap.Int("limit", maxInflight))
		return reply(r, dns.RcodeServerFailure)
	}
	ups := s.static
	if len(ups) == 0 {
		ups = s.resolv.upstreams()
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.total)
	defer cancel()
	q := r.Copy()
	q.Id = dns.Id() // the client's ID is its own; ours is unpredictable
	network := "tcp"
	if udp {
		network = "udp"
	}
	for _, up := range ups {
		if ctx.Err() != nil {
			break
		}
		m, err := s.exchange(ctx, q, network, up)
		switch {
		case err != nil:
			s.debug("upstream did not answer", r, zap.Stringer("upstream", up), zap.Error(err))
			continue
		case m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused:
			// The next one may know better, as glibc's stub assumes.
			s.debug("upstream failed", r, zap.Stringer("upstream", up), zap.String("rcode", dns.RcodeToString[m.Rcode]))
			continue
		}
		m.Id = r.Id
		s.forwarded.Add(1)
		return m
	}
	s.failed.Add(1)
	if len(ups) == 0 {
		s.debug("no upstream resolver to forward to", r)
	}
	return reply(r, dns.RcodeServerFailure)
}

// exchange sends q to up and reads its answer, within s.timeout and ctx.
// Cancelling ctx (Close) interrupts it at once.
func (s *Server) exchange(ctx context.Context, q *dns.Msg, network string, up netip.AddrPort) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c, err := s.dial(ctx, network, up.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	co := &dns.Conn{Conn: c, UDPSize: dns.MinMsgSize}
	if opt := q.IsEdns0(); opt != nil {
		// The upstream answers within the client's size.
		co.UDPSize = max(opt.UDPSize(), dns.MinMsgSize)
	}
	if err := co.WriteMsg(q); err != nil {
		return nil, err
	}
	for {
		m, err := co.ReadMsg()
		if err != nil {
			return nil, err
		}
		if m.Id != q.Id || !sameQuestion(m, q) {
			if network == "tcp" {
				return nil, dns.ErrId
			}
			continue // a late answer to an earlier query, or a forgery
		}
		return m, nil
	}
}

// sameQuestion reports whether m answers q's question. An answer without
// a question (a FORMERR from a server that knows no EDNS0) is taken too.
func sameQuestion(m, q *dns.Msg) bool {
	if len(m.Question) == 0 {
		return true
	}
	a, b := m.Question[0], q.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

// debug logs one line about query r at debug level, if that level is on.
func (s *Server) debug(msg string, r *dns.Msg, fields ...zap.Field) {
	if ce := s.log.Check(zap.DebugLevel, msg); ce != nil {
		q := r.Question[0]
		ce.Write(append(fields, zap.String("name", q.Name), zap.String("type", dns.TypeToString[q.Qtype]))...)
	}
}

// resolvConf is the upstream list from a resolv.conf file, read again when
// the file changes (a DHCP client or resolvconf rewrites it): a stat per
// forwarded query, a read only after a change.
type resolvConf struct {
	path string
	log  *zap.Logger

	mu      sync.Mutex
	read    bool      // servers holds what stamp describes
	stamp   fileStamp // of the file last read; zero when it was missing
	servers []netip.AddrPort
}

// fileStamp tells whether a file changed since it was read: an editor or
// resolvconf replaces it (new inode), an append changes size and time.
type fileStamp struct {
	ino  uint64
	size int64
	mod  time.Time
}

func (rc *resolvConf) upstreams() []netip.AddrPort {
	var st fileStamp
	if fi, err := os.Stat(rc.path); err == nil {
		st = fileStamp{size: fi.Size(), mod: fi.ModTime()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.ino = sys.Ino
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.read && st == rc.stamp {
		return rc.servers
	}
	data, err := os.ReadFile(rc.path)
	servers := parseResolvConf(data)
	rc.read, rc.stamp = true, st
	if slices.Equal(servers, rc.servers) && rc.servers != nil {
		return rc.servers
	}
	rc.servers = servers
	switch {
	case err != nil:
		rc.log.Warn("cannot read the upstream resolvers; names outside the network get SERVFAIL", zap.String("file", rc.path), zap.Error(err))
	case len(servers) == 0:
		rc.log.Warn("no nameserver lines; names outside the network get SERVFAIL", zap.String("file", rc.path))
	default:
		rc.log.Info("upstream resolvers", zap.String("file", rc.path), zap.Stringers("upstreams", servers))
	}
	return servers
}

// parseResolvConf returns the nameserver addresses of a resolv.conf(5),
// port 53, in order; lines it cannot use are skipped. The result is not
// nil, so that an empty list is remembered.
func parseResolvConf(data []byte) []netip.AddrPort {
	servers := []netip.AddrPort{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			servers = append(servers, netip.AddrPortFrom(a.Unmap(), 53))
		}
	}
	return servers
}
