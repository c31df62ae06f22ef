package vswitch

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
)

// withTOS returns a copy of an untagged IPv4 frame with the TOS byte set
// and the header checksum fixed.
func withTOS(f []byte, tos uint8) []byte {
	f = bytes.Clone(f)
	f[15] = tos
	encap.IPv4(f[14:]).UpdateChecksum()
	return f
}

// The outer ECN field on TX is the inner one, CE sent as ECT(0), for
// plain frames and every segment of a superframe; small frames of one
// flow are grouped into one message only while their outer ECN fields
// agree.
func TestTXCopiesECN(t *testing.T) {
	w := newWire()
	a := newFastRig(t, w, "198.18.0.1:4789")
	b := w.attach("198.18.0.2:4789")
	a.n.FIB().Add(macA, b.addr.Addr(), fib.Static)
	const dscp = 0x28
	plain := tcpFrame(t, []byte("data"))
	super := superframe(t, bytes.Repeat([]byte("s"), 3*testMSS))
	super.b = withTOS(super.b, dscp|encap.ECNECT0)

	// One flow: Not-ECT, ECT(1), then ECT(0), CE and ECT(0), which all
	// go out as ECT(0), so the last three make one message.
	inner := []uint8{encap.ECNNotECT, encap.ECNECT1, encap.ECNECT0, encap.ECNCE, encap.ECNECT0}
	frames := []kframe{}
	var want []uint8
	for _, e := range inner {
		frames = append(frames, kframe{b: withTOS(plain, dscp|e)})
		want = append(want, encap.EncapECN(e))
	}
	frames = append(frames, super)
	want = append(want, encap.ECNECT0, encap.ECNECT0, encap.ECNECT0)

	tx := newTxBuffers(len(frames))
	tx.setNetwork(a.n)
	for i, f := range frames {
		a.tap.put(tx.bufs, tx.sizes, i, txHeadroom, f)
	}
	tx.batch(len(frames))
	sent := a.ul.Sent()
	if len(sent) != len(want) {
		t.Fatalf("%d datagrams, want %d", len(sent), len(want))
	}
	for i, d := range sent {
		if d.ecn != want[i] {
			t.Errorf("datagram %d: outer ECN %d, want %d", i, d.ecn, want[i])
		}
	}
	var per []int
	for _, m := range a.ul.Sends() {
		per = append(per, m.dgrams)
	}
	if !slices.Equal(per, []int{1, 1, 3, 3}) {
		t.Errorf("datagrams per message %v, want [1 1 3 3]: %v", per, a.ul.Sends())
	}
}

// On RX, an outer CE marks an ECN-capable inner packet CE (its IPv4
// header checksum kept valid) and drops a Not-ECT one, counted as
// ce_not_ect; frames that are not IP, and any other outer field, pass as
// they are; an outer ECT(1) turns an inner ECT(0) into ECT(1). With and
// without offloads.
func TestRXAppliesECN(t *testing.T) {
	for _, fast := range []bool{false, true} {
		name := "offload=off"
		if fast {
			name = "offload=on"
		}
		t.Run(name, func(t *testing.T) {
			w := newWire()
			var a *rig
			if fast {
				a = newFastRig(t, w, "198.18.0.1:4789")
			} else {
				a = newRig(t, w, "198.18.0.1:4789", 256, netip.Addr{})
			}
			raw := w.attach("198.18.0.9:4789")
			send := func(f []byte, outer uint8) {
				t.Helper()
				raw.Send([]SendMsg{{Iov: [][]byte{vxlan(256, f)}, Dst: a.ul.addr, ECN: outer}})
			}
			const dscp = 0x28
			plain := tcpFrame(t, []byte("data"))

			send(withTOS(plain, dscp|encap.ECNECT0), encap.ECNCE)
			got := recvFrame(t, a.tap)
			if got[15] != dscp|encap.ECNCE || !encap.IPv4(got[14:]).ChecksumValid() {
				t.Errorf("ECT(0) under an outer CE: TOS %#02x (checksum valid %v), want %#02x", got[15], encap.IPv4(got[14:]).ChecksumValid(), dscp|encap.ECNCE)
			}
			validTCP(t, got)

			send(withTOS(plain, dscp), encap.ECNCE)
			waitFor(t, "ce_not_ect drop", func() bool { return a.n.Stats().Drops["ce_not_ect"] == 1 })
			noFrame(t, a.tap)

			arp := arpFrame(macB, 1, [4]byte{10, 0, 0, 3}, [4]byte{10, 0, 0, 2})
			send(arp, encap.ECNCE)
			if got := recvFrame(t, a.tap); !bytes.Equal(got, arp) {
				t.Errorf("ARP under an outer CE changed: % x", got)
			}
			// An outer ECT(1) turns ECT(0) into ECT(1) (RFC 6040, as
			// Linux since 5.8).
			send(withTOS(plain, dscp|encap.ECNECT0), encap.ECNECT1)
			if got := recvFrame(t, a.tap); got[15] != dscp|encap.ECNECT1 || !encap.IPv4(got[14:]).ChecksumValid() {
				t.Errorf("ECT(0) under an outer ECT(1): TOS %#02x, want %#02x", got[15], dscp|encap.ECNECT1)
			}
			for _, outer := range []uint8{encap.ECNNotECT, encap.ECNECT0, encap.ECNECT1} {
				f := withTOS(plain, dscp)
				send(f, outer)
				if got := recvFrame(t, a.tap); !bytes.Equal(got, f) {
					t.Errorf("outer %d changed a Not-ECT frame: TOS %#02x", outer, got[15])
				}
			}
			if d := a.n.Stats().Drops; len(d) != 1 {
				t.Errorf("drops %v, want ce_not_ect only", d)
			}
		})
	}
}

// A run of segments of one flow in which the underlay marked one CE: the
// marked segment is never coalesced with the others (its TOS differs), so
// the mark reaches the receiver on exactly that segment.
func TestRXCoalescingKeepsCE(t *testing.T) {
	w := newWire()
	a := newFastRig(t, w, "198.18.0.1:4789")
	rx := newRxLoop(a.sw)
	// Five segments of one flow, ECT(0), as a sender's TSO cuts them.
	sf := superframe(t, bytes.Repeat([]byte("x"), 5*testMSS))
	sf.b = withTOS(sf.b, encap.ECNECT0)
	sup, err := encap.ParseTCPSuper(sf.b, testMSS)
	if err != nil {
		t.Fatal(err)
	}
	// Three receive slots as UDP GRO would fill them: segments 0-1 (outer
	// ECT(0)), 2 (outer CE), 3-4 (outer ECT(0)).
	slots := []struct {
		first, n int
		ecn      uint8
	}{{0, 2, encap.ECNECT0}, {2, 1, encap.ECNCE}, {3, 2, encap.ECNECT0}}
	for i, sl := range slots {
		buf, segLen := groSlot(sl.n, sup.HeaderLen(), func(j int, h []byte) []byte { return sup.Segment(sl.first+j, sf.b, h) })
		m := &rx.msgs[i]
		m.N, m.SegSize, m.ECN, m.Src = copy(m.Buf, buf), 0, sl.ecn, netip.MustParseAddrPort("198.18.0.9:4789")
		if sl.n > 1 {
			m.SegSize = segLen
		}
	}
	rx.batch(len(slots))
	for i, want := range []struct {
		tos  uint8
		segs int
	}{{encap.ECNECT0, 2}, {encap.ECNCE, 1}, {encap.ECNECT0, 2}} {
		k := recvK(t, a.tap)
		if k.b[15] != want.tos || !encap.IPv4(k.b[14:]).ChecksumValid() {
			t.Errorf("frame %d: TOS %#02x (header checksum valid %v), want %#02x", i, k.b[15], encap.IPv4(k.b[14:]).ChecksumValid(), want.tos)
		}
		if got := (len(k.b) - 54) / testMSS; got != want.segs {
			t.Errorf("frame %d: %d segments, want %d", i, got, want.segs)
		}
	}
}
