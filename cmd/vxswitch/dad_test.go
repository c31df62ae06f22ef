package main_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// An IPv6 VTEP address is unusable while duplicate address detection runs
// (a second or two after it was added) and for good if it found a
// duplicate. A daemon started in the first window waits for it and comes
// up; one given a duplicate, or an address on a down link, says so. And a
// link-local peer may name --vtep's interface by index as well as by name.
func TestVTEPDuplicateAddressDetection(t *testing.T) {
	tp := topo.New(t, topo.Options{VTEPs: topo.LinkLocalVTEPs})
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	bin := vxbin(t)
	// addr adds ip/64 to h's eth0, with DAD or without, and returns its
	// flags as the kernel set them, and eth0's index.
	addr := func(h *topo.Host, ip string, dad bool) (flags int, index int) {
		t.Helper()
		hh, err := h.Handle()
		if err != nil {
			t.Fatal(err)
		}
		defer hh.Close()
		l, err := hh.LinkByName(topo.UnderlayIf)
		if err != nil {
			t.Fatal(err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(ip), Mask: net.CIDRMask(64, 128)}}
		if !dad {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := hh.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		addrs, err := hh.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range addrs {
			if x.IP.Equal(a.IP) {
				return x.Flags, l.Attrs().Index
			}
		}
		t.Fatalf("%s not on %s", ip, topo.UnderlayIf)
		return 0, 0
	}

	// Tentative: added with DAD and the daemon started at once, with the
	// interface named by its index (the later --vtep wins over topo's).
	flags, index := addr(h1, "fe80::a", true)
	if flags&unix.IFA_F_TENTATIVE == 0 {
		t.Fatal("fe80::a is not tentative right after it was added: the test would prove nothing")
	}
	idx := strconv.Itoa(index)
	d := h1.MustVXSwitch(topo.DaemonOptions{Binary: bin, Args: []string{"--vtep", "fe80::a%" + idx}})
	if info, err := d.Client.Info(testCtx(t)); err != nil || info.VTEP != "fe80::a%"+idx {
		t.Fatalf("daemon info %+v, %v; want VTEP fe80::a%%%s", info, err, idx)
	}

	// A link-local peer named with eth0's name is the same as with its
	// index, which --vtep used.
	n := d.MustNetwork(topo.NetConfig{Name: "net", VNI: 7, Subnet: "10.7.0.0/24"})
	for _, p := range []string{"fe80::2%eth0", "fe80::2%" + idx, "fe80::2"} {
		cli(t, d, "peer", "add", n.Name(), p)
	}
	if out := cli(t, d, "peer", "ls", n.Name()); out != "fe80::2\n" {
		t.Errorf("peer ls: %q, want fe80::2 once", out)
	}

	// A duplicate: h2 has fe80::b already; h1 adds it with DAD.
	addr(h2, "fe80::b", false)
	addr(h1, "fe80::b", true)
	daemonRefuses(t, &h1.NS, bin, []string{"daemon", "--vtep", "fe80::b%eth0", "--run-dir", t.TempDir(), "--state-dir", t.TempDir()},
		"failed duplicate address detection on eth0: another host on the link has it")

	// A down link keeps its addresses tentative: said at once.
	hh2, err := h2.Handle()
	if err != nil {
		t.Fatal(err)
	}
	l2, err := hh2.LinkByName(topo.UnderlayIf)
	if err == nil {
		err = hh2.LinkSetDown(l2)
	}
	hh2.Close()
	if err != nil {
		t.Fatal(err)
	}
	addr(h2, "fe80::c", true)
	daemonRefuses(t, &h2.NS, bin, []string{"daemon", "--vtep", "fe80::c%eth0", "--run-dir", t.TempDir(), "--state-dir", t.TempDir()},
		"interface eth0 is down or has no carrier")
}
