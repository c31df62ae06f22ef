package vswitch

import (
	"net"
	"net/netip"
	"sync"

	"github.com/vxswitch/vxswitch/tap"
)

// fakeTAP is a channel-backed TAP: the test plays the kernel, putting
// frames into fromKernel (what the bridge sends) and reading what the
// switch wrote from toKernel.
type fakeTAP struct {
	name       string
	fromKernel chan []byte
	toKernel   chan []byte
	closeOnce  sync.Once
	closed     chan struct{}
}

func newFakeTAP(name string) *fakeTAP {
	return &fakeTAP{name: name, fromKernel: make(chan []byte, 1024), toKernel: make(chan []byte, 1024), closed: make(chan struct{})}
}

func (f *fakeTAP) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case fr := <-f.fromKernel:
		sizes[0] = copy(bufs[0][offset:], fr)
		n := 1
		// Drain what is queued, up to the batch, like a batched TAP.
		for n < len(bufs) {
			select {
			case fr := <-f.fromKernel:
				sizes[n] = copy(bufs[n][offset:], fr)
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

func (f *fakeTAP) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		select {
		case f.toKernel <- append([]byte(nil), b[offset:]...):
		case <-f.closed:
			return i, tap.ErrClosed
		}
	}
	return len(bufs), nil
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
}

// fakeUnderlay is one VTEP's socket on a wire. Everything it sends is also
// recorded in sent.
type fakeUnderlay struct {
	w         *wire
	addr      netip.AddrPort
	in        chan datagram
	mu        sync.Mutex
	sent      []datagram
	closeOnce sync.Once
	closed    chan struct{}
}

func (w *wire) attach(addr string) *fakeUnderlay {
	u := &fakeUnderlay{w: w, addr: netip.MustParseAddrPort(addr), in: make(chan datagram, 1024), closed: make(chan struct{})}
	w.mu.Lock()
	w.ports[u.addr] = u
	w.mu.Unlock()
	return u
}

func (u *fakeUnderlay) Recv(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (int, error) {
	select {
	case d := <-u.in:
		sizes[0] = copy(bufs[0], d.b)
		srcs[0] = d.src
		return 1, nil
	case <-u.closed:
		return 0, net.ErrClosed
	}
}

func (u *fakeUnderlay) Send(bufs [][]byte, dsts []netip.AddrPort) (int, error) {
	for i, b := range bufs {
		d := datagram{b: append([]byte(nil), b...), src: u.addr, dst: dsts[i]}
		u.mu.Lock()
		u.sent = append(u.sent, d)
		u.mu.Unlock()
		u.w.mu.Lock()
		peer := u.w.ports[dsts[i]]
		u.w.mu.Unlock()
		if peer != nil {
			select {
			case peer.in <- d:
			default: // a full queue drops, as a real network does
			}
		}
	}
	return len(bufs), nil
}

func (u *fakeUnderlay) Sent() []datagram {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]datagram(nil), u.sent...)
}

func (u *fakeUnderlay) BatchSize() int            { return 1 }
func (u *fakeUnderlay) LocalAddr() netip.AddrPort { return u.addr }
func (u *fakeUnderlay) Close() error {
	u.closeOnce.Do(func() { close(u.closed) })
	return nil
}
