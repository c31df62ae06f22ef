package daemon

import (
	"fmt"
	"net/netip"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/store"
)

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(core), logs
}

func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.TakeAll() {
		s := e.Message
		for _, f := range e.Context {
			if f.Key == "mac" || f.Key == "vtep" || f.Key == "not_logged" {
				switch {
				case f.Interface != nil:
					s += fmt.Sprintf(" %s=%v", f.Key, f.Interface)
				default:
					s += fmt.Sprintf(" %s=%d", f.Key, f.Integer)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// Each MAC entry the store adds, moves or withdraws is one line; a view
// change of many entries logs maxChangeLines and one line for the rest.
func TestLogStoreEntries(t *testing.T) {
	log, logs := observed()
	d := &Daemon{}
	n := testNet()
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	m := func(i int) fib.MAC { return fib.MAC{2, 0x42, 0, 0, byte(i >> 8), byte(i)} }

	d.logStoreEntries(log, n, map[fib.MAC]netip.Addr{m(1): a, m(2): a}, 0)
	d.logStoreEntries(log, n, map[fib.MAC]netip.Addr{m(1): a, m(2): a}, 0) // unchanged: nothing
	d.logStoreEntries(log, n, map[fib.MAC]netip.Addr{m(2): b, m(3): a}, 0)
	got := messages(logs)
	want := []string{
		"MAC entry from the cluster store added mac=02:42:00:00:00:01 vtep=198.18.0.2",
		"MAC entry from the cluster store added mac=02:42:00:00:00:02 vtep=198.18.0.2",
		"MAC entry from the cluster store added mac=02:42:00:00:00:03 vtep=198.18.0.2",
		"MAC entry from the cluster store moved to another host mac=02:42:00:00:00:02 vtep=198.18.0.3",
		"MAC entry from the cluster store withdrawn mac=02:42:00:00:00:01 vtep=198.18.0.2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged\n%q\nwant\n%q", got, want)
	}

	big := map[fib.MAC]netip.Addr{}
	for i := range 1000 {
		big[m(1000+i)] = a
	}
	d.logStoreEntries(log, n, big, 0)
	got = messages(logs)
	if len(got) != maxChangeLines+1 || got[maxChangeLines] != fmt.Sprintf("more MAC entries from the cluster store changed not_logged=%d", 1002-maxChangeLines) {
		t.Errorf("1000 new entries logged %d lines, ending %q", len(got), got[len(got)-1])
	}
}

// Hosts joining and leaving the cluster are one line each; this host is
// not among them.
func TestLogHosts(t *testing.T) {
	log, logs := observed()
	self, h2, h3 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	c := &cluster{advertise: self, log: log}
	v1 := &store.View{Live: map[netip.Addr]store.Live{self: {}, h2: {}}}
	v2 := &store.View{Live: map[netip.Addr]store.Live{self: {}, h3: {}}}
	c.logHosts(nil, v1)
	c.logHosts(v1, v1)
	c.logHosts(v1, v2)
	got := messages(logs)
	want := []string{
		"host joined the cluster vtep=198.18.0.2",
		"host joined the cluster vtep=198.18.0.3",
		"host left the cluster (stopped, or its lease expired) vtep=198.18.0.2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged\n%q\nwant\n%q", got, want)
	}
}
