package bench

// The scale benchmark: how the cluster store behaves with many hosts.
//
// RunScale builds Hosts hosts (network namespaces) on one LAN bridge, one
// etcd member on the same LAN, and a vxswitch daemon (the built binary)
// on every host joined to it. One cluster network gets a first endpoint
// on every host (a host only keeps a network's MAC table while it has an
// endpoint there), and once every host has every other host's entry the
// series starts: Attaches times, a fresh container namespace is attached
// on the next host in turn, through the daemon's control API (the request
// `vxswitch network attach` sends), and every other host's daemon is
// polled until its MAC table has the new endpoint's MAC with source store
// behind the attaching host's VTEP.
//
// Timing. t0 is taken just before the attach request is sent and t1 when
// its reply has arrived; a host counts as having the entry at the moment
// the reply of the first poll that shows it arrives. Each poll asks the
// daemon's stats for the network (a small answer that carries the number
// of store entries, which only grows during the series); when the count
// has grown, one more request reads the MAC table and checks that the
// very MAC is there, from the store, behind the right VTEP (a mismatch
// fails the run). Pollers run concurrently, one per host, each sending
// its next poll PollInterval after the previous one was sent. A host's
// figure is therefore late by at most PollInterval plus one poll's round
// trip (both are reported), and never early.
//
// The polls start at t1: polling while the attach runs (15 pollers every
// 2 ms against 15 daemons on a 2-core machine) slowed the attach itself
// about twofold. The attaching daemon publishes the endpoint shortly
// before it replies (it still syncs its own copy of the network and
// answers), so a host may have the entry before t1: it shows it at the
// first poll, and its figure from the reply is that poll's round trip,
// or 0 counted from the reply where that is clamped. The last host, the
// figure that matters, is well after t1. PollDuringAttach starts the
// polls at t0 instead, at the price above. The harness also keeps a
// watch of its own on the store's prefix, as every daemon does, and
// times when etcd delivers the endpoint's publication to it: etcd's part
// of the propagation, free of the polls.
//
// etcd's counters come from its Prometheus endpoint (/metrics on the
// client port), read over HTTP from a host namespace on the LAN before and
// after an idle window (no attaches: only the hosts' lease keep-alives)
// and before and after the series. The byte counters
// (etcd_network_client_grpc_{received,sent}_bytes_total) count the
// protobuf messages etcd's gRPC codec decodes and encodes: request and
// response bodies, without gRPC framing, HTTP/2 or TCP overhead. Every
// watch response is encoded once per watch stream, so the sent bytes hold
// the fan-out of every change to every daemon's watch. The gRPC counters
// (grpc_server_{started,msg_received,msg_sent}_total) count calls and
// messages per method: for unary methods a call is one message each way,
// for the streams (Watch, LeaseKeepAlive) every request and every
// response is a message. The keep-alives run all the time; the series'
// figures are given with them and net of them (their bytes measured per
// message in the idle window). The harness's watch adds up the protobuf
// size of what it gets, which is one daemon's share of the fan-out; its
// own share is taken out of etcd's figures.
//
// CPU: etcd's and all the daemons' CPU time (user + system, from
// /proc/PID/stat) over the series per attach, less their rate in the
// idle window. After the series every daemon's VmRSS and VmHWM are read
// from /proc/PID/status. Everything runs inside namespaces that RunScale
// makes and removes (with bench/topo), also on failure or when ctx is
// cancelled; nothing is pinned: 16 daemons, etcd and the harness share
// the machine's CPUs as the scheduler sees fit.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/store"
)

// ScaleOptions configure RunScale; the zero value is the full run.
type ScaleOptions struct {
	// Hosts is the number of hosts, each with a daemon; 0 means 16. At
	// least 2, at most 99 (topo's LAN keeps .100 up for etcd).
	Hosts int
	// Attaches is the length of the series; 0 means 100.
	Attaches int
	// Binary is the vxswitch executable; empty means build one into a
	// temporary directory (topo.BuildBinary).
	Binary string
	// Etcd is the etcd executable; empty means etcd from PATH (Debian's
	// etcd-server, 3.4).
	Etcd string
	// PollInterval is the gap between two polls of one daemon; 0 means
	// 2 ms.
	PollInterval time.Duration
	// Idle is the window without attaches in which the lease
	// keep-alives' share of etcd's counters is measured; 0 means two
	// TTLs (20 s by default): six keep-alives per host, so that the
	// rate is not much blurred by where each host's fall.
	Idle time.Duration
	// Gap is the pause after one attach has reached every host and
	// before the next one; 0 means 100 ms.
	Gap time.Duration
	// StoreTTL is every host's lease TTL (--store-ttl); 0 means the
	// daemon's default, 10 s.
	StoreTTL time.Duration
	// DaemonArgs are extra flags for every daemon.
	DaemonArgs []string
	// PollDuringAttach starts polling the other hosts when the attach
	// request is sent instead of when its reply arrives, to see hosts
	// that have the entry before the reply; on a small machine the
	// polls then slow the attach down (see the package doc).
	PollDuringAttach bool
}

// Defaults of the scale run.
const (
	defaultScaleHosts    = 16
	defaultScaleAttaches = 100
	defaultPollInterval  = 2 * time.Millisecond
	defaultScaleGap      = 100 * time.Millisecond
	// defaultStoreTTL is the daemon's own default (daemon.DefaultStoreTTL).
	defaultStoreTTL = 10 * time.Second
	// maxScaleHosts: topo gives hosts 198.18.0.N and etcd .100.
	maxScaleHosts = 99
	// scaleNetwork and scaleSubnet are the cluster network of the
	// series; a /16, so any series fits.
	scaleNetwork = "scale"
	scaleSubnet  = "10.0.0.0/16"
	// convergeTimeout bounds the wait for every host to have one
	// endpoint's entry (or, at the start, every host's): a guard against
	// a hang, not a measurement.
	convergeTimeout = 60 * time.Second
	// setupPoll is how often the setup checks for convergence.
	setupPoll = 50 * time.Millisecond
)

func (o ScaleOptions) withDefaults() (ScaleOptions, error) {
	if o.Hosts == 0 {
		o.Hosts = defaultScaleHosts
	}
	if o.Attaches == 0 {
		o.Attaches = defaultScaleAttaches
	}
	if o.PollInterval == 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.Gap == 0 {
		o.Gap = defaultScaleGap
	}
	ttl := o.StoreTTL
	if ttl == 0 {
		ttl = defaultStoreTTL
	}
	if o.Idle == 0 {
		o.Idle = 2 * ttl
	}
	switch {
	case o.Hosts < 2 || o.Hosts > maxScaleHosts:
		return o, fmt.Errorf("hosts %d: want 2 to %d", o.Hosts, maxScaleHosts)
	case o.Attaches < 1:
		return o, fmt.Errorf("attaches %d: want at least 1", o.Attaches)
	case o.PollInterval < 0 || o.Gap < 0 || o.Idle < 0 || o.StoreTTL < 0:
		return o, errors.New("poll interval, gap, idle window and store TTL must not be negative")
	case o.StoreTTL != 0 && o.StoreTTL < 2*time.Second:
		return o, fmt.Errorf("store TTL %v: the daemon takes at least 2s", o.StoreTTL)
	}
	return o, nil
}

// ScaleResults are what RunScale measured.
type ScaleResults struct {
	Machine  Machine       `json:"machine"`
	Settings ScaleSettings `json:"settings"`
	// Latency has one figure per row of the table, over the series.
	Latency []ScaleFigure `json:"latency"`
	// Poll describes the polls, which bound the figures' resolution.
	Poll PollStats `json:"poll"`
	// Etcd is etcd's side: requests and bytes per attach, its memory.
	Etcd EtcdScale `json:"etcd"`
	// Daemons is the daemons' memory after the series and CPU.
	Daemons DaemonScale `json:"daemons"`
	// Runs has one entry per attach, in order.
	Runs []ScaleRun `json:"runs"`
}

// ScaleSettings are what the run was asked to do.
type ScaleSettings struct {
	Hosts          int     `json:"hosts"`
	Attaches       int     `json:"attaches"`
	PollIntervalMS float64 `json:"poll_interval_ms"`
	// PollFrom is when the polls of an attach start: "reply" (the
	// default) or "request" (ScaleOptions.PollDuringAttach).
	PollFrom        string   `json:"poll_from"`
	IdleS           float64  `json:"idle_s"`
	GapMS           float64  `json:"gap_ms"`
	StoreTTLS       float64  `json:"store_ttl_s"`
	Network         string   `json:"network"`
	Subnet          string   `json:"subnet"`
	VXSwitchVersion string   `json:"vxswitch_version,omitempty"`
	EtcdVersion     string   `json:"etcd_version,omitempty"`
	DaemonArgs      []string `json:"daemon_args,omitempty"`
}

// ScaleFigure is one latency figure over the series, in milliseconds.
type ScaleFigure struct {
	Key    string  `json:"key"`
	Label  string  `json:"label"`
	Median float64 `json:"median_ms"`
	// P99 is the nearest-rank 99th percentile: with 100 attaches the
	// second largest, with fewer than 100 the largest.
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Latency figure keys.
const (
	ScaleAttach       = "attach_ms"             // the attach request, sent to answered
	ScaleWatchIssue   = "watch_issue_ms"        // the harness's watch gets the publication, from t0
	ScaleAllIssue     = "all_hosts_issue_ms"    // every other host has the entry, from t0
	ScaleAllReturn    = "all_hosts_return_ms"   // ... from t1 (0 if all had it before)
	ScaleMedianReturn = "median_host_return_ms" // the median other host, from t1
	ScaleFirstReturn  = "first_host_return_ms"  // the first other host, from t1
)

// ScaleRun is one attach.
type ScaleRun struct {
	Host     int     `json:"host"` // the attaching host, from 1
	MAC      string  `json:"mac"`
	IP       string  `json:"ip"`
	AttachMS float64 `json:"attach_ms"`
	// WatchMS is when the harness's own watch got the endpoint's
	// publication, from t0.
	WatchMS float64 `json:"watch_ms"`
	// SeenMS is, per host (index 0 is h1), when it had the entry,
	// counted from t0; null for the attaching host.
	SeenMS []*float64 `json:"seen_ms"`
	// Polls is how many polls the other hosts needed, together.
	Polls int `json:"polls"`
}

// figures are a run's latency figures by key. Those counted from the
// reply are 0 where the hosts had the entry before it arrived.
func (r ScaleRun) figures() map[string]float64 {
	var seen []float64
	for _, s := range r.SeenMS {
		if s != nil {
			seen = append(seen, *s)
		}
	}
	if len(seen) == 0 {
		return map[string]float64{ScaleAttach: r.AttachMS}
	}
	last := slices.Max(seen)
	return map[string]float64{
		ScaleAttach:       r.AttachMS,
		ScaleWatchIssue:   r.WatchMS,
		ScaleAllIssue:     last,
		ScaleAllReturn:    max(0, last-r.AttachMS),
		ScaleMedianReturn: max(0, median(seen)-r.AttachMS),
		ScaleFirstReturn:  max(0, slices.Min(seen)-r.AttachMS),
	}
}

// scaleFigureLabels are the table's latency rows, in order.
var scaleFigureLabels = []struct{ key, label string }{
	{ScaleAttach, "attach: API request sent → reply"},
	{ScaleWatchIssue, "a watch on etcd gets it, from the request"},
	{ScaleAllIssue, "every other host has it, from the request"},
	{ScaleAllReturn, "every other host has it, from the reply"},
	{ScaleMedianReturn, "median other host has it, from the reply"},
	{ScaleFirstReturn, "first other host has it, from the reply"},
}

// PollStats describe the polls of the series.
type PollStats struct {
	IntervalMS float64 `json:"interval_ms"`
	// RTT of the polls (stats requests), send to reply.
	RTTMedianMS float64 `json:"rtt_median_ms"`
	RTTP99MS    float64 `json:"rtt_p99_ms"`
	// Count is every poll of the series.
	Count int `json:"count"`
}

// EtcdScale is etcd's share of the series.
type EtcdScale struct {
	// Methods are the gRPC methods that moved during the series, per
	// attach: calls started, messages received and sent.
	Methods []EtcdMethod `json:"methods"`
	// Watchers is etcd's watcher gauge after the series (one per daemon),
	// 0 where this etcd does not export it.
	Watchers float64 `json:"watchers"`
	// Per attach, every method but LeaseKeepAlive: messages etcd
	// received (requests) and sent (responses and watch events).
	RequestsPerAttach  float64 `json:"requests_per_attach"`
	ResponsesPerAttach float64 `json:"responses_per_attach"`
	// Bytes per attach as etcd counts them (see the package doc), with
	// the keep-alives and net of them.
	RecvBytesPerAttach    float64 `json:"recv_bytes_per_attach"`
	SentBytesPerAttach    float64 `json:"sent_bytes_per_attach"`
	RecvBytesPerAttachNet float64 `json:"recv_bytes_per_attach_net"`
	SentBytesPerAttachNet float64 `json:"sent_bytes_per_attach_net"`
	// SentBytesPerAttachPerHost is SentBytesPerAttachNet ÷ hosts: what
	// one attach costs per daemon, the attaching one's replies included.
	SentBytesPerAttachPerHost float64 `json:"sent_bytes_per_attach_per_host"`
	// WatchMsgsPerAttach and WatchBytesPerAttach are what one watch on
	// the whole prefix got per attach: the harness's own, which is left
	// out of every other figure here (the counters, Watchers).
	WatchMsgsPerAttach  float64 `json:"watch_msgs_per_attach"`
	WatchBytesPerAttach float64 `json:"watch_bytes_per_attach"`
	// OtherSentBytesPerAttach is SentBytesPerAttachNet less hosts ×
	// WatchBytesPerAttach: the replies to the attaching daemon's own
	// requests.
	OtherSentBytesPerAttach float64 `json:"other_sent_bytes_per_attach"`
	// Revisions and watch events per attach, where this etcd exports
	// them (etcd_debugging_mvcc_current_revision, _events_total).
	RevisionsPerAttach float64 `json:"revisions_per_attach,omitempty"`
	EventsPerAttach    float64 `json:"events_per_attach,omitempty"`
	// KeepAlive is the background: the lease keep-alives.
	KeepAlive KeepAliveLoad `json:"keepalive"`
	// SeriesS is the series' length, first attach sent to last host
	// seeing the last one (gaps included).
	SeriesS float64 `json:"series_s"`
	// CPUPerAttachMS is etcd's CPU time (user + system) during the
	// series per attach, less its rate in the idle window (the
	// keep-alives).
	CPUPerAttachMS float64 `json:"cpu_per_attach_ms"`
	// RSSMiB and HWMMiB are etcd's VmRSS and VmHWM after the series.
	RSSMiB float64 `json:"rss_mib"`
	HWMMiB float64 `json:"hwm_mib"`
	// DBBytes and Keys are the store's size after the series, where this
	// etcd exports them.
	DBBytes float64 `json:"db_bytes,omitempty"`
	Keys    float64 `json:"keys,omitempty"`
}

// EtcdMethod is one gRPC method's counters per attach.
type EtcdMethod struct {
	Method     string  `json:"method"` // service/method, e.g. etcdserverpb.KV/Txn
	Calls      float64 `json:"calls"`  // grpc_server_started_total
	MsgsIn     float64 `json:"msgs_in"`
	MsgsOut    float64 `json:"msgs_out"`
	Background bool    `json:"background,omitempty"` // LeaseKeepAlive: runs without attaches too
}

// KeepAliveLoad is the lease keep-alives' load on etcd.
type KeepAliveLoad struct {
	// IdleS is the idle window's length.
	IdleS float64 `json:"idle_s"`
	// PerSecond is keep-alive requests per second in the idle window;
	// hosts × 3 ÷ TTL on paper.
	PerSecond float64 `json:"per_second"`
	// Series is keep-alive requests during the series.
	Series float64 `json:"series"`
	// RecvBytes and SentBytes are the bytes of one keep-alive request
	// and its response, from the idle window (0 if it saw none).
	RecvBytes float64 `json:"recv_bytes"`
	SentBytes float64 `json:"sent_bytes"`
	// OtherMsgs counts messages of other methods in the idle window,
	// which the bytes per keep-alive then include (expected: 0).
	OtherMsgs float64 `json:"other_msgs"`
}

// DaemonScale is the daemons' share: memory after the series (MiB,
// median and max over the daemons) and CPU.
type DaemonScale struct {
	RSSMedianMiB float64 `json:"rss_median_mib"`
	RSSMaxMiB    float64 `json:"rss_max_mib"`
	HWMMedianMiB float64 `json:"hwm_median_mib"`
	HWMMaxMiB    float64 `json:"hwm_max_mib"`
	// CPUPerAttachMS is the CPU time (user + system) of all the daemons
	// together per attach, less their rate in the idle window: the
	// attaching daemon's work, every daemon's view of the two changes,
	// and the answers to PollsPerAttach polls (with their MAC table
	// checks).
	CPUPerAttachMS float64 `json:"cpu_per_attach_ms"`
	PollsPerAttach float64 `json:"polls_per_attach"`
}

// scaleBed is the cluster of one scale run.
type scaleBed struct {
	tp    *topo.Topo
	etcd  *topo.Etcd
	hosts []*topo.Host
	ds    []*topo.Daemon
	// local[i] is how many endpoints host i has; total is all of them.
	local []int
	total int
	// metrics reads etcd's /metrics from h1's namespace.
	metrics *http.Client
	// watch is the harness's own watch on the store.
	watch *watcher
	opts  ScaleOptions
}

// RunScale builds the cluster, runs the series and removes everything it
// made before it returns, also when ctx is cancelled (then it returns
// ctx's error). progress gets a line per step and per attach.
func RunScale(ctx context.Context, opts ScaleOptions, progress io.Writer) (*ScaleResults, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the scale benchmark builds network namespaces and must run as root")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		return nil, fmt.Errorf("%w: nsenter is not in PATH; install it (Debian: apt-get install util-linux)", ErrMissingTool)
	}
	etcdBin := opts.Etcd
	if etcdBin == "" {
		if etcdBin, err = exec.LookPath("etcd"); err != nil {
			return nil, fmt.Errorf("%w: etcd is not in PATH; install it (Debian: apt-get install etcd-server) or pass an etcd binary", ErrMissingTool)
		}
	}
	res := &ScaleResults{
		Machine: machineInfo(ctx),
		Settings: ScaleSettings{Hosts: opts.Hosts, Attaches: opts.Attaches,
			PollIntervalMS: ms(opts.PollInterval), PollFrom: pollFrom(opts), IdleS: opts.Idle.Seconds(), GapMS: ms(opts.Gap),
			StoreTTLS: defaultStoreTTL.Seconds(), Network: scaleNetwork, Subnet: scaleSubnet,
			EtcdVersion: firstLine(ctx, etcdBin, "--version"), DaemonArgs: opts.DaemonArgs},
	}
	if opts.StoreTTL > 0 {
		res.Settings.StoreTTLS = opts.StoreTTL.Seconds()
	}
	fmt.Fprintf(progress, "machine: %s\n", res.Machine.scaleLine())
	if opts.Binary == "" {
		dir, err := os.MkdirTemp("", "vxbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(progress, "building vxswitch ...")
		if opts.Binary, err = topo.BuildBinary(dir); err != nil {
			return nil, fmt.Errorf("%w (or pass a built binary with -binary)", err)
		}
	} else if opts.Binary, err = filepath.Abs(opts.Binary); err != nil {
		return nil, err
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("vxswitch binary: %w", err)
	}
	res.Settings.VXSwitchVersion = binaryVersion(ctx, opts.Binary)

	tp, err := topo.Open(topo.Options{})
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	b := &scaleBed{tp: tp, opts: opts}
	defer func() {
		if b.watch != nil {
			b.watch.close()
		}
	}()
	start := time.Now()
	if err := b.setup(ctx, etcdBin, progress); err != nil {
		return nil, interrupted(ctx, fmt.Errorf("set up the cluster: %w", err))
	}
	fmt.Fprintf(progress, "cluster of %d hosts ready (%.1f s)\n", opts.Hosts, time.Since(start).Seconds())
	if err := b.measure(ctx, res, progress); err != nil {
		return nil, interrupted(ctx, err)
	}
	return res, nil
}

// interrupted names ctx's error when ctx ended, as Run does.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return err
}

func pollFrom(o ScaleOptions) string {
	if o.PollDuringAttach {
		return "request"
	}
	return "reply"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// setup makes the hosts, etcd, the daemons, the network and a first
// endpoint on every host, and waits until every host has every other
// host's entry.
func (b *scaleBed) setup(ctx context.Context, etcdBin string, progress io.Writer) error {
	for i := range b.opts.Hosts {
		h, err := b.tp.AddHost(fmt.Sprintf("h%d", i+1))
		if err != nil {
			return err
		}
		b.hosts = append(b.hosts, h)
	}
	e, err := b.tp.Etcd(topo.EtcdOptions{Binary: etcdBin})
	if err != nil {
		return err
	}
	b.etcd = e
	b.metrics = e.HTTPClient(&b.hosts[0].NS)
	fmt.Fprintf(progress, "etcd at %s\n", e.Member(0).ClientURL)
	for _, h := range b.hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := h.VXSwitch(topo.DaemonOptions{Binary: b.opts.Binary, Store: e, StoreTTL: b.opts.StoreTTL, Args: b.opts.DaemonArgs})
		if err != nil {
			return err
		}
		if d.PID() == 0 {
			return fmt.Errorf("vxswitch daemon on %s has no PID", h.Name)
		}
		b.ds = append(b.ds, d)
	}
	fmt.Fprintf(progress, "%d daemons up\n", len(b.ds))
	if _, err := b.ds[0].Client.CreateNetwork(ctx, api.NetworkCreate{Name: scaleNetwork, Subnet: scaleSubnet}); err != nil {
		return fmt.Errorf("create network %s: %w", scaleNetwork, err)
	}
	b.local = make([]int, len(b.ds))
	for i, d := range b.ds {
		c, err := b.tp.AddContainer(fmt.Sprintf("b%d", i+1))
		if err != nil {
			return err
		}
		if _, err := d.Client.Attach(ctx, scaleNetwork, api.Attach{Netns: c.Path}); err != nil {
			return fmt.Errorf("attach the first endpoint on h%d: %w", i+1, err)
		}
		b.local[i]++
		b.total++
	}
	// Every host has every other host's first endpoint.
	deadline := time.Now().Add(convergeTimeout)
	for i, d := range b.ds {
		want := b.total - b.local[i]
		for {
			n, err := storeEntries(ctx, d.Client)
			if err != nil {
				return fmt.Errorf("h%d: %w", i+1, err)
			}
			if n == want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("h%d has %d entries from the store after %v, want %d", i+1, n, convergeTimeout, want)
			}
			if !pause(ctx, setupPoll) {
				return ctx.Err()
			}
		}
	}
	w, err := watchStore(ctx, e, b.hosts[0])
	if err != nil {
		return err
	}
	b.watch = w
	return nil
}

// storeEntries is the number of store entries in the network's MAC
// table on the daemon behind c.
func storeEntries(ctx context.Context, c *api.Client) (int, error) {
	st, err := c.Stats(ctx, scaleNetwork)
	if err != nil {
		return 0, err
	}
	if len(st.Networks) != 1 {
		return 0, fmt.Errorf("network %s is not up", scaleNetwork)
	}
	return st.Networks[0].FIB.Store, nil
}

// hasEntry checks that the MAC table behind c has mac from the store
// behind vtep.
func hasEntry(ctx context.Context, c *api.Client, mac string, vtep netip.Addr) error {
	fdb, err := c.FDB(ctx, scaleNetwork)
	if err != nil {
		return err
	}
	for _, e := range fdb {
		if strings.EqualFold(e.MAC, mac) {
			if e.Source != "store" || e.VTEP != vtep.String() {
				return fmt.Errorf("MAC %s is there from %s behind %s, want from the store behind %s", mac, e.Source, e.VTEP, vtep)
			}
			return nil
		}
	}
	return fmt.Errorf("the MAC table has as many store entries as expected but not %s", mac)
}

// measure runs the idle window and the series and fills res.
func (b *scaleBed) measure(ctx context.Context, res *ScaleResults, progress io.Writer) error {
	// The series' containers exist before it starts: making a namespace
	// is not part of an attach.
	ctrs := make([]*topo.Container, b.opts.Attaches)
	for k := range ctrs {
		c, err := b.tp.AddContainer(fmt.Sprintf("a%d", k+1))
		if err != nil {
			return err
		}
		ctrs[k] = c
	}

	fmt.Fprintf(progress, "idle window of %v (lease keep-alives only) ...\n", b.opts.Idle)
	// CPU times are read inside the scrapes, which cost etcd CPU of
	// their own.
	idle0, err := b.scrape(ctx)
	if err != nil {
		return err
	}
	idleCPU0, err := b.cpu()
	if err != nil {
		return err
	}
	if !pause(ctx, b.opts.Idle) {
		return ctx.Err()
	}
	idleCPU1, err := b.cpu()
	if err != nil {
		return err
	}
	idle1, err := b.scrape(ctx)
	if err != nil {
		return err
	}

	series0, err := b.scrape(ctx)
	if err != nil {
		return err
	}
	cpu0, err := b.cpu()
	if err != nil {
		return err
	}
	own0 := b.watch.counts()
	var rtts []float64
	for k, c := range ctrs {
		if k > 0 && !pause(ctx, b.opts.Gap) {
			return ctx.Err()
		}
		run, pollRTTs, err := b.attach(ctx, k%len(b.ds), c)
		if err != nil {
			return fmt.Errorf("attach %d of %d on h%d: %w", k+1, len(ctrs), k%len(b.ds)+1, err)
		}
		rtts = append(rtts, pollRTTs...)
		res.Runs = append(res.Runs, run)
		f := run.figures()
		fmt.Fprintf(progress, "attach %d/%d on h%-2d %s: attach %.1f ms; every other host %.1f ms after the request, %.1f ms after the reply (%d polls)\n",
			k+1, len(ctrs), run.Host, run.IP, f[ScaleAttach], f[ScaleAllIssue], f[ScaleAllReturn], run.Polls)
	}
	own1 := b.watch.counts()
	cpu1, err := b.cpu()
	if err != nil {
		return err
	}
	series1, err := b.scrape(ctx)
	if err != nil {
		return err
	}

	res.Latency = summarizeScale(res.Runs)
	res.Poll = PollStats{IntervalMS: ms(b.opts.PollInterval), Count: len(rtts)}
	if len(rtts) > 0 {
		res.Poll.RTTMedianMS, res.Poll.RTTP99MS = median(rtts), percentile(rtts, 99)
	}
	idleS, seriesS := idleCPU1.at.Sub(idleCPU0.at).Seconds(), cpu1.at.Sub(cpu0.at).Seconds()
	// The harness's own watch is not the cluster's: its share leaves
	// etcd's counters, and it tells what one daemon's watch got.
	own := watchCounts{own1.msgs - own0.msgs, own1.bytes - own0.bytes, own1.events - own0.events}
	series, after := withoutWatch(series1.sub(series0), series1, own)
	res.Etcd = etcdFigures(idle1.sub(idle0), idleS, series, after, len(b.ds), len(ctrs))
	n := float64(len(ctrs))
	res.Etcd.WatchMsgsPerAttach, res.Etcd.WatchBytesPerAttach = own.msgs/n, own.bytes/n
	res.Etcd.OtherSentBytesPerAttach = res.Etcd.SentBytesPerAttachNet - float64(len(b.ds))*own.bytes/n
	res.Etcd.SeriesS = seriesS
	etcdCPU, daemonCPU := cpuPerAttach(idleCPU0, idleCPU1, cpu0, cpu1, len(ctrs))
	res.Etcd.CPUPerAttachMS = etcdCPU
	if res.Etcd.RSSMiB, res.Etcd.HWMMiB, err = memory(b.etcd.Member(0).PID()); err != nil {
		return fmt.Errorf("etcd's memory: %w", err)
	}
	var rss, hwm []float64
	for i, d := range b.ds {
		r, h, err := memory(d.PID())
		if err != nil {
			return fmt.Errorf("memory of the daemon on h%d: %w", i+1, err)
		}
		rss, hwm = append(rss, r), append(hwm, h)
	}
	res.Daemons = DaemonScale{RSSMedianMiB: median(rss), RSSMaxMiB: slices.Max(rss), HWMMedianMiB: median(hwm), HWMMaxMiB: slices.Max(hwm),
		CPUPerAttachMS: daemonCPU, PollsPerAttach: float64(len(rtts)) / float64(len(ctrs))}
	return nil
}

// cpuSnap is the CPU time (user + system, clock ticks) etcd and all the
// daemons together have used by a moment.
type cpuSnap struct {
	at            time.Time
	etcd, daemons int64
}

func (b *scaleBed) cpu() (cpuSnap, error) {
	s := cpuSnap{at: time.Now()}
	var err error
	if s.etcd, err = cpuTicks(b.etcd.Member(0).PID()); err != nil {
		return s, fmt.Errorf("etcd's CPU time: %w", err)
	}
	for i, d := range b.ds {
		t, err := cpuTicks(d.PID())
		if err != nil {
			return s, fmt.Errorf("CPU time of the daemon on h%d: %w", i+1, err)
		}
		s.daemons += t
	}
	return s, nil
}

// cpuPerAttach is etcd's and the daemons' CPU time per attach in ms over
// the series (s0 to s1), less the idle window's (i0 to i1) rate.
func cpuPerAttach(i0, i1, s0, s1 cpuSnap, attaches int) (etcd, daemons float64) {
	idle, series := i1.at.Sub(i0.at).Seconds(), s1.at.Sub(s0.at).Seconds()
	net := func(idleTicks, seriesTicks int64) float64 {
		v := float64(seriesTicks)
		if idle > 0 {
			v -= float64(idleTicks) * series / idle
		}
		return max(0, v) / clockTicks * 1000 / float64(attaches)
	}
	return net(i1.etcd-i0.etcd, s1.etcd-s0.etcd), net(i1.daemons-i0.daemons, s1.daemons-s0.daemons)
}

// attach attaches c on host i and waits until every other host has the
// new endpoint's entry; it returns the run and the round trips of its
// polls in ms. The pollers start when the reply has arrived, or with
// PollDuringAttach before the request is sent.
func (b *scaleBed) attach(ctx context.Context, i int, c *topo.Container) (ScaleRun, []float64, error) {
	run := ScaleRun{Host: i + 1, SeenMS: make([]*float64, len(b.ds))}
	ctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	defer cancel()
	type polled struct {
		seen  time.Duration
		polls int
		rtts  []float64
		err   error
	}
	out := make([]polled, len(b.ds))
	// ready is closed once ep holds the attach's reply: a poller that
	// saw the count grow then checks the MAC itself.
	ready := make(chan struct{})
	var ep api.Endpoint
	var wg sync.WaitGroup
	var t0 time.Time
	startPollers := func() {
		for j, d := range b.ds {
			if j == i {
				continue
			}
			want := b.total + 1 - b.local[j]
			wg.Go(func() {
				p := &out[j]
				p.seen, p.polls, p.rtts, p.err = b.poll(ctx, d.Client, want, t0)
				if p.err == nil {
					select {
					case <-ready:
						p.err = hasEntry(ctx, d.Client, ep.MAC, b.hosts[i].Addr)
					case <-ctx.Done():
						p.err = ctx.Err()
					}
				}
				if p.err != nil {
					cancel() // the run failed: stop the others
				}
			})
		}
	}
	t0 = time.Now()
	if b.opts.PollDuringAttach {
		startPollers()
	}
	ep, err := b.ds[i].Client.Attach(ctx, scaleNetwork, api.Attach{Netns: c.Path})
	t1 := time.Now()
	if err != nil {
		cancel()
		wg.Wait()
		return run, nil, err
	}
	close(ready)
	if !b.opts.PollDuringAttach {
		startPollers()
	}
	wg.Wait()
	b.local[i]++
	b.total++
	run.MAC, run.IP, run.AttachMS = ep.MAC, ep.IP, ms(t1.Sub(t0))
	var rtts []float64
	for j, p := range out {
		if j == i {
			continue
		}
		if p.err != nil {
			return run, nil, fmt.Errorf("h%d: %w", j+1, p.err)
		}
		v := ms(p.seen)
		run.SeenMS[j] = &v
		run.Polls += p.polls
		rtts = append(rtts, p.rtts...)
	}
	at, err := b.watch.delivered(ctx, publishedKey(scaleNetwork, ep.ID))
	if err != nil {
		return run, nil, err
	}
	run.WatchMS = ms(at.Sub(t0))
	return run, rtts, nil
}

// poll asks the daemon behind c for its count of store entries every
// PollInterval until it reaches want, and returns when (from t0) the
// reply that showed it arrived, how many polls it took and their round
// trips in ms.
func (b *scaleBed) poll(ctx context.Context, c *api.Client, want int, t0 time.Time) (time.Duration, int, []float64, error) {
	var rtts []float64
	next := time.Now()
	for {
		sent := time.Now()
		n, err := storeEntries(ctx, c)
		got := time.Now()
		if err != nil {
			return 0, len(rtts), rtts, err
		}
		rtts = append(rtts, ms(got.Sub(sent)))
		if n >= want {
			if n > want {
				return 0, len(rtts), rtts, fmt.Errorf("%d entries from the store, want %d: something else changed the network", n, want)
			}
			return got.Sub(t0), len(rtts), rtts, nil
		}
		next = next.Add(b.opts.PollInterval)
		if wait := time.Until(next); wait > 0 {
			if !pause(ctx, wait) {
				return 0, len(rtts), rtts, ctx.Err()
			}
		} else {
			next = time.Now() // behind: do not send a burst to catch up
		}
	}
}

// summarizeScale computes the latency figures over the runs.
func summarizeScale(runs []ScaleRun) []ScaleFigure {
	vals := map[string][]float64{}
	for _, r := range runs {
		for k, v := range r.figures() {
			vals[k] = append(vals[k], v)
		}
	}
	var out []ScaleFigure
	for _, f := range scaleFigureLabels {
		v := vals[f.key]
		if len(v) == 0 {
			continue
		}
		out = append(out, ScaleFigure{Key: f.key, Label: f.label, Median: median(v), P99: percentile(v, 99), Max: slices.Max(v)})
	}
	return out
}

// percentile is the nearest-rank p-th percentile of vals (not empty).
func percentile(vals []float64, p float64) float64 {
	s := slices.Clone(vals)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// memory is VmRSS and VmHWM of process pid, in MiB.
func memory(pid int) (rss, hwm float64, err error) {
	if pid == 0 {
		return 0, 0, errors.New("not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	r, err := statusKB(string(b), "VmRSS")
	if err != nil {
		return 0, 0, err
	}
	h, err := statusKB(string(b), "VmHWM")
	if err != nil {
		return 0, 0, err
	}
	return float64(r) / 1024, float64(h) / 1024, nil
}

// statusKB reads a "Field:   1234 kB" line of a /proc/PID/status file.
func statusKB(status, field string) (int64, error) {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb, nil
				}
			}
			break
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", field)
}

// etcd's counters.

// Metric names read from etcd's /metrics.
const (
	promStarted   = "grpc_server_started_total"
	promMsgIn     = "grpc_server_msg_received_total"
	promMsgOut    = "grpc_server_msg_sent_total"
	promRecvBytes = "etcd_network_client_grpc_received_bytes_total"
	promSentBytes = "etcd_network_client_grpc_sent_bytes_total"
	// Optional: gauges and counters of etcd's debugging namespace, which
	// releases rename or drop.
	promWatchers = "etcd_debugging_mvcc_watcher_total"
	promRevision = "etcd_debugging_mvcc_current_revision"
	promEvents   = "etcd_debugging_mvcc_events_total"
	promKeys     = "etcd_debugging_mvcc_keys_total"
	promDBSize   = "etcd_mvcc_db_total_size_in_bytes"
	// keepAliveMethod is the lease keep-alive stream, watchMethod the
	// watch stream.
	keepAliveMethod = "etcdserverpb.Lease/LeaseKeepAlive"
	watchMethod     = "etcdserverpb.Watch/Watch"
)

// etcdCounters is what one scrape of etcd's /metrics says (or the
// difference of two).
type etcdCounters struct {
	methods              map[string]rpcCounts // service/method
	recvBytes, sentBytes float64
	// other holds the optional figures by metric name.
	other map[string]float64
}

type rpcCounts struct{ started, in, out float64 }

// scrape reads etcd's counters.
func (b *scaleBed) scrape(ctx context.Context) (etcdCounters, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := b.etcd.Member(0).ClientURL + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return etcdCounters{}, err
	}
	resp, err := b.metrics.Do(req)
	if err != nil {
		return etcdCounters{}, fmt.Errorf("read etcd's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return etcdCounters{}, fmt.Errorf("read etcd's metrics at %s: %s", url, resp.Status)
	}
	samples, err := parsePromText(resp.Body)
	if err != nil {
		return etcdCounters{}, fmt.Errorf("etcd's metrics at %s: %w", url, err)
	}
	return etcdCountersOf(samples)
}

// etcdCountersOf picks etcd's counters out of a scrape; the gRPC and byte
// counters must be there.
func etcdCountersOf(samples []promSample) (etcdCounters, error) {
	c := etcdCounters{methods: map[string]rpcCounts{}, other: map[string]float64{}}
	found := map[string]bool{}
	for _, s := range samples {
		method := s.labels["grpc_service"] + "/" + s.labels["grpc_method"]
		rc := c.methods[method]
		switch s.name {
		case promStarted:
			rc.started += s.value
		case promMsgIn:
			rc.in += s.value
		case promMsgOut:
			rc.out += s.value
		case promRecvBytes:
			c.recvBytes += s.value
		case promSentBytes:
			c.sentBytes += s.value
		case promWatchers, promRevision, promEvents, promKeys, promDBSize:
			c.other[s.name] += s.value
		default:
			continue
		}
		found[s.name] = true
		if strings.HasPrefix(s.name, "grpc_server_") {
			c.methods[method] = rc
		}
	}
	for _, name := range []string{promStarted, promMsgIn, promMsgOut, promRecvBytes, promSentBytes} {
		if !found[name] {
			return c, fmt.Errorf("no %s in etcd's metrics", name)
		}
	}
	return c, nil
}

// sub is c − o, counter by counter; the optional gauges are c's.
func (c etcdCounters) sub(o etcdCounters) etcdCounters {
	d := etcdCounters{methods: map[string]rpcCounts{}, recvBytes: c.recvBytes - o.recvBytes, sentBytes: c.sentBytes - o.sentBytes,
		other: map[string]float64{}}
	for m, v := range c.methods {
		w := o.methods[m]
		d.methods[m] = rpcCounts{started: v.started - w.started, in: v.in - w.in, out: v.out - w.out}
	}
	for k, v := range c.other {
		if w, ok := o.other[k]; ok && (k == promRevision || k == promEvents) {
			d.other[k] = v - w
		}
	}
	return d
}

// withoutWatch takes one watcher's share (what it got during the
// series) out of the series' counters and the watcher gauge after it.
func withoutWatch(series, after etcdCounters, own watchCounts) (etcdCounters, etcdCounters) {
	series.methods = maps.Clone(series.methods)
	w := series.methods[watchMethod]
	w.out -= own.msgs
	series.methods[watchMethod] = w
	series.sentBytes -= own.bytes
	series.other = maps.Clone(series.other)
	if v, ok := series.other[promEvents]; ok {
		series.other[promEvents] = v - own.events
	}
	after.other = maps.Clone(after.other)
	if v, ok := after.other[promWatchers]; ok {
		after.other[promWatchers] = v - 1
	}
	return series, after
}

// etcdFigures turns the idle window's and the series' differences into
// per-attach figures; after is the scrape after the series (gauges).
func etcdFigures(idle etcdCounters, idleS float64, series, after etcdCounters, hosts, attaches int) EtcdScale {
	n := float64(attaches)
	e := EtcdScale{Watchers: after.other[promWatchers], DBBytes: after.other[promDBSize], Keys: after.other[promKeys],
		RecvBytesPerAttach: series.recvBytes / n, SentBytesPerAttach: series.sentBytes / n}
	if v, ok := series.other[promRevision]; ok {
		e.RevisionsPerAttach = v / n
	}
	if v, ok := series.other[promEvents]; ok {
		e.EventsPerAttach = v / n
	}
	ka := KeepAliveLoad{IdleS: idleS}
	idleKA := idle.methods[keepAliveMethod]
	for m, v := range idle.methods {
		if m != keepAliveMethod {
			ka.OtherMsgs += v.in + v.out
		}
	}
	if idleS > 0 {
		ka.PerSecond = idleKA.in / idleS
	}
	if idleKA.in > 0 {
		ka.RecvBytes = idle.recvBytes / idleKA.in
	}
	if idleKA.out > 0 {
		ka.SentBytes = idle.sentBytes / idleKA.out
	}
	seriesKA := series.methods[keepAliveMethod]
	ka.Series = seriesKA.in
	e.KeepAlive = ka
	e.RecvBytesPerAttachNet = (series.recvBytes - seriesKA.in*ka.RecvBytes) / n
	e.SentBytesPerAttachNet = (series.sentBytes - seriesKA.out*ka.SentBytes) / n
	e.SentBytesPerAttachPerHost = e.SentBytesPerAttachNet / float64(hosts)
	var names []string
	for m, v := range series.methods {
		if v.started != 0 || v.in != 0 || v.out != 0 {
			names = append(names, m)
		}
	}
	sort.Strings(names)
	for _, m := range names {
		v := series.methods[m]
		e.Methods = append(e.Methods, EtcdMethod{Method: m, Calls: v.started / n, MsgsIn: v.in / n, MsgsOut: v.out / n,
			Background: m == keepAliveMethod})
		if m != keepAliveMethod {
			e.RequestsPerAttach += v.in / n
			e.ResponsesPerAttach += v.out / n
		}
	}
	return e
}

// promSample is one sample of Prometheus's text exposition format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parsePromText reads Prometheus's text format (version 0.0.4): one
// sample per line, `name{label="value",...} value [timestamp]`; comments
// and blank lines are skipped.
func parsePromText(r io.Reader) ([]promSample, error) {
	var out []promSample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parsePromLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", lineNo, line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parsePromLine(line string) (promSample, error) {
	s := promSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " \t,")
			if line == "" {
				return s, errors.New("unterminated labels")
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || eq+1 >= len(line) || line[eq+1] != '"' {
				return s, errors.New("bad label")
			}
			key := strings.TrimSpace(line[:eq])
			val, rest, err := promQuoted(line[eq+1:])
			if err != nil {
				return s, err
			}
			s.labels[key], line = val, rest
		}
	}
	f := strings.Fields(line)
	if len(f) < 1 || len(f) > 2 {
		return s, errors.New("want a value and at most a timestamp")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("bad value: %w", err)
	}
	s.value = v
	return s, nil
}

// promQuoted reads a double-quoted label value (escapes \\, \" and \n)
// from the start of s and returns it and what follows.
func promQuoted(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", errors.New("unterminated label value")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated label value")
}

// pause waits d or until ctx ends; it reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// scaleLine is the machine in one line, without iperf3 (the scale run
// does not use it).
func (m Machine) scaleLine() string {
	return fmt.Sprintf("%s, %d cores, Linux %s, %s; load %s at start", m.CPU, m.Cores, m.Kernel, m.Go, m.Load)
}

// WriteTable prints the results as text tables: the latency figures,
// etcd's counters per attach, and memory.
func (r *ScaleResults) WriteTable(w io.Writer) error {
	var b strings.Builder
	s := r.Settings
	ver := s.VXSwitchVersion
	if ver == "" {
		ver = "vxswitch (version unknown)"
	}
	args := ""
	if len(s.DaemonArgs) > 0 {
		args = "; daemon args: " + strings.Join(s.DaemonArgs, " ")
	}
	fmt.Fprintf(&b, "vxswitch scale benchmark, %s\n", r.Machine.Date)
	fmt.Fprintf(&b, "machine   %s\n", r.Machine.scaleLine())
	fmt.Fprintf(&b, "cluster   %d hosts (netns, one daemon each) on one LAN bridge; one etcd member (%s); %s; lease TTL %g s%s\n",
		s.Hosts, orUnknown(s.EtcdVersion), ver, s.StoreTTLS, args)
	fmt.Fprintf(&b, "series    %d attaches of a new container namespace to cluster network %s (%s), rotating over the hosts,\n"+
		"          %g ms apart; every other host's daemon polled every %g ms from the attach's %s on\n\n",
		s.Attaches, s.Network, s.Subnet, s.GapMS, s.PollIntervalMS, s.PollFrom)

	const labelW, colW = 46, 10
	fmt.Fprintf(&b, "%-*s%*s%*s%*s\n", labelW, "one attach (ms)", colW, "median", colW, "p99", colW, "max")
	for _, f := range r.Latency {
		fmt.Fprintf(&b, "%-*s%*.1f%*.1f%*.1f\n", labelW, f.Label, colW, f.Median, colW, f.P99, colW, f.Max)
	}
	p := r.Poll
	fmt.Fprintf(&b, "\nA host has the entry when the reply of the first poll showing it arrives: late by at most the poll\n"+
		"interval (%g ms) plus a poll's round trip (median %.2f ms, p99 %.2f ms; %d polls), never early.\n"+
		"From the reply: 0 for hosts that had it before the reply. p99 is the nearest rank (of %d attaches).\n",
		p.IntervalMS, p.RTTMedianMS, p.RTTP99MS, p.Count, len(r.Runs))

	e := r.Etcd
	fmt.Fprintf(&b, "\n%-*s%*s%*s%*s\n", labelW, "etcd, per attach", colW, "calls", colW, "msgs in", colW, "msgs out")
	for _, m := range e.Methods {
		label := m.Method
		if m.Background {
			label += " (background)"
		}
		fmt.Fprintf(&b, "%-*s%*.2f%*.2f%*.2f\n", labelW, label, colW, m.Calls, colW, m.MsgsIn, colW, m.MsgsOut)
	}
	fmt.Fprintf(&b, "%-*s%*s%*.2f%*.2f\n", labelW, "all but the keep-alives", colW, "", colW, e.RequestsPerAttach, colW, e.ResponsesPerAttach)
	fmt.Fprintf(&b, "\nbytes received per attach  %8.0f   net of keep-alives %8.0f\n", e.RecvBytesPerAttach, e.RecvBytesPerAttachNet)
	fmt.Fprintf(&b, "bytes sent per attach      %8.0f   net of keep-alives %8.0f   per host %.0f\n",
		e.SentBytesPerAttach, e.SentBytesPerAttachNet, e.SentBytesPerAttachPerHost)
	fmt.Fprintf(&b, "  of which to the watches  %8.0f   (one watch on the whole prefix: %.2f responses, %.0f B per attach)\n",
		e.WatchBytesPerAttach*float64(s.Hosts), e.WatchMsgsPerAttach, e.WatchBytesPerAttach)
	fmt.Fprintf(&b, "  and replies to requests  %8.0f   (the attaching daemon's reads and writes)\n", e.OtherSentBytesPerAttach)
	var extra []string
	if e.Watchers > 0 {
		extra = append(extra, fmt.Sprintf("%.0f watchers", e.Watchers))
	}
	if e.RevisionsPerAttach > 0 {
		extra = append(extra, fmt.Sprintf("%.2f revisions per attach", e.RevisionsPerAttach))
	}
	if e.EventsPerAttach > 0 {
		extra = append(extra, fmt.Sprintf("%.1f watch events sent per attach", e.EventsPerAttach))
	}
	if len(extra) > 0 {
		fmt.Fprintf(&b, "%s\n", strings.Join(extra, "; "))
	}
	ka := e.KeepAlive
	fmt.Fprintf(&b, "lease keep-alives: %.2f/s in a %.0f s idle window (hosts × 3 ÷ TTL = %.2f/s on paper), %.0f B in and %.0f B out each;\n"+
		"%.0f of them during the %.1f s series\n", ka.PerSecond, ka.IdleS, float64(s.Hosts)*3/s.StoreTTLS, ka.RecvBytes, ka.SentBytes, ka.Series, e.SeriesS)
	if ka.OtherMsgs > 0 {
		fmt.Fprintf(&b, "(the idle window also saw %.0f messages of other methods, counted in the keep-alives' bytes)\n", ka.OtherMsgs)
	}
	fmt.Fprintf(&b, "etcd: CPU %.2f ms per attach (net of the idle window's); VmRSS %.1f MiB, VmHWM %.1f MiB", e.CPUPerAttachMS, e.RSSMiB, e.HWMMiB)
	if e.DBBytes > 0 {
		fmt.Fprintf(&b, "; db %.2f MiB", e.DBBytes/(1<<20))
	}
	if e.Keys > 0 {
		fmt.Fprintf(&b, ", %.0f keys", e.Keys)
	}
	b.WriteString(" after the series\n")
	d := r.Daemons
	fmt.Fprintf(&b, "daemons (%d): CPU %.2f ms per attach, all together, net of the idle window's (%.1f polls per attach included);\n"+
		"after the series VmRSS median %.1f MiB, max %.1f; VmHWM median %.1f MiB, max %.1f\n",
		s.Hosts, d.CPUPerAttachMS, d.PollsPerAttach, d.RSSMedianMiB, d.RSSMaxMiB, d.HWMMedianMiB, d.HWMMaxMiB)
	b.WriteString("\nBytes are protobuf messages as etcd's gRPC codec counts them (no gRPC framing, HTTP/2 or TCP);\n" +
		"the sent bytes hold every watch response once per watching daemon. Net of keep-alives: less the\n" +
		"series' keep-alive messages at their size in the idle window. The harness's own watch (timing the\n" +
		"publication, sizing one watch's share) is left out of etcd's figures.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "version unknown"
	}
	return s
}

// WriteJSON writes the results as indented JSON.
func (r *ScaleResults) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Save writes scale.json into dir (created if needed) through a
// temporary file renamed into place, and returns its path.
func (r *ScaleResults) Save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "scale.json")
	return path, writeFile(path, r.WriteJSON)
}

// watcher is the harness's own watch on the store's whole prefix, as
// every daemon has one: it times when etcd delivers each key and adds up
// the size of every response it gets, which is what etcd sends each
// daemon's watch (the same events; the responses' headers and watch IDs
// may differ by a few bytes).
type watcher struct {
	cli    *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	seen  map[string]time.Time // key → first delivery
	bytes int64                // protobuf size of every response
	msgs  int64                // responses
	evs   int64                // events
	err   error                // why the watch ended early
}

// watchStore starts the watcher from h's namespace.
func watchStore(ctx context.Context, e *topo.Etcd, h *topo.Host) (*watcher, error) {
	addr := netip.AddrPortFrom(e.Member(0).Host.Addr, topo.EtcdClientPort).String()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return h.Dial(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cli: cli, cancel: cancel, done: make(chan struct{}), seen: map[string]time.Time{}}
	wch := cli.Watch(wctx, store.Prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	// The watch exists once etcd says so: every later change reaches it.
	select {
	case wr := <-wch:
		if err := wr.Err(); err != nil || !wr.Created {
			w.close()
			return nil, fmt.Errorf("watch %s: %v (created %v)", store.Prefix, err, wr.Created)
		}
	case <-ctx.Done():
		w.close()
		return nil, ctx.Err()
	}
	go func() {
		defer close(w.done)
		for wr := range wch {
			now := time.Now()
			evs := make([]*mvccpb.Event, len(wr.Events))
			for i, ev := range wr.Events {
				evs[i] = (*mvccpb.Event)(ev)
			}
			size := (&etcdserverpb.WatchResponse{Header: &wr.Header, Events: evs}).Size()
			w.mu.Lock()
			w.bytes += int64(size)
			w.msgs++
			w.evs += int64(len(wr.Events))
			for _, ev := range wr.Events {
				if _, ok := w.seen[string(ev.Kv.Key)]; !ok {
					w.seen[string(ev.Kv.Key)] = now
				}
			}
			if err := wr.Err(); err != nil && w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// close ends the watch and the client.
func (w *watcher) close() {
	w.cancel()
	if w.done != nil {
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
		}
	}
	w.cli.Close()
}

// watchCounts are what a watch got: responses, their bytes, events.
type watchCounts struct{ msgs, bytes, events float64 }

// counts are what the watch got so far.
func (w *watcher) counts() watchCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return watchCounts{float64(w.msgs), float64(w.bytes), float64(w.evs)}
}

// delivered waits until key has been delivered and returns when.
func (w *watcher) delivered(ctx context.Context, key string) (time.Time, error) {
	for {
		w.mu.Lock()
		at, ok := w.seen[key]
		err := w.err
		w.mu.Unlock()
		switch {
		case ok:
			return at, nil
		case err != nil:
			return time.Time{}, fmt.Errorf("the harness's watch broke: %w", err)
		}
		select {
		case <-w.done:
			return time.Time{}, errors.New("the harness's watch ended")
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("the harness's watch never got %s: %w", key, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// publishedKey is where the store publishes an endpoint (see the key
// layout in package store).
func publishedKey(network, id string) string { return store.Prefix + "published/" + network + "/" + id }
