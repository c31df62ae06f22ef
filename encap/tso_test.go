package encap_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

func TestParseTCPSuperErrors(t *testing.T) {
	v4 := seg{payload: make([]byte, 3000)}.super(t)
	v6 := seg{v6: true, payload: make([]byte, 3000)}.super(t)
	edit := func(f []byte, fn func(f []byte)) []byte {
		g := bytes.Clone(f)
		fn(g)
		return g
	}
	const ip = encap.EthernetHeaderLen
	for _, tc := range []struct {
		name  string
		frame []byte
		mss   int
		want  error
	}{
		{"empty", nil, 1000, encap.ErrShort},
		{"13 bytes", v4[:13], 1000, encap.ErrShort},
		{"ARP", arpFrame(t, encap.ARPRequest), 1000, encap.ErrUnsupported},
		{"three VLAN tags", seg{tags: 3, payload: make([]byte, 3000)}.super(t), 1000, encap.ErrUnsupported},
		{"VLAN tag cut", edit(v4[:17], func(f []byte) { f[12], f[13] = 0x81, 0x00 }), 1000, encap.ErrShort},
		{"VLAN tag before ARP", seg{tags: 1}.super(t)[:18], 1000, encap.ErrShort},
		{"IPv4 header cut", v4[:ip+19], 1000, encap.ErrShort},
		{"IPv4 version 6", edit(v4, func(f []byte) { f[ip] = 0x65 }), 1000, encap.ErrMalformed},
		{"IPv4 IHL 4", edit(v4, func(f []byte) { f[ip] = 0x44 }), 1000, encap.ErrMalformed},
		{"IPv4 options cut", edit(v4[:ip+22], func(f []byte) { f[ip] = 0x46 }), 1000, encap.ErrShort},
		{"IPv4 UDP", edit(v4, func(f []byte) { f[ip+9] = encap.ProtocolUDP }), 1000, encap.ErrUnsupported},
		{"IPv4 MF", edit(v4, func(f []byte) { f[ip+6] |= 0x20 }), 1000, encap.ErrMalformed},
		{"IPv4 fragment offset", edit(v4, func(f []byte) { f[ip+7] = 1 }), 1000, encap.ErrMalformed},
		{"IPv4 total length short", edit(v4, func(f []byte) { encap.IPv4(f[ip:]).SetTotalLength(1500) }), 1000, encap.ErrMalformed},
		{"IPv4 frame truncated", v4[:len(v4)-1], 1000, encap.ErrMalformed},
		{"IPv4 frame padded", append(bytes.Clone(v4), 0), 1000, encap.ErrMalformed},
		{"IPv4 TCP header cut", edit(v4[:ip+20+19], func(f []byte) { encap.IPv4(f[ip:]).SetTotalLength(39) }), 1000, encap.ErrShort},
		{"TCP data offset 4", edit(v4, func(f []byte) { f[ip+20+12] = 0x40 }), 1000, encap.ErrMalformed},
		{"TCP options cut", edit(v4[:ip+20+20+4], func(f []byte) {
			encap.IPv4(f[ip:]).SetTotalLength(44)
			f[ip+20+12] = 0xf0
		}), 1000, encap.ErrShort},
		{"IPv6 header cut", v6[:ip+39], 1000, encap.ErrShort},
		{"IPv6 version 4", edit(v6, func(f []byte) { f[ip] = 0x40 }), 1000, encap.ErrMalformed},
		{"IPv6 hop-by-hop header", edit(v6, func(f []byte) { f[ip+6] = 0 }), 1000, encap.ErrUnsupported},
		{"IPv6 UDP", edit(v6, func(f []byte) { f[ip+6] = encap.ProtocolUDP }), 1000, encap.ErrUnsupported},
		{"IPv6 payload length", edit(v6, func(f []byte) { encap.IPv6(f[ip:]).SetPayloadLength(100) }), 1000, encap.ErrMalformed},
		{"IPv6 jumbo (length 0)", edit(v6, func(f []byte) { encap.IPv6(f[ip:]).SetPayloadLength(0) }), 1000, encap.ErrMalformed},
		{"IPv6 TCP header cut", edit(v6[:ip+40+10], func(f []byte) { encap.IPv6(f[ip:]).SetPayloadLength(10) }), 1000, encap.ErrShort},
		{"mss 0", v4, 0, encap.ErrMalformed},
		{"mss -1", v6, -1, encap.ErrMalformed},
		{"valid IPv4", v4, 1000, nil},
		{"valid IPv6", v6, 1, nil},
		{"valid 802.1Q IPv4", seg{tags: 1, payload: make([]byte, 3000)}.super(t), 1000, nil},
		{"valid 802.1ad IPv6", seg{tags: 2, v6: true, payload: make([]byte, 3000)}.super(t), 1000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := encap.ParseTCPSuper(tc.frame, tc.mss); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSegments(t *testing.T) {
	for _, tc := range []struct{ payload, mss, want int }{
		{0, 1000, 1}, {1, 1000, 1}, {999, 1000, 1}, {1000, 1000, 1}, {1001, 1000, 2},
		{65000, 1, 65000}, {65000, 1 << 40, 1}, {2796, 1398, 2}, {2797, 1398, 3},
	} {
		f := seg{payload: make([]byte, tc.payload)}.super(t)
		s, err := encap.ParseTCPSuper(f, tc.mss)
		if err != nil {
			t.Fatal(err)
		}
		if s.Segments() != tc.want || s.HeaderLen() != 54 {
			t.Errorf("payload %d mss %d: %d segments, header %d; want %d", tc.payload, tc.mss, s.Segments(), s.HeaderLen(), tc.want)
		}
	}
}

// TestSegment splits superframes built as the kernel builds them and checks
// every segment with gopacket: lengths, IDs, sequence numbers, flags, and
// checksums valid and equal to what gopacket computes.
func TestSegment(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const mss = 1000
	flagSets := []uint8{
		encap.TCPFlagACK,
		encap.TCPFlagACK | encap.TCPFlagPSH,
		encap.TCPFlagACK | encap.TCPFlagPSH | encap.TCPFlagFIN,
		encap.TCPFlagACK | encap.TCPFlagCWR | encap.TCPFlagECE,
		encap.TCPFlagACK | encap.TCPFlagCWR | encap.TCPFlagPSH | encap.TCPFlagFIN,
	}
	// 65535-40-32: the largest payload of an IPv6 superframe with TCP options.
	sizes := []int{0, 1, mss - 1, mss, mss + 1, 5 * mss, 5*mss + 7, 65535 - 40 - 32}
	for _, v6 := range []bool{false, true} {
		for _, ipOpts := range []bool{false, true} {
			if v6 && ipOpts {
				continue
			}
			for _, tcpOpts := range []bool{false, true} {
				for _, n := range sizes {
					for _, flags := range flagSets {
						name := fmt.Sprintf("v6=%v/ipopts=%v/tcpopts=%v/len=%d/flags=%#x", v6, ipOpts, tcpOpts, n, flags)
						s := seg{
							v6: v6, ipOpts: ipOpts, tcpOpts: tcpOpts, tsVal: 99,
							id: 0xfffd, seq: 0xffffffff - 2500, ack: 12345, flags: flags,
							payload: randBytes(r, n),
						}
						t.Run(name, func(t *testing.T) { checkSplit(t, s, mss) })
						if tcpOpts && flags == encap.TCPFlagACK {
							// A sender on a VLAN device behind the bridge.
							for tags := 1; tags <= 2; tags++ {
								s.tags = tags
								t.Run(fmt.Sprintf("%s/tags=%d", name, tags), func(t *testing.T) { checkSplit(t, s, mss) })
							}
						}
					}
				}
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func checkSplit(t *testing.T, s seg, mss int) {
	frame := s.super(t)
	orig := bytes.Clone(frame)
	sup, err := encap.ParseTCPSuper(frame, mss)
	if err != nil {
		t.Fatal(err)
	}
	want := max(1, (len(s.payload)+mss-1)/mss)
	if sup.Segments() != want {
		t.Fatalf("Segments() = %d, want %d", sup.Segments(), want)
	}
	hl := sup.HeaderLen()
	if hl != tcpOffset(frame)+encap.TCP(frame[tcpOffset(frame):]).DataOffset() {
		t.Fatalf("HeaderLen() = %d", hl)
	}
	var got []byte
	for i := range sup.Segments() {
		hdr := bytes.Repeat([]byte{0xee}, hl+3) // stale bytes must not leak
		payload := sup.Segment(i, frame, hdr)
		if !bytes.Equal(hdr[hl:], []byte{0xee, 0xee, 0xee}) {
			t.Fatalf("segment %d: wrote past HeaderLen", i)
		}
		if len(payload) > 0 && &payload[0] != &frame[hl+i*mss] {
			t.Fatalf("segment %d: payload is not a subslice of the frame at its offset", i)
		}
		wantLen := min(mss, len(s.payload)-i*mss)
		if len(payload) != wantLen {
			t.Fatalf("segment %d: payload %d bytes, want %d", i, len(payload), wantLen)
		}
		got = append(got, payload...)

		f := append(bytes.Clone(hdr[:hl]), payload...)
		ip, tcp := checkWire(t, f)
		if v4, ok := ip.(*layers.IPv4); ok {
			if v4.Id != s.id+uint16(i) || int(v4.Length) != len(f)-l3Offset(f) || v4.Flags&layers.IPv4DontFragment == 0 {
				t.Errorf("segment %d: IPv4 id %#x length %d flags %v", i, v4.Id, v4.Length, v4.Flags)
			}
		} else if v6 := ip.(*layers.IPv6); int(v6.Length) != len(f)-l3Offset(f)-encap.IPv6HeaderLen {
			t.Errorf("segment %d: IPv6 payload length %d", i, v6.Length)
		}
		if tcp.Seq != s.seq+uint32(i*mss) || tcp.Ack != s.ack {
			t.Errorf("segment %d: seq %d ack %d", i, tcp.Seq, tcp.Ack)
		}
		last := i == sup.Segments()-1
		wantFlags := s.flags
		if i > 0 {
			wantFlags &^= encap.TCPFlagCWR
		}
		if !last {
			wantFlags &^= encap.TCPFlagFIN | encap.TCPFlagPSH
		}
		if f := encap.TCP(f[tcpOffset(f):]).Flags(); f != wantFlags {
			t.Errorf("segment %d: flags %#x, want %#x", i, f, wantFlags)
		}
		if l3 := l3Offset(orig); l3Offset(f) != l3 || !bytes.Equal(f[:l3], orig[:l3]) {
			t.Errorf("segment %d: Ethernet header or VLAN tags changed", i)
		}
		if len(tcp.Options) != 3*b2i(s.tcpOpts) {
			t.Errorf("segment %d: TCP options %v", i, tcp.Options)
		}
	}
	if !bytes.Equal(got, s.payload) {
		t.Fatal("reassembled payload differs")
	}
	if !bytes.Equal(frame, orig) {
		t.Fatal("Segment modified the superframe")
	}
}

func TestSegmentPanics(t *testing.T) {
	frame := seg{payload: make([]byte, 2500)}.super(t)
	s, err := encap.ParseTCPSuper(frame, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]func(){
		"i=-1":       func() { s.Segment(-1, frame, make([]byte, 100)) },
		"i=Segments": func() { s.Segment(s.Segments(), frame, make([]byte, 100)) },
		"short hdr":  func() { s.Segment(0, frame, make([]byte, s.HeaderLen()-1)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestTCPSuperSetMSS(t *testing.T) {
	payload := make([]byte, 5000)
	f := seg{payload: payload}.super(t)
	s, err := encap.ParseTCPSuper(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.SetMSS(0) == nil || s.Segments() != 5000 {
		t.Fatalf("SetMSS(0) accepted, or changed the MSS: %d segments", s.Segments())
	}
	if err := s.SetMSS(1400); err != nil || s.Segments() != 4 {
		t.Fatalf("SetMSS(1400): %v, %d segments, want 4", err, s.Segments())
	}
	hdr := make([]byte, s.HeaderLen())
	var got int
	for i := range s.Segments() {
		got += len(s.Segment(i, f, hdr))
	}
	if got != len(payload) {
		t.Errorf("segments carry %d bytes, want %d", got, len(payload))
	}
}
