package bench

// The soak: two daemons carrying traffic both ways for a long time, with
// every byte checked and the daemons' resources watched.
//
// RunSoak builds two hosts on a direct veth underlay, a vxswitch daemon
// (the built binary) on each, one network and one container per host,
// and for Duration runs, both ways at once:
//
//   - TCP: back-to-back transfers of TCPChunk pseudo-random bytes, each
//     on a new connection, each checked at the receiver by SHA-256 (and
//     length) against what the sender sent;
//   - UDP: a stream paced at UDPRate datagrams a second, of sizes from 16
//     bytes to the overlay's largest, each carrying a sequence number, its
//     length and a CRC-32C of the rest. The receiver counts datagrams
//     received, duplicated, reordered (behind a higher sequence number) and
//     corrupt (bad length or checksum); lost is sent less received, once
//     the stream has drained. Under load the overlay, like any UDP path,
//     may lose datagrams; it must never corrupt one.
//
// Every Sample it reads each daemon's VmRSS (/proc/PID/status), its
// goroutines (the total of the daemon's pprof goroutine profile, over its
// control socket) and its open file descriptors (/proc/PID/fd). The
// figures of a resource are its first sample once traffic has warmed up
// (Warmup), its last, its largest, and the slope of a least-squares line
// through the samples after warm-up, per ten minutes. A daemon that leaks
// shows a slope and a last figure above the first; a flat one does not.
//
// Everything runs inside namespaces that RunSoak makes and removes (with
// bench/topo), also on failure or when ctx is cancelled.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// SoakOptions configure RunSoak; the zero value is the full run.
type SoakOptions struct {
	// Duration of the traffic; 0 means 10 minutes.
	Duration time.Duration
	// Sample is the time between two samples of the daemons; 0 means 5 s.
	Sample time.Duration
	// Warmup is how long after the traffic starts the first figure of
	// each resource is taken (the datapath touches its buffers with its
	// first frames); 0 means a tenth of Duration, at least two Samples.
	Warmup time.Duration
	// UDPRate is the datagrams a second each way; 0 means 5000.
	UDPRate int
	// TCPChunk is the bytes of one TCP transfer; 0 means 64 MiB.
	TCPChunk int64
	// Binary is the vxswitch executable; empty means build one into a
	// temporary directory (topo.BuildBinary).
	Binary string
	// DaemonArgs are extra flags for both daemons.
	DaemonArgs []string
}

// Defaults of the soak.
const (
	defaultSoakDuration = 10 * time.Minute
	defaultSoakSample   = 5 * time.Second
	defaultUDPRate      = 5000
	defaultTCPChunk     = 64 << 20
	// soakDrain is how long the receivers wait for the last datagrams
	// after the senders stop, and how long the UDP receiver waits
	// without any before it counts the rest as lost.
	soakDrain = 2 * time.Second
)

func (o SoakOptions) withDefaults() (SoakOptions, error) {
	if o.Duration < 0 || o.Sample < 0 || o.Warmup < 0 || o.UDPRate < 0 || o.TCPChunk < 0 {
		return o, errors.New("soak options must not be negative")
	}
	if o.Duration == 0 {
		o.Duration = defaultSoakDuration
	}
	if o.Sample == 0 {
		o.Sample = defaultSoakSample
	}
	if o.Warmup == 0 {
		o.Warmup = max(o.Duration/10, 2*o.Sample)
	}
	if o.Warmup >= o.Duration {
		return o, fmt.Errorf("soak warm-up %v must be shorter than its duration %v", o.Warmup, o.Duration)
	}
	if o.UDPRate == 0 {
		o.UDPRate = defaultUDPRate
	}
	if o.TCPChunk == 0 {
		o.TCPChunk = defaultTCPChunk
	}
	return o, nil
}

// The soak's network and containers.
const (
	soakNet = "soak"
	soakC1  = "10.0.0.2"
	soakC2  = "10.0.0.3"
	// Ports of the streams, the same on both containers.
	soakTCPPort = 5201
	soakUDPPort = 5202
)

// SoakResults are what RunSoak measured.
type SoakResults struct {
	Machine  Machine      `json:"machine"`
	Settings SoakSettings `json:"settings"`
	// TCP and UDP are the streams, from h1's container to h2's first.
	TCP []TCPSoak `json:"tcp"`
	UDP []UDPSoak `json:"udp"`
	// Daemons are the two daemons' samples and figures, h1's first.
	Daemons []DaemonSoak `json:"daemons"`
}

// SoakSettings are what the run was asked to do.
type SoakSettings struct {
	DurationS       float64  `json:"duration_s"`
	SampleS         float64  `json:"sample_s"`
	WarmupS         float64  `json:"warmup_s"`
	UDPRate         int      `json:"udp_rate"`
	TCPChunk        int64    `json:"tcp_chunk"`
	VXSwitchVersion string   `json:"vxswitch_version,omitempty"`
	DaemonArgs      []string `json:"daemon_args,omitempty"`
}

// TCPSoak is one direction's TCP transfers.
type TCPSoak struct {
	Direction string `json:"direction"` // "h1→h2" or "h2→h1"
	Transfers int    `json:"transfers"` // completed, each checked
	Bytes     int64  `json:"bytes"`     // in completed transfers
	// Mismatched counts transfers whose bytes arrived altered or
	// incomplete (SHA-256 or length); it must be 0.
	Mismatched int `json:"mismatched"`
	// Errors counts transfers that failed outright (a connection reset,
	// a timeout); their bytes are not counted. First is the first one's
	// message.
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Gbps       float64 `json:"gbit_s"` // completed bytes over the duration
}

// UDPSoak is one direction's UDP stream.
type UDPSoak struct {
	Direction  string `json:"direction"`
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"` // distinct, intact datagrams
	Lost       uint64 `json:"lost"`     // sent and never received intact
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"` // arrived after a later one
	// Corrupt counts datagrams that arrived with a bad length or
	// checksum; it must be 0.
	Corrupt    uint64  `json:"corrupt"`
	SendErrors uint64  `json:"send_errors"` // sends the kernel refused (ENOBUFS under load)
	LostPct    float64 `json:"lost_percent"`
}

// SoakSample is one look at a daemon.
type SoakSample struct {
	T          float64 `json:"t_s"` // since the traffic started
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
}

// Trend is a resource's course over a run: its first figure after
// warm-up, its last, its largest (after warm-up), and the slope of a
// least-squares line through the samples after warm-up, per ten minutes.
type Trend struct {
	First    float64 `json:"first"`
	Last     float64 `json:"last"`
	Max      float64 `json:"max"`
	Per10Min float64 `json:"slope_per_10min"`
	Growth   float64 `json:"growth"` // Last - First
	// LateGrowth is Last less the figure half-way through the counted
	// samples: what is left of Growth once the heap has settled.
	LateGrowth float64 `json:"late_growth"`
	SampleCnt  int     `json:"samples"`
}

// DaemonSoak is one daemon's samples and trends.
type DaemonSoak struct {
	Host       string       `json:"host"`
	PID        int          `json:"pid"`
	HWMMiB     float64      `json:"hwm_mib"` // VmHWM at the end
	Samples    []SoakSample `json:"samples"`
	RSS        Trend        `json:"rss_mib"`
	Goroutines Trend        `json:"goroutines"`
	FDs        Trend        `json:"fds"`
}

// Intact reports whether every TCP transfer and every UDP datagram that
// arrived was unaltered.
func (r *SoakResults) Intact() bool {
	for _, t := range r.TCP {
		if t.Mismatched > 0 {
			return false
		}
	}
	for _, u := range r.UDP {
		if u.Corrupt > 0 {
			return false
		}
	}
	return true
}

// soakBed is the soak's topology.
type soakBed struct {
	tp      *topo.Topo
	daemons []*topo.Daemon
	ctrs    []*topo.Container
	pprof   []*http.Client // each daemon's control socket
}

// RunSoak builds the two hosts, runs the traffic for opts.Duration while
// sampling the daemons, and removes everything it made before it
// returns, also when ctx is cancelled (then it returns ctx's error).
// progress gets a line per step and per sample. It fails if a
// transfer's bytes or a datagram arrived altered; losses and the
// daemons' figures are results, for the caller to judge.
func RunSoak(ctx context.Context, opts SoakOptions, progress io.Writer) (*SoakResults, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the soak builds network namespaces and must run as root")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		return nil, fmt.Errorf("%w: nsenter is not in PATH; install it (Debian: apt-get install util-linux)", ErrMissingTool)
	}
	res := &SoakResults{
		Machine: machineInfo(ctx),
		Settings: SoakSettings{DurationS: opts.Duration.Seconds(), SampleS: opts.Sample.Seconds(), WarmupS: opts.Warmup.Seconds(),
			UDPRate: opts.UDPRate, TCPChunk: opts.TCPChunk, DaemonArgs: opts.DaemonArgs},
	}
	fmt.Fprintf(progress, "machine: %s\n", res.Machine)
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

	tp, err := topo.Open(topo.Options{Underlay: topo.Direct, MTU: underlayMTU})
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	b := &soakBed{tp: tp}
	if err := b.setup(ctx, opts); err != nil {
		return nil, interrupted(ctx, fmt.Errorf("set up the soak: %w", err))
	}
	if err := b.run(ctx, opts, res, progress); err != nil {
		return nil, interrupted(ctx, err)
	}
	if !res.Intact() {
		return res, errors.New("the soak's traffic arrived altered (see the TCP mismatches and UDP corruption)")
	}
	return res, nil
}

func (b *soakBed) setup(ctx context.Context, opts SoakOptions) error {
	// Both hosts first: the direct underlay is made with the second.
	var hosts []*topo.Host
	for i := range 2 {
		h, err := b.tp.AddHost(fmt.Sprintf("h%d", i+1))
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
	}
	var nets []topo.Network
	for i, ip := range []string{soakC1, soakC2} {
		d, err := hosts[i].VXSwitch(topo.DaemonOptions{Binary: opts.Binary, Args: opts.DaemonArgs})
		if err != nil {
			return err
		}
		n, err := d.Network(topo.NetConfig{Name: soakNet, VNI: benchVNI, Subnet: benchSubnet})
		if err != nil {
			return err
		}
		c, err := b.tp.AddContainer(fmt.Sprintf("c%d", i+1))
		if err != nil {
			return err
		}
		if _, err := n.Attach(c, ip+"/24"); err != nil {
			return err
		}
		b.daemons, b.ctrs, nets = append(b.daemons, d), append(b.ctrs, c), append(nets, n)
		sock := d.Socket()
		// A connection per sample, so that the sampler's own connection
		// does not linger in the daemon's figures between samples.
		b.pprof = append(b.pprof, &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", sock)
			}}})
	}
	if err := topo.Mesh(nets...); err != nil {
		return err
	}
	// The overlay passes traffic both ways (ARP, then a datagram).
	deadline := time.Now().Add(reachTimeout)
	for {
		_, err := b.ctrs[0].Run(ctx, "ping", "-c", "1", "-W", "1", soakC2)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the overlay does not pass traffic: %w", err)
		}
	}
	return nil
}

// run runs the traffic and the sampling for opts.Duration and fills res.
func (b *soakBed) run(ctx context.Context, opts SoakOptions, res *SoakResults, progress io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	stopAt := start.Add(opts.Duration)
	dirs := [][2]int{{0, 1}, {1, 0}}
	names := []string{"h1→h2", "h2→h1"}
	ips := []string{soakC1, soakC2}

	tcp := make([]*tcpSoaker, 2)
	udp := make([]*udpSoaker, 2)
	var wg sync.WaitGroup
	for i, d := range dirs {
		from, to := b.ctrs[d[0]], b.ctrs[d[1]]
		ts, err := newTCPSoaker(to, net.JoinHostPort(ips[d[1]], strconv.Itoa(soakTCPPort)), opts.TCPChunk)
		if err != nil {
			return err
		}
		defer ts.close()
		us, err := newUDPSoaker(from, to, net.JoinHostPort(ips[d[1]], strconv.Itoa(soakUDPPort)), opts.UDPRate, uint64(i+1))
		if err != nil {
			return err
		}
		defer us.close()
		tcp[i], udp[i] = ts, us
		wg.Go(func() { ts.run(ctx, from, stopAt) })
		wg.Go(func() { us.send(ctx, stopAt) })
	}
	defer wg.Wait() // on an early return too, after cancel
	for i, d := range b.daemons {
		res.Daemons = append(res.Daemons, DaemonSoak{Host: fmt.Sprintf("h%d", i+1), PID: d.PID()})
	}

	// A sample every opts.Sample from the start, and one at the end.
	for next := start; ; {
		now := time.Now()
		line := fmt.Sprintf("%5.0fs", now.Sub(start).Seconds())
		for i := range b.daemons {
			s, err := b.sample(ctx, i, now.Sub(start))
			if err != nil {
				return fmt.Errorf("sample h%d's daemon: %w", i+1, err)
			}
			res.Daemons[i].Samples = append(res.Daemons[i].Samples, s)
			line += fmt.Sprintf("  h%d rss %.1f MiB, %d goroutines, %d fds", i+1, s.RSSMiB, s.Goroutines, s.FDs)
		}
		for i := range 2 {
			line += fmt.Sprintf("  %s tcp %d×, udp %d/%d", names[i], tcp[i].transfers.Load(), udp[i].received.Load(), udp[i].sent.Load())
		}
		fmt.Fprintln(progress, line)
		if !now.Before(stopAt) {
			break
		}
		next = next.Add(opts.Sample)
		if next.After(stopAt) {
			next = stopAt
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(next)):
		}
	}
	fmt.Fprintln(progress, "draining ...")
	wg.Wait()
	for i := range 2 {
		udp[i].drain(ctx)
		res.TCP = append(res.TCP, tcp[i].result(names[i], opts.Duration))
		res.UDP = append(res.UDP, udp[i].result(names[i]))
	}
	for i, d := range b.daemons {
		if _, hwm, err := memory(d.PID()); err == nil {
			res.Daemons[i].HWMMiB = hwm
		}
		res.Daemons[i].trends(opts.Warmup.Seconds())
	}
	return nil
}

// sample reads daemon i's resources.
func (b *soakBed) sample(ctx context.Context, i int, t time.Duration) (SoakSample, error) {
	pid := b.daemons[i].PID()
	rss, _, err := memory(pid)
	if err != nil {
		return SoakSample{}, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return SoakSample{}, err
	}
	g, err := goroutines(ctx, b.pprof[i])
	if err != nil {
		return SoakSample{}, err
	}
	return SoakSample{T: math.Round(t.Seconds()*10) / 10, RSSMiB: rss, Goroutines: g, FDs: len(fds)}, nil
}

// goroutines asks a daemon for its goroutine profile and returns the
// total it reports ("goroutine profile: total N").
func goroutines(ctx context.Context, c *http.Client) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vxswitch/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	return parseGoroutineTotal(line)
}

func parseGoroutineTotal(line string) (int, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts %q", line)
	}
	return strconv.Atoi(rest)
}

// trends computes the daemon's trends from the samples taken at or after
// warmup seconds.
func (d *DaemonSoak) trends(warmup float64) {
	var ts, rss, gs, fds []float64
	for _, s := range d.Samples {
		if s.T >= warmup {
			ts = append(ts, s.T)
			rss, gs, fds = append(rss, s.RSSMiB), append(gs, float64(s.Goroutines)), append(fds, float64(s.FDs))
		}
	}
	d.RSS, d.Goroutines, d.FDs = trendOf(ts, rss), trendOf(ts, gs), trendOf(ts, fds)
}

// trendOf is the Trend of values v sampled at times t (seconds).
func trendOf(t, v []float64) Trend {
	if len(v) == 0 {
		return Trend{}
	}
	tr := Trend{First: v[0], Last: v[len(v)-1], Max: v[0], SampleCnt: len(v)}
	for _, x := range v {
		tr.Max = max(tr.Max, x)
	}
	tr.Growth = tr.Last - tr.First
	tr.LateGrowth = tr.Last - v[len(v)/2]
	if len(v) > 1 {
		var mt, mv float64
		for i := range v {
			mt, mv = mt+t[i], mv+v[i]
		}
		mt, mv = mt/float64(len(v)), mv/float64(len(v))
		var num, den float64
		for i := range v {
			num += (t[i] - mt) * (v[i] - mv)
			den += (t[i] - mt) * (t[i] - mt)
		}
		if den > 0 {
			tr.Per10Min = num / den * 600
		}
	}
	return tr
}

// tcpSoaker runs back-to-back TCP transfers one way and checks each.
type tcpSoaker struct {
	ln    net.Listener
	chunk int64

	transfers, mismatched, failed atomic.Int64
	bytes                         atomic.Int64
	mu                            sync.Mutex
	firstErr                      string
}

func newTCPSoaker(to *topo.Container, addr string, chunk int64) (*tcpSoaker, error) {
	ln, err := to.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &tcpSoaker{ln: ln, chunk: chunk}, nil
}

func (s *tcpSoaker) close() { s.ln.Close() }

// run starts transfers until stopAt (or ctx ends) and returns when the
// last one ended. A failed transfer (no connection, a reset, altered
// bytes) is counted and the next one started.
func (s *tcpSoaker) run(ctx context.Context, from *topo.Container, stopAt time.Time) {
	for n := uint64(0); time.Now().Before(stopAt) && ctx.Err() == nil; n++ {
		if err := s.transfer(ctx, from, n); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.failed.Add(1)
			s.mu.Lock()
			if s.firstErr == "" {
				s.firstErr = err.Error()
			}
			s.mu.Unlock()
			time.Sleep(100 * time.Millisecond) // do not spin on a persistent failure
		}
	}
}

// transferTimeout bounds one transfer: far above what any chunk takes,
// so that only a hung connection hits it.
const transferTimeout = 5 * time.Minute

// transfer sends one chunk of stream n and checks what arrived.
func (s *tcpSoaker) transfer(ctx context.Context, from *topo.Container, n uint64) error {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	type end struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan end, 1)
	go func() {
		conn, err := s.ln.Accept()
		if err != nil {
			got <- end{err: err}
			return
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		}
		h := sha256.New()
		k, err := io.Copy(h, conn)
		e := end{n: k, err: err}
		copy(e.sum[:], h.Sum(nil))
		got <- e
	}()
	conn, err := from.Dial(ctx, "tcp", s.ln.Addr().String())
	if err != nil {
		s.ln.(*net.TCPListener).SetDeadline(time.Now()) // release the Accept
		<-got
		s.ln.(*net.TCPListener).SetDeadline(time.Time{})
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], n)
	h := sha256.New()
	_, err = io.Copy(conn, io.TeeReader(io.LimitReader(rand.NewChaCha8(seed), s.chunk), h))
	conn.Close()
	e := <-got
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if e.err != nil {
		return fmt.Errorf("receive: %w", e.err)
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))
	if e.n != s.chunk || e.sum != want {
		s.mismatched.Add(1)
		return fmt.Errorf("transfer %d: received %d bytes with sha256 %x, sent %d with %x", n, e.n, e.sum, s.chunk, want)
	}
	s.transfers.Add(1)
	s.bytes.Add(e.n)
	return nil
}

func (s *tcpSoaker) result(dir string, d time.Duration) TCPSoak {
	s.mu.Lock()
	defer s.mu.Unlock()
	return TCPSoak{Direction: dir, Transfers: int(s.transfers.Load()), Bytes: s.bytes.Load(), Mismatched: int(s.mismatched.Load()),
		Errors: int(s.failed.Load() - s.mismatched.Load()), FirstError: s.firstErr, Gbps: float64(s.bytes.Load()) * 8 / d.Seconds() / 1e9}
}

// udpSoaker is a paced UDP stream one way, checked datagram by datagram.
type udpSoaker struct {
	out  net.Conn
	in   net.PacketConn
	rate int
	seed uint64

	sent, sendErrors atomic.Uint64
	// Kept by the receiver goroutine; read after done is closed.
	received, dups, reordered, corrupt atomic.Uint64
	lastRX                             atomic.Int64 // unix nanoseconds of the last datagram
	done                               chan struct{}
}

// UDP datagram layout: sequence number, length of the whole datagram,
// CRC-32C of everything after the checksum; then the payload.
const (
	udpHdrLen = 8 + 2 + 4
	// udpMaxLen is the largest payload a datagram carries: the soak's
	// overlay MTU (1450 on its 1500-byte underlay) less IPv4 and UDP.
	udpMaxLen = 1450 - 20 - 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newUDPSoaker(from, to *topo.Container, addr string, rate int, seed uint64) (*udpSoaker, error) {
	in, err := to.ListenPacket("udp4", addr)
	if err != nil {
		return nil, err
	}
	out, err := from.Dial(context.Background(), "udp4", addr)
	if err != nil {
		in.Close()
		return nil, err
	}
	if uc, ok := in.(*net.UDPConn); ok {
		uc.SetReadBuffer(4 << 20)
	}
	u := &udpSoaker{out: out, in: in, rate: rate, seed: seed, done: make(chan struct{})}
	go u.receive()
	return u, nil
}

func (u *udpSoaker) close() {
	u.out.Close()
	u.in.Close()
	<-u.done
}

// udpDatagram fills b with datagram seq of a stream and returns it.
func udpDatagram(b []byte, seed, seq uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seq))
	n := udpHdrLen + 2 + r.IntN(udpMaxLen-udpHdrLen-2+1)
	b = b[:n]
	binary.BigEndian.PutUint64(b[0:8], seq)
	binary.BigEndian.PutUint16(b[8:10], uint16(n))
	for i := udpHdrLen; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	binary.BigEndian.PutUint32(b[10:14], crc32.Checksum(b[udpHdrLen:], castagnoli)^crc32.Checksum(b[:10], castagnoli))
	return b
}

// checkDatagram returns the sequence number of an intact datagram, or
// false for a corrupt one.
func checkDatagram(b []byte) (uint64, bool) {
	if len(b) < udpHdrLen || int(binary.BigEndian.Uint16(b[8:10])) != len(b) {
		return 0, false
	}
	if binary.BigEndian.Uint32(b[10:14]) != crc32.Checksum(b[udpHdrLen:], castagnoli)^crc32.Checksum(b[:10], castagnoli) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[0:8]), true
}

// send paces datagrams at u.rate until stopAt.
func (u *udpSoaker) send(ctx context.Context, stopAt time.Time) {
	buf := make([]byte, udpMaxLen)
	start := time.Now()
	var seq uint64
	for {
		now := time.Now()
		if !now.Before(stopAt) || ctx.Err() != nil {
			return
		}
		due := uint64(now.Sub(start).Seconds() * float64(u.rate))
		for ; seq < due; seq++ {
			if _, err := u.out.Write(udpDatagram(buf, u.seed, seq)); err != nil {
				u.sendErrors.Add(1)
			} else {
				u.sent.Add(1)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// receive counts datagrams until the socket is closed.
func (u *udpSoaker) receive() {
	defer close(u.done)
	var seen bitset
	var highest uint64
	first := true
	buf := make([]byte, 1<<16)
	want := make([]byte, udpMaxLen)
	for {
		n, _, err := u.in.ReadFrom(buf)
		if err != nil {
			return
		}
		u.lastRX.Store(time.Now().UnixNano())
		// The checksum tells a damaged datagram; comparing with what the
		// sender made also tells one made up, or a wrong length.
		seq, ok := checkDatagram(buf[:n])
		if !ok || seq > 1<<40 || !bytes.Equal(buf[:n], udpDatagram(want, u.seed, seq)) {
			u.corrupt.Add(1)
			continue
		}
		if seen.testAndSet(seq) {
			u.dups.Add(1)
			continue
		}
		if !first && seq < highest {
			u.reordered.Add(1)
		}
		highest, first = max(highest, seq), false
		u.received.Add(1)
	}
}

// bitset is a set of sequence numbers.
type bitset []uint64

// testAndSet adds i and reports whether it was there already.
func (b *bitset) testAndSet(i uint64) bool {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	bit := uint64(1) << (i % 64)
	was := (*b)[w]&bit != 0
	(*b)[w] |= bit
	return was
}

// drain waits until the stream has been quiet for soakDrain (or ctx
// ends).
func (u *udpSoaker) drain(ctx context.Context) {
	for {
		quiet := time.Since(time.Unix(0, u.lastRX.Load()))
		if quiet >= soakDrain || ctx.Err() != nil {
			return
		}
		time.Sleep(soakDrain - quiet)
	}
}

func (u *udpSoaker) result(dir string) UDPSoak {
	r := UDPSoak{Direction: dir, Sent: u.sent.Load(), Received: u.received.Load(), Duplicated: u.dups.Load(),
		Reordered: u.reordered.Load(), Corrupt: u.corrupt.Load(), SendErrors: u.sendErrors.Load()}
	if r.Sent > r.Received {
		r.Lost = r.Sent - r.Received
	}
	if r.Sent > 0 {
		r.LostPct = 100 * float64(r.Lost) / float64(r.Sent)
	}
	return r
}

// WriteTable prints the soak's figures.
func (r *SoakResults) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	s := r.Settings
	fmt.Fprintf(&b, "vxswitch soak, %s\n", r.Machine.Date)
	fmt.Fprintf(&b, "machine   %s\n", r.Machine)
	fmt.Fprintf(&b, "run       %s of TCP (%d MiB transfers) and UDP (%d datagrams/s) both ways between two containers on two daemons; %s\n",
		time.Duration(s.DurationS*float64(time.Second)), s.TCPChunk>>20, s.UDPRate, orUnknown(s.VXSwitchVersion))
	fmt.Fprintf(&b, "          samples every %gs, figures from %gs on; daemon args: %s\n\n", s.SampleS, s.WarmupS, orNone(s.DaemonArgs))
	fmt.Fprintf(&b, "%-7s %10s %12s %10s %10s %8s\n", "TCP", "transfers", "GB", "Gbit/s", "altered", "errors")
	for _, t := range r.TCP {
		fmt.Fprintf(&b, "%-7s %10d %12.2f %10.2f %10d %8d\n", t.Direction, t.Transfers, float64(t.Bytes)/1e9, t.Gbps, t.Mismatched, t.Errors)
	}
	fmt.Fprintf(&b, "\n%-7s %10s %10s %10s %8s %10s %10s %8s\n", "UDP", "sent", "received", "lost", "lost %", "duplicated", "reordered", "corrupt")
	for _, u := range r.UDP {
		fmt.Fprintf(&b, "%-7s %10d %10d %10d %8.3f %10d %10d %8d\n", u.Direction, u.Sent, u.Received, u.Lost, u.LostPct, u.Duplicated, u.Reordered, u.Corrupt)
	}
	b.WriteString("\nfirst: the first sample after warm-up; slope: of a least-squares line through the samples after\n" +
		"warm-up, per 10 minutes; 2nd half: last less the sample half-way through them.\n")
	fmt.Fprintf(&b, "\n%-6s %-11s %9s %9s %9s %14s %12s\n", "daemon", "resource", "first", "last", "max", "slope /10 min", "2nd half")
	for _, d := range r.Daemons {
		for _, x := range []struct {
			name string
			t    Trend
			prec int
		}{{"RSS (MiB)", d.RSS, 1}, {"goroutines", d.Goroutines, 0}, {"open fds", d.FDs, 0}} {
			fmt.Fprintf(&b, "%-6s %-11s %9.*f %9.*f %9.*f %+14.2f %+12.2f\n", d.Host, x.name, x.prec, x.t.First, x.prec, x.t.Last, x.prec, x.t.Max, x.t.Per10Min, x.t.LateGrowth)
		}
		fmt.Fprintf(&b, "%-6s %-11s %9.1f\n", d.Host, "VmHWM (MiB)", d.HWMMiB)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func orNone(args []string) string {
	if len(args) == 0 {
		return "none"
	}
	return strings.Join(args, " ")
}

// WriteJSON writes the results as indented JSON.
func (r *SoakResults) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Save writes soak.json and soak.svg into dir (created if needed) and
// returns their paths.
func (r *SoakResults) Save(dir string) (jsonPath, svgPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	jsonPath, svgPath = filepath.Join(dir, "soak.json"), filepath.Join(dir, "soak.svg")
	if err := writeFile(jsonPath, r.WriteJSON); err != nil {
		return "", "", err
	}
	if err := writeFile(svgPath, r.WriteSVG); err != nil {
		return "", "", err
	}
	return jsonPath, svgPath, nil
}
