package vswitch

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
)

// FuzzRXDatagram is the RX loop's entry point (rxLoop.batch, which walks
// a receive slot datagram by datagram) on any bytes, over a switch with
// two networks, one on a TAP with offloads (VNI 256) and one without
// (VNI 257), with and without PeersOnly: it never panics and accounts
// for every datagram exactly once (see SwitchCounters), with the slot
// as one datagram or as a GRO buffer of segSize-byte datagrams.
func FuzzRXDatagram(f *testing.F) {
	good := tcpFrame(f, []byte("hello"))
	big := tcpFrame(f, bytes.Repeat([]byte("b"), 3000))
	seeds := [][]byte{
		vxlan(256, good),
		vxlan(257, good),
		vxlan(256, partial(bytes.Clone(good))),
		vxlan(257, partial(bytes.Clone(big))),
		vxlan(256, big),
		vxlan(256, arpFrame(macB, encap.ARPRequest, [4]byte{10, 0, 0, 3}, [4]byte{10, 0, 0, 9})),
		vxlan(256, frame(macA, bcast, 0x0800, nil)),
		vxlan(999, good),
		{0x08, 0, 0, 1, 0, 1, 0, 0},
		{},
	}
	for _, s := range seeds {
		f.Add(s, uint16(0), uint8(0), false)
	}
	gro := append(vxlan(256, good), vxlan(256, good)...)
	f.Add(gro, uint16(len(gro)/2), uint8(encap.ECNCE), false)
	f.Add(gro, uint16(7), uint8(0), true)
	f.Add(vxlan(257, good), uint16(0), uint8(2), true)

	sw, n, _ := newDiscardNet(f, NetworkConfig{VNI: 256}, true)
	tp := &discardTAP{fakeTAP: *newFakeTAP("e")}
	m, err := sw.AddNetwork(NetworkConfig{VNI: 257, TAP: tp})
	if err != nil {
		f.Fatal(err)
	}
	n.fib.Add(macA, netip.MustParseAddr("198.18.0.9"), fib.Static)
	m.fib.AddPeer(netip.MustParseAddr("198.18.0.2"))
	rx := newRxLoop(sw)
	f.Fuzz(func(t *testing.T, d []byte, segSize uint16, flags uint8, peersOnly bool) {
		if len(d) > len(rx.msgs[0].Buf) {
			return
		}
		sw.peersOnly = peersOnly
		before, acc0 := accounting(sw)
		msg := &rx.msgs[0]
		msg.N = copy(msg.Buf, d)
		msg.SegSize = int(segSize)
		msg.ECN = flags & 3
		msg.Src = netip.MustParseAddrPort("198.18.0.2:50000")
		if flags&4 != 0 {
			msg.Src = netip.MustParseAddrPort("198.18.0.66:50000")
		}
		rx.batch(1)
		after, acc := accounting(sw)
		want := uint64(1)
		if segSize > 0 && len(d) > 0 {
			want = uint64((len(d) + int(segSize) - 1) / int(segSize))
		}
		if after-before != want || acc-acc0 != want {
			t.Fatalf("%d bytes in segments of %d: %d datagrams received, %d accounted for, want %d", len(d), segSize, after-before, acc-acc0, want)
		}
	})
}
