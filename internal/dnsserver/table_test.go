package dnsserver_test

import (
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/vxswitch/vxswitch/internal/dnsserver"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// NewTable normalizes names and addresses, pools and deduplicates them.
func TestTable(t *testing.T) {
	tb := dnsserver.NewTable(
		dnsserver.Entry{Name: "Web.", Addrs: addrs("fd00::2", "::ffff:10.0.0.2")},
		dnsserver.Entry{Name: "web", Addrs: addrs("10.0.0.5", "10.0.0.2", "fe80::1%eth0")},
		dnsserver.Entry{Name: "alias", Addrs: addrs("10.0.0.2")},
		dnsserver.Entry{Name: "", Addrs: addrs("10.0.0.9")},
		dnsserver.Entry{Name: "empty", Addrs: []netip.Addr{{}}},
	)
	if got, want := tb.Lookup("web"), addrs("10.0.0.2", "10.0.0.5", "fd00::2", "fe80::1"); !slices.Equal(got, want) {
		t.Errorf("Lookup(web) = %v, want %v", got, want)
	}
	if got := tb.Lookup("empty"); got != nil {
		t.Errorf("Lookup(empty) = %v", got)
	}
	if got, want := tb.Reverse(netip.MustParseAddr("10.0.0.2")), []string{"alias", "web"}; !slices.Equal(got, want) {
		t.Errorf("Reverse(10.0.0.2) = %v, want %v", got, want)
	}
	if got := tb.Reverse(netip.MustParseAddr("10.0.0.9")); got != nil {
		t.Errorf("Reverse of a nameless entry's address = %v", got)
	}
	var nilTable *dnsserver.Table
	if nilTable.Lookup("web") != nil || nilTable.Reverse(netip.MustParseAddr("10.0.0.2")) != nil {
		t.Error("a nil Table knows names")
	}
}

// Live serves whichever table was stored last, while it is replaced.
func TestLive(t *testing.T) {
	var l dnsserver.Live
	if l.Lookup("web") != nil {
		t.Error("zero Live knows names")
	}
	a := dnsserver.NewTable(dnsserver.Entry{Name: "web", Addrs: addrs("10.0.0.2")})
	b := dnsserver.NewTable(dnsserver.Entry{Name: "web", Addrs: addrs("10.0.0.3")})
	l.Store(a)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if got := l.Lookup("web"); len(got) != 1 {
					t.Errorf("Lookup during Store: %v", got)
					return
				}
			}
		}()
	}
	for i := range 1000 {
		l.Store([]*dnsserver.Table{a, b}[i%2])
	}
	wg.Wait()
	l.Store(b)
	if got := l.Reverse(netip.MustParseAddr("10.0.0.3")); !slices.Equal(got, []string{"web"}) {
		t.Errorf("Reverse after Store: %v", got)
	}
}
