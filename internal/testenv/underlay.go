package testenv

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// TempNSHandle is TempNS with a netlink handle in the namespace, closed
// with the test.
func TempNSHandle(tb testing.TB, name string) (string, *netlink.Handle) {
	tb.Helper()
	path := TempNS(tb, name)
	h, err := nsutil.Handle(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	return path, h
}

// LoopbackUnderlayNS makes a namespace with 198.18.0.1 and fd00::1 on lo,
// for a real underlay socket to talk to itself, and returns its path once
// both addresses are usable.
func LoopbackUnderlayNS(tb testing.TB) string {
	tb.Helper()
	path, h := TempNSHandle(tb, "ul")
	lo, err := h.LinkByName("lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		tb.Fatal(err)
	}
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.IP{198, 18, 0, 1}, Mask: net.CIDRMask(32, 32)}}); err != nil {
		tb.Fatal(err)
	}
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("fd00::1"), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD}); err != nil {
		tb.Fatal(err)
	}
	// The kernel installs an IPv6 address's local route from a work
	// queue, also without DAD: on a busy machine datagrams sent right
	// after AddrAdd find no route and are dropped (Ip6OutNoRoutes).
	WaitLocalRoute(tb, h, net.ParseIP("fd00::1"))
	return path
}

// WaitLocalRoute waits until ip, an address of the namespace of h, is
// usable: its local route is there (RouteGet says RTN_LOCAL; the main
// table's prefix route comes first and is not enough).
func WaitLocalRoute(tb testing.TB, h *netlink.Handle, ip net.IP) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rs, err := h.RouteGet(ip); err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the local route of %s did not appear", ip)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
