package vswitch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	macA  = fib.MAC{0x02, 0x42, 10, 0, 0, 2}
	macB  = fib.MAC{0x02, 0x42, 10, 0, 0, 3}
	bcast = fib.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func frame(dst, src fib.MAC, etherType uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return append(f, payload...)
}

func arpFrame(src fib.MAC, op uint16, sender, target [4]byte) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:], 1)
	binary.BigEndian.PutUint16(p[2:], 0x0800)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], op)
	copy(p[8:14], src[:])
	copy(p[14:18], sender[:])
	copy(p[24:28], target[:])
	dst := bcast
	return frame(dst, src, encap.EtherTypeARP, p)
}

func vxlan(vni uint32, f []byte) []byte {
	b := make([]byte, 8+len(f))
	encap.PutVXLAN(b, vni)
	copy(b[8:], f)
	return b
}

// rig is a switch on a fake wire with one network and a TAP.
type rig struct {
	sw  *Switch
	ul  *fakeUnderlay
	tap *fakeTAP
	n   *Network
}

func newRig(t *testing.T, w *wire, addr string, vni uint32, gw netip.Addr) *rig {
	t.Helper()
	ul := w.attach(addr)
	sw, err := New(Config{Underlay: ul, ExpireInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sw.Run(context.Background()) }()
	tp := newFakeTAP("vxlan" + addr)
	n, err := sw.AddNetwork(NetworkConfig{VNI: vni, TAP: tp, Gateway: gw})
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

func recvFrame(t *testing.T, tp *fakeTAP) []byte {
	t.Helper()
	return recvK(t, tp).b
}

func recvK(t *testing.T, tp *fakeTAP) kframe {
	t.Helper()
	select {
	case f := <-tp.toKernel:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame reached the TAP")
		return kframe{}
	}
}

func noFrame(t *testing.T, tp *fakeTAP) {
	t.Helper()
	select {
	case f := <-tp.toKernel:
		t.Fatalf("unexpected frame reached the TAP: % x", f.b)
	case <-time.After(50 * time.Millisecond):
	}
}

// waitFor polls a condition on counters; the datapath runs in its own
// goroutines.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFloodLearnUnicast(t *testing.T) {
	w := newWire()
	a := newRig(t, w, "198.18.0.1:4789", 256, netip.Addr{})
	b := newRig(t, w, "198.18.0.2:4789", 256, netip.Addr{})
	c := newRig(t, w, "198.18.0.3:4789", 256, netip.Addr{})
	for _, r := range []*rig{a, b, c} {
		for _, p := range []string{"198.18.0.1", "198.18.0.2", "198.18.0.3"} {
			if r.ul.addr.Addr().String() != p {
				r.n.FIB().AddPeer(netip.MustParseAddr(p))
			}
		}
	}

	// A broadcast from A reaches B and C (head-end replication).
	bc := frame(bcast, macA, 0x0800, []byte("hello everyone"))
	a.tap.fromKernel <- kframe{b: bc}
	if got := recvFrame(t, b.tap); !bytes.Equal(got, bc) {
		t.Fatalf("B got % x", got)
	}
	if got := recvFrame(t, c.tap); !bytes.Equal(got, bc) {
		t.Fatalf("C got % x", got)
	}
	// B and C learned macA behind A.
	for _, r := range []*rig{b, c} {
		waitFor(t, "learning", func() bool {
			v, ok := r.n.FIB().Lookup(macA)
			return ok && v == a.ul.addr.Addr()
		})
	}
	// B answers unicast: only A gets it.
	uc := frame(macA, macB, 0x0800, []byte("hello A"))
	b.tap.fromKernel <- kframe{b: uc}
	if got := recvFrame(t, a.tap); !bytes.Equal(got, uc) {
		t.Fatalf("A got % x", got)
	}
	noFrame(t, c.tap)
	// Counters are added when a batch is done, after the frame left.
	// A batch's counters are added one by one, TXDatagrams last (and
	// RXBytes after RXFrames).
	waitFor(t, "counters", func() bool {
		return b.n.Stats().TXDatagrams == 1 && a.n.Stats().RXBytes > 0 && a.n.Stats().TXDatagrams == 2
	})
	s := b.n.Stats()
	if s.TXFrames != 1 || s.TXFlooded != 0 || s.TXDatagrams != 1 {
		t.Errorf("B counters %+v: want 1 unicast frame", s)
	}
	s = a.n.Stats()
	if s.TXFlooded != 1 || s.TXDatagrams != 2 || s.RXFrames != 1 {
		t.Errorf("A counters %+v: want 1 flooded frame as 2 datagrams, 1 received", s)
	}
	// Received frames never go back into the overlay (split horizon).
	for _, r := range []*rig{b, c} {
		for _, d := range r.ul.Sent() {
			if bytes.Equal(d.b[8:], bc) {
				t.Errorf("%v re-sent A's broadcast to %v", r.ul.addr, d.dst)
			}
		}
	}
	// Wire format: flags 0x08, reserved zero, VNI, destination port.
	for _, d := range a.ul.Sent() {
		if d.b[0] != 0x08 || d.b[1]|d.b[2]|d.b[3]|d.b[7] != 0 || binary.BigEndian.Uint32(d.b[4:])>>8 != 256 {
			t.Errorf("bad VXLAN header % x", d.b[:8])
		}
		if d.dst.Port() != DefaultPort {
			t.Errorf("sent to port %d", d.dst.Port())
		}
	}
}

func TestStaticBeatsLearnedOnTheWire(t *testing.T) {
	w := newWire()
	a := newRig(t, w, "198.18.0.1:4789", 256, netip.Addr{})
	b := newRig(t, w, "198.18.0.2:4789", 256, netip.Addr{})
	c := newRig(t, w, "198.18.0.3:4789", 256, netip.Addr{})
	if err := a.n.FIB().Add(macB, b.ul.addr.Addr(), fib.Static); err != nil {
		t.Fatal(err)
	}
	// C claims macB; A must keep sending to B.
	c.n.FIB().AddPeer(a.ul.addr.Addr())
	c.tap.fromKernel <- kframe{b: frame(macA, macB, 0x0800, []byte("spoof"))}
	recvFrame(t, a.tap)
	a.tap.fromKernel <- kframe{b: frame(macB, macA, 0x0800, []byte("to B"))}
	recvFrame(t, b.tap)
	noFrame(t, c.tap)
	if s := a.n.FIB().Stats(); s.Shadowed != 1 {
		t.Errorf("shadowed learns %d, want 1", s.Shadowed)
	}
	if s := a.n.Stats(); s.TXFlooded != 0 {
		t.Errorf("flooded %d with a static entry", s.TXFlooded)
	}
}

func TestDrops(t *testing.T) {
	w := newWire()
	a := newRig(t, w, "198.18.0.1:4789", 256, netip.Addr{})
	raw := w.attach("198.18.0.9:4789")
	dst := []netip.AddrPort{a.ul.addr}
	good := frame(macA, macB, 0x0800, []byte("x"))
	send := func(b []byte) { raw.Send([]SendMsg{{Iov: [][]byte{b}, Dst: dst[0]}}) }

	badFlags := vxlan(256, good)
	badFlags[0] = 0x0c
	reserved := vxlan(256, good)
	reserved[7] = 1
	send(badFlags)
	send(reserved)
	send([]byte{0x08, 0, 0})
	send(vxlan(999, good))
	send(vxlan(256, good[:10]))
	send(vxlan(256, frame(macA, bcast, 0x0800, nil)))
	waitFor(t, "switch drops", func() bool {
		d := a.sw.Stats().Drops
		return d["bad_flags"] == 1 && d["reserved_bits"] == 1 && d["short"] == 1 && d["unknown_vni"] == 1
	})
	waitFor(t, "network drops", func() bool {
		d := a.n.Stats().Drops
		return d["short"] == 1 && d["bad_src_mac"] == 1
	})
	noFrame(t, a.tap)

	// No peers: a broadcast has nowhere to go.
	a.tap.fromKernel <- kframe{b: frame(bcast, macA, 0x0800, nil)}
	waitFor(t, "no_peers drop", func() bool { return a.n.Stats().Drops["no_peers"] == 1 })

	// The valid one still goes through and is learned from its sender.
	send(vxlan(256, good))
	recvFrame(t, a.tap)
	if v, ok := a.n.FIB().Lookup(macB); !ok || v != raw.addr.Addr() {
		t.Errorf("learned %v %v", v, ok)
	}
}

func TestGatewayStaysLocal(t *testing.T) {
	gw := netip.MustParseAddr("10.0.0.1")
	w := newWire()
	a := newRig(t, w, "198.18.0.1:4789", 256, gw)
	b := newRig(t, w, "198.18.0.2:4789", 256, gw)
	a.n.FIB().AddPeer(b.ul.addr.Addr())
	b.n.FIB().AddPeer(a.ul.addr.Addr())
	g := gw.As4()
	other := [4]byte{10, 0, 0, 3}
	me := [4]byte{10, 0, 0, 2}
	// Who has the gateway? Answered by the local bridge only.
	a.tap.fromKernel <- kframe{b: arpFrame(macA, encap.ARPRequest, me, g)}
	// The bridge's own ARP (sender = gateway).
	a.tap.fromKernel <- kframe{b: arpFrame(macB, encap.ARPRequest, g, other)}
	// IPv4 from the gateway (an IGMP report, say).
	ip := make([]byte, 20)
	ip[0] = 0x45
	copy(ip[12:16], g[:])
	copy(ip[16:20], []byte{224, 0, 0, 22})
	a.tap.fromKernel <- kframe{b: frame(bcast, macB, encap.EtherTypeIPv4, ip)}
	// An ordinary ARP request goes through.
	ok := arpFrame(macA, encap.ARPRequest, me, other)
	a.tap.fromKernel <- kframe{b: ok}
	if got := recvFrame(t, b.tap); !bytes.Equal(got, ok) {
		t.Fatalf("B got % x", got)
	}
	noFrame(t, b.tap)
	if d := a.n.Stats().Drops["gateway_local"]; d != 3 {
		t.Errorf("gateway_local drops %d, want 3", d)
	}
	// And on receive: a peer that leaks its gateway's ARP is filtered.
	raw := w.attach("198.18.0.9:4789")
	raw.Send([]SendMsg{{Iov: [][]byte{vxlan(256, arpFrame(macB, encap.ARPReply, g, me))}, Dst: a.ul.addr}})
	waitFor(t, "rx gateway drop", func() bool { return a.n.Stats().Drops["gateway_local"] == 4 })
	noFrame(t, a.tap)
}

func TestNetworksAndClose(t *testing.T) {
	w := newWire()
	ul := w.attach("198.18.0.1:4789")
	sw, err := New(Config{Underlay: ul})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sw.Run(context.Background()) }()
	t1, t2 := newFakeTAP("a"), newFakeTAP("b")
	if _, err := sw.AddNetwork(NetworkConfig{VNI: 1, TAP: t1}); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.AddNetwork(NetworkConfig{VNI: 1, TAP: t2}); !errors.Is(err, ErrVNIInUse) {
		t.Errorf("duplicate VNI: %v", err)
	}
	if _, err := sw.AddNetwork(NetworkConfig{VNI: 1 << 24, TAP: t2}); !errors.Is(err, ErrBadVNI) {
		t.Errorf("VNI 2^24: %v", err)
	}
	if err := sw.RemoveNetwork(7); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("remove unknown: %v", err)
	}
	if err := sw.RemoveNetwork(1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-t1.closed:
	default:
		t.Error("RemoveNetwork left the TAP open")
	}
	if _, err := sw.AddNetwork(NetworkConfig{VNI: 1, TAP: t2}); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run after Close: %v", err)
	}
	if _, err := sw.AddNetwork(NetworkConfig{VNI: 2, TAP: newFakeTAP("c")}); !errors.Is(err, ErrClosed) {
		t.Errorf("AddNetwork after Close: %v", err)
	}
}

func TestAgingSweep(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	w := newWire()
	ul := w.attach("198.18.0.1:4789")
	sw, _ := New(Config{Underlay: ul, Clock: clk, ExpireInterval: time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- sw.Run(context.Background()) }()
	defer func() { sw.Close(); <-done }()
	tp := newFakeTAP("a")
	n, _ := sw.AddNetwork(NetworkConfig{VNI: 5, TAP: tp, Aging: 10 * time.Second})
	raw := w.attach("198.18.0.2:4789")
	raw.Send([]SendMsg{{Iov: [][]byte{vxlan(5, frame(macA, macB, 0x0800, nil))}, Dst: ul.addr}})
	recvFrame(t, tp)
	if _, ok := n.FIB().Get(macB); !ok {
		t.Fatal("not learned")
	}
	clk.Advance(11 * time.Second)
	waitFor(t, "sweeper to expire the entry", func() bool { _, ok := n.FIB().Get(macB); return !ok })
}
