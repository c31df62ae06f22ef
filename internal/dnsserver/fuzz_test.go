package dnsserver_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/vxswitch/vxswitch/internal/dnsserver"
)

// A reverse name parses exactly when it is the canonical reverse name of
// the address it gives.
func FuzzParseReverse(f *testing.F) {
	for _, s := range []string{"2.0.0.10.in-addr.arpa", "255.255.255.255.in-addr.arpa", "02.0.0.10.in-addr.arpa",
		"0.0.10.in-addr.arpa", "1.2.3.4.5.in-addr.arpa", "256.0.0.10.in-addr.arpa", "a.b.c.d.in-addr.arpa",
		"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "x.ip6.arpa", "in-addr.arpa", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ip, ok := dnsserver.ParseReverse(name)
		if !ok {
			return
		}
		r, err := dns.ReverseAddr(ip.String())
		if err != nil {
			t.Fatalf("%q gave %s, which has no reverse name: %v", name, ip, err)
		}
		if ip.Is4In6() {
			// dns.ReverseAddr writes these under in-addr.arpa.
			r = reverse6(ip)
		}
		if r != name+"." {
			t.Fatalf("%q gave %s, whose reverse name is %q", name, ip, r)
		}
	})
}

// reverse6 is the ip6.arpa name of ip, whatever it holds.
func reverse6(ip netip.Addr) string {
	const hex = "0123456789abcdef"
	b := ip.As16()
	var sb strings.Builder
	for i := 15; i >= 0; i-- {
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hex[b[i]>>4])
		sb.WriteByte('.')
	}
	return sb.String() + "ip6.arpa."
}

// Every upstream parsed from a resolv.conf is a valid address on port 53
// named by a nameserver line.
func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"))
	f.Add([]byte("# comment\nnameserver fe80::1%eth0\nnameserver ::ffff:1.2.3.4\nnameserver\nnameserver host.example\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ups := dnsserver.ParseResolvConf(data)
		if ups == nil {
			t.Fatal("nil list")
		}
		for _, up := range ups {
			if !up.IsValid() || up.Port() != 53 || up.Addr().Is4In6() {
				t.Fatalf("upstream %s", up)
			}
			if !strings.Contains(string(data), "nameserver") {
				t.Fatalf("upstream %s from a file without nameserver lines", up)
			}
		}
	})
}

func TestParseResolvConf(t *testing.T) {
	got := dnsserver.ParseResolvConf([]byte("# x\nnameserver 127.0.0.53\n  nameserver   ::ffff:192.0.2.1  # old\nnameserver bad\nnameserver fe80::1%eth0\nsearch a b\n"))
	want := []string{"127.0.0.53:53", "192.0.2.1:53", "[fe80::1%eth0]:53"}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range got {
		if got[i].String() != want[i] {
			t.Errorf("%d: %s, want %s", i, got[i], want[i])
		}
	}
}
