package main_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// metricsPort is where the daemons of TestMetrics serve /metrics, on
// their host's underlay address.
const metricsPort = 9464

// newMetricsCluster is newCluster with --metrics on each host's
// underlay address (inside the host's namespace, where its daemon runs).
func newMetricsCluster(t *testing.T, n int) (*cluster, []string) {
	t.Helper()
	var addrs []string
	c := newClusterArgs(t, topo.Options{}, n, func(h *topo.Host) []string {
		addr := netip.AddrPortFrom(h.Addr, metricsPort).String()
		addrs = append(addrs, addr)
		return []string{"--metrics", addr}
	})
	return c, addrs
}

// metrics is one scrape, parsed.
type metrics map[string]*dto.MetricFamily

// scrapeMetrics gets http://addr/metrics from inside host h's namespace
// and parses it with the Prometheus text parser.
func scrapeMetrics(t *testing.T, h *topo.Host, addr string) metrics {
	t.Helper()
	ctx := testCtx(t)
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return h.Dial(ctx, network, a) },
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("scrape %s in %s: %v", addr, h.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the scrape of %s: %v", addr, err)
	}
	return mfs
}

// sum adds the samples of family name whose labels include want (0 when
// there are none).
func (m metrics) sum(name string, want map[string]string) float64 {
	mf := m[name]
	total := 0.0
	for _, s := range mf.GetMetric() {
		match := true
		for k, v := range want {
			has := false
			for _, l := range s.GetLabel() {
				has = has || l.GetName() == k && l.GetValue() == v
			}
			match = match && has
		}
		if match {
			total += s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	return total
}

// accounted reports whether every datagram h's daemon received is in
// exactly one place: a network's delivered frames or receive drops, or
// the switch's own drops (the invariant SwitchCounters documents).
func (m metrics) accounted() bool {
	return m.sum("vxswitch_underlay_rx_datagrams_total", nil) ==
		m.sum("vxswitch_rx_frames_total", nil)+m.sum("vxswitch_drops_total", map[string]string{"direction": "rx"})+
			m.sum("vxswitch_underlay_drops_total", nil)
}

// Two daemons serve /metrics on their underlay addresses; a known number
// of pings and UDP bytes from c1 to c2 shows in the counters of both,
// per network and per peer, and every datagram received is accounted for.
func TestMetrics(t *testing.T) {
	c, addrs := newMetricsCluster(t, 2)
	ping(t, c.ctrs[0], "10.0.0.3") // ARP and the MAC tables settle first
	h1, h2 := c.hosts[0], c.hosts[1]
	net1 := map[string]string{"network": "net"}
	to2 := map[string]string{"network": "net", "peer": h2.Addr.String()}
	from1 := map[string]string{"network": "net", "peer": h1.Addr.String()}
	b1, b2 := scrapeMetrics(t, h1, addrs[0]), scrapeMetrics(t, h2, addrs[1])

	// Ten echo requests and ten replies of 56 bytes of payload: frames
	// of 14 + 20 + 8 + 56 = 98 bytes.
	const pings, pingFrame = 10, 98
	if out, err := c.ctrs[0].Run(testCtx(t), "ping", "-c", "10", "-i", "0.05", "-W", "5", "-s", "56", "10.0.0.3"); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	// UDP datagrams of 300 bytes: frames of 14 + 20 + 8 + 300 = 342
	// bytes; counted as they arrive in c2.
	const udps, udpFrame = 200, 342
	got := udpBurst(t, c.ctrs[0], c.ctrs[1], "10.0.0.3:5000", udps, 300)
	t.Logf("%d of %d UDP datagrams arrived", got, udps)

	// Once the traffic is over, what h1 sent to h2 is what h2 received
	// from h1, and every datagram is accounted for.
	var a1, a2 metrics
	eventually(t, "h1's counters of what it sent to h2 equal h2's of what it received from h1", func() bool {
		a1, a2 = scrapeMetrics(t, h1, addrs[0]), scrapeMetrics(t, h2, addrs[1])
		return a1.sum("vxswitch_peer_tx_datagrams_total", to2) == a2.sum("vxswitch_peer_rx_frames_total", from1) &&
			a1.sum("vxswitch_peer_tx_bytes_total", to2) == a2.sum("vxswitch_peer_rx_bytes_total", from1) &&
			a1.accounted() && a2.accounted()
	})
	delta := func(a, b metrics, name string, labels map[string]string) float64 {
		return a.sum(name, labels) - b.sum(name, labels)
	}
	// At least what was sent (the kernel adds ARP, neighbour discovery
	// and the like).
	for _, c := range []struct {
		what string
		got  float64
		min  float64
	}{
		{"h1 tx_frames", delta(a1, b1, "vxswitch_tx_frames_total", net1), pings + float64(got)},
		{"h1 tx_bytes", delta(a1, b1, "vxswitch_tx_bytes_total", net1), pings*pingFrame + float64(got)*udpFrame},
		{"h1 peer_tx_datagrams to h2", delta(a1, b1, "vxswitch_peer_tx_datagrams_total", to2), pings + float64(got)},
		{"h1 peer_tx_bytes to h2", delta(a1, b1, "vxswitch_peer_tx_bytes_total", to2), pings*pingFrame + float64(got)*udpFrame},
		{"h1 rx_frames (replies)", delta(a1, b1, "vxswitch_rx_frames_total", net1), pings},
		{"h1 rx_bytes (replies)", delta(a1, b1, "vxswitch_rx_bytes_total", net1), pings * pingFrame},
		{"h2 rx_frames", delta(a2, b2, "vxswitch_rx_frames_total", net1), pings + float64(got)},
		{"h2 rx_bytes", delta(a2, b2, "vxswitch_rx_bytes_total", net1), pings*pingFrame + float64(got)*udpFrame},
		{"h2 peer_rx_bytes from h1", delta(a2, b2, "vxswitch_peer_rx_bytes_total", from1), pings*pingFrame + float64(got)*udpFrame},
		{"h2 tx_frames (replies)", delta(a2, b2, "vxswitch_tx_frames_total", net1), pings},
		{"h2 underlay datagrams", delta(a2, b2, "vxswitch_underlay_rx_datagrams_total", nil), pings + float64(got)},
	} {
		t.Logf("%s: +%v (sent at least %v)", c.what, c.got, c.min)
		if c.got < c.min {
			t.Errorf("%s grew by %v, want at least %v", c.what, c.got, c.min)
		}
	}
	// Exact: nothing was dropped anywhere, the MAC tables hold what the
	// mesh and the attachments made, and one peer each.
	for i, m := range []metrics{a1, a2} {
		if d := m.sum("vxswitch_drops_total", nil) + m.sum("vxswitch_underlay_drops_total", nil) +
			m.sum("vxswitch_peer_drops_total", nil); d != 0 {
			t.Errorf("h%d dropped %v frames", i+1, d)
		}
		if p := m.sum("vxswitch_peers", net1); p != 1 {
			t.Errorf("h%d: vxswitch_peers %v, want 1", i+1, p)
		}
		if l := m.sum("vxswitch_mac_entries", map[string]string{"network": "net", "source": "learned"}); l < 1 {
			t.Errorf("h%d learned no MAC", i+1)
		}
		if m.sum("vxswitch_network_info", map[string]string{"network": "net", "vni": "256"}) != 1 {
			t.Errorf("h%d: no vxswitch_network_info for net", i+1)
		}
		if m.sum("vxswitch_build_info", nil) != 1 || m["go_goroutines"] == nil || m["process_open_fds"] == nil {
			t.Errorf("h%d: build info or the Go and process metrics missing", i+1)
		}
		if m["vxswitch_store_connected"] != nil {
			t.Errorf("h%d: a store metric without --store", i+1)
		}
	}
	if got < udps*9/10 {
		t.Errorf("only %d of %d UDP datagrams arrived", got, udps)
	}
}

// udpBurst sends n datagrams of size bytes from one container to a
// socket at addr in another and returns how many arrived.
func udpBurst(t *testing.T, from, to *topo.Container, addr string, n, size int) int {
	t.Helper()
	pc, err := to.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	arrived := make(chan int, 1)
	go func() {
		k := 0
		buf := make([]byte, 2048)
		for k < n {
			pc.SetReadDeadline(time.Now().Add(5 * time.Second)) // the end of the burst, not a threshold
			m, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			if m == size {
				k++
			}
		}
		arrived <- k
	}()
	conn, err := from.Dial(testCtx(t), "udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := make([]byte, size)
	for i := range n {
		payload[0] = byte(i)
		if _, err := conn.Write(payload); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			time.Sleep(time.Millisecond) // pace the burst: no receive buffer overflows
		}
	}
	return <-arrived
}
