package daemon

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"go.uber.org/zap"
)

// flakyIPAM is a store-backed IPAM whose releases fail while down,
// counting the tries.
type flakyIPAM struct {
	localIPAM
	down  bool
	tries int
}

func (f *flakyIPAM) release(context.Context, *network, epState) error {
	f.tries++
	if f.down {
		return errors.New("context deadline exceeded")
	}
	return nil
}

func goneTestDaemon(t *testing.T) (*Daemon, *flakyIPAM) {
	t.Helper()
	ipam := &flakyIPAM{down: true}
	n := testNet()
	n.Cluster = true
	n.Endpoints = []epState{{ID: "keep", Sandbox: "sk", Veth: "vxkeep", IP: netip.MustParsePrefix("10.0.0.2/29")}}
	for i, id := range []string{"g1", "g2", "g3"} {
		n.Endpoints = append(n.Endpoints, epState{ID: id, Sandbox: "s" + id, Veth: "vx" + id, IP: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(3 + i)}), 29)})
	}
	return &Daemon{cfg: Config{StateDir: t.TempDir()}, log: zap.NewNop(), ipam: ipam, nets: map[string]*network{n.Name: n}}, ipam
}

func foundGone(d *Daemon, ids ...string) []goneFound {
	var out []goneFound
	for _, id := range ids {
		n, i, _ := d.endpoint("n", id)
		out = append(out, goneFound{network: "n", ep: n.Endpoints[i], why: "test"})
	}
	return out
}

func marked(d *Daemon) map[string]bool {
	out := map[string]bool{}
	for k := range d.gone.marks {
		out[k.id] = true
	}
	return out
}

// While the store fails, a pass tries one release, not one per gone
// endpoint, and marks the rest gone; the marks are rebuilt from each
// pass (one found healthy again loses it); when the store answers they
// are all released.
func TestActOnGoneStoreAway(t *testing.T) {
	d, ipam := goneTestDaemon(t)
	if !d.actOnGone(foundGone(d, "g1", "g2", "g3"), false) {
		t.Error("the pass reports nothing pending while the store fails")
	}
	if ipam.tries != 1 {
		t.Errorf("%d releases tried in a pass with the store failing, want 1", ipam.tries)
	}
	if m := marked(d); len(m) != 3 || !m["g1"] || !m["g2"] || !m["g3"] {
		t.Errorf("marked after the first pass: %v, want g1 g2 g3", m)
	}
	since, _ := d.gone.goneSince("n", "g2")

	// g1 checks out healthy now (its veth was there after all).
	d.actOnGone(foundGone(d, "g2", "g3"), false)
	if ipam.tries != 2 {
		t.Errorf("%d releases tried after two passes, want 2", ipam.tries)
	}
	if m := marked(d); len(m) != 2 || m["g1"] {
		t.Errorf("marked after the second pass: %v, want g2 g3", m)
	}
	if s, ok := d.gone.goneSince("n", "g2"); !ok || !s.Equal(since) {
		t.Errorf("g2 gone since %v %v, want the first pass's %v", s, ok, since)
	}

	ipam.down = false
	if d.actOnGone(foundGone(d, "g2", "g3"), false) {
		t.Error("the pass reports something pending with the store back")
	}
	if m := marked(d); len(m) != 0 {
		t.Errorf("marked after the release: %v", m)
	}
	for _, id := range []string{"g2", "g3"} {
		if _, i, err := d.endpoint("n", id); err == nil && i >= 0 {
			t.Errorf("%s is not released", id)
		}
	}
	if _, i, err := d.endpoint("n", "g1"); err != nil || i < 0 {
		t.Errorf("g1, not found gone, was released: %v", err)
	}
}

// An endpoint that was marked gone (a pass with the store away) and
// then left loses its mark: a re-Join does not come back "gone".
func TestLeaveClearsGoneMark(t *testing.T) {
	d, _ := goneTestDaemon(t)
	d.nets["n"].Cluster = false
	d.gone.marks = map[goneKey]goneMark{{"n", "g2"}: {}}
	if err := d.LeaveEndpoint(context.Background(), "n", "g2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.gone.goneSince("n", "g2"); ok {
		t.Error("g2 is still marked gone after it left")
	}
}
