package fib_test

import (
	"fmt"
	"net/netip"

	"github.com/vxswitch/vxswitch/fib"
)

// The datapath reads the time once per batch, learns every received frame's
// source and looks up each superframe's destination; a control loop calls
// Expire every few seconds.
func Example() {
	t, err := fib.New(fib.Config{}) // 300 s aging, 65536 learned entries, wall clock
	if err != nil {
		panic(err)
	}
	_ = t.AddPeer(netip.MustParseAddr("198.18.0.2"))
	_ = t.AddPeer(netip.MustParseAddr("198.18.0.3"))
	gw, _ := fib.ParseMAC("02:42:0a:00:00:01")
	_ = t.Add(gw, netip.MustParseAddr("198.18.0.9"), fib.Static)

	// RX: one batch of received frames.
	now := t.Now()
	c2, _ := fib.ParseMAC("02:42:0a:00:00:02")
	fmt.Println(t.Learn(c2, netip.MustParseAddr("198.18.0.2"), now))
	fmt.Println(t.Learn(c2, netip.MustParseAddr("198.18.0.2"), now))
	fmt.Println(t.Learn(gw, netip.MustParseAddr("198.18.0.3"), now))

	// TX: a known destination goes to one VTEP, anything else to the flood list.
	for _, dst := range []string{"02:42:0a:00:00:02", "02:42:0a:00:00:07"} {
		mac, _ := fib.ParseMAC(dst)
		if vtep, ok := t.LookupAt(mac, now); ok {
			fmt.Println(dst, "->", vtep)
		} else {
			fmt.Println(dst, "->", t.FloodList())
		}
	}
	// Output:
	// added
	// refreshed
	// shadowed
	// 02:42:0a:00:00:02 -> 198.18.0.2
	// 02:42:0a:00:00:07 -> [198.18.0.2 198.18.0.3]
}
