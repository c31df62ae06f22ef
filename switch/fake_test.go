package vswitch

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/tap"
)

// kframe is a frame as the kernel side of a fake TAP sees it, with the
// virtio-net header of a TAP with offloads.
type kframe struct {
	vh tap.VirtioNetHdr
	b  []byte
}

// fakeTAP is a channel-backed TAP: the test plays the kernel, putting
// frames into fromKernel (what the bridge sends) and reading what the
// switch wrote from toKernel. With vnet set it behaves like a TAP with
// offloads (tap.Offloader).
type fakeTAP struct {
	name       string
	vnet       bool
	uso        bool // with vnet: UDP segmentation offload negotiated
	refuseGSO  bool // WriteVec of a GSO frame fails as on kernels that refuse it
	refuseUSO  bool // only a GSO_UDP_L4 frame fails
	fromKernel chan kframe
	toKernel   chan kframe
	// onWrite, when set, sees every frame written, before the write
	// returns: a kernel stack that answers synchronously, as the real
	// one does for ICMP echo and TCP ACKs.
	onWrite   func(kframe)
	closeOnce sync.Once
	closed    chan struct{}
}

func newFakeTAP(name string) *fakeTAP {
	return &fakeTAP{name: name, fromKernel: make(chan kframe, 1024), toKernel: make(chan kframe, 4096), closed: make(chan struct{})}
}

func newFakeVnetTAP(name string) *fakeTAP {
	t := newFakeTAP(name)
	t.vnet, t.uso = true, true
	return t
}

func (f *fakeTAP) put(bufs [][]byte, sizes []int, i, offset int, fr kframe) {
	if f.vnet {
		fr.vh.Encode(bufs[i][offset-tap.VirtioNetHdrLen:])
	}
	sizes[i] = copy(bufs[i][offset:], fr.b)
}

func (f *fakeTAP) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case fr := <-f.fromKernel:
		f.put(bufs, sizes, 0, offset, fr)
		n := 1
		// Drain what is queued, up to the batch, like a batched TAP.
		for n < len(bufs) {
			select {
			case fr := <-f.fromKernel:
				f.put(bufs, sizes, n, offset, fr)
				n++
			default:
				return n, nil
			}
		}
		return n, nil
	case <-f.closed:
		return 0, tap.ErrClosed
	}
}

// pollingTAP is a fakeTAP with offloads that can also be read without
// blocking (tap.Poller), like the real TAP with offloads.
type pollingTAP struct{ *fakeTAP }

func newPollingTAP(name string) pollingTAP { return pollingTAP{newFakeVnetTAP(name)} }

func (p pollingTAP) TryRead(bufs [][]byte, sizes []int, offset int) (int, error) {
	f := p.fakeTAP
	n := 0
	for n < len(bufs) {
		select {
		case fr := <-f.fromKernel:
			f.put(bufs, sizes, n, offset, fr)
			n++
		case <-f.closed:
			if n == 0 {
				return 0, tap.ErrClosed
			}
			return n, nil
		default:
			return n, nil
		}
	}
	return n, nil
}

// WaitReadable waits, without taking a frame, until one is queued: a
// frame taken here could be overtaken by a concurrent TryRead.
func (p pollingTAP) WaitReadable() error {
	f := p.fakeTAP
	for len(f.fromKernel) == 0 {
		select {
		case <-f.closed:
			return tap.ErrClosed
		case <-time.After(50 * time.Microsecond):
		}
	}
	return nil
}

func (f *fakeTAP) deliver(fr kframe) error {
	if f.onWrite != nil {
		f.onWrite(fr)
		return nil
	}
	select {
	case f.toKernel <- fr:
		return nil
	case <-f.closed:
		return tap.ErrClosed
	}
}

func (f *fakeTAP) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		fr := kframe{b: append([]byte(nil), b[offset:]...)}
		if f.vnet {
			fr.vh.Decode(b[offset-tap.VirtioNetHdrLen:])
		}
		if err := f.deliver(fr); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (f *fakeTAP) VNetHdr() bool { return f.vnet }
func (f *fakeTAP) USO() bool     { return f.uso }

func (f *fakeTAP) WriteVec(iov [][]byte) error {
	var all []byte
	for _, b := range iov {
		all = append(all, b...)
	}
	var fr kframe
	fr.vh.Decode(all)
	if (f.refuseGSO && fr.vh.GSOType != tap.GSONone) || (f.refuseUSO && fr.vh.GSOType == tap.GSOUDPL4) {
		return tap.ErrGSORefused
	}
	fr.b = all[tap.VirtioNetHdrLen:]
	return f.deliver(fr)
}

func (f *fakeTAP) BatchSize() int { return 8 }
func (f *fakeTAP) Name() string   { return f.name }
func (f *fakeTAP) MTU() int       { return 1450 }
func (f *fakeTAP) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// wire connects fake underlays by address, like a LAN.
type wire struct {
	mu    sync.Mutex
	ports map[netip.AddrPort]*fakeUnderlay
}

func newWire() *wire { return &wire{ports: map[netip.AddrPort]*fakeUnderlay{}} }

type datagram struct {
	b        []byte
	src, dst netip.AddrPort
	flow     uint16
	ecn      uint8 // the outer ECN field
}

// fakeUnderlay is one VTEP's socket on a wire. Everything it sends is also
// recorded in sent, one entry per datagram (a GSO message is split as the
// kernel splits it). With gro set, Recv coalesces consecutive datagrams
// of one sender like UDP GRO.
type fakeUnderlay struct {
	w         *wire
	addr      netip.AddrPort
	gro       bool
	noGSO     atomic.Bool // GSOEnabled reports false, as after the kernel refused UDP_SEGMENT
	in        chan datagram
	held      *datagram    // taken from in but not yet returned
	polled    atomic.Int64 // slots TryRecv returned: only busy polling calls it
	mu        sync.Mutex
	sent      []datagram
	sends     []sendRec // one per SendMsg
	closeOnce sync.Once
	closed    chan struct{}
}

func (w *wire) attach(addr string) *fakeUnderlay {
	u := &fakeUnderlay{w: w, addr: netip.MustParseAddrPort(addr), in: make(chan datagram, 4096), closed: make(chan struct{})}
	w.mu.Lock()
	w.ports[u.addr] = u
	w.mu.Unlock()
	return u
}

func (u *fakeUnderlay) next(block bool) (datagram, bool) {
	if u.held != nil {
		d := *u.held
		u.held = nil
		return d, true
	}
	if block {
		select {
		case d := <-u.in:
			return d, true
		case <-u.closed:
			return datagram{}, false
		}
	}
	select {
	case d := <-u.in:
		return d, true
	default:
		return datagram{}, false
	}
}

func (u *fakeUnderlay) Recv(msgs []RecvMsg) (int, error) { return u.recv(msgs, true) }

func (u *fakeUnderlay) TryRecv(msgs []RecvMsg) (int, error) {
	select {
	case <-u.closed:
		return 0, net.ErrClosed
	default:
	}
	n, err := u.recv(msgs, false)
	u.polled.Add(int64(n))
	return n, err
}

func (u *fakeUnderlay) recv(msgs []RecvMsg, wait bool) (int, error) {
	n := 0
	for n < len(msgs) {
		d, ok := u.next(wait && n == 0)
		if !ok {
			if n == 0 && wait {
				return 0, net.ErrClosed
			}
			break
		}
		m := &msgs[n]
		m.N, m.SegSize, m.Src, m.ECN = copy(m.Buf, d.b), 0, d.src, d.ecn
		n++
		for u.gro {
			e, ok := u.next(false)
			if !ok {
				break
			}
			seg := len(d.b)
			if seg == 0 || len(e.b) == 0 || e.src != d.src || e.ecn != d.ecn || len(e.b) > seg || m.N+len(e.b) > len(m.Buf) || m.N/seg >= 64 || m.N%seg != 0 {
				u.held = &e
				break
			}
			m.N += copy(m.Buf[m.N:], e.b)
			m.SegSize = seg
		}
	}
	return n, nil
}

// sendRec is what the fake underlay saw of one SendMsg.
type sendRec struct {
	dst     netip.AddrPort
	segSize int
	dgrams  int
}

func (r sendRec) String() string { return fmt.Sprintf("%v seg %d ×%d", r.dst, r.segSize, r.dgrams) }

func (u *fakeUnderlay) Send(msgs []SendMsg) (int, error) {
	for _, m := range msgs {
		if m.SegSize > 0 {
			// The rule the kernel enforces for UDP_SEGMENT.
			total := 0
			for _, b := range m.Iov {
				total += len(b)
			}
			if total > m.SegSize*MaxGSOSegments || total > MaxUDPPayload {
				panic("fake underlay: GSO message over the kernel's limits")
			}
		}
		var all []byte
		for _, b := range m.Iov {
			all = append(all, b...)
		}
		step := m.SegSize
		if step == 0 {
			step = len(all)
		}
		rec := sendRec{dst: m.Dst, segSize: m.SegSize}
		for off := 0; off < len(all) || off == 0; off += step {
			// An empty message is one empty datagram.
			u.transmit(datagram{b: all[off:min(off+step, len(all))], src: u.addr, dst: m.Dst, flow: m.Flow, ecn: m.ECN})
			rec.dgrams++
			if step == 0 {
				break
			}
		}
		// Recorded whole, in one step: a pointer into u.sends would be
		// left behind if a concurrent Send grew the slice.
		u.mu.Lock()
		u.sends = append(u.sends, rec)
		u.mu.Unlock()
	}
	return 0, nil
}

func (u *fakeUnderlay) transmit(d datagram) {
	u.mu.Lock()
	u.sent = append(u.sent, d)
	u.mu.Unlock()
	u.w.mu.Lock()
	peer := u.w.ports[d.dst]
	u.w.mu.Unlock()
	if peer != nil {
		select {
		case peer.in <- d:
		default: // a full queue drops, as a real network does
		}
	}
}

func (u *fakeUnderlay) Sent() []datagram {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]datagram(nil), u.sent...)
}

func (u *fakeUnderlay) Sends() []sendRec {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]sendRec(nil), u.sends...)
}

func (u *fakeUnderlay) GSOEnabled() bool { return !u.noGSO.Load() }

func (u *fakeUnderlay) BatchSize() int { return 8 }
func (u *fakeUnderlay) Close() error {
	u.closeOnce.Do(func() { close(u.closed) })
	return nil
}
