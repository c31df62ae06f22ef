package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

type fakeSource struct {
	st        api.Stats
	store, up bool
}

func (f *fakeSource) Stats() api.Stats                     { return f.st }
func (f *fakeSource) StoreConnected() (connected, ok bool) { return f.up, f.store }

func testStats() api.Stats {
	return api.Stats{
		Switch: api.SwitchCounters{RXDatagrams: 100, RXOverflow: 2, TXGSOSplit: 3, Drops: map[string]uint64{"unknown_vni": 4}},
		Networks: []api.NetworkStats{{
			Network: "web", VNI: 256,
			Counters: api.Counters{TXFrames: 10, TXBytes: 1000, TXFlooded: 1, TXDatagrams: 11, RXFrames: 20, RXBytes: 2000,
				ARPProxied: 5, NDProxied: 6, Drops: map[string]uint64{"send_error": 7, "bad_src_mac": 8}, RXDrops: map[string]uint64{"bad_src_mac": 8}},
			FIB: api.FIBStats{Learned: 3, MaxLearned: 65536, Store: 2, Static: 1, Peers: 2, Added: 9, Moved: 1, Expired: 4, RefusedFull: 12},
			Peers: []api.PeerCounters{
				{VTEP: "198.18.0.2", TXDatagrams: 6, TXBytes: 600, RXFrames: 20, RXBytes: 2000, Drops: map[string]uint64{"bad_src_mac": 8}},
				{VTEP: "198.18.0.3", TXDatagrams: 5, Drops: map[string]uint64{"send_error": 7}},
			},
		}},
	}
}

func scrape(t *testing.T, src Source) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(Handler(src, "v1.2.3"))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value returns the value of the sample of family name whose labels
// include want, failing unless there is exactly one.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no %s", name)
	}
	var found []float64
	for _, m := range mf.GetMetric() {
		ok := true
		for k, v := range want {
			has := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					has = true
				}
			}
			ok = ok && has
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d samples", name, want, len(found))
	}
	return found[0]
}

// Every figure of the stats reaches a metric with the right labels.
func TestCollector(t *testing.T) {
	src := &fakeSource{st: testStats(), store: true, up: true}
	mfs := scrape(t, src)
	web := map[string]string{"network": "web"}
	for name, want := range map[string]float64{
		"vxswitch_tx_frames_total": 10, "vxswitch_tx_bytes_total": 1000, "vxswitch_tx_flooded_frames_total": 1,
		"vxswitch_tx_datagrams_total": 11, "vxswitch_rx_frames_total": 20, "vxswitch_rx_bytes_total": 2000,
		"vxswitch_arp_proxied_total": 5, "vxswitch_nd_proxied_total": 6,
		"vxswitch_mac_learned_total": 9, "vxswitch_mac_moves_total": 1, "vxswitch_mac_aged_total": 4,
		"vxswitch_mac_max_learned": 65536, "vxswitch_peers": 2,
	} {
		if got := value(t, mfs, name, web); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vxswitch_drops_total", map[string]string{"network": "web", "direction": "tx", "reason": "send_error"}, 7},
		{"vxswitch_drops_total", map[string]string{"network": "web", "direction": "rx", "reason": "bad_src_mac"}, 8},
		{"vxswitch_mac_learn_refused_total", map[string]string{"network": "web", "reason": "full"}, 12},
		{"vxswitch_mac_entries", map[string]string{"network": "web", "source": "static"}, 1},
		{"vxswitch_mac_entries", map[string]string{"network": "web", "source": "store"}, 2},
		{"vxswitch_mac_entries", map[string]string{"network": "web", "source": "learned"}, 3},
		{"vxswitch_network_info", map[string]string{"network": "web", "vni": "256"}, 1},
		{"vxswitch_peer_tx_datagrams_total", map[string]string{"network": "web", "peer": "198.18.0.2"}, 6},
		{"vxswitch_peer_tx_bytes_total", map[string]string{"network": "web", "peer": "198.18.0.2"}, 600},
		{"vxswitch_peer_rx_frames_total", map[string]string{"network": "web", "peer": "198.18.0.2"}, 20},
		{"vxswitch_peer_rx_bytes_total", map[string]string{"network": "web", "peer": "198.18.0.2"}, 2000},
		{"vxswitch_peer_tx_datagrams_total", map[string]string{"network": "web", "peer": "198.18.0.3"}, 5},
		{"vxswitch_peer_drops_total", map[string]string{"network": "web", "peer": "198.18.0.3", "reason": "send_error"}, 7},
		{"vxswitch_peer_drops_total", map[string]string{"network": "web", "peer": "198.18.0.2", "reason": "bad_src_mac"}, 8},
		{"vxswitch_underlay_rx_datagrams_total", nil, 100},
		{"vxswitch_underlay_rx_overflow_total", nil, 2},
		{"vxswitch_underlay_tx_gso_split_total", nil, 3},
		{"vxswitch_underlay_drops_total", map[string]string{"reason": "unknown_vni"}, 4},
		{"vxswitch_store_connected", nil, 1},
		{"vxswitch_build_info", map[string]string{"version": "v1.2.3"}, 1},
	} {
		if got := value(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, std := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if mfs[std] == nil {
			t.Errorf("no %s: the standard collectors are missing", std)
		}
	}
	// Without a store, no store metric; unreachable, 0.
	src.store = false
	if mfs := scrape(t, src); mfs["vxswitch_store_connected"] != nil {
		t.Error("vxswitch_store_connected without a store")
	}
	src.store, src.up = true, false
	if got := value(t, scrape(t, src), "vxswitch_store_connected", nil); got != 0 {
		t.Errorf("vxswitch_store_connected = %v while unreachable", got)
	}
}

// The metrics follow Prometheus' naming conventions (promlint).
func TestLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(NewCollector(&fakeSource{st: testStats(), store: true, up: true}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
