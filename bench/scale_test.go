package bench

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// TestScaleSmoke runs the scale harness small (3 hosts, 3 attaches), with
// the polls from the reply and from the request, so that it cannot rot:
// every figure is there and not negative, every other host saw every
// endpoint, etcd's counters were parsed and moved, and the table and the
// JSON are written. It asserts nothing on timing.
func TestScaleSmoke(t *testing.T) {
	topo.RequireRoot(t)
	topo.RequireEtcd(t)
	for _, during := range []bool{false, true} {
		t.Run("poll-from-"+pollFrom(ScaleOptions{PollDuringAttach: during}), func(t *testing.T) { scaleSmoke(t, during) })
	}
}

func scaleSmoke(t *testing.T, pollDuringAttach bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const hosts, attaches = 3, 3
	// A short TTL makes keep-alives every second, so the 2 s idle window
	// sees some and their size is measured.
	opts := ScaleOptions{Hosts: hosts, Attaches: attaches, StoreTTL: 3 * time.Second, Idle: 2 * time.Second, Gap: 10 * time.Millisecond,
		PollDuringAttach: pollDuringAttach}
	res, err := RunScale(ctx, opts, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != attaches {
		t.Fatalf("%d runs, want %d", len(res.Runs), attaches)
	}
	for k, r := range res.Runs {
		if want := k%hosts + 1; r.Host != want {
			t.Errorf("attach %d on h%d, want h%d (rotation)", k+1, r.Host, want)
		}
		if r.MAC == "" || r.IP == "" || !(r.AttachMS >= 0) {
			t.Errorf("attach %d: %+v", k+1, r)
		}
		if len(r.SeenMS) != hosts {
			t.Fatalf("attach %d: %d hosts in seen_ms, want %d", k+1, len(r.SeenMS), hosts)
		}
		for j, s := range r.SeenMS {
			switch {
			case j == r.Host-1 && s != nil:
				t.Errorf("attach %d: the attaching host h%d has a time", k+1, j+1)
			case j != r.Host-1 && (s == nil || !(*s >= 0)):
				t.Errorf("attach %d: h%d never saw the endpoint (%v)", k+1, j+1, s)
			}
		}
		if !(r.WatchMS > 0) {
			t.Errorf("attach %d: the harness's watch got the publication at %v ms", k+1, r.WatchMS)
		}
		if r.Polls < hosts-1 {
			t.Errorf("attach %d: %d polls, want at least one per other host", k+1, r.Polls)
		}
	}
	keys := map[string]bool{}
	for _, f := range res.Latency {
		keys[f.Key] = true
		if !(f.Median >= 0) || !(f.P99 >= f.Median) || !(f.Max >= f.P99) {
			t.Errorf("figure %s: median %v, p99 %v, max %v", f.Key, f.Median, f.P99, f.Max)
		}
	}
	for _, k := range []string{ScaleAttach, ScaleWatchIssue, ScaleAllIssue, ScaleAllReturn, ScaleMedianReturn, ScaleFirstReturn} {
		if !keys[k] {
			t.Errorf("no figure %s", k)
		}
	}
	if p := res.Poll; p.Count < attaches*(hosts-1) || !(p.RTTMedianMS > 0) || p.IntervalMS != 2 {
		t.Errorf("poll stats %+v", p)
	}

	e := res.Etcd
	calls := map[string]EtcdMethod{}
	for _, m := range e.Methods {
		calls[m.Method] = m
	}
	// Every attach is at least one transaction (the endpoint and its
	// addresses) and one put (its publication), and every daemon's
	// watch sent something.
	if m := calls["etcdserverpb.KV/Txn"]; !(m.Calls >= 1) {
		t.Errorf("KV/Txn per attach %+v, want at least 1 (methods %+v)", m, e.Methods)
	}
	if m := calls["etcdserverpb.Watch/Watch"]; !(m.MsgsOut >= hosts) {
		t.Errorf("Watch messages sent per attach %+v, want at least one per host (methods %+v)", m, e.Methods)
	}
	// The harness's own watch got the two changes of every attach, and
	// is left out of etcd's figures.
	// (A daemon that lost etcd for a moment may hold a second watch while
	// the first is cancelled: at least one per daemon.)
	if !(e.WatchMsgsPerAttach >= 1) || !(e.WatchBytesPerAttach > 0) || !(e.OtherSentBytesPerAttach > 0) || e.Watchers < hosts {
		t.Errorf("one watch's share: %v responses, %v B per attach; other bytes %v; watchers %v (want at least %d)",
			e.WatchMsgsPerAttach, e.WatchBytesPerAttach, e.OtherSentBytesPerAttach, e.Watchers, hosts)
	}
	if !(e.RequestsPerAttach >= 2) || !(e.ResponsesPerAttach >= e.RequestsPerAttach) {
		t.Errorf("requests %v and responses %v per attach", e.RequestsPerAttach, e.ResponsesPerAttach)
	}
	if !(e.RecvBytesPerAttachNet > 0) || !(e.SentBytesPerAttachNet > e.RecvBytesPerAttachNet) ||
		e.RecvBytesPerAttachNet > e.RecvBytesPerAttach || e.SentBytesPerAttachNet > e.SentBytesPerAttach ||
		!(e.SentBytesPerAttachPerHost > 0) {
		t.Errorf("bytes per attach: %+v", e)
	}
	if ka := e.KeepAlive; !(ka.PerSecond > 0) || !(ka.RecvBytes > 0) || !(ka.SentBytes > 0) || !(ka.IdleS > 0) {
		t.Errorf("keep-alives %+v", ka)
	}
	if !(e.RSSMiB > 0) || !(e.HWMMiB >= e.RSSMiB) || !(e.CPUPerAttachMS >= 0) || !(e.SeriesS > 0) || !(e.Keys > 0 || e.DBBytes > 0) {
		t.Errorf("etcd %+v", e)
	}
	if d := res.Daemons; !(d.RSSMedianMiB > 0) || !(d.RSSMaxMiB >= d.RSSMedianMiB) || !(d.HWMMedianMiB >= d.RSSMedianMiB) ||
		!(d.HWMMaxMiB >= d.HWMMedianMiB) || !(d.CPUPerAttachMS >= 0) || !(d.PollsPerAttach >= hosts-1) {
		t.Errorf("daemons' memory %+v", d)
	}
	if !strings.Contains(res.Settings.EtcdVersion, "etcd") || res.Settings.Hosts != hosts || res.Settings.PollFrom != pollFrom(opts) {
		t.Errorf("settings %+v", res.Settings)
	}

	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	for _, want := range []string{"every other host has it, from the reply", "etcdserverpb.KV/Txn", "bytes sent per attach", "VmHWM", res.Machine.Kernel} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	path, err := res.Save(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back ScaleResults
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(back.Runs) != attaches || len(back.Latency) != len(res.Latency) || back.Etcd.SentBytesPerAttach != e.SentBytesPerAttach {
		t.Errorf("JSON does not round-trip: %s", raw)
	}
}

func TestScaleOptions(t *testing.T) {
	o, err := ScaleOptions{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Hosts != 16 || o.Attaches != 100 || o.PollInterval != 2*time.Millisecond || o.Idle != 20*time.Second || o.Gap != 100*time.Millisecond {
		t.Errorf("defaults %+v", o)
	}
	if o, _ := (ScaleOptions{StoreTTL: 30 * time.Second}).withDefaults(); o.Idle != time.Minute {
		t.Errorf("idle window with a 30 s TTL: %v, want two TTLs", o.Idle)
	}
	for _, bad := range []ScaleOptions{{Hosts: 1}, {Hosts: 100}, {Attaches: -1}, {PollInterval: -time.Millisecond}, {StoreTTL: time.Second}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestCPUPerAttach(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	// Idle: 10 s, 20 and 50 ticks; series: 20 s, 240 and 300 ticks, of
	// which 40 and 100 are the idle rate; 4 attaches.
	etcd, daemons := cpuPerAttach(cpuSnap{at(0), 0, 0}, cpuSnap{at(10), 20, 50}, cpuSnap{at(100), 100, 100}, cpuSnap{at(120), 340, 400}, 4)
	if etcd != 500 || daemons != 500 {
		t.Errorf("cpuPerAttach = %v, %v ms; want 500 and 500", etcd, daemons)
	}
	// Less than the idle rate: 0, not negative.
	if etcd, _ := cpuPerAttach(cpuSnap{at(0), 0, 0}, cpuSnap{at(10), 20, 0}, cpuSnap{at(100), 100, 0}, cpuSnap{at(110), 110, 0}, 1); etcd != 0 {
		t.Errorf("etcd = %v, want 0", etcd)
	}
}

func TestScaleFigures(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	r := ScaleRun{Host: 2, AttachMS: 10, WatchMS: 9, SeenMS: []*float64{f(12), nil, f(4), f(20)}}
	got := r.figures()
	want := map[string]float64{ScaleAttach: 10, ScaleWatchIssue: 9, ScaleAllIssue: 20, ScaleAllReturn: 10, ScaleMedianReturn: 2, ScaleFirstReturn: 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// Every host had it before the reply: 0 after it, not negative.
	r = ScaleRun{Host: 1, AttachMS: 10, SeenMS: []*float64{nil, f(3), f(5)}}
	if got := r.figures()[ScaleAllReturn]; got != 0 {
		t.Errorf("from the reply = %v, want 0", got)
	}
	vals := make([]float64, 100)
	for i := range vals {
		vals[i] = float64(100 - i)
	}
	if p := percentile(vals, 99); p != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", p)
	}
	if p := percentile(vals[:10], 99); p != 100 {
		t.Errorf("p99 of 10 values = %v, want the largest", p)
	}
	runs := []ScaleRun{{Host: 1, AttachMS: 1, SeenMS: []*float64{nil, f(2)}}, {Host: 2, AttachMS: 3, SeenMS: []*float64{f(5), nil}}}
	for _, fig := range summarizeScale(runs) {
		if fig.Key == ScaleAllIssue && (fig.Median != 3.5 || fig.Max != 5 || fig.P99 != 5) {
			t.Errorf("%+v", fig)
		}
	}
}

// etcdMetricsSample is a cut of etcd 3.4's /metrics.
const etcdMetricsSample = `# HELP etcd_network_client_grpc_received_bytes_total The total number of bytes received from grpc clients.
# TYPE etcd_network_client_grpc_received_bytes_total counter
etcd_network_client_grpc_received_bytes_total 1000
etcd_network_client_grpc_sent_bytes_total 5000
etcd_debugging_mvcc_watcher_total 3
etcd_debugging_mvcc_current_revision 40
etcd_debugging_mvcc_events_total 12
etcd_mvcc_db_total_size_in_bytes 20480
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 10
grpc_server_started_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 4
grpc_server_started_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 3
grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 3
grpc_server_msg_received_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 10
grpc_server_msg_received_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 4
grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 30
grpc_server_msg_received_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 3
grpc_server_msg_sent_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 10
grpc_server_msg_sent_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 4
grpc_server_msg_sent_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 30
grpc_server_msg_sent_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 27
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 10
process_resident_memory_bytes 2.5165824e+07
`

func TestEtcdCounters(t *testing.T) {
	samples, err := parsePromText(strings.NewReader(etcdMetricsSample))
	if err != nil {
		t.Fatal(err)
	}
	after, err := etcdCountersOf(samples)
	if err != nil {
		t.Fatal(err)
	}
	if m := after.methods["etcdserverpb.KV/Txn"]; m.started != 4 || m.in != 4 || m.out != 4 {
		t.Errorf("Txn %+v", m)
	}
	if after.recvBytes != 1000 || after.sentBytes != 5000 || after.other[promWatchers] != 3 {
		t.Errorf("counters %+v", after)
	}
	// The idle window: 10 keep-alives, 100 B in and 400 B out in all.
	idle := etcdCounters{methods: map[string]rpcCounts{keepAliveMethod: {in: 10, out: 10}}, recvBytes: 100, sentBytes: 400}
	before := etcdCounters{methods: map[string]rpcCounts{
		"etcdserverpb.KV/Range": {6, 6, 6}, "etcdserverpb.KV/Txn": {2, 2, 2},
		keepAliveMethod: {3, 20, 20}, "etcdserverpb.Watch/Watch": {3, 3, 15},
	}, recvBytes: 500, sentBytes: 2000, other: map[string]float64{promRevision: 36, promEvents: 4}}
	series := after.sub(before)
	e := etcdFigures(idle, 5, series, after, 3, 2)
	// Per attach: Range 2, Txn 1, Watch 6 out; 10 keep-alives in the
	// series (100 B in, 400 B out at the idle window's sizes).
	if e.RequestsPerAttach != 3 || e.ResponsesPerAttach != 9 {
		t.Errorf("requests %v, responses %v per attach; want 3 and 9", e.RequestsPerAttach, e.ResponsesPerAttach)
	}
	if e.RecvBytesPerAttach != 250 || e.RecvBytesPerAttachNet != 200 || e.SentBytesPerAttach != 1500 || e.SentBytesPerAttachNet != 1300 {
		t.Errorf("bytes %+v", e)
	}
	if e.SentBytesPerAttachPerHost != 1300.0/3 || e.RevisionsPerAttach != 2 || e.EventsPerAttach != 4 || e.Watchers != 3 || e.DBBytes != 20480 {
		t.Errorf("figures %+v", e)
	}
	if ka := e.KeepAlive; ka.PerSecond != 2 || ka.RecvBytes != 10 || ka.SentBytes != 40 || ka.Series != 10 || ka.OtherMsgs != 0 {
		t.Errorf("keep-alives %+v", ka)
	}
	var names []string
	for _, m := range e.Methods {
		names = append(names, m.Method)
		if m.Background != (m.Method == keepAliveMethod) {
			t.Errorf("%s background %v", m.Method, m.Background)
		}
	}
	if strings.Join(names, " ") != "etcdserverpb.KV/Range etcdserverpb.KV/Txn etcdserverpb.Lease/LeaseKeepAlive etcdserverpb.Watch/Watch" {
		t.Errorf("methods %v", names)
	}

	// One watcher of the harness got 4 responses of 300 B in all, with
	// 2 events.
	s2, a2 := withoutWatch(series, after, watchCounts{msgs: 4, bytes: 300, events: 2})
	if s2.methods[watchMethod].out != 8 || s2.sentBytes != 2700 || a2.other[promWatchers] != 2 || s2.other[promEvents] != 6 {
		t.Errorf("without the harness's watch: %+v, watchers %v", s2, a2.other[promWatchers])
	}
	if series.methods[watchMethod].out != 12 || after.other[promWatchers] != 3 || series.other[promEvents] != 8 {
		t.Error("withoutWatch changed its arguments")
	}

	if _, err := etcdCountersOf(samples[:3]); err == nil {
		t.Error("a scrape without the gRPC counters was accepted")
	}
}

func TestParsePromText(t *testing.T) {
	got, err := parsePromText(strings.NewReader("# c\n\nm{a=\"x\\\"y\",b=\"1\\\\2\\n\"} 1.5e3 1700000000\nplain 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].name != "m" || got[0].labels["a"] != `x"y` || got[0].labels["b"] != "1\\2\n" || got[0].value != 1500 ||
		got[1].name != "plain" || got[1].value != 7 {
		t.Errorf("parsed %+v", got)
	}
	for _, bad := range []string{"novalue", `m{a="x} 1`, `m{a=x} 1`, "m notanumber", "m 1 2 3", `m{a="x"`} {
		if _, err := parsePromText(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if kb, err := statusKB("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n", "VmRSS"); err != nil || kb != 1024 {
		t.Errorf("statusKB = %d, %v", kb, err)
	}
	if _, err := statusKB("VmHWM:\t 1 kB\n", "VmRSS"); err == nil {
		t.Error("statusKB found a missing field")
	}
}
