package vswitch_test

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/testenv"
	"github.com/vxswitch/vxswitch/switch/udp"
	"github.com/vxswitch/vxswitch/tap"
)

// Helpers of the netns tests (root): namespaces from internal/testenv,
// sockets and TAPs opened inside them as the daemon opens them.

// testNetns makes a namespace for the test, removed with it, and a
// netlink handle in it.
func testNetns(t *testing.T, name string) (string, *netlink.Handle) {
	t.Helper()
	path := testenv.TempNS(t, name)
	h, err := nsutil.Handle(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return path, h
}

// underlayNetns makes a namespace with 198.18.0.1 and fd00::1 on lo, for
// a real underlay socket to talk to itself.
func underlayNetns(t *testing.T) string {
	t.Helper()
	path, h := testNetns(t, "ul")
	lo, _ := h.LinkByName("lo")
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.IP{198, 18, 0, 1}, Mask: net.CIDRMask(32, 32)}})
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("fd00::1"), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	// The kernel installs an IPv6 address's local route from a work
	// queue: wait for it (see switch/udp's tests).
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The local route, not just the prefix route (see switch/udp's
		// waitRoute).
		if rs, err := h.RouteGet(net.ParseIP("fd00::1")); err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no route to fd00::1 appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return path
}

// listenUDP opens the real underlay in the namespace at ns.
func listenUDP(ns string, cfg udp.Config) (*udp.Underlay, error) {
	var u *udp.Underlay
	err := nsutil.Do(ns, func() (err error) {
		u, err = udp.Listen(cfg)
		return err
	})
	return u, err
}

// createTAP makes a TAP in the namespace at ns.
func createTAP(ns string, opts tap.Options) (tap.Device, error) {
	var d tap.Device
	err := nsutil.Do(ns, func() (err error) {
		d, err = tap.Create(opts)
		return err
	})
	return d, err
}
