package main_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/api"
)

// hostilePerKind is how many datagrams of each malformed kind
// TestHostileDatagrams fires: 12 kinds, 120 000 in all.
const hostilePerKind = 10_000

// rogueMAC is the source MAC of the rogue's well-formed frames: no
// container has it.
var rogueMAC = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 1}

// vxlanDatagram is a VXLAN header for vni followed by inner.
func vxlanDatagram(vni uint32, inner []byte) []byte {
	b := make([]byte, 8, 8+len(inner))
	b[0] = 0x08
	binary.BigEndian.PutUint32(b[4:], vni<<8)
	return append(b, inner...)
}

// innerUDP is an Ethernet frame carrying an IPv4 UDP datagram with valid
// checksums.
func innerUDP(t testing.TB, src, dst net.HardwareAddr, srcIP, dstIP net.IP, port uint16, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: srcIP, DstIP: dstIP}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(port)}
	udp.SetNetworkLayerForChecksum(ip)
	return serializeFrame(t, &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(payload))
}

// innerTCP is an Ethernet frame carrying an IPv4 TCP segment with valid
// checksums.
func innerTCP(t testing.TB, src, dst net.HardwareAddr, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IP{10, 0, 0, 99}, DstIP: net.IP{10, 0, 0, 98}}
	tcp := &layers.TCP{SrcPort: 5001, DstPort: 40000, Seq: 1, Ack: 1, ACK: true, Window: 500}
	tcp.SetNetworkLayerForChecksum(ip)
	return serializeFrame(t, &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(payload))
}

func serializeFrame(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// hostileKinds are the malformed datagrams a rogue on the underlay fires
// at a daemon serving VNI 256, by name. None of them is ever delivered
// into a network.
func hostileKinds(t testing.TB) map[string][]byte {
	t.Helper()
	other := net.HardwareAddr{0x02, 0xee, 0, 0, 0, 2}
	good := innerUDP(t, rogueMAC, other, net.IP{10, 0, 0, 99}, net.IP{10, 0, 0, 98}, 9, []byte("x"))
	flags := vxlanDatagram(256, good)
	flags[0] = 0x88
	reserved := vxlanDatagram(256, good)
	reserved[7] = 1
	garbage := make([]byte, 300)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	garbage[6] &^= 1 // a unicast source MAC: the frame is judged, not its MAC
	super := innerTCP(t, rogueMAC, other, bytes.Repeat([]byte("corrupt!"), 600))
	corrupted := bytes.Clone(super)
	corrupted[len(corrupted)-10] ^= 0x20
	malformed := bytes.Clone(super)
	binary.BigEndian.PutUint16(malformed[14+2:], 1000) // IP length says less than there is
	partialBadIP := innerTCP(t, rogueMAC, other, []byte("partial"))
	ph := pseudoHeaderSum(partialBadIP)
	binary.BigEndian.PutUint16(partialBadIP[14+20+16:], ph)
	partialBadIP[14+8]-- // TTL, outside the pseudo-header: the IPv4 header checksum fails
	return map[string][]byte{
		"empty":                {},
		"short":                {0x08, 0, 0},
		"bad flags":            flags,
		"reserved bits":        reserved,
		"unknown VNI":          vxlanDatagram(4711, good),
		"runt inner frame":     vxlanDatagram(256, good[:10]),
		"garbage inner frame":  vxlanDatagram(256, garbage),
		"multicast source MAC": vxlanDatagram(256, innerUDP(t, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, other, net.IP{10, 0, 0, 99}, net.IP{10, 0, 0, 98}, 9, nil)),
		"oversize":             vxlanDatagram(256, append(append(bytes.Clone(good[:12]), 0x88, 0xb5), make([]byte, 3000)...)),
		"malformed superframe": vxlanDatagram(256, malformed),
		"corrupted superframe": vxlanDatagram(256, corrupted),
		"partial, bad IPv4":    vxlanDatagram(256, partialBadIP),
	}
}

// pseudoHeaderSum is the TCP pseudo-header sum of an untagged IPv4 TCP
// frame without options, as a Linux sender leaves it in a partial
// checksum (a plain RFC 1071 sum, not the code under test).
func pseudoHeaderSum(f []byte) uint16 {
	var ph [12]byte
	copy(ph[:8], f[14+12:14+20])
	ph[9] = 6
	binary.BigEndian.PutUint16(ph[10:], uint16(len(f)-34))
	return rfc1071(ph[:], 0)
}

// rogue is a host on the underlay with no daemon, that sends whatever it
// likes to port 4789.
type rogue struct {
	conn net.PacketConn
	sent atomic.Int64
}

func newRogue(t *testing.T, tp *topo.Topo) *rogue {
	t.Helper()
	h := tp.MustHost("rogue")
	conn, err := h.ListenPacket("udp4", net.JoinHostPort(h.Addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rogue{conn: conn}
}

// send sends d to the VXLAN port of vtep and counts it.
func (r *rogue) send(t *testing.T, vtep netip.Addr, d []byte) {
	t.Helper()
	if _, err := r.conn.WriteTo(d, net.UDPAddrFromAddrPort(netip.AddrPortFrom(vtep, 4789))); err != nil {
		t.Fatalf("rogue send: %v", err)
	}
	r.sent.Add(1)
}

// pathChunk is how many datagrams pacedBarrage has in flight at most: well
// below a CPU's backlog of frames between two veth hops
// (net.core.netdev_max_backlog, 1000), which overflows, out of the
// daemon's sight, when the softirqs that drain it are starved.
const pathChunk = 400

// pacedBarrage sends every hostile kind perKind times to vtep,
// interleaved, with at most pathChunk datagrams on their way:
// after each chunk it waits, through the daemon's API, until the daemon
// has received them or the kernel has dropped them for its socket, so
// that none is lost on the path before (which would not be the daemon's
// to count). The kernel reports its drops with the next datagram it
// queues: when the count stalls, a probe (counted too) brings it up to
// date.
func (r *rogue) pacedBarrage(t *testing.T, d *topo.Daemon, vtep netip.Addr, kinds map[string][]byte, perKind int) {
	t.Helper()
	all := make([][]byte, 0, len(kinds))
	for _, k := range kinds {
		all = append(all, k)
	}
	probe := kinds["unknown VNI"]
	ctx := testCtx(t)
	inChunk := 0
	for range perKind {
		for _, k := range all {
			r.send(t, vtep, k)
			if inChunk++; inChunk < pathChunk {
				continue
			}
			inChunk = 0
			last, moved, probed := uint64(0), time.Now(), 0
			for {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				st, err := d.Client.Stats(cctx, "")
				cancel()
				if err != nil {
					t.Fatalf("stats during the barrage (%d sent): %v", r.sent.Load(), err)
				}
				arrived, _, _ := accounted(st)
				if arrived >= uint64(r.sent.Load()) {
					break
				}
				if arrived != last {
					last, moved, probed = arrived, time.Now(), 0
				} else if time.Since(moved) > time.Duration(probed+1)*50*time.Millisecond {
					if probed == 20 {
						break // lost on the path (see below); go on
					}
					r.send(t, vtep, probe)
					probed++
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// softnetDrops is how many packets the machine's per-CPU backlogs have
// dropped (the second column of /proc/net/softnet_stat, summed over
// CPUs): every namespace's.
func softnetDrops() uint64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			v, _ := strconv.ParseUint(f[1], 16, 64)
			n += v
		}
	}
	return n
}

// daemonStats is `vxswitch stats --json`.
func daemonStats(t *testing.T, d *topo.Daemon) api.Stats {
	t.Helper()
	var st api.Stats
	if err := json.Unmarshal([]byte(cli(t, d, "stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// accounted is what a daemon's stats account for: datagrams received
// plus those the kernel dropped for its socket, and, of those received,
// the ones dropped at the switch level or delivered or dropped by a
// network.
func accounted(st api.Stats) (arrived, received, placed uint64) {
	for _, v := range st.Switch.Drops {
		placed += v
	}
	for _, n := range st.Networks {
		placed += n.RXFrames
		for _, v := range n.RXDrops {
			placed += v
		}
	}
	return st.Switch.RXDatagrams + st.Switch.RXOverflow, st.Switch.RXDatagrams, placed
}

// Every datagram fired at a daemon is accounted for in `vxswitch stats`:
// 120 000 malformed datagrams of twelve kinds (and 10 000 valid ones
// among them) from a rogue namespace on the underlay end up as delivered
// frames, drops by reason, or kernel overflows, and the sum is exactly
// what was sent. The daemon lives on and still forwards. (The rogue
// keeps at most pathChunk datagrams in flight: see pacedBarrage.)
func TestHostileDatagrams(t *testing.T) { offloadModes(t, testHostileDatagrams) }

func testHostileDatagrams(t *testing.T, args []string) {
	c := newCluster(t, 1, args...)
	r := newRogue(t, c.tp)
	kinds := hostileKinds(t)
	// Valid frames among them (to a MAC nobody has; the bridge floods
	// them), from one source MAC.
	kinds["valid"] = vxlanDatagram(256, innerUDP(t, rogueMAC, net.HardwareAddr{0x02, 0xee, 0, 0, 0, 2}, net.IP{10, 0, 0, 99}, net.IP{10, 0, 0, 98}, 9, []byte("ok")))
	vtep := c.hosts[0].Addr
	start := time.Now()
	pathDrops0 := softnetDrops()
	lines := logLines(c.ds[0])
	r.pacedBarrage(t, c.ds[0], vtep, kinds, hostilePerKind)
	t.Logf("fired %d datagrams in %v", r.sent.Load(), time.Since(start).Round(time.Millisecond))

	// Still alive and delivering: datagrams to a listener in c1 arrive.
	got := countDatagrams(t, c.ctrs[0], "10.0.0.2:7777")
	hello := vxlanDatagram(256, innerUDP(t, rogueMAC, c.macs[0], net.IP{10, 0, 0, 99}, net.IP{10, 0, 0, 2}, 7777, []byte("still there?")))
	eventually(t, "a datagram to reach c1 after the barrage", func() bool {
		r.send(t, vtep, hello)
		return got.Load() > 0
	})

	// The kernel reports its overflow count with the next datagram it
	// queues: a few more datagrams (counted too) bring the count up to
	// date once the daemon has caught up.
	probe := kinds["unknown VNI"]
	var st api.Stats
	deadline := time.Now().Add(2 * time.Minute) // generous: the daemon has long caught up by then
	for {
		st = daemonStats(t, c.ds[0])
		arrived, received, placed := accounted(st)
		if arrived == uint64(r.sent.Load()) && placed == received {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		if arrived < uint64(r.sent.Load()) {
			r.send(t, vtep, probe)
		}
		time.Sleep(100 * time.Millisecond)
	}
	arrived, received, placed := accounted(st)
	// What the daemon received it always accounts for, exactly.
	if placed != received {
		t.Fatalf("received %d datagrams, accounted for %d\n%+v", received, placed, st)
	}
	// All that was sent arrived for its socket, unless the machine's
	// kernel dropped some on the path (a CPU's backlog between veth hops,
	// shared with every other namespace on the machine): those are
	// counted in /proc/net/softnet_stat, machine-wide, and never reach
	// the daemon.
	if lost := uint64(r.sent.Load()) - arrived; arrived > uint64(r.sent.Load()) || lost > softnetDrops()-pathDrops0 {
		snmp, _ := c.hosts[0].Run(testCtx(t), "cat", "/proc/net/snmp")
		t.Fatalf("sent %d; received %d and %d lost in the kernel (socket); %d dropped on the machine's paths meanwhile\n%+v\nh1's /proc/net/snmp:\n%s",
			r.sent.Load(), received, st.Switch.RXOverflow, softnetDrops()-pathDrops0, st, snmp)
	} else if lost > 0 {
		t.Logf("%d datagrams were lost on the path before the daemon's socket (the machine's backlogs dropped %d meanwhile)", lost, softnetDrops()-pathDrops0)
	}
	n := st.Networks[0]
	for _, reason := range []string{"short", "bad_flags", "reserved_bits", "unknown_vni"} {
		if st.Switch.Drops[reason] == 0 {
			t.Errorf("no switch-level %s drop: %v", reason, st.Switch.Drops)
		}
	}
	for _, reason := range []string{"short", "bad_src_mac", "oversize", "bad_csum"} {
		if n.RXDrops[reason] == 0 {
			t.Errorf("no %s drop: %v", reason, n.RXDrops)
		}
	}
	if n.RXFrames < hostilePerKind/2 {
		t.Errorf("%d frames delivered of %d valid ones", n.RXFrames, hostilePerKind)
	}
	logged := logLines(c.ds[0]) - lines
	t.Logf("sent %d: %d received, %d lost in the kernel (receive buffer); switch drops %v; network: %d delivered, drops %v; %d log lines",
		r.sent.Load(), received, st.Switch.RXOverflow, st.Switch.Drops, n.RXFrames, n.RXDrops, logged)
	if logged >= floodLogLines {
		t.Errorf("the daemon logged %d lines during the barrage, want fewer than %d:\n%s", logged, floodLogLines, c.ds[0].Output())
	}
}

// TCP transfers between two daemons, both ways, complete with the same
// SHA-256 while a rogue fires malformed datagrams at both daemons (at
// least 100 000 during each transfer).
func TestHostileDuringTransfer(t *testing.T) {
	c := newCluster(t, 2)
	r := newRogue(t, c.tp)
	kinds := hostileKinds(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	var once sync.Once
	stopBarrage := func() {
		once.Do(func() { close(stop) })
		<-done
	}
	t.Cleanup(stopBarrage) // also when the test fails
	go func() {
		defer close(done)
		for {
			for _, h := range c.hosts {
				for _, d := range kinds {
					if _, err := r.conn.WriteTo(d, net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.Addr, 4789))); err == nil {
						r.sent.Add(1)
					}
				}
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	// The barrage is on before the transfers start, and each waits
	// halfway until another 100 000 datagrams were fired.
	lines := []int{logLines(c.ds[0]), logLines(c.ds[1])}
	eventually(t, "the barrage to start", func() bool { return r.sent.Load() > 1000 })
	for _, dir := range [][2]int{{0, 1}, {1, 0}} {
		halfway, resume := make(chan struct{}), make(chan struct{})
		go func() {
			select {
			case <-halfway:
			case <-stop:
				return
			}
			from := r.sent.Load()
			for r.sent.Load() < from+100_000 {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			close(resume)
		}()
		to := c.ctrs[dir[1]]
		gatedTransfer(t, c.ctrs[dir[0]], to, fmt.Sprintf("10.0.0.%d:5001", dir[1]+2), 32<<20, halfway, resume)
	}
	stopBarrage()
	var dropped uint64
	for _, d := range c.ds {
		st := daemonStats(t, d)
		for _, v := range st.Switch.Drops {
			dropped += v
		}
		for _, v := range st.Networks[0].RXDrops {
			dropped += v
		}
	}
	t.Logf("fired %d malformed datagrams during the transfers; %d dropped by reason", r.sent.Load(), dropped)
	if dropped == 0 {
		t.Error("nothing dropped: the barrage missed")
	}
	for i, d := range c.ds {
		if logged := logLines(d) - lines[i]; logged >= floodLogLines {
			t.Errorf("h%d's daemon logged %d lines during the barrage, want fewer than %d:\n%s", i+1, logged, floodLogLines, d.Output())
		} else {
			t.Logf("h%d's daemon logged %d lines during the barrage", i+1, logged)
		}
	}
}

// A learned frame never takes over a static entry: a rogue VTEP keeps
// sending frames with a container's source MAC, and traffic to that
// container still goes to the VTEP the static entry names.
func TestSpoofedMACKeepsStaticEntry(t *testing.T) {
	c := newCluster(t, 2)
	victim := c.macs[1]
	cli(t, c.ds[0], "fdb", "add", "net", victim.String(), c.hosts[1].Addr.String())
	r := newRogue(t, c.tp)
	spoof := vxlanDatagram(256, innerUDP(t, victim, c.macs[0], net.IP{10, 0, 0, 3}, net.IP{10, 0, 0, 2}, 9, []byte("I am c2")))
	for range 1000 {
		r.send(t, c.hosts[0].Addr, spoof)
	}
	eventually(t, "the spoofed learns to be refused", func() bool { return stats(t, c.nets[0]).FIB.Shadowed > 0 })
	ping(t, c.ctrs[0], "10.0.0.3")
	transfer(t, c.ctrs[0], c.ctrs[1], "10.0.0.3:5001", 4<<20)
	for _, e := range fdbJSON(t, c.ds[0], "net") {
		if strings.EqualFold(e.MAC, victim.String()) && (e.VTEP != c.hosts[1].Addr.String() || e.Source != "static") {
			t.Errorf("the victim's entry is %+v", e)
		}
	}
}

// With --peers-only, frames from a VTEP the network does not know never
// reach a container, and are counted; without it, the same frames do
// (so the test can see them), and the network's own peers work either
// way.
func TestPeersOnlyRogue(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		reachable bool
	}{{"peers-only", []string{"--peers-only"}, false}, {"open", nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 2, tc.args...)
			got := countDatagrams(t, c.ctrs[0], "10.0.0.2:7777")
			r := newRogue(t, c.tp)
			forged := vxlanDatagram(256, innerUDP(t, rogueMAC, c.macs[0], net.IP{10, 0, 0, 66}, net.IP{10, 0, 0, 2}, 7777, []byte("let me in")))
			const n = 200
			for range n {
				r.send(t, c.hosts[0].Addr, forged)
			}
			ping(t, c.ctrs[0], "10.0.0.3")
			ping(t, c.ctrs[1], "10.0.0.2")
			if tc.reachable {
				eventually(t, "the rogue's datagrams to reach c1", func() bool { return got.Load() > 0 })
				return
			}
			eventually(t, fmt.Sprintf("%d unknown_vtep drops", n), func() bool { return stats(t, c.nets[0]).RXDrops["unknown_vtep"] >= n })
			if g := got.Load(); g != 0 {
				t.Errorf("%d of the rogue's datagrams reached c1", g)
			}
			for _, e := range fdbJSON(t, c.ds[0], "net") {
				if strings.EqualFold(e.MAC, rogueMAC.String()) {
					t.Errorf("learned the rogue's MAC: %+v", e)
				}
			}
		})
	}
}

// countDatagrams listens on UDP addr in ctr until the test ends and
// counts the datagrams that arrive.
func countDatagrams(t *testing.T, ctr *topo.Container, addr string) *atomic.Int64 {
	t.Helper()
	ln, err := ctr.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := new(atomic.Int64)
	go func() {
		b := make([]byte, 2048)
		for {
			if _, _, err := ln.ReadFrom(b); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	return got
}
