package encap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

// naiveChecksum is RFC 1071 written the obvious way: big-endian 16-bit
// words, an odd last byte padded with zero, carries folded at the end.
func naiveChecksum(b []byte, initial uint16) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
	if got := encap.Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0); got != 0xddf2 {
		t.Fatalf("got %#04x, want 0xddf2", got)
	}
}

func TestChecksumEdges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		b       []byte
		initial uint16
	}{
		{"empty", nil, 0},
		{"empty with initial", nil, 0xabcd},
		{"zeros", make([]byte, 200), 0},
		{"zeros initial ffff", make([]byte, 200), 0xffff},
		{"ones", bytes.Repeat([]byte{0xff}, 200), 0},
		{"ones odd", bytes.Repeat([]byte{0xff}, 201), 0xffff},
		{"ones 64", bytes.Repeat([]byte{0xff}, 64), 0xffff},
		{"carry chain", append(bytes.Repeat([]byte{0xff}, 63), 0x01), 0x0001},
		{"needs the third fold", []byte{0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff}, 0},
		{"one byte", []byte{0x12}, 0},
		{"three bytes", []byte{0x12, 0x34, 0x56}, 0xffff},
	} {
		if got, want := encap.Checksum(tc.b, tc.initial), naiveChecksum(tc.b, tc.initial); got != want {
			t.Errorf("%s: got %#04x, want %#04x", tc.name, got, want)
		}
	}
}

// TestChecksumRandom compares against the naive reference over random
// lengths, initial values and alignments (sub-slices starting at odd
// offsets).
func TestChecksumRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := randBytes(r, 4096+8)
	for i := range 20000 {
		off := r.IntN(8)
		n := r.IntN(4097)
		if i%4 == 0 {
			n = r.IntN(130) // dense coverage of the tail paths
		}
		b := buf[off : off+n]
		initial := uint16(r.Uint32())
		if got, want := encap.Checksum(b, initial), naiveChecksum(b, initial); got != want {
			t.Fatalf("len %d off %d initial %#04x: got %#04x, want %#04x", n, off, initial, got, want)
		}
		if i%64 == 0 {
			r.Shuffle(len(buf), func(i, j int) { buf[i], buf[j] = buf[j], buf[i] })
		}
	}
}

// TestChecksumChains checks that sums over consecutive even-length pieces
// chain into the sum over the whole.
func TestChecksumChains(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := randBytes(r, 3001)
	for range 1000 {
		cut := 2 * r.IntN(len(b)/2)
		if got, want := encap.Checksum(b[cut:], encap.Checksum(b[:cut], 0x1234)), encap.Checksum(b, 0x1234); got != want {
			t.Fatalf("cut %d: %#04x != %#04x", cut, got, want)
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		for _, n := range []int{4, 16} {
			src, dst := randBytes(r, n), randBytes(r, n)
			proto, length := uint8(r.Uint32()), uint16(r.Uint32())
			var ph []byte
			ph = append(append(ph, src...), dst...)
			if n == 4 {
				ph = append(ph, 0, proto)
				ph = binary.BigEndian.AppendUint16(ph, length)
			} else {
				ph = binary.BigEndian.AppendUint32(ph, uint32(length))
				ph = append(ph, 0, 0, 0, proto)
			}
			if got, want := encap.PseudoHeaderChecksum(proto, src, dst, length), naiveChecksum(ph, 0); got != want {
				t.Fatalf("%d-byte addresses: got %#04x want %#04x", n, got, want)
			}
		}
	}
}

// udpFrame builds an Ethernet/IPv4 or IPv6/UDP frame with a valid checksum.
func udpFrame(tb testing.TB, v6 bool, payload []byte) []byte {
	udp := &layers.UDP{SrcPort: 1234, DstPort: 5678}
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 64, SrcIP: net.ParseIP("fd00::2"), DstIP: net.ParseIP("fd00::3")}
		return serialize(tb, eth, ip, udp, gopacket.Payload(payload))
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 3}}
	return serialize(tb, eth, ip, udp, gopacket.Payload(payload))
}

// needsCsum replaces the checksum at off with the pseudo-header sum, as the
// kernel hands over a NEEDS_CSUM frame, and returns the valid value.
func needsCsum(f []byte, l4, off int, proto uint8) uint16 {
	want := binary.BigEndian.Uint16(f[l4+off:])
	src, dst := addrs(f)
	binary.BigEndian.PutUint16(f[l4+off:], encap.PseudoHeaderChecksum(proto, src, dst, uint16(len(f)-l4)))
	return want
}

func TestCompleteChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, v6 := range []bool{false, true} {
		for _, n := range []int{0, 1, 2, 63, 64, 65, 1400, 1401} {
			payload := randBytes(r, n)
			// TCP
			f := seg{v6: v6, tcpOpts: n%2 == 1, payload: payload}.frame(t)
			l4 := tcpOffset(f)
			want := needsCsum(f, l4, encap.TCPChecksumOffset, encap.ProtocolTCP)
			if err := encap.CompleteChecksum(f, l4, encap.TCPChecksumOffset); err != nil {
				t.Fatal(err)
			}
			if got := encap.TCP(f[l4:]).Checksum(); got != want {
				t.Errorf("TCP v6=%v len %d: got %#04x, gopacket %#04x", v6, n, got, want)
			}
			// UDP
			f = udpFrame(t, v6, payload)
			l4 = encap.EthernetHeaderLen + encap.IPv4MinHeaderLen
			if v6 {
				l4 = encap.EthernetHeaderLen + encap.IPv6HeaderLen
			}
			want = needsCsum(f, l4, encap.UDPChecksumOffset, encap.ProtocolUDP)
			if err := encap.CompleteChecksum(f, l4, encap.UDPChecksumOffset); err != nil {
				t.Fatal(err)
			}
			if got := encap.UDP(f[l4:]).Checksum(); got != want {
				t.Errorf("UDP v6=%v len %d: got %#04x, gopacket %#04x", v6, n, got, want)
			}
		}
	}
}

// TestCompleteChecksumZero: a checksum that computes to 0 is stored as
// 0xffff (for UDP, 0 would mean "no checksum").
func TestCompleteChecksumZero(t *testing.T) {
	f := udpFrame(t, false, []byte{0, 0, 0, 0})
	l4 := encap.EthernetHeaderLen + encap.IPv4MinHeaderLen
	needsCsum(f, l4, encap.UDPChecksumOffset, encap.ProtocolUDP)
	// Choose the last payload word so that the data sums to 0xffff.
	pseudo := encap.UDP(f[l4:]).Checksum()
	binary.BigEndian.PutUint16(f[l4+encap.UDPChecksumOffset:], 0)
	s := encap.Checksum(f[l4:], pseudo)
	binary.BigEndian.PutUint16(f[len(f)-2:], ^s)
	binary.BigEndian.PutUint16(f[l4+encap.UDPChecksumOffset:], pseudo)
	if err := encap.CompleteChecksum(f, l4, encap.UDPChecksumOffset); err != nil {
		t.Fatal(err)
	}
	if got := encap.UDP(f[l4:]).Checksum(); got != 0xffff {
		t.Fatalf("checksum %#04x, want 0xffff", got)
	}
	if s := encap.Checksum(f[l4:], encap.PseudoHeaderChecksum(encap.ProtocolUDP, f[26:30], f[30:34], uint16(len(f)-l4))); s != 0xffff {
		t.Fatalf("0xffff does not verify: sum %#04x", s)
	}
}

func TestCompleteChecksumErrors(t *testing.T) {
	f := make([]byte, 60)
	for _, tc := range []struct{ start, off int }{
		{-1, 0}, {0, -1}, {61, 0}, {60, 0}, {59, 0}, {34, 25}, {0, 59}, {58, 1}, {34, 15}, {0, 3},
	} {
		g := bytes.Clone(f)
		g[58], g[59] = 1, 2
		if err := encap.CompleteChecksum(g, tc.start, tc.off); !errors.Is(err, encap.ErrMalformed) {
			t.Errorf("start %d off %d: err %v", tc.start, tc.off, err)
		}
		if !bytes.Equal(g[:58], f[:58]) || g[58] != 1 || g[59] != 2 {
			t.Errorf("start %d off %d: frame changed on error", tc.start, tc.off)
		}
	}
	for _, tc := range []struct{ start, off int }{{58, 0}, {0, 58}, {34, 24}} {
		if err := encap.CompleteChecksum(bytes.Clone(f), tc.start, tc.off); err != nil {
			t.Errorf("start %d off %d: %v", tc.start, tc.off, err)
		}
	}
}
