package encap_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

// dgram describes a UDP frame for the builders below.
type dgram struct {
	v6      bool
	ipOpts  bool
	tags    int
	id      uint16
	ttl     uint8 // 0 means 64
	sport   uint16
	payload []byte
}

// frame builds d as a valid frame with correct lengths and checksums.
func (d dgram) frame(tb testing.TB) []byte {
	tb.Helper()
	s := seg{v6: d.v6, ipOpts: d.ipOpts, tags: d.tags, id: d.id, ttl: d.ttl}
	eth, ip, _ := s.layers()
	udp := &layers.UDP{SrcPort: layers.UDPPort(or(d.sport, 40000)), DstPort: 5201}
	if v4, ok := ip.(*layers.IPv4); ok {
		v4.Protocol = layers.IPProtocolUDP
	} else {
		ip.(*layers.IPv6).NextHeader = layers.IPProtocolUDP
	}
	ls := append([]gopacket.SerializableLayer{eth}, s.vlanLayers(eth)...)
	return serialize(tb, append(ls, ip.(gopacket.SerializableLayer), udp, gopacket.Payload(d.payload))...)
}

// super builds d as the kernel hands a USO superframe to a TAP: IP and UDP
// lengths of the whole, a stale IPv4 header checksum and the UDP checksum
// field holding the pseudo-header sum.
func (d dgram) super(tb testing.TB) []byte {
	tb.Helper()
	f := d.frame(tb)
	l3 := l3Offset(f)
	off := l3 + encap.IPv6HeaderLen
	if !d.v6 {
		off = l3 + encap.IPv4(f[l3:]).HeaderLen()
		encap.IPv4(f[l3:]).SetChecksum(0xbeef)
	}
	src, dst := addrs(f)
	encap.UDP(f[off:]).SetChecksum(encap.PseudoHeaderChecksum(encap.ProtocolUDP, src, dst, uint16(len(f)-off)))
	return f
}

// checkUDPWire is sameOnWire for a UDP frame.
func checkUDPWire(tb testing.TB, f []byte) (gopacket.NetworkLayer, *layers.UDP) {
	tb.Helper()
	p := sameOnWire(tb, f)
	return p.NetworkLayer(), p.Layer(layers.LayerTypeUDP).(*layers.UDP)
}

func TestUDPSegment(t *testing.T) {
	const size = 1000
	for _, v6 := range []bool{false, true} {
		for _, ipOpts := range []bool{false, true} {
			for tags := range 3 {
				if v6 && ipOpts {
					continue
				}
				for _, n := range []int{0, 1, size - 1, size, size + 1, 5*size + 3, 65507 - 40} {
					d := dgram{v6: v6, ipOpts: ipOpts, tags: tags, id: 0xfffe, payload: bytes.Repeat([]byte("vxswitch"), n/8+1)[:n]}
					t.Run(fmt.Sprintf("v6=%v/ipopts=%v/tags=%d/len=%d", v6, ipOpts, tags, n), func(t *testing.T) {
						checkUDPSplit(t, d, size)
					})
				}
			}
		}
	}
}

func checkUDPSplit(t *testing.T, d dgram, size int) {
	frame := d.super(t)
	orig := bytes.Clone(frame)
	s, err := encap.ParseUDPSuper(frame, size)
	if err != nil {
		t.Fatal(err)
	}
	if want := max(1, (len(d.payload)+size-1)/size); s.Segments() != want {
		t.Fatalf("Segments() = %d, want %d", s.Segments(), want)
	}
	hl := s.HeaderLen()
	var got []byte
	for i := range s.Segments() {
		hdr := bytes.Repeat([]byte{0xee}, hl+2)
		p := s.Segment(i, frame, hdr)
		if !bytes.Equal(hdr[hl:], []byte{0xee, 0xee}) {
			t.Fatalf("datagram %d: wrote past HeaderLen", i)
		}
		if want := min(size, len(d.payload)-i*size); len(p) != want {
			t.Fatalf("datagram %d: %d bytes, want %d", i, len(p), want)
		}
		got = append(got, p...)
		f := append(bytes.Clone(hdr[:hl]), p...)
		ip, udp := checkUDPWire(t, f)
		if v4, ok := ip.(*layers.IPv4); ok {
			if v4.Id != d.id+uint16(i) || int(v4.Length) != len(f)-l3Offset(f) {
				t.Errorf("datagram %d: IPv4 id %#x length %d", i, v4.Id, v4.Length)
			}
			if !encap.IPv4(f[l3Offset(f):]).ChecksumValid() {
				t.Errorf("datagram %d: IPv4 header checksum", i)
			}
		}
		if int(udp.Length) != 8+len(p) || udp.Checksum == 0 {
			t.Errorf("datagram %d: UDP length %d checksum %#04x", i, udp.Length, udp.Checksum)
		}
		if l3 := l3Offset(orig); !bytes.Equal(f[:l3], orig[:l3]) {
			t.Errorf("datagram %d: Ethernet header or tags changed", i)
		}
	}
	if !bytes.Equal(got, d.payload) {
		t.Fatal("reassembled payload differs")
	}
	if !bytes.Equal(frame, orig) {
		t.Fatal("Segment modified the superframe")
	}
}

func TestParseUDPSuperErrors(t *testing.T) {
	v4 := dgram{payload: make([]byte, 3000)}.super(t)
	for _, tc := range []struct {
		name  string
		frame []byte
		size  int
		want  error
	}{
		{"empty", nil, 1000, encap.ErrShort},
		{"TCP", seg{payload: make([]byte, 100)}.super(t), 1000, encap.ErrUnsupported},
		{"UDP header cut", func() []byte {
			f := bytes.Clone(v4[:14+20+4])
			encap.IPv4(f[14:]).SetTotalLength(24)
			return f
		}(), 1000, encap.ErrShort},
		{"IP length", v4[:len(v4)-1], 1000, encap.ErrMalformed},
		{"size 0", v4, 0, encap.ErrMalformed},
		{"size over 65527", v4, 65528, encap.ErrMalformed},
		{"valid", v4, 1000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := encap.ParseUDPSuper(tc.frame, tc.size); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// A run of datagrams, finished into a superframe and split again as the
// receiving kernel splits it, gives back the very same frames.
func TestUDPRunRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, sizes := range [][]int{{1000, 1000}, {64, 64, 64, 10}, {1400, 1400, 1400, 1400, 1400, 1}, repeat(100, encap.MaxRunSegments)} {
			t.Run(fmt.Sprintf("v6=%v/%d", v6, len(sizes)), func(t *testing.T) {
				var frames [][]byte
				for i, n := range sizes {
					p := make([]byte, n)
					for j := range p {
						p[j] = byte(i*7 + j)
					}
					frames = append(frames, dgram{v6: v6, id: 0xfffe + uint16(i), payload: p}.frame(t))
				}
				orig := cloneAll(frames)
				var r encap.UDPRun
				super := frames[0]
				for i, f := range frames {
					s, ok := encap.ParseUDPSeg(f)
					if !ok {
						t.Fatalf("datagram %d refused", i)
					}
					if i == 0 {
						r.Start(f, s)
						continue
					}
					if !r.Append(f, s) {
						t.Fatalf("datagram %d does not continue the run", i)
					}
					super = append(bytes.Clone(super), f[s.HeaderLen():]...)
				}
				g, ok := r.Finish()
				if !ok || !g.UDP || g.Size != sizes[0] || g.CsumOffset != encap.UDPChecksumOffset {
					t.Fatalf("Finish: %+v %v", g, ok)
				}
				super = append(frames[0][:len(frames[0]):len(frames[0])], super[len(frames[0]):]...)
				s, err := encap.ParseUDPSuper(super, g.Size)
				if err != nil || s.HeaderLen() != g.HdrLen || s.Segments() != len(frames) {
					t.Fatalf("superframe: %v, %d datagrams, header %d (GSO says %d)", err, s.Segments(), s.HeaderLen(), g.HdrLen)
				}
				src, dst := addrs(super)
				if encap.UDP(super[g.CsumStart:]).Checksum() != encap.PseudoHeaderChecksum(encap.ProtocolUDP, src, dst, uint16(len(super)-g.CsumStart)) {
					t.Error("the superframe's checksum field is not its pseudo-header sum")
				}
				hdr := make([]byte, s.HeaderLen())
				for i := range s.Segments() {
					p := s.Segment(i, super, hdr)
					if f := append(bytes.Clone(hdr), p...); !bytes.Equal(f, orig[i]) {
						t.Fatalf("datagram %d differs after the round trip:\n got %x\nwant %x", i, f[:min(60, len(f))], orig[i][:min(60, len(orig[i]))])
					}
				}
			})
		}
	}
}

func repeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func cloneAll(fs [][]byte) [][]byte {
	out := make([][]byte, len(fs))
	for i, f := range fs {
		out[i] = bytes.Clone(f)
	}
	return out
}

func TestUDPRunRefuses(t *testing.T) {
	p := make([]byte, 100)
	base := dgram{id: 10, payload: p}
	first := base.frame(t)
	for _, tc := range []struct {
		name string
		prev []int // payload lengths appended before
		next []byte
	}{
		{"other port", nil, dgram{id: 11, sport: 1, payload: p}.frame(t)},
		{"ID gap", nil, dgram{id: 12, payload: p}.frame(t)},
		{"other TTL", nil, dgram{id: 11, ttl: 9, payload: p}.frame(t)},
		{"longer", nil, dgram{id: 11, payload: make([]byte, 101)}.frame(t)},
		{"after a short one", []int{50}, dgram{id: 12, payload: make([]byte, 50)}.frame(t)},
		{"other family", nil, dgram{v6: true, payload: p}.frame(t)},
		{"65th", repeat(100, encap.MaxRunSegments-1), dgram{id: 10 + encap.MaxRunSegments, payload: p}.frame(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r encap.UDPRun
			s, ok := encap.ParseUDPSeg(first)
			if !ok {
				t.Fatal("the first datagram is refused")
			}
			r.Start(first, s)
			for i, n := range tc.prev {
				f := dgram{id: uint16(11 + i), payload: make([]byte, n)}.frame(t)
				fs, ok := encap.ParseUDPSeg(f)
				if !ok || !r.Append(f, fs) {
					t.Fatalf("setup datagram %d refused", i)
				}
			}
			ns, ok := encap.ParseUDPSeg(tc.next)
			if !ok {
				t.Fatal("the next datagram does not parse")
			}
			if r.Append(tc.next, ns) {
				t.Fatal("appended")
			}
		})
	}
}

func TestParseUDPSegRefuses(t *testing.T) {
	good := dgram{payload: make([]byte, 100)}.frame(t)
	edit := func(fn func(f []byte)) []byte {
		f := bytes.Clone(good)
		fn(f)
		return f
	}
	if _, ok := encap.ParseUDPSeg(good); !ok {
		t.Fatal("a valid datagram is refused")
	}
	for name, f := range map[string][]byte{
		"no checksum":       edit(func(f []byte) { encap.UDP(f[34:]).SetChecksum(0) }),
		"bad checksum":      edit(func(f []byte) { f[len(f)-1]++ }),
		"bad IP checksum":   edit(func(f []byte) { f[14+8]++ }),
		"UDP length":        edit(func(f []byte) { encap.UDP(f[34:]).SetLength(50) }),
		"IPv4 options":      dgram{ipOpts: true, payload: make([]byte, 100)}.frame(t),
		"VLAN tag":          dgram{tags: 1, payload: make([]byte, 100)}.frame(t),
		"no payload":        dgram{}.frame(t),
		"fragment":          edit(func(f []byte) { f[14+6] |= 0x20; encap.IPv4(f[14:]).UpdateChecksum() }),
		"padded (runt+pad)": append(bytes.Clone(good), 0),
	} {
		if _, ok := encap.ParseUDPSeg(f); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
