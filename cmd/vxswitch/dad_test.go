package main_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/api"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// An IPv6 VTEP address is unusable while duplicate address detection runs
// (a second or two after it was added) and for good if it found a
// duplicate. A daemon started in the first window waits for it and comes
// up; one given a duplicate says so. And a link-local peer may name
// --vtep's interface by index as well as by name.
func TestVTEPDuplicateAddressDetection(t *testing.T) {
	tp := topo.New(t, topo.Options{VTEPs: topo.LinkLocalVTEPs})
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	bin := vxbin(t)
	addr := func(h *topo.Host, ip string, dad bool) {
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
	}

	hh, err := h1.Handle()
	if err != nil {
		t.Fatal(err)
	}
	eth0, err := hh.LinkByName(topo.UnderlayIf)
	hh.Close()
	if err != nil {
		t.Fatal(err)
	}
	idx := strconv.Itoa(eth0.Attrs().Index)

	// Tentative: added with DAD and the daemon started at once, with the
	// interface named by its index.
	addr(h1, "fe80::a", true)
	run := t.TempDir()
	ctx, cancel := context.WithCancel(testCtx(t))
	cmd := h1.Command(ctx, bin, "daemon", "--vtep", "fe80::a%"+idx, "--run-dir", run, "--state-dir", t.TempDir())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel() // kills the daemon we started, by its PID
		<-exited
		// Networks outlive their daemon; this one's namespace is
		// mounted in the temporary run dir.
		nsutil.Delete(filepath.Join(run, "netns", "vx-7"))
	})
	client := api.NewClient(filepath.Join(run, "vxswitch.sock"))
	eventually(t, "the daemon on a tentative VTEP comes up", func() bool {
		select {
		case <-exited:
			t.Fatalf("daemon exited: %v\n%s", waitErr, out.String())
		default:
		}
		info, err := client.Info(ctx)
		return err == nil && info.VTEP == "fe80::a%"+idx
	})

	// A link-local peer named with eth0's name is the same as with its
	// index, which --vtep used.
	if _, err := client.CreateNetwork(ctx, api.NetworkCreate{Name: "net", VNI: 7, Subnet: "10.7.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fe80::2%eth0", "fe80::2%" + idx, "fe80::2"} {
		if err := client.AddPeer(ctx, "net", p); err != nil {
			t.Errorf("peer add %s: %v", p, err)
		}
	}
	if n, err := client.Network(ctx, "net"); err != nil || len(n.Peers) != 1 || n.Peers[0] != "fe80::2" {
		t.Errorf("peers %v, %v; want fe80::2 once", n.Peers, err)
	}

	// A duplicate: h2 has fe80::b already; h1 adds it with DAD.
	addr(h2, "fe80::b", false)
	addr(h1, "fe80::b", true)
	ctx2, cancel2 := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel2()
	b, err := h1.Command(ctx2, bin, "daemon", "--vtep", "fe80::b%eth0", "--run-dir", t.TempDir(), "--state-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "failed duplicate address detection on eth0: another host on the link has it") {
		t.Errorf("daemon on a duplicate VTEP: %v\n%s", err, b)
	}

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
	b, err = h2.Command(ctx2, bin, "daemon", "--vtep", "fe80::c%eth0", "--run-dir", t.TempDir(), "--state-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "interface eth0 is down or has no carrier") {
		t.Errorf("daemon on a down link: %v\n%s", err, b)
	}
}
