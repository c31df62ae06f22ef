package encap_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
)

// split segments a superframe into separate frames, as a peer's TSO would
// put them on the wire.
func split(tb testing.TB, super []byte, mss int) [][]byte {
	tb.Helper()
	s, err := encap.ParseTCPSuper(super, mss)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for i := range s.Segments() {
		hdr := make([]byte, s.HeaderLen())
		p := s.Segment(i, super, hdr)
		out = append(out, append(hdr, p...))
	}
	return out
}

// coalesced is one write to the TAP: a frame with or without GSO.
type coalesced struct {
	frame []byte // first frame (headers rewritten) + the other payloads
	gso   encap.GSO
	ok    bool // written with GSO
	n     int  // segments
}

// coalesce runs the receive loop of the package doc over frames.
func coalesce(frames [][]byte) []coalesced {
	var (
		out  []coalesced
		run  encap.TCPRun
		iov  [][]byte
		segs int
	)
	flush := func() {
		if len(iov) == 0 {
			return
		}
		segs = run.Len()
		g, ok := run.Finish()
		out = append(out, coalesced{frame: bytes.Join(iov, nil), gso: g, ok: ok, n: max(segs, 1)})
		iov = iov[:0]
	}
	for _, f := range frames {
		s, ok := encap.ParseTCPSeg(f)
		if ok && run.Append(f, s) {
			iov = append(iov, f[s.HeaderLen():])
			continue
		}
		flush()
		if ok {
			run.Start(f, s)
		}
		iov = append(iov, f)
		if !ok {
			flush()
		}
	}
	flush()
	return out
}

// TestCoalesceRoundTrip: segments made by Segment coalesce back into the
// original superframe, and a coalesced superframe splits back into the
// original segments.
func TestCoalesceRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, v6 := range []bool{false, true} {
		for _, tcpOpts := range []bool{false, true} {
			for _, tc := range []struct{ mss, n int }{
				{1000, 1000}, {1000, 1500}, {1000, 3000}, {1000, 3007}, {1398, 10*1398 + 1},
				{1000, 64 * 1000}, {500, 70*500 + 5}, {100, 200*100 - 1},
			} {
				for _, flags := range []uint8{
					encap.TCPFlagACK,
					encap.TCPFlagACK | encap.TCPFlagPSH,
					encap.TCPFlagACK | encap.TCPFlagCWR | encap.TCPFlagECE,
					encap.TCPFlagACK | encap.TCPFlagCWR | encap.TCPFlagPSH,
				} {
					s := seg{v6: v6, tcpOpts: tcpOpts, tsVal: 7, id: 0xfff0, seq: 0xfffff000, ack: 99, flags: flags, payload: randBytes(r, tc.n)}
					name := fmt.Sprintf("v6=%v/opts=%v/mss=%d/len=%d/flags=%#x", v6, tcpOpts, tc.mss, tc.n, flags)
					t.Run(name, func(t *testing.T) { checkRoundTrip(t, s, tc.mss) })
				}
			}
		}
	}
}

func checkRoundTrip(t *testing.T, s seg, mss int) {
	super := s.super(t)
	frames := split(t, super, mss)
	orig := make([][]byte, len(frames))
	for i, f := range frames {
		orig[i] = bytes.Clone(f) // Finish rewrites first frames in place
	}
	out := coalesce(frames)
	wantRuns := (len(frames) + encap.MaxRunSegments - 1) / encap.MaxRunSegments
	if len(out) != wantRuns {
		t.Fatalf("%d frames coalesced into %d writes, want %d", len(frames), len(out), wantRuns)
	}
	next := 0
	for k, c := range out {
		in := orig[next : next+c.n]
		next += c.n
		if c.n != min(encap.MaxRunSegments, len(frames)-k*encap.MaxRunSegments) {
			t.Fatalf("write %d holds %d segments", k, c.n)
		}
		if !c.ok {
			if c.n != 1 || !bytes.Equal(c.frame, in[0]) {
				t.Fatalf("write %d without GSO: %d segments, frame changed %v", k, c.n, !bytes.Equal(c.frame, in[0]))
			}
			continue
		}
		hl := tcpOffset(super) + encap.TCP(super[tcpOffset(super):]).DataOffset()
		g := c.gso
		want := encap.GSO{HdrLen: hl, Size: mss, CsumStart: tcpOffset(super), CsumOffset: encap.TCPChecksumOffset, V6: s.v6,
			ECN: k == 0 && s.flags&encap.TCPFlagCWR != 0}
		if g != want {
			t.Fatalf("write %d: GSO %+v, want %+v", k, g, want)
		}
		// Split again: the very segments that went in come out.
		again := split(t, c.frame, g.Size)
		if len(again) != len(in) {
			t.Fatalf("write %d: re-split into %d segments, want %d", k, len(again), len(in))
		}
		for i := range in {
			if !bytes.Equal(again[i], in[i]) {
				t.Fatalf("write %d segment %d differs after coalesce+split", k, i)
			}
		}
		// Complete the checksum as the kernel would: valid on the wire.
		done := bytes.Clone(c.frame)
		if err := encap.CompleteChecksum(done, g.CsumStart, g.CsumOffset); err != nil {
			t.Fatal(err)
		}
		checkWire(t, done)
	}
	if len(out) == 1 && out[0].ok {
		// One write: exactly the original superframe, but with a correct
		// IPv4 header checksum where the kernel left a stale one.
		want := bytes.Clone(super)
		if !s.v6 {
			encap.IPv4(want[encap.EthernetHeaderLen:]).UpdateChecksum()
		}
		if !bytes.Equal(out[0].frame, want) {
			t.Fatalf("coalesced superframe differs from the original:\n got %x\nwant %x", out[0].frame[:80], want[:80])
		}
	}
}

func TestFinishFewerThanTwo(t *testing.T) {
	var r encap.TCPRun
	if _, ok := r.Finish(); ok || r.Len() != 0 {
		t.Fatal("empty run finished with GSO")
	}
	f := seg{payload: []byte("hello")}.frame(t)
	orig := bytes.Clone(f)
	s, ok := encap.ParseTCPSeg(f)
	if !ok {
		t.Fatal("segment refused")
	}
	r.Start(f, s)
	if r.Len() != 1 {
		t.Fatal("Len after Start")
	}
	if _, ok := r.Finish(); ok || !bytes.Equal(f, orig) || r.Len() != 0 {
		t.Fatal("single-segment run rewrote the frame or stayed non-empty")
	}
	if r.Append(seg{id: 1, seq: 5, payload: []byte("world")}.frame(t), s) {
		t.Fatal("Append to a finished run")
	}
}

func TestParseTCPSeg(t *testing.T) {
	payload := bytes.Repeat([]byte{0xab}, 100)
	edit := func(s seg, fn func(f []byte)) []byte {
		f := s.frame(t)
		fn(f)
		return refix(f)
	}
	const ip = encap.EthernetHeaderLen
	for _, tc := range []struct {
		name   string
		frame  []byte
		ok     bool
		hdrLen int
	}{
		{"IPv4", seg{payload: payload}.frame(t), true, 54},
		{"IPv4 PSH ECE CWR", seg{flags: encap.TCPFlagACK | encap.TCPFlagPSH | encap.TCPFlagECE | encap.TCPFlagCWR, payload: payload}.frame(t), true, 54},
		{"IPv4 TCP options", seg{tcpOpts: true, payload: payload}.frame(t), true, 66},
		{"IPv6", seg{v6: true, payload: payload}.frame(t), true, 74},
		{"IPv6 TCP options", seg{v6: true, tcpOpts: true, payload: payload}.frame(t), true, 86},
		{"one byte", seg{payload: []byte{1}}.frame(t), true, 54},
		{"empty", nil, false, 0},
		{"Ethernet only", seg{payload: payload}.frame(t)[:ip], false, 0},
		{"ARP", arpFrame(t, encap.ARPRequest), false, 0},
		{"VLAN", func() []byte { f := seg{payload: payload}.frame(t); f[12] = 0x81; f[13] = 0; return f }(), false, 0},
		{"IPv4 options", seg{ipOpts: true, payload: payload}.frame(t), false, 0},
		{"IPv4 MF", seg{mf: true, payload: payload}.frame(t), false, 0},
		{"IPv4 fragment offset", seg{noDF: true, fragOff: 100, payload: payload}.frame(t), false, 0},
		{"IPv4 UDP", udpFrame(t, false, payload), false, 0},
		{"IPv6 UDP", udpFrame(t, true, payload), false, 0},
		{"IPv6 hop-by-hop", edit(seg{v6: true, payload: payload}, func(f []byte) { f[ip+6] = 0 }), false, 0},
		{"SYN", seg{flags: encap.TCPFlagSYN | encap.TCPFlagACK, payload: payload}.frame(t), false, 0},
		{"FIN", seg{flags: encap.TCPFlagFIN | encap.TCPFlagACK, payload: payload}.frame(t), false, 0},
		{"RST", seg{flags: encap.TCPFlagRST | encap.TCPFlagACK, payload: payload}.frame(t), false, 0},
		{"URG", seg{flags: encap.TCPFlagURG | encap.TCPFlagACK, payload: payload}.frame(t), false, 0},
		{"no payload", seg{}.frame(t), false, 0},
		{"IPv6 no payload", seg{v6: true}.frame(t), false, 0},
		{"padded", append(seg{payload: payload}.frame(t), 0), false, 0},
		{"truncated", func() []byte { f := seg{payload: payload}.frame(t); return f[:len(f)-1] }(), false, 0},
		{"IPv4 header checksum", func() []byte { f := seg{payload: payload}.frame(t); f[ip+10]++; return f }(), false, 0},
		{"IPv4 TCP checksum", func() []byte { f := seg{payload: payload}.frame(t); f[len(f)-1]++; return f }(), false, 0},
		{"IPv6 TCP checksum", func() []byte { f := seg{v6: true, payload: payload}.frame(t); f[len(f)-50]++; return f }(), false, 0},
		{"TCP data offset 4", edit(seg{payload: payload}, func(f []byte) { f[ip+20+12] = 0x40 }), false, 0},
		{"TCP data offset past the end", edit(seg{payload: payload[:10]}, func(f []byte) { f[ip+20+12] = 0xf0 }), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := encap.ParseTCPSeg(tc.frame)
			if ok != tc.ok {
				t.Fatalf("ok = %v", ok)
			}
			if ok && (s.HeaderLen() != tc.hdrLen || s.PayloadLen() != len(tc.frame)-tc.hdrLen) {
				t.Fatalf("HeaderLen %d PayloadLen %d", s.HeaderLen(), s.PayloadLen())
			}
		})
	}
}

// mustSeg builds s and parses it as a coalescable segment.
func mustSeg(tb testing.TB, s seg) ([]byte, encap.TCPSeg) {
	tb.Helper()
	f := s.frame(tb)
	p, ok := encap.ParseTCPSeg(f)
	if !ok {
		tb.Fatalf("segment %+v refused", s)
	}
	return f, p
}

// TestAppendRejects has one negative case per rule of TCPRun.Append: the
// first segment is base (changed by first), the second is the next one of
// the same flow (changed by second).
func TestAppendRejects(t *testing.T) {
	const n = 1000
	base := seg{tcpOpts: true, tsVal: 5, id: 100, seq: 1000, ack: 77, payload: make([]byte, n)}
	next := func(s seg) seg {
		s.id++
		s.seq += n
		return s
	}
	for _, tc := range []struct {
		name          string
		first, second func(*seg)
	}{
		{"none: appends", nil, nil},
		{"Ethernet destination", nil, func(s *seg) { s.dstMAC = 1 }},
		{"Ethernet source", nil, func(s *seg) { s.srcMAC = 1 }},
		{"IP version", nil, func(s *seg) { s.v6 = true }},
		{"IP source", nil, func(s *seg) { s.srcIP = 1 }},
		{"IP destination", nil, func(s *seg) { s.dstIP = 1 }},
		{"IPv4 TOS", nil, func(s *seg) { s.tos = 0x04 }},
		{"IPv4 TTL", nil, func(s *seg) { s.ttl = 63 }},
		{"IPv4 DF", nil, func(s *seg) { s.noDF = true }},
		{"IPv4 ID not consecutive", nil, func(s *seg) { s.id++ }},
		{"IPv4 ID repeated", nil, func(s *seg) { s.id-- }},
		{"IPv6 traffic class", func(s *seg) { s.v6 = true }, func(s *seg) { s.v6, s.tos = true, 0x04 }},
		{"IPv6 flow label", func(s *seg) { s.v6 = true }, func(s *seg) { s.v6, s.flowLabel = true, 1 }},
		{"IPv6 hop limit", func(s *seg) { s.v6 = true }, func(s *seg) { s.v6, s.ttl = true, 63 }},
		{"source port", nil, func(s *seg) { s.sport = 1 }},
		{"destination port", nil, func(s *seg) { s.dport = 1 }},
		{"TCP header length", nil, func(s *seg) { s.tcpOpts = false }},
		{"TCP option bytes", nil, func(s *seg) { s.tsVal = 6 }},
		{"acknowledgment number", nil, func(s *seg) { s.ack = 78 }},
		{"window", nil, func(s *seg) { s.window = 1 }},
		{"ECE differs", nil, func(s *seg) { s.flags = encap.TCPFlagACK | encap.TCPFlagECE }},
		{"ACK differs", nil, func(s *seg) { s.flags = encap.TCPFlagPSH }},
		{"CWR after the first", nil, func(s *seg) { s.flags = encap.TCPFlagACK | encap.TCPFlagCWR }},
		{"sequence gap", nil, func(s *seg) { s.seq++ }},
		{"sequence overlap", nil, func(s *seg) { s.seq-- }},
		{"retransmission", nil, func(s *seg) { s.seq -= n }},
		{"longer than the first", nil, func(s *seg) { s.payload = make([]byte, n+1) }},
		{"PSH on the previous", func(s *seg) { s.flags = encap.TCPFlagACK | encap.TCPFlagPSH }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base, next(base)
			if tc.first != nil {
				tc.first(&a)
			}
			if tc.second != nil {
				tc.second(&b)
			}
			fa, sa := mustSeg(t, a)
			fb, sb := mustSeg(t, b)
			var r encap.TCPRun
			r.Start(fa, sa)
			want := tc.first == nil && tc.second == nil
			if got := r.Append(fb, sb); got != want {
				t.Fatalf("Append = %v, want %v", got, want)
			}
			if want := 1 + b2i(want); r.Len() != want {
				t.Fatalf("Len = %d, want %d", r.Len(), want)
			}
		})
	}
}

// TestAppendRunRules covers the rules that involve more than two segments.
func TestAppendRunRules(t *testing.T) {
	build := func(payloads []int, mod func(i int, s *seg)) ([][]byte, []encap.TCPSeg) {
		var frames [][]byte
		var segs []encap.TCPSeg
		seq := uint32(1000)
		for i, p := range payloads {
			s := seg{id: uint16(i), seq: seq, payload: make([]byte, p)}
			if mod != nil {
				mod(i, &s)
			}
			f, ps := mustSeg(t, s)
			frames, segs = append(frames, f), append(segs, ps)
			seq += uint32(p)
		}
		return frames, segs
	}
	// appended returns how many segments after the first were appended
	// before the first refusal.
	appended := func(frames [][]byte, segs []encap.TCPSeg) int {
		var r encap.TCPRun
		r.Start(frames[0], segs[0])
		for i := 1; i < len(frames); i++ {
			if !r.Append(frames[i], segs[i]) {
				return i - 1
			}
		}
		return len(frames) - 1
	}
	rep := func(n, v int, tail ...int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = v
		}
		return append(s, tail...)
	}
	for _, tc := range []struct {
		name     string
		payloads []int
		mod      func(i int, s *seg)
		want     int
	}{
		{"short segment ends the run", []int{1000, 500, 500}, nil, 1},
		{"short then shorter", []int{1000, 500, 100}, nil, 1},
		{"PSH ends the run", []int{1000, 1000, 1000}, func(i int, s *seg) {
			if i == 1 {
				s.flags = encap.TCPFlagACK | encap.TCPFlagPSH
			}
		}, 1},
		{"ID follows the previous segment", []int{1000, 1000, 1000}, func(i int, s *seg) {
			if i == 2 {
				s.id = 1
			}
		}, 1},
		{"segment cap", rep(encap.MaxRunSegments+1, 10), nil, encap.MaxRunSegments - 1},
		// IPv4: 40 header bytes + 43 × 1495 = 64325; 1210 more reach 65535.
		{"IP length exactly 65535", rep(44, 1495, 1210)[1:], nil, 43},
		{"IP length 65536", rep(44, 1495, 1211)[1:], nil, 42},
		// IPv6 is held to the same 64 KiB packet: 60 + 43 × 1495 = 64345.
		{"IPv6 packet exactly 65535", rep(44, 1495, 1190)[1:], func(_ int, s *seg) { s.v6 = true }, 43},
		{"IPv6 packet 65536", rep(44, 1495, 1191)[1:], func(_ int, s *seg) { s.v6 = true }, 42},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, segs := build(tc.payloads, tc.mod)
			if got := appended(frames, segs); got != tc.want {
				t.Fatalf("appended %d, want %d", got, tc.want)
			}
		})
	}
}
