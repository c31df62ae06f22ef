package dnsserver

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// serveDNS answers one query; the dns.Server runs it on a goroutine of its
// own per UDP packet or TCP connection, so it may block (forwarding).
func (s *Server) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	_, udp := w.LocalAddr().(*net.UDPAddr)
	m := s.answer(r, udp)
	if udp {
		m.Truncate(udpLimit(r))
		if m.Truncated {
			s.truncated.Add(1)
		}
	}
	// An error means the client is gone; there is nobody to tell.
	w.WriteMsg(m)
}

// udpLimit is the size a UDP answer to r may have: 512 bytes, or the
// client's EDNS0 buffer size up to maxUDPSize.
func udpLimit(r *dns.Msg) int {
	opt := r.IsEdns0()
	if opt == nil {
		return dns.MinMsgSize
	}
	return min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
}

// answer is the reply to r: a local answer, a forwarded one, or an error.
func (s *Server) answer(r *dns.Msg, udp bool) *dns.Msg {
	if r.Opcode != dns.OpcodeQuery {
		return reply(r, dns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		return reply(r, dns.RcodeFormatError)
	}
	q := r.Question[0]
	if q.Qclass == dns.ClassINET {
		if m := s.localAnswer(r, q); m != nil {
			s.local.Add(1)
			return m
		}
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		// A transfer is a stream of messages; forwarding handles one.
		return reply(r, dns.RcodeRefused)
	}
	return s.forward(r, udp)
}

// reply is an empty reply to r with the given rcode.
func reply(r *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	if r.IsEdns0() != nil {
		// RFC 6891 6.1.1: a reply to an EDNS0 query carries an OPT.
		m.SetEdns0(maxUDPSize, false)
	}
	return m
}

// localAnswer answers q from Records, or returns nil when the name is not
// an endpoint's (nor the reverse name of an endpoint's address).
func (s *Server) localAnswer(r *dns.Msg, q dns.Question) *dns.Msg {
	name := normalize(q.Name)
	if name == "" {
		return nil
	}
	hdr := func(t uint16) dns.RR_Header {
		// The owner is the name as asked, case included: some
		// resolvers check that the case they randomized comes back.
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
	}
	var answers []dns.RR
	if ip, ok := parseReverse(name); ok {
		names := s.records.Reverse(ip.Unmap())
		if len(names) == 0 {
			return nil
		}
		if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
			for _, n := range names {
				answers = append(answers, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: n + s.suffix + "."})
			}
		}
	} else {
		addrs := s.lookup(name)
		if len(addrs) == 0 {
			return nil
		}
		wantA := q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY
		wantAAAA := q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY
		// Start at a rotating offset: clients that use the first
		// address of several spread over them.
		n := len(addrs)
		first := int(s.rotate.Add(1) % uint32(n))
		for i := range n {
			a := addrs[(first+i)%n].Unmap()
			switch {
			case a.Is4() && wantA:
				answers = append(answers, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
			case a.Is6() && wantAAAA:
				answers = append(answers, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
	}
	// No answers of the asked type: NODATA.
	m := reply(r, dns.RcodeSuccess)
	m.Authoritative = true
	m.Compress = true // many addresses of one name: the name once
	m.Answer = answers
	return m
}

// lookup finds name as an endpoint name, or as NAME.Domain.
func (s *Server) lookup(name string) []netip.Addr {
	if addrs := s.records.Lookup(name); len(addrs) > 0 {
		return addrs
	}
	if s.suffix != "" && len(name) > len(s.suffix) && strings.HasSuffix(name, s.suffix) {
		return s.records.Lookup(name[:len(name)-len(s.suffix)])
	}
	return nil
}

// parseReverse parses a complete reverse name, lowercase and without the
// trailing dot ("2.0.0.10.in-addr.arpa", 32 nibbles then "ip6.arpa"), in
// the canonical form dns.ReverseAddr writes (no leading zeros). Partial
// names (a reverse zone) are not addresses.
func parseReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		var b [4]byte
		for i := 3; i >= 0; i-- {
			label := rest
			if i > 0 {
				var found bool
				if label, rest, found = strings.Cut(rest, "."); !found {
					return netip.Addr{}, false
				}
			}
			v, ok := parseOctet(label)
			if !ok {
				return netip.Addr{}, false
			}
			b[i] = v
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		// 32 nibbles, each a hex digit and a dot but the last.
		if len(rest) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := range 32 {
			if i < 31 && rest[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			v, ok := hexNibble(rest[2*i])
			if !ok {
				return netip.Addr{}, false
			}
			// The first label is the low nibble of the last byte.
			if i%2 == 0 {
				b[15-i/2] |= v
			} else {
				b[15-i/2] |= v << 4
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// parseOctet parses a decimal 0..255 without leading zeros.
func parseOctet(s string) (byte, bool) {
	if len(s) == 0 || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v := 0
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// hexNibble parses one lowercase hex digit.
func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
