package main_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/api"
)

// floodMACs is how many fresh source MACs the flood tests send: the
// issue's million by default, fewer with VXSWITCH_FLOOD_MACS (at least
// ten times the limit under test, so the table is full many times over).
func floodMACs(t *testing.T, limit int) uint64 {
	t.Helper()
	n := uint64(1_000_000)
	if s := os.Getenv("VXSWITCH_FLOOD_MACS"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("VXSWITCH_FLOOD_MACS=%q: want a number of MACs", s)
		}
		n = v
	}
	return max(n, 10*uint64(limit))
}

// macFlooder sends VXLAN datagrams from a socket on the underlay, as an
// attacker (or a broken host) would, each carrying a minimal frame with a
// source MAC of the flooder's choosing, to a destination MAC nobody has.
// It sends with UDP_SEGMENT, 64 datagrams per system call, so that the
// test process is not what limits the flood.
type macFlooder struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
	buf  []byte
	oob  []byte
}

const (
	// floodFrameLen is one datagram: VXLAN header, Ethernet header, and
	// the 46 bytes of a minimum-size frame's payload.
	floodFrameLen = encap.VXLANHeaderLen + encap.EthernetHeaderLen + 46
	floodBatch    = 64
	// floodEtherType is IEEE's local experimental type: nothing in a
	// container answers it.
	floodEtherType = 0x88b5
)

// floodDst is the flood frames' destination: a unicast MAC no endpoint
// has, so the bridge floods them to its ports and the containers drop
// them as not theirs.
var floodDst = fib.MAC{0x06, 0, 0x5e, 0, 0xf1, 0x0d}

func newMACFlooder(t *testing.T, from *topo.Host, to netip.Addr) *macFlooder {
	t.Helper()
	pc, err := from.ListenPacket("udp4", from.Addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], floodFrameLen)
	return &macFlooder{conn: pc.(*net.UDPConn), dst: &net.UDPAddr{IP: to.AsSlice(), Port: 4789},
		buf: make([]byte, floodBatch*floodFrameLen), oob: oob}
}

// floodMAC is the i-th MAC of a flood: a locally administered unicast
// address that looks random, and differs for every i below 2^46
// (multiplying by an odd number is a bijection modulo 2^46).
func floodMAC(i uint64) fib.MAC {
	v := (i + 1) * 0x9e3779b97f4a7c15 & (1<<46 - 1)
	return fib.MAC{byte(v>>40)<<2 | 0x02, byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// send sends one datagram to VNI vni for each MAC in macs (at most
// floodBatch) as its source.
func (f *macFlooder) send(vni uint32, macs []fib.MAC) error {
	b := f.buf[:len(macs)*floodFrameLen]
	for i, mac := range macs {
		d := b[i*floodFrameLen : (i+1)*floodFrameLen]
		encap.PutVXLAN(d, vni)
		eth := d[encap.VXLANHeaderLen:]
		copy(eth[0:6], floodDst[:])
		copy(eth[6:12], mac[:])
		binary.BigEndian.PutUint16(eth[12:14], floodEtherType)
		clear(eth[14:])
	}
	for {
		_, _, err := f.conn.WriteMsgUDP(b, f.oob, f.dst)
		if err == nil || !isBufferFull(err) {
			return err
		}
		time.Sleep(time.Millisecond) // the send buffer is full: let it drain
	}
}

func isBufferFull(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && (se.Err == unix.ENOBUFS || se.Err == unix.EAGAIN)
}

// floodWindow is how many flood datagrams may be on their way to the
// daemon at once: far less than its 8 MiB socket buffer holds, so the
// kernel does not drop them before the daemon sees them.
var floodWindow uint64 = 8192

// floodResult is what a flood did.
type floodResult struct {
	Sent      uint64 // datagrams sent, spoofed ones included
	Processed uint64 // fresh MACs the daemon learned or refused
	Spoofed   uint64 // datagrams sent with the spoofed MAC
}

// flood sends datagrams with count fresh source MACs, numbered from
// first, to network n (VNI vni) on its host, and returns once n's MAC
// table has learned or refused count of them (fib added + refused_full).
// Every spoofEvery-th batch carries spoof as its source instead (no
// spoofing when spoofEvery is 0). The daemon's counters pace the
// flood: at most floodWindow datagrams are in flight, and datagrams the
// kernel dropped anyway are made up for with more fresh MACs.
func flood(t *testing.T, f *macFlooder, d *topo.Daemon, network string, vni uint32, first, count uint64, spoof fib.MAC, spoofEvery int) floodResult {
	t.Helper()
	ctx := testCtx(t)
	processed := func() uint64 {
		st, err := d.Client.Stats(ctx, network)
		if err != nil || len(st.Networks) != 1 {
			t.Fatalf("stats of %s: %v", network, err)
		}
		return st.Networks[0].FIB.Added + st.Networks[0].FIB.RefusedFull
	}
	base := processed()
	var r floodResult
	macs := make([]fib.MAC, floodBatch)
	next := first
	inFlight := uint64(0) // fresh MACs sent and not yet seen processed
	batches := 0
	for {
		done := processed() - base
		if done >= count {
			r.Processed = done
			return r
		}
		seen := r.Processed
		r.Processed = done
		inFlight -= min(inFlight, done-seen)
		if inFlight+floodBatch > floodWindow {
			if done == seen {
				// Nothing moved since the last look: give the daemon a
				// moment; if still nothing, what is in flight was
				// dropped before the daemon saw it.
				time.Sleep(20 * time.Millisecond)
				if processed()-base == done {
					inFlight = 0
				}
			}
			continue
		}
		for inFlight+floodBatch <= floodWindow && done+inFlight < count {
			batches++
			if spoofEvery > 0 && batches%spoofEvery == 0 {
				for i := range macs {
					macs[i] = spoof
				}
				r.Spoofed += floodBatch
			} else {
				for i := range macs {
					macs[i] = floodMAC(next)
					next++
				}
				inFlight += floodBatch
			}
			if err := f.send(vni, macs); err != nil {
				t.Fatalf("flood: %v", err)
			}
			r.Sent += floodBatch
		}
		select {
		case <-ctx.Done():
			t.Fatalf("flood of %s: the daemon processed %d of %d MACs before the deadline", network, done, count)
		default:
		}
	}
}

// tcpStream is a TCP connection carrying pseudo-random bytes from one
// container to another for as long as it is left running; finish checks
// that what arrived is what was sent (SHA-256).
type tcpStream struct {
	sent atomic.Int64
	stop chan struct{}
	sum  chan [32]byte // the sender's, after stop
	serr chan error
	got  chan streamEnd
}

type streamEnd struct {
	n   int64
	sum [32]byte
	err error
}

func startStream(t *testing.T, from, to *topo.Container, addr string) *tcpStream {
	t.Helper()
	ctx := testCtx(t)
	ln, err := to.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &tcpStream{stop: make(chan struct{}), sum: make(chan [32]byte, 1), serr: make(chan error, 1), got: make(chan streamEnd, 1)}
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			s.got <- streamEnd{err: err}
			return
		}
		defer conn.Close()
		h := sha256.New()
		n, err := io.Copy(h, conn)
		e := streamEnd{n: n, err: err}
		copy(e.sum[:], h.Sum(nil))
		s.got <- e
	}()
	conn, err := from.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	go func() {
		defer conn.Close()
		h := sha256.New()
		src := rand.NewChaCha8([32]byte{11})
		buf := make([]byte, 32<<10)
		for {
			select {
			case <-s.stop:
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				s.sum <- sum
				s.serr <- nil
				return
			default:
			}
			src.Read(buf)
			h.Write(buf)
			if _, err := conn.Write(buf); err != nil {
				s.sum <- [32]byte{}
				s.serr <- err
				return
			}
			s.sent.Add(int64(len(buf)))
		}
	}()
	return s
}

// Sent is how many bytes the stream has sent so far.
func (s *tcpStream) Sent() int64 { return s.sent.Load() }

// finish stops sending, closes the connection and fails the test unless
// every byte arrived unchanged. It returns the bytes carried.
func (s *tcpStream) finish(t *testing.T) int64 {
	t.Helper()
	close(s.stop)
	want := <-s.sum
	if err := <-s.serr; err != nil {
		t.Fatalf("stream: send: %v", err)
	}
	select {
	case e := <-s.got:
		if e.err != nil {
			t.Fatalf("stream: receive: %v", e.err)
		}
		if e.n != s.Sent() || e.sum != want {
			t.Fatalf("stream: received %d bytes with sha256 %x, sent %d with %x", e.n, e.sum, s.Sent(), want)
		}
		return e.n
	case <-testCtx(t).Done():
		t.Fatal("stream: the receiver never saw the end")
	}
	return 0
}

// vmHWM is the peak resident set size of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM of %d: %q", pid, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// logLines counts the lines a daemon has logged.
func logLines(d *topo.Daemon) int { return strings.Count(d.Output(), "\n") }

// floodRSSLimit is the bound on a daemon's peak RSS through a
// flood that fills a network's MAC table at the default limit.
const floodRSSLimit = 64 << 20

// floodLogLines bounds what a daemon may log through a flood: a few
// lines at most, however many frames come.
const floodLogLines = 10

// A flood of fresh source MACs from a rogue host on the underlay fills
// a network's MAC table to its limit and no further: the rest are
// refused and counted, the daemon's peak RSS stays within 64 MiB, it
// logs a bounded number of lines, a static entry the flood spoofs stays
// where it pointed, and a TCP stream running through the flood carries
// every byte unchanged. A second network made with its own
// --max-learned stops at that, which a restart keeps.
func TestMACFlood(t *testing.T) { offloadModes(t, testMACFlood) }

func testMACFlood(t *testing.T, args []string) {
	c := newCluster(t, 2, args...)
	h1, d1 := c.hosts[0], c.ds[0]
	c1, c2 := c.ctrs[0], c.ctrs[1]
	const c2MAC = "02:42:0a:00:00:03"
	cli(t, d1, "fdb", "add", "net", c2MAC, "198.18.0.2")
	const smallLimit = 1000
	cli(t, d1, "network", "create", "small", "--vni", "300", "--subnet", "10.1.0.0/24", "--max-learned", strconv.Itoa(smallLimit))
	// A limit below zero is refused in one line and leaves nothing.
	if _, errOut, err := d1.CLI(testCtx(t), "network", "create", "negative", "--subnet", "10.2.0.0/24", "--max-learned", "-1"); err == nil ||
		strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "max-learned -1") {
		t.Errorf("network create --max-learned -1: %v, %q; want one line naming it", err, errOut)
	}
	if out := cli(t, d1, "network", "ls"); strings.Contains(out, "negative") {
		t.Errorf("a refused network is listed:\n%s", out)
	}
	rogue := c.tp.MustHost("rogue")
	ping(t, c1, "10.0.0.3")
	ping(t, c2, "10.0.0.2")

	total := floodMACs(t, fib.DefaultMaxLearned)
	lines := logLines(d1)
	stream := startStream(t, c1, c2, "10.0.0.3:5001")
	eventually(t, "the stream to carry data", func() bool { return stream.Sent() > 0 })
	fl := newMACFlooder(t, rogue, h1.Addr)
	spoof, err := fib.ParseMAC(c2MAC)
	if err != nil {
		t.Fatal(err)
	}
	start, before := time.Now(), stream.Sent()
	big := flood(t, fl, d1, "net", 256, 0, total, spoof, 64)
	small := flood(t, fl, d1, "small", 300, total, 10*smallLimit, fib.MAC{}, 0)
	during := stream.Sent() - before
	elapsed := time.Since(start)
	carried := stream.finish(t)
	// What an operator looks at during an attack counts too: the full
	// table, listed.
	fdb := cli(t, d1, "fdb", "show", "net")
	if got := strings.Count(fdb, " learned age "); got != fib.DefaultMaxLearned {
		t.Errorf("fdb show lists %d learned entries, want %d", got, fib.DefaultMaxLearned)
	}
	if !strings.Contains(fdb, c2MAC+" dst 198.18.0.2 vni 256 static\n") {
		t.Errorf("the static entry of %s no longer points to 198.18.0.2", c2MAC)
	}
	var all []api.FDBEntry
	if err := json.Unmarshal([]byte(cli(t, d1, "fdb", "show", "--json")), &all); err != nil {
		t.Fatal(err)
	}
	if got := len(all); got < fib.DefaultMaxLearned+smallLimit {
		t.Errorf("fdb show --json lists %d entries, want at least %d", got, fib.DefaultMaxLearned+smallLimit)
	}
	hwm := vmHWM(t, d1.PID())
	logged := logLines(d1) - lines
	t.Logf("flooded %d fresh MACs (%d datagrams, %d spoofing %s) into net and %d into small in %v; peak RSS of h1's daemon %.1f MiB; %d log lines; the stream carried %d bytes, %d of them during the flood",
		big.Processed, big.Sent, big.Spoofed, c2MAC, small.Processed, elapsed.Round(time.Millisecond), float64(hwm)/(1<<20), logged, carried, during)

	for _, x := range []struct {
		network string
		limit   int
		r       floodResult
	}{{"net", fib.DefaultMaxLearned, big}, {"small", smallLimit, small}} {
		st, err := d1.Client.Stats(testCtx(t), x.network)
		if err != nil {
			t.Fatal(err)
		}
		f := st.Networks[0].FIB
		if f.Learned != x.limit {
			t.Errorf("%s: %d learned entries after the flood, want its limit %d", x.network, f.Learned, x.limit)
		}
		// c2's MAC is static on net, so every fresh MAC counts.
		if want := x.r.Processed - uint64(x.limit); f.RefusedFull < want {
			t.Errorf("%s: %d learns refused as full, want at least %d", x.network, f.RefusedFull, want)
		}
		if n := networkJSON(t, d1, x.network); n.MaxLearned != x.limit {
			t.Errorf("%s: inspect shows max_learned %d, want %d", x.network, n.MaxLearned, x.limit)
		}
	}
	if f := stats(t, c.nets[0]).FIB; f.Shadowed == 0 || f.Static != 1 {
		t.Errorf("net: %d learns shadowed by the static entry (want the spoofed ones), %d static entries", f.Shadowed, f.Static)
	}
	if out := cli(t, d1, "stats", "net"); !strings.Contains(out, fmt.Sprintf("%d learned (at most %[1]d)", fib.DefaultMaxLearned)) ||
		!strings.Contains(out, fmt.Sprintf("%d refused (table full)", stats(t, c.nets[0]).FIB.RefusedFull)) {
		t.Errorf("stats does not show the full table and its refusals:\n%s", out)
	}
	// The kernel's bridge in the network's namespace learns every MAC
	// the TAP hands it; it is bounded too, a little above the switch.
	if n := bridgeLearned(t, c.nets[0].Netns()); n > fib.DefaultMaxLearned+bridgeSlack {
		t.Errorf("br0 holds %d learned entries, want at most %d", n, fib.DefaultMaxLearned+bridgeSlack)
	}
	if hwm > floodRSSLimit {
		t.Errorf("peak RSS of h1's daemon %.1f MiB, want at most %d MiB", float64(hwm)/(1<<20), floodRSSLimit>>20)
	}
	if logged >= floodLogLines {
		t.Errorf("h1's daemon logged %d lines during the flood, want fewer than %d:\n%s", logged, floodLogLines, d1.Output())
	}
	if during == 0 {
		t.Error("the stream carried nothing during the flood")
	}
	ping(t, c1, "10.0.0.3")

	// The per-network limit is configuration: a restart keeps it.
	if err := d1.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := d1.Start(); err != nil {
		t.Fatal(err)
	}
	if n := networkJSON(t, d1, "small"); n.MaxLearned != smallLimit {
		t.Errorf("after a restart small has max_learned %d, want %d", n.MaxLearned, smallLimit)
	}
	if n := networkJSON(t, d1, "net"); n.MaxLearned != fib.DefaultMaxLearned {
		t.Errorf("net has max_learned %d, want the daemon's %d", n.MaxLearned, fib.DefaultMaxLearned)
	}
}

// With a cluster store, a network's --max-learned is in the store's
// record, so every host applies it; a flood fills the table to it and
// no further, the store's entry for the container on the other host
// (which the flood spoofs) stays where the store put it, and a TCP stream
// to that container runs through the flood unharmed.
func TestMACFloodStore(t *testing.T) {
	c := newStoreCluster(t, 2, storeOpts{})
	rogue := c.tp.MustHost("rogue")
	const limit = 2000
	cli(t, c.ds[0], "network", "create", "net", "--subnet", "10.0.0.0/24", "--max-learned", strconv.Itoa(limit))
	// h2 has no endpoint yet: it knows the limit from the store alone.
	if n := networkJSON(t, c.ds[1], "net"); n.MaxLearned != limit {
		t.Errorf("h2 sees max_learned %d, want the store's %d", n.MaxLearned, limit)
	}
	c1, c2 := c.tp.MustContainer("c1"), c.tp.MustContainer("c2")
	cli(t, c.ds[0], "network", "attach", "net", "--netns", c1.Name)
	cli(t, c.ds[1], "network", "attach", "net", "--netns", c2.Name)
	const c2MAC = "02:42:0a:00:00:03"
	storeEntry := c2MAC + " dst 198.18.0.2 vni 256 store"
	eventually(t, "h1 to install c2's entry from the store", func() bool { return hasFDB(t, c.ds[0], "net", storeEntry) })
	ping(t, c1, "10.0.0.3")
	for i, d := range c.ds {
		if n := networkJSON(t, d, "net"); n.MaxLearned != limit {
			t.Errorf("h%d: max_learned %d with an endpoint, want %d", i+1, n.MaxLearned, limit)
		}
	}

	lines := logLines(c.ds[0])
	stream := startStream(t, c1, c2, "10.0.0.3:5001")
	eventually(t, "the stream to carry data", func() bool { return stream.Sent() > 0 })
	spoof, err := fib.ParseMAC(c2MAC)
	if err != nil {
		t.Fatal(err)
	}
	before := stream.Sent()
	r := flood(t, newMACFlooder(t, rogue, c.hosts[0].Addr), c.ds[0], "net", 256, 0, 20*limit, spoof, 16)
	during := stream.Sent() - before
	stream.finish(t)
	logged := logLines(c.ds[0]) - lines

	st, err := c.ds[0].Client.Stats(testCtx(t), "net")
	if err != nil {
		t.Fatal(err)
	}
	f := st.Networks[0].FIB
	t.Logf("flooded %d fresh MACs (%d spoofing %s); fib %+v; %d log lines; %d bytes streamed during the flood", r.Processed, r.Spoofed, c2MAC, f, logged, during)
	if f.Learned != limit || f.RefusedFull < r.Processed-limit {
		t.Errorf("%d learned entries and %d refused, want %d and at least %d", f.Learned, f.RefusedFull, limit, r.Processed-limit)
	}
	if f.Shadowed == 0 {
		t.Error("no learn was shadowed by the store entry the flood spoofed")
	}
	if !hasFDB(t, c.ds[0], "net", storeEntry) {
		t.Errorf("h1 lost %q", storeEntry)
	}
	if logged >= floodLogLines {
		t.Errorf("h1's daemon logged %d lines during the flood, want fewer than %d:\n%s", logged, floodLogLines, c.ds[0].Output())
	}
	if during == 0 {
		t.Error("the stream carried nothing during the flood")
	}
}

// bridgeSlack is how many more entries the daemon lets br0 learn than its
// own table (internal/daemon's bridgeLearnedSlack).
const bridgeSlack = 16384

// bridgeLearned counts the entries br0 in namespace netns learned (not
// its own, permanent ones).
func bridgeLearned(t *testing.T, netns string) int {
	t.Helper()
	out, err := exec.CommandContext(testCtx(t), "nsenter", "--net="+netns, "bridge", "fdb", "show", "br", "br0").Output()
	if err != nil {
		t.Fatalf("bridge fdb show in %s: %v", netns, err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		if !strings.Contains(line, "permanent") && !strings.Contains(line, " self") {
			n++
		}
	}
	return n
}
