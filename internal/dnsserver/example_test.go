package dnsserver_test

import (
	"errors"
	"log"
	"net/netip"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/internal/dnsserver"
)

// The daemon's side: one Live per network, a server per gateway address
// once that address is on br0 in the network's namespace, and a new Table
// whenever the network's endpoints change. The containers' resolv.conf
// names the gateway.
func Example() {
	recs := new(dnsserver.Live)
	recs.Store(dnsserver.NewTable(
		dnsserver.Entry{Name: "web", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}},
		dnsserver.Entry{Name: "db", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.3")}},
	))
	srv, err := dnsserver.Start(dnsserver.Config{
		Netns:   "/run/vxswitch/netns/vx-42", // the network's namespace
		Addr:    netip.MustParseAddr("10.0.0.1"),
		Domain:  "frontend", // web and web.frontend both answer
		Records: recs,
		Logger:  zap.NewExample(),
	})
	if errors.Is(err, dnsserver.ErrAddrNotAvailable) {
		log.Fatal(err) // the gateway address is not on br0 yet
	} else if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// An endpoint joined on another host: the store's watch says so.
	recs.Store(dnsserver.NewTable(
		dnsserver.Entry{Name: "web", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}},
		dnsserver.Entry{Name: "web", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.4")}}, // a second "web": both answer
		dnsserver.Entry{Name: "db", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.3")}},
	))
}
