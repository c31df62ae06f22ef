package main_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// underlayFault is a scenario of faults on the underlay between two
// vxswitch hosts.
type underlayFault struct {
	name string
	// loss and dup are percentages of the VXLAN datagrams each host
	// sends that nftables in the LAN's namespace drops or delivers twice.
	loss, dup int
	// impair, if set, joins h2 to the LAN through an Impairer that
	// delays every frame and reorders some.
	impair *topo.Impairment
	args   []string // daemon flags
	size   int64    // bytes sent each way
}

// Loss (5 %), duplication (5 %) and reordering on the underlay, alone and
// all at once, between two vxswitch hosts: TCP transfers each way over
// the overlay arrive with the SHA-256 they were sent with, and each fault
// was really injected (nftables' counters, the Impairer's). Datagrams
// cross the underlay one frame each (topo's SegmentUnderlay), so every
// fault hits single datagrams, as on a real link.
func TestUnderlayFaults(t *testing.T) {
	needNft(t)
	reorder := &topo.Impairment{Delay: time.Millisecond, Reorder: 0.05, HoldBack: 3 * time.Millisecond}
	for _, f := range []underlayFault{
		{name: "loss", loss: 5, size: 32 << 20},
		{name: "duplication", dup: 5, size: 32 << 20},
		{name: "reordering", impair: reorder, size: 32 << 20},
		{name: "all", loss: 5, dup: 5, impair: reorder, size: 16 << 20},
		{name: "all,offload=off", loss: 5, dup: 5, impair: reorder, args: []string{"--offload=off"}, size: 16 << 20},
	} {
		t.Run(f.name, func(t *testing.T) { testUnderlayFault(t, f) })
	}
}

func needNft(t *testing.T) {
	t.Helper()
	topo.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("these tests need nft: apt-get install nftables")
	}
}

func testUnderlayFault(t *testing.T, f underlayFault) {
	tp := topo.New(t)
	bin := vxbin(t)
	h1 := tp.MustHost("h1")
	if err := h1.SegmentUnderlay(); err != nil {
		t.Fatal(err)
	}
	var h2 *topo.Host
	var imp *topo.Impairer
	if f.impair != nil {
		h2, imp = tp.MustImpairedHost("h2", *f.impair)
	} else {
		h2 = tp.MustHost("h2")
		if err := h2.SegmentUnderlay(); err != nil {
			t.Fatal(err)
		}
	}
	var nets []*topo.VXNet
	var ctrs []*topo.Container
	for i, h := range []*topo.Host{h1, h2} {
		d := h.MustVXSwitch(topo.DaemonOptions{Binary: bin, Args: f.args})
		nets = append(nets, d.MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24"}))
		c := tp.MustContainer(fmt.Sprintf("c%d", i+1))
		tp.MustAttach(nets[i], c, fmt.Sprintf("10.0.0.%d/24", i+2))
		ctrs = append(ctrs, c)
	}
	tp.MustMesh(nets[0], nets[1])
	ping(t, ctrs[0], "10.0.0.3")

	if f.loss > 0 || f.dup > 0 {
		if err := tp.LAN().Nft(testCtx(t), faultRules(f, h1, h2)); err != nil {
			t.Fatal(err)
		}
	}
	transfer(t, ctrs[0], ctrs[1], "10.0.0.3:5001", f.size)
	transfer(t, ctrs[1], ctrs[0], "10.0.0.2:5002", f.size)

	lost, duped := nftCounters(t, tp.LAN())
	msg := fmt.Sprintf("%d MB each way arrived intact; nftables dropped %d datagrams and duplicated %d", f.size>>20, lost, duped)
	if f.loss > 0 && lost == 0 {
		t.Error("nftables dropped nothing")
	}
	if f.dup > 0 && duped == 0 {
		t.Error("nftables duplicated nothing")
	}
	if imp != nil {
		s := imp.Stats()
		msg += fmt.Sprintf("; the impairer forwarded %d frames, held back %d, and %d were overtaken", s.Frames, s.HeldBack, s.Overtaken)
		if s.Overtaken == 0 {
			t.Error("the impairer reordered nothing")
		}
	}
	for i, n := range nets {
		s := stats(t, n)
		msg += fmt.Sprintf("; h%d rx %d frames, drops %v", i+1, s.RXFrames, s.Drops)
	}
	t.Log(msg)
}

// faultRules is an nftables ruleset for the LAN's namespace that drops
// f.loss % and duplicates f.dup % of the VXLAN datagrams each host sends,
// as they enter the LAN, counting both in the counters lost and duped.
func faultRules(f underlayFault, h1, h2 *topo.Host) string {
	var b strings.Builder
	b.WriteString("table netdev vxfault {\n\tcounter lost {}\n\tcounter duped {}\n")
	for _, d := range [][2]*topo.Host{{h1, h2}, {h2, h1}} {
		fmt.Fprintf(&b, "\tchain from_%s {\n\t\ttype filter hook ingress device %q priority 0;\n", d[0].LANPort(), d[0].LANPort())
		if f.loss > 0 {
			fmt.Fprintf(&b, "\t\tudp dport 4789 numgen random mod 100 < %d counter name lost drop\n", f.loss)
		}
		if f.dup > 0 {
			fmt.Fprintf(&b, "\t\tudp dport 4789 numgen random mod 100 < %d counter name duped dup to %q\n", f.dup, d[1].LANPort())
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// nftCounters reads the counters lost and duped of faultRules' table (0
// when there is no such table).
func nftCounters(t *testing.T, lan *topo.NS) (lost, duped uint64) {
	t.Helper()
	out, err := lan.Run(testCtx(t), "nft", "-j", "list", "counters")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j list counters: %v: %s", err, out)
	}
	for _, o := range doc.Nftables {
		switch {
		case o.Counter == nil:
		case o.Counter.Name == "lost":
			lost = o.Counter.Packets
		case o.Counter.Name == "duped":
			duped = o.Counter.Packets
		}
	}
	return lost, duped
}
