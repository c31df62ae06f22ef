package main_test

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// Two hosts running vxswitch: ping both ways, ARP across the overlay, a
// 64 MB TCP transfer checked end to end, and the learned entries in `fdb
// show`.
func TestTwoHosts(t *testing.T) { offloadModes(t, testTwoHosts) }

func testTwoHosts(t *testing.T, args []string) {
	c := newCluster(t, 2, args...)
	c1, c2 := c.ctrs[0], c.ctrs[1]

	ping(t, c1, "10.0.0.3")
	ping(t, c2, "10.0.0.2")

	// ARP resolved across the overlay: c1 knows c2's MAC.
	out, err := c1.Run(testCtx(t), "ip", "neigh", "show", "10.0.0.3")
	if err != nil || !strings.Contains(out, "lladdr 02:42:0a:00:00:03") {
		t.Fatalf("c1 has no ARP entry for 10.0.0.3 with c2's MAC: %q %v", out, err)
	}

	// Each host learned the other container's MAC behind the other VTEP.
	for i, want := range []string{
		"02:42:0a:00:00:03 dst 198.18.0.2 vni 256 learned",
		"02:42:0a:00:00:02 dst 198.18.0.1 vni 256 learned",
	} {
		if out := cli(t, c.ds[i], "fdb", "show"); !strings.Contains(out, want) {
			t.Errorf("fdb show on h%d lacks %q:\n%s", i+1, want, out)
		}
	}

	// With offloads, a gigabyte: segmentation, GSO sends, GRO receives
	// and coalesced TAP writes must not alter a single byte.
	size := int64(64 << 20)
	if len(args) == 0 {
		size = 1 << 30
	}
	transfer(t, c1, c2, "10.0.0.3:5001", size)
	transfer(t, c2, c1, "10.0.0.2:5001", 64<<20)

	for i, n := range c.nets {
		s := stats(t, n)
		if s.TXFrames == 0 || s.RXFrames == 0 {
			t.Errorf("h%d counted no traffic: %+v", i+1, s.Counters)
		}
		if len(s.Drops) != 0 {
			t.Errorf("h%d dropped frames: %v", i+1, s.Drops)
		}
		if len(args) == 0 && s.RXCoalesced == 0 {
			t.Errorf("h%d coalesced nothing with offloads on", i+1)
		}
	}

	// The JSON forms use snake_case keys throughout, and every learned
	// entry has an age, 0 s included.
	if out := cli(t, c.ds[0], "stats", "--json"); !strings.Contains(out, `"refused_full"`) || strings.Contains(out, `"RefusedFull"`) {
		t.Errorf("stats --json keys:\n%s", out)
	}
	learned := 0
	for _, e := range fdbJSON(t, c.ds[0], "net") {
		if (e.Source == "learned") != (e.Age != nil) {
			t.Errorf("fdb entry %+v: an age for learned entries only", e)
		}
		if e.Source == "learned" {
			learned++
		}
	}
	if learned == 0 {
		t.Error("fdb show --json lists no learned entry")
	}
}

// A static entry is used without flooding: with empty flood lists every
// flood would be dropped (no_peers), so traffic can only flow through the
// static entries, and the flood counter stays zero.
func TestStaticEntry(t *testing.T) { offloadModes(t, testStaticEntry) }

func testStaticEntry(t *testing.T, args []string) {
	tp := topo.New(t)
	bin := vxbin(t)
	var ds []*topo.Daemon
	var nets []*topo.VXNet
	var ctrs []*topo.Container
	for i := range 2 {
		h := tp.MustHost([]string{"h1", "h2"}[i])
		d := h.MustVXSwitch(topo.DaemonOptions{Binary: bin, Args: args})
		n := d.MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24"})
		c := tp.MustContainer([]string{"c1", "c2"}[i])
		tp.MustAttach(n, c, []string{"10.0.0.2/24", "10.0.0.3/24"}[i])
		ds, nets, ctrs = append(ds, d), append(nets, n), append(ctrs, c)
	}
	cli(t, ds[0], "fdb", "add", "net", "02:42:0a:00:00:03", "198.18.0.2")
	cli(t, ds[1], "fdb", "add", "net", "02:42:0a:00:00:02", "198.18.0.1")
	// No flooding means no ARP either: give the containers static
	// neighbours, as an orchestrator with a control plane would.
	for _, x := range []struct {
		c       *topo.Container
		ip, mac string
	}{{ctrs[0], "10.0.0.3", "02:42:0a:00:00:03"}, {ctrs[1], "10.0.0.2", "02:42:0a:00:00:02"}} {
		if out, err := x.c.Run(testCtx(t), "ip", "neigh", "replace", x.ip, "lladdr", x.mac, "dev", "eth0", "nud", "permanent"); err != nil {
			t.Fatal(out)
		}
	}
	ping(t, ctrs[0], "10.0.0.3")
	transfer(t, ctrs[0], ctrs[1], "10.0.0.3:5001", 4<<20)

	if out := cli(t, ds[0], "fdb", "show", "net"); !strings.Contains(out, "02:42:0a:00:00:03 dst 198.18.0.2 vni 256 static") {
		t.Errorf("fdb show lacks the static entry:\n%s", out)
	}
	for i, n := range nets {
		s := stats(t, n)
		if s.TXFlooded != 0 || s.Drops["no_peers"] != 0 {
			t.Errorf("h%d flooded: tx_flooded %d, no_peers drops %d", i+1, s.TXFlooded, s.Drops["no_peers"])
		}
		if s.TXFrames == 0 {
			t.Errorf("h%d sent nothing", i+1)
		}
	}
}

// Learned entries age out after --aging without traffic.
func TestAging(t *testing.T) { offloadModes(t, testAging) }

func testAging(t *testing.T, args []string) {
	c := newCluster(t, 2, append(args, "--aging", "2s")...)
	ping(t, c.ctrs[0], "10.0.0.3")
	learned := func() bool {
		for _, e := range fdbJSON(t, c.ds[0], "net") {
			if e.MAC == "02:42:0a:00:00:03" && e.Source == "learned" {
				return true
			}
		}
		return false
	}
	if !learned() {
		t.Fatal("h1 did not learn c2's MAC")
	}
	eventually(t, "learned entry to age out", func() bool { return !learned() })
	if s := stats(t, c.nets[0]); s.FIB.Expired == 0 {
		t.Errorf("expired counter is zero after an entry aged out: %+v", s.FIB)
	}
	// And traffic learns it again.
	ping(t, c.ctrs[0], "10.0.0.3")
	if !learned() {
		t.Error("h1 did not learn c2's MAC again")
	}
}

// Three hosts: a broadcast reaches both peers; once MACs are learned,
// unicast between h1 and h2 never reaches h3.
func TestThreeHosts(t *testing.T) { offloadModes(t, testThreeHosts) }

func testThreeHosts(t *testing.T, args []string) {
	c := newCluster(t, 3, args...)
	before := []uint64{stats(t, c.nets[1]).RXFrames, stats(t, c.nets[2]).RXFrames}
	// The first ping starts with an ARP request: a broadcast.
	ping(t, c.ctrs[0], "10.0.0.3")
	for i, n := range c.nets[1:] {
		if got := stats(t, n).RXFrames; got <= before[i] {
			t.Errorf("h%d received nothing of h1's broadcast", i+2)
		}
	}
	h1 := stats(t, c.nets[0])
	h3 := stats(t, c.nets[2])
	transfer(t, c.ctrs[0], c.ctrs[1], "10.0.0.3:5001", 8<<20)
	ping(t, c.ctrs[1], "10.0.0.2")
	if got := stats(t, c.nets[2]); got.RXFrames != h3.RXFrames {
		t.Errorf("h3 received %d frames of unicast traffic between h1 and h2", got.RXFrames-h3.RXFrames)
	}
	if got := stats(t, c.nets[0]); got.TXFlooded != h1.TXFlooded {
		t.Errorf("h1 flooded %d frames after learning", got.TXFlooded-h1.TXFlooded)
	}
	ping(t, c.ctrs[2], "10.0.0.2") // h3 itself works
}

// Two networks with different VNIs and the same subnet on the same hosts
// never see each other's frames.
func TestIsolation(t *testing.T) { offloadModes(t, testIsolation) }

func testIsolation(t *testing.T, args []string) {
	tp := topo.New(t)
	bin := vxbin(t)
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	d1 := h1.MustVXSwitch(topo.DaemonOptions{Binary: bin, Args: args})
	d2 := h2.MustVXSwitch(topo.DaemonOptions{Binary: bin, Args: args})
	type side struct {
		nets [2]*topo.VXNet
		ctrs [2]*topo.Container
	}
	var a, b side
	for i, s := range []*side{&a, &b} {
		vni := uint32(100 * (i + 1))
		name := []string{"a", "b"}[i]
		s.nets[0] = d1.MustNetwork(topo.NetConfig{Name: name, VNI: vni, Subnet: "10.0.0.0/24"})
		s.nets[1] = d2.MustNetwork(topo.NetConfig{Name: name, VNI: vni, Subnet: "10.0.0.0/24"})
		tp.MustMesh(s.nets[0], s.nets[1])
		s.ctrs[0] = tp.MustContainer(name + "1")
		s.ctrs[1] = tp.MustContainer(name + "2")
		// Same addresses, hence the same MACs, in both networks.
		tp.MustAttach(s.nets[0], s.ctrs[0], "10.0.0.2/24")
		tp.MustAttach(s.nets[1], s.ctrs[1], "10.0.0.3/24")
	}
	bBefore := [2]uint64{stats(t, b.nets[0]).RXFrames, stats(t, b.nets[1]).RXFrames}
	ping(t, a.ctrs[0], "10.0.0.3")
	transfer(t, a.ctrs[0], a.ctrs[1], "10.0.0.3:5001", 4<<20)
	for i := range 2 {
		if got := stats(t, b.nets[i]).RXFrames; got != bBefore[i] {
			t.Errorf("network b on h%d received %d frames of network a's traffic", i+1, got-bBefore[i])
		}
	}
	// b works on its own, with its own entries.
	ping(t, b.ctrs[1], "10.0.0.2")
	for i, d := range []*topo.Daemon{d1, d2} {
		for _, e := range fdbJSON(t, d, "b") {
			if e.VNI != 200 {
				t.Errorf("h%d: network b lists an entry of VNI %d", i+1, e.VNI)
			}
		}
	}
}

// An application that sends with UDP_SEGMENT (QUIC stacks do) hands the
// TAP one superframe per send when the TAP negotiated USO; its datagrams
// must arrive as sent, each of the segment size, in both offload modes.
func TestUDPSegmentation(t *testing.T) { offloadModes(t, testUDPSegmentation) }

func testUDPSegmentation(t *testing.T, args []string) {
	c := newCluster(t, 2, args...)
	c1, c2 := c.ctrs[0], c.ctrs[1]
	ping(t, c1, "10.0.0.3")
	ctx := testCtx(t)
	pc, err := c2.ListenPacket("udp4", "10.0.0.3:5003")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	conn, err := c1.Dial(ctx, "udp4", "10.0.0.3:5003")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 1000
	setInt(t, conn.(syscall.Conn), unix.SOL_UDP, unix.UDP_SEGMENT, size)
	buf := make([]byte, 2000)
	for round := range 20 {
		msg := make([]byte, 10*size+333)
		for i := range msg {
			msg[i] = byte(round*31 + i/size)
		}
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("round %d: send: %v", round, err)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := range 11 {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("round %d, datagram %d: %v", round, i, err)
			}
			want := msg[i*size : min(len(msg), (i+1)*size)]
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("round %d, datagram %d: %d bytes, want %d as sent", round, i, n, len(want))
			}
		}
	}
	for i, n := range c.nets {
		if s := stats(t, n); len(s.Drops) != 0 {
			t.Errorf("h%d dropped frames: %v", i+1, s.Drops)
		}
	}
	if s := stats(t, c.nets[1]); len(args) == 0 && s.RXCoalesced == 0 {
		t.Error("h2 coalesced no datagrams with offloads on")
	}
}

// An IPv6 underlay, routable (2001:2::N) and link-local (fe80::N%eth0,
// which needs the interface to send on): ping both ways, learned entries
// with the IPv6 VTEPs, and 64 MB both ways checked end to end, in both
// offload modes. The overlay's MTU is then 20 bytes smaller than over
// IPv4, and full-size segments must still fit.
func TestIPv6Underlay(t *testing.T) {
	for _, fam := range []struct {
		name  string
		vteps topo.VTEPFamily
		h1    string
		h2    string
	}{
		{"routable", topo.IPv6VTEPs, "2001:2::1", "2001:2::2"},
		{"link-local", topo.LinkLocalVTEPs, "fe80::1", "fe80::2"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			offloadModes(t, func(t *testing.T, args []string) {
				c := newClusterOn(t, topo.Options{VTEPs: fam.vteps}, 2, args...)
				c1, c2 := c.ctrs[0], c.ctrs[1]
				ping(t, c1, "10.0.0.3")
				ping(t, c2, "10.0.0.2")
				for i, want := range []string{
					"02:42:0a:00:00:03 dst " + fam.h2 + " vni 256 learned",
					"02:42:0a:00:00:02 dst " + fam.h1 + " vni 256 learned",
				} {
					if out := cli(t, c.ds[i], "fdb", "show"); !strings.Contains(out, want) {
						t.Errorf("fdb show on h%d lacks %q:\n%s", i+1, want, out)
					}
				}
				if out := cli(t, c.ds[0], "network", "inspect", "net"); !strings.Contains(out, `"mtu": 1430`) {
					t.Errorf("network inspect: want MTU 1430 over IPv6 (1500 - 70):\n%s", out)
				}
				transfer(t, c1, c2, "10.0.0.3:5001", 64<<20)
				transfer(t, c2, c1, "10.0.0.2:5001", 64<<20)

				// Peers a link-local VTEP cannot reach, or named
				// with another interface, are refused, as the
				// kernel's vxlan refuses such local/remote pairs.
				other := "fe80::9"
				if fam.vteps == topo.LinkLocalVTEPs {
					other = "2001:2::9"
				}
				for _, bad := range []struct{ vtep, want string }{
					{other, "a link-local VTEP and a routable one cannot reach each other"},
					{"198.18.0.9", "this daemon's underlay is IPv6"},
					{fam.h1, "is this host's own address"},
				} {
					if _, out, err := c.ds[0].CLI(testCtx(t), "peer", "add", "net", bad.vtep); err == nil || !strings.Contains(out, bad.want) {
						t.Errorf("peer add %s: %v %q, want an error saying %q", bad.vtep, err, out, bad.want)
					}
				}
				if fam.vteps == topo.LinkLocalVTEPs {
					// The peer named with --vtep's interface is the
					// same peer: adding it again changes nothing.
					cli(t, c.ds[0], "peer", "add", "net", fam.h2+"%eth0")
					if out := cli(t, c.ds[0], "peer", "ls", "net"); strings.TrimSpace(out) != fam.h2 {
						t.Errorf("peer ls: %q, want %s once", out, fam.h2)
					}
					if _, out, err := c.ds[0].CLI(testCtx(t), "peer", "add", "net", "fe80::9%lo"); err == nil || !strings.Contains(out, "reached on --vtep's interface (%eth0), not %lo") {
						t.Errorf("peer on another interface: %v %q", err, out)
					}
				}
				for i, n := range c.nets {
					if s := stats(t, n); len(s.Drops) != 0 {
						t.Errorf("h%d dropped frames: %v", i+1, s.Drops)
					}
				}
			})
		})
	}
}
