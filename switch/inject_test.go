package vswitch

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/tap"
)

// newRigWith is newRig with a network configured as cfg says, on dev
// (tp, or a wrapper of it).
func newRigWith(t *testing.T, w *wire, addr string, cfg NetworkConfig, tp *fakeTAP, dev tap.Device) *rig {
	t.Helper()
	ul := w.attach(addr)
	sw, err := New(Config{Underlay: ul})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sw.Run(context.Background()) }()
	if dev == nil {
		dev = tp
	}
	cfg.TAP = dev
	n, err := sw.AddNetwork(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sw.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &rig{sw: sw, ul: ul, tap: tp, n: n}
}

// tagged puts a VLAN tag (VID 100) into f.
func tagged(f []byte) []byte {
	t := append(bytes.Clone(f[:12]), 0x81, 0x00, 0x00, 100)
	return append(t, f[12:]...)
}

// refusingTAP refuses every write.
type refusingTAP struct{ *fakeTAP }

func (r refusingTAP) Write(bufs [][]byte, offset int) (int, error) { return 0, tap.ErrClosed }
func (r refusingTAP) WriteVec(iov [][]byte) error                  { return tap.ErrClosed }

// exclusiveTAP records writers that overlap: the TAP with offloads
// writes through scratch space of its own and takes one writer at a time.
type exclusiveTAP struct {
	*fakeTAP
	writing, overlaps atomic.Int32
	writes            atomic.Int64
}

func (e *exclusiveTAP) enter() {
	if !e.writing.CompareAndSwap(0, 1) {
		e.overlaps.Add(1)
	}
	e.writes.Add(1)
	time.Sleep(10 * time.Microsecond) // widen the window
}

func (e *exclusiveTAP) leave() { e.writing.Store(0) }

func (e *exclusiveTAP) WriteVec(iov [][]byte) error {
	e.enter()
	defer e.leave()
	return e.fakeTAP.WriteVec(iov)
}

func (e *exclusiveTAP) Write(bufs [][]byte, offset int) (int, error) {
	e.enter()
	defer e.leave()
	return e.fakeTAP.Write(bufs, offset)
}

// Inject and the RX loop writing to the same TAP at once: the TAP never
// has two writers, and every frame arrives whole.
func TestInjectWhileReceiving(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		tp := newFakeTAP("vxlan256")
		tp.vnet = vnet
		dev := &exclusiveTAP{fakeTAP: tp}
		w := newWire()
		a := newRigWith(t, w, "198.18.0.1:4789", NetworkConfig{VNI: 256}, tp, dev)
		peer := w.attach("198.18.0.2:4789")
		injected := frame(macA, macB, encap.EtherTypeIPv4, []byte("injected"))
		received := frame(macA, macB, encap.EtherTypeIPv4, []byte("from the overlay"))
		const each = 200
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := a.n.Inject(injected); err != nil {
					t.Errorf("Inject: %v", err)
					return
				}
			}
		}()
		for range each {
			peer.Send([]SendMsg{{Iov: [][]byte{vxlan(256, received)}, Dst: a.ul.addr}})
		}
		var gotInjected, gotReceived int
		for gotInjected < each || gotReceived < each {
			k := recvK(t, tp)
			switch {
			case bytes.Equal(k.b, injected):
				gotInjected++
			case bytes.Equal(k.b, received):
				gotReceived++
			default:
				t.Fatalf("vnet %v: the TAP got % x", vnet, k.b)
			}
		}
		wg.Wait()
		if n := dev.overlaps.Load(); n != 0 {
			t.Errorf("vnet %v: %d of %d TAP writes overlapped another", vnet, n, dev.writes.Load())
		}
	}
}

// Inject writes a frame as it is (with a zero virtio-net header on a TAP
// with offloads), refuses frames the TAP cannot take, and counts what the
// TAP refuses.
func TestInject(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		tp := newFakeTAP("vxlan256")
		tp.vnet = vnet
		w := newWire()
		a := newRigWith(t, w, "198.18.0.1:4789", NetworkConfig{VNI: 256}, tp, nil)
		f := frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 1450-20))
		buf := bytes.Clone(f)
		if err := a.n.Inject(buf); err != nil {
			t.Fatal(err)
		}
		clear(buf) // the caller may reuse its buffer at once
		k := recvK(t, tp)
		if !bytes.Equal(k.b, f) || k.vh != (tap.VirtioNetHdr{}) {
			t.Errorf("vnet %v: TAP got % x with %+v", vnet, k.b[:20], k.vh)
		}
		tagged := tagged(frame(macA, macB, encap.EtherTypeIPv4, make([]byte, 1450)))
		if err := a.n.Inject(tagged); err != nil {
			t.Errorf("vnet %v: a tagged frame of full MTU: %v", vnet, err)
		}
		recvK(t, tp)
		for _, bad := range [][]byte{nil, f[:13], append(tagged, 0)} {
			if err := a.n.Inject(bad); err != ErrFrameSize {
				t.Errorf("vnet %v: Inject of %d bytes: %v", vnet, len(bad), err)
			}
		}
		if s := a.n.Stats(); s.RXFrames != 0 || len(s.Drops) != 0 {
			t.Errorf("vnet %v: counters %+v after injecting", vnet, s)
		}
	}
	// What the TAP refuses is counted.
	for _, vnet := range []bool{false, true} {
		tp := newFakeTAP("vxlan256")
		tp.vnet = vnet
		a := newRigWith(t, newWire(), "198.18.0.1:4789", NetworkConfig{VNI: 256}, tp, refusingTAP{tp})
		if err := a.n.Inject(frame(macA, macB, encap.EtherTypeIPv4, nil)); err == nil {
			t.Errorf("vnet %v: Inject into a TAP that refuses it succeeded", vnet)
		}
		if d := a.n.Stats().Drops["tap_error"]; d != 1 {
			t.Errorf("vnet %v: tap_error %d, want 1", vnet, d)
		}
	}
}
