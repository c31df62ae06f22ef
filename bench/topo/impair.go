package topo

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Underlay faults. This kernel has no netem, so a Topo makes them two
// ways, both inside namespaces it owns:
//
//   - loss and duplication with nftables, e.g. in the LAN's namespace
//     (LAN, Host.LANPort, NS.Nft): `numgen random mod 100 < 5 drop` on a
//     port's ingress loses 5 % of what a host sends, `numgen random mod 100
//     < 5 dup to "p2"` delivers 5 % of it twice;
//   - delay and reordering with an Impairer: AddImpairedHost joins a host
//     to the LAN through a namespace of its own in which a userspace loop
//     forwards every frame, each way, after a delay, holding some back so
//     that later frames overtake them.
//
// A host's kernel hands the underlay a TCP or UDP GSO send as one frame of
// up to 64 KiB, which a veth carries whole; impairments would then act on
// 64 datagrams at once. Host.SegmentUnderlay makes it send every datagram
// as a frame of its own, as a NIC puts them on the wire.

// LAN is the namespace of the LAN's bridge (br0), made with the first
// host; nil before that or on a Direct underlay.
func (t *Topo) LAN() *NS {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lan
}

// LANPort is the name of h's port on the LAN's bridge, in LAN(): where
// h's frames enter the LAN and frames for h leave it.
func (h *Host) LANPort() string { return fmt.Sprintf("p%d", h.idx) }

// Nft loads an nftables ruleset (`nft -f -`) into the namespace. Tables
// live and die with the namespace.
func (n *NS) Nft(ctx context.Context, rules string) error {
	cmd := n.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = bytes.NewBufferString(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s", n.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// SegmentUnderlay makes h's kernel send every datagram and TCP segment on
// the underlay as a frame of its own (gso_max_segs 1 on eth0: GSO sends
// are segmented in software before the link), so that impairments on the
// path act on each.
func (h *Host) SegmentUnderlay() error {
	hh, err := h.Handle()
	if err != nil {
		return err
	}
	defer hh.Close()
	l, err := hh.LinkByName(UnderlayIf)
	if err != nil {
		return err
	}
	return hh.LinkSetGSOMaxSegs(l, 1)
}

// Impairment is what an Impairer does to the frames it forwards, the same
// each way.
type Impairment struct {
	// Delay holds every frame this long before it is sent on.
	Delay time.Duration
	// Reorder is the fraction of frames (0 to 1) held back HoldBack
	// longer than the others, so that frames that came after them
	// overtake them.
	Reorder  float64
	HoldBack time.Duration
	// Seed picks the frames held back (the same seed, the same choice of
	// frames by their order of arrival); 0 picks a random seed.
	Seed uint64
}

// ImpairStats counts what an Impairer did, both ways together.
type ImpairStats struct {
	Frames    uint64 // forwarded
	HeldBack  uint64 // held back by HoldBack
	Overtaken uint64 // sent after a frame that arrived after them: reordered
	Failed    uint64 // not forwarded: the other side refused it (too big, link down)
}

// Impairer forwards every frame between a host's link and the LAN
// through userspace (AF_PACKET sockets on two interfaces of a namespace
// that has nothing else: no bridge, no addresses), impairing them as its
// Impairment says. Frames keep their virtio-net header (PACKET_VNET_HDR),
// so checksums a sender left to the hardware and GSO frames pass as the
// kernel made them.
type Impairer struct {
	NS   *NS
	imp  Impairment
	fds  [2]int // the LAN side ("up"), the host side ("down")
	stop atomic.Bool
	wg   sync.WaitGroup

	frames, heldBack, overtaken, failed atomic.Uint64
}

// Interfaces of an Impairer's namespace.
const (
	impairUp   = "up"   // to the LAN
	impairDown = "down" // to the host's eth0
)

// AddImpairedHost adds a host as AddHost does (on a LAN underlay), but
// joined to the LAN through a namespace of its own, <name>-imp, in which
// an Impairer forwards its frames both ways. The host sends segmented
// (SegmentUnderlay).
func (t *Topo) AddImpairedHost(name string, imp Impairment) (*Host, *Impairer, error) {
	if t.opts.Underlay != LAN {
		return nil, nil, errors.New("an impaired host needs a LAN underlay")
	}
	if imp.Reorder < 0 || imp.Reorder > 1 || imp.Delay < 0 || imp.HoldBack < 0 {
		return nil, nil, fmt.Errorf("bad impairment %+v: Reorder is 0 to 1, durations are not negative", imp)
	}
	var im *Impairer
	h, err := t.addHost(name, func(h *Host) error {
		ns, err := t.newNSv6(name+"-imp", false)
		if err != nil {
			return err
		}
		if err := t.plugLAN(ns, impairUp, h.idx); err != nil {
			return err
		}
		if err := t.vethPair(ns, impairDown, &h.NS, UnderlayIf); err != nil {
			return err
		}
		if err := h.configureUnderlay(); err != nil {
			return err
		}
		if im, err = startImpairer(ns, imp); err != nil {
			return err
		}
		t.onClose(func() error { im.Close(); return nil })
		return h.SegmentUnderlay()
	})
	if err != nil {
		return nil, nil, err
	}
	return h, im, nil
}

// MustImpairedHost is AddImpairedHost for tests.
func (t *Topo) MustImpairedHost(name string, imp Impairment) (*Host, *Impairer) {
	h, im, err := t.AddImpairedHost(name, imp)
	t.fatal(err, "add impaired host "+name)
	return h, im
}

// virtioNetHdrLen is struct virtio_net_hdr, which PACKET_VNET_HDR puts in
// front of every frame read and expects in front of every frame sent.
const virtioNetHdrLen = 10

func startImpairer(ns *NS, imp Impairment) (*Impairer, error) {
	im := &Impairer{NS: ns, imp: imp, fds: [2]int{-1, -1}}
	err := ns.Do(func() error {
		for i, name := range []string{impairUp, impairDown} {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			hh, err := ns.Handle()
			if err != nil {
				return err
			}
			l, err := hh.LinkByName(name)
			if err == nil {
				err = hh.LinkSetUp(l)
			}
			hh.Close()
			if err != nil {
				return err
			}
			proto := htons(unix.ETH_P_ALL)
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(proto))
			if err != nil {
				return err
			}
			im.fds[i] = fd
			for _, o := range [][2]int{{unix.PACKET_VNET_HDR, 1}, {unix.PACKET_IGNORE_OUTGOING, 1}} {
				if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o[0], o[1]); err != nil {
					return err
				}
			}
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
			if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		im.closeFDs()
		return nil, fmt.Errorf("impairer in %s: %w", ns.Name, err)
	}
	seed := imp.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for dir := range 2 {
		d := &impairDir{im: im, in: im.fds[dir], out: im.fds[1-dir], rng: rand.New(rand.NewPCG(seed, uint64(dir)))}
		im.wg.Go(d.run)
	}
	return im, nil
}

// Stats returns what the impairer did so far.
func (im *Impairer) Stats() ImpairStats {
	return ImpairStats{Frames: im.frames.Load(), HeldBack: im.heldBack.Load(), Overtaken: im.overtaken.Load(), Failed: im.failed.Load()}
}

// Close stops forwarding: the host is cut off from the LAN.
func (im *Impairer) Close() {
	if im.stop.Swap(true) {
		return
	}
	im.wg.Wait()
	im.closeFDs()
}

func (im *Impairer) closeFDs() {
	for i, fd := range im.fds {
		if fd >= 0 {
			unix.Close(fd)
			im.fds[i] = -1
		}
	}
}

// impairDir forwards one way: frames read from in go out of out when
// their time comes. Its queue is its own: one goroutine, no locks.
type impairDir struct {
	im      *Impairer
	in, out int
	rng     *rand.Rand
	q       frameQueue
	seq     uint64 // arrival number of the next frame
	sent    uint64 // highest arrival number sent so far, plus one
	free    [][]byte
}

// heldFrame is a frame (with its virtio-net header) waiting for its time.
type heldFrame struct {
	b   []byte
	at  time.Time
	seq uint64
}

// frameQueue is a min-heap of frames by release time, then arrival.
type frameQueue []heldFrame

func (q frameQueue) Len() int { return len(q) }
func (q frameQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q frameQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *frameQueue) Push(x any)   { *q = append(*q, x.(heldFrame)) }
func (q *frameQueue) Pop() any {
	old := *q
	f := old[len(old)-1]
	*q = old[:len(old)-1]
	return f
}

// impairPoll bounds how long a direction waits without looking at the
// stop flag.
const impairPoll = 50 * time.Millisecond

func (d *impairDir) run() {
	buf := make([]byte, virtioNetHdrLen+1<<16)
	fds := []unix.PollFd{{Fd: int32(d.in), Events: unix.POLLIN}}
	for !d.im.stop.Load() {
		wait := impairPoll
		if len(d.q) > 0 {
			wait = min(wait, time.Until(d.q[0].at))
		}
		if wait > 0 {
			ts := unix.NsecToTimespec(int64(wait))
			unix.Ppoll(fds, &ts, nil)
		}
		for {
			n, _, err := unix.Recvfrom(d.in, buf, unix.MSG_DONTWAIT)
			if err != nil {
				break // EAGAIN: nothing more for now
			}
			d.hold(buf[:n])
		}
		d.release(time.Now())
	}
}

// hold queues a copy of frame b for its release time.
func (d *impairDir) hold(b []byte) {
	at := time.Now().Add(d.im.imp.Delay)
	if d.im.imp.Reorder > 0 && d.rng.Float64() < d.im.imp.Reorder {
		at = at.Add(d.im.imp.HoldBack)
		d.im.heldBack.Add(1)
	}
	var c []byte
	if n := len(d.free); n > 0 && cap(d.free[n-1]) >= len(b) {
		c, d.free = d.free[n-1][:len(b)], d.free[:n-1]
	} else {
		c = make([]byte, len(b), max(len(b), 2048))
	}
	copy(c, b)
	heap.Push(&d.q, heldFrame{b: c, at: at, seq: d.seq})
	d.seq++
}

// release sends every frame whose time has come, in order of time.
func (d *impairDir) release(now time.Time) {
	for len(d.q) > 0 && !d.q[0].at.After(now) {
		f := heap.Pop(&d.q).(heldFrame)
		if err := d.send(f.b); err != nil {
			d.im.failed.Add(1)
		} else {
			d.im.frames.Add(1)
			if f.seq+1 < d.sent {
				d.im.overtaken.Add(1)
			}
			d.sent = max(d.sent, f.seq+1)
		}
		d.free = append(d.free, f.b)
	}
}

// send writes one frame, waiting while the socket's buffer is full.
func (d *impairDir) send(b []byte) error {
	for {
		err := unix.Send(d.out, b, 0)
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ENOBUFS) {
			return err
		}
		if d.im.stop.Load() {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(d.out), Events: unix.POLLOUT}}
		unix.Poll(fds, 10)
	}
}
