// Package metrics serves the daemon's counters as Prometheus metrics.
//
// The datapath counts with its own atomic counters; nothing here runs per
// packet. A Collector reads those counters when Prometheus scrapes (as
// node_exporter's collectors read /proc), through a Source that returns
// the same figures `vxswitch stats --json` prints, and turns them into
// const metrics. docs/metrics.md lists every metric.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// Source is what a Collector reads at scrape time. Its methods may be
// called from any goroutine.
type Source interface {
	// Stats returns the counters of the switch and of every network,
	// as the control API's stats route reports them.
	Stats() api.Stats
	// StoreConnected reports whether the daemon reaches its cluster
	// store; ok is false when it runs without one.
	StoreConnected() (connected, ok bool)
}

const ns = "vxswitch"

// Collector is a prometheus.Collector of a daemon's counters.
type Collector struct {
	src Source
}

// NewCollector returns a Collector reading src.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

// netCounter is a per-network counter read from api.Counters.
type netCounter struct {
	d   *prometheus.Desc
	get func(*api.NetworkStats) uint64
}

var (
	netCounters = []netCounter{
		{desc("tx_frames_total", "Frames read from the network's TAP and sent into the overlay (a flooded frame counts once, a superframe as its segments).", "network"),
			func(s *api.NetworkStats) uint64 { return s.TXFrames }},
		{desc("tx_bytes_total", "Inner frame bytes of tx_frames_total.", "network"),
			func(s *api.NetworkStats) uint64 { return s.TXBytes }},
		{desc("tx_flooded_frames_total", "Frames sent to every peer (broadcast, multicast, unknown unicast).", "network"),
			func(s *api.NetworkStats) uint64 { return s.TXFlooded }},
		{desc("tx_datagrams_total", "VXLAN datagrams sent, each copy of a flooded frame included.", "network"),
			func(s *api.NetworkStats) uint64 { return s.TXDatagrams }},
		{desc("tx_drained_frames_total", "Frames the receive loop took from the TAP right after writing to it.", "network"),
			func(s *api.NetworkStats) uint64 { return s.TXDrained }},
		{desc("rx_frames_total", "Frames received from the overlay and written to the network's TAP.", "network"),
			func(s *api.NetworkStats) uint64 { return s.RXFrames }},
		{desc("rx_bytes_total", "Bytes of rx_frames_total.", "network"),
			func(s *api.NetworkStats) uint64 { return s.RXBytes }},
		{desc("rx_csum_repaired_total", "Received frames whose partial checksum was completed.", "network"),
			func(s *api.NetworkStats) uint64 { return s.RXCsumRepaired }},
		{desc("rx_split_total", "Received TCP superframes split into MTU-sized segments.", "network"),
			func(s *api.NetworkStats) uint64 { return s.RXSplit }},
		{desc("rx_coalesced_total", "Superframes written to the TAP, each coalesced from several received segments.", "network"),
			func(s *api.NetworkStats) uint64 { return s.RXCoalesced }},
		{desc("arp_proxied_total", "ARP requests from the TAP answered by the switch itself.", "network"),
			func(s *api.NetworkStats) uint64 { return s.ARPProxied }},
		{desc("nd_proxied_total", "IPv6 neighbour solicitations from the TAP answered by the switch itself.", "network"),
			func(s *api.NetworkStats) uint64 { return s.NDProxied }},
		{desc("pmtu_answered_total", "ICMP fragmentation-needed and ICMPv6 packet-too-big messages written into the TAP.", "network"),
			func(s *api.NetworkStats) uint64 { return s.PMTUAnswered }},
		{desc("mac_learned_total", "MAC entries learned (added) from received frames.", "network"),
			func(s *api.NetworkStats) uint64 { return s.FIB.Added }},
		{desc("mac_moves_total", "Learned MAC entries that moved to another VTEP.", "network"),
			func(s *api.NetworkStats) uint64 { return s.FIB.Moved }},
		{desc("mac_aged_total", "Learned MAC entries removed after the aging time without traffic.", "network"),
			func(s *api.NetworkStats) uint64 { return s.FIB.Expired }},
		{desc("mac_shadowed_total", "Learns ignored because a static or store entry names another VTEP.", "network"),
			func(s *api.NetworkStats) uint64 { return s.FIB.Shadowed }},
	}
	dropsDesc = desc("drops_total", "Frames and datagrams of the network not forwarded, by direction (rx: received from the overlay; tx: from the TAP or injected) and reason.",
		"network", "direction", "reason")
	refusedDesc     = desc("mac_learn_refused_total", "Learns refused: the table was full (reason full) or the MAC or VTEP was bad (invalid).", "network", "reason")
	entriesDesc     = desc("mac_entries", "MAC table entries by source (static, store, learned; learned includes stale entries not yet removed).", "network", "source")
	maxLearnedDesc  = desc("mac_max_learned", "The bound on the network's learned MAC entries.", "network")
	peersDesc       = desc("peers", "Peers on the network's flood list.", "network")
	netInfoDesc     = desc("network_info", "The networks this daemon serves, with their VNI; always 1.", "network", "vni")
	peerTXDatagrams = desc("peer_tx_datagrams_total", "Datagrams sent to the peer VTEP (each copy of a flooded frame counts for its peer).", "network", "peer")
	peerTXBytes     = desc("peer_tx_bytes_total", "Inner frame bytes of peer_tx_datagrams_total.", "network", "peer")
	peerRXFrames    = desc("peer_rx_frames_total", "Frames received from the peer VTEP that passed the checks in front of the TAP.", "network", "peer")
	peerRXBytes     = desc("peer_rx_bytes_total", "Bytes of peer_rx_frames_total.", "network", "peer")
	peerDrops       = desc("peer_drops_total", "Datagrams from the peer dropped before the TAP, and datagrams to it the underlay refused (send_error), by reason.", "network", "peer", "reason")
	swRXDatagrams   = desc("underlay_rx_datagrams_total", "Datagrams received on the underlay socket (each of a GRO buffer's).")
	swRXOverflow    = desc("underlay_rx_overflow_total", "Datagrams the kernel dropped for the underlay socket before the daemon read them (SO_RXQ_OVFL).")
	swTXGSOSplit    = desc("underlay_tx_gso_split_total", "UDP GSO messages the kernel refused, sent again one datagram at a time.")
	swDrops         = desc("underlay_drops_total", "Received datagrams dropped before they matched a network, by reason.", "reason")
	storeConnDesc   = desc("store_connected", "1 while the daemon reaches its cluster store, 0 while it is unreachable; absent without --store.")
	fibSourceLabels = []string{"static", "store", "learned"}
)

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range netCounters {
		ch <- m.d
	}
	for _, d := range []*prometheus.Desc{dropsDesc, refusedDesc, entriesDesc, maxLearnedDesc, peersDesc, netInfoDesc,
		peerTXDatagrams, peerTXBytes, peerRXFrames, peerRXBytes, peerDrops,
		swRXDatagrams, swRXOverflow, swTXGSOSplit, swDrops, storeConnDesc} {
		ch <- d
	}
}

// Collect reads the source and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	sw := st.Switch
	counter(swRXDatagrams, sw.RXDatagrams)
	counter(swRXOverflow, sw.RXOverflow)
	counter(swTXGSOSplit, sw.TXGSOSplit)
	for r, v := range sw.Drops {
		counter(swDrops, v, r)
	}
	for i := range st.Networks {
		n := &st.Networks[i]
		name := n.Network
		gauge(netInfoDesc, 1, name, strconv.FormatUint(uint64(n.VNI), 10))
		for _, m := range netCounters {
			counter(m.d, m.get(n), name)
		}
		for r, v := range n.Drops {
			rx := n.RXDrops[r]
			if rx != 0 {
				counter(dropsDesc, rx, name, "rx", r)
			}
			if v > rx {
				counter(dropsDesc, v-rx, name, "tx", r)
			}
		}
		counter(refusedDesc, n.FIB.RefusedFull, name, "full")
		counter(refusedDesc, n.FIB.RefusedInvalid, name, "invalid")
		for j, v := range []int{n.FIB.Static, n.FIB.Store, n.FIB.Learned} {
			gauge(entriesDesc, float64(v), name, fibSourceLabels[j])
		}
		gauge(maxLearnedDesc, float64(n.FIB.MaxLearned), name)
		gauge(peersDesc, float64(n.FIB.Peers), name)
		for _, p := range n.Peers {
			counter(peerTXDatagrams, p.TXDatagrams, name, p.VTEP)
			counter(peerTXBytes, p.TXBytes, name, p.VTEP)
			counter(peerRXFrames, p.RXFrames, name, p.VTEP)
			counter(peerRXBytes, p.RXBytes, name, p.VTEP)
			for r, v := range p.Drops {
				counter(peerDrops, v, name, p.VTEP, r)
			}
		}
	}
	if up, ok := c.src.StoreConnected(); ok {
		v := 0.0
		if up {
			v = 1
		}
		gauge(storeConnDesc, v)
	}
}

// Registry returns a registry with a Collector of src, vxswitch_build_info
// (version, goversion) and the standard Go runtime and process
// collectors.
func Registry(src Source, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "build_info", Help: "The daemon's version and the Go it was built with; always 1.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }))
	return reg
}

// Handler serves /metrics from Registry(src, version).
func Handler(src Source, version string) http.Handler {
	mux := http.NewServeMux()
	reg := Registry(src, version)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}
