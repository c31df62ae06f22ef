package encap_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
)

const portLo, portHi = 49152, 65535 // RFC 7348's recommended range

func TestSourcePortDeterministicAndInRange(t *testing.T) {
	frames := [][]byte{
		seg{payload: []byte("a")}.frame(t),
		seg{v6: true, payload: []byte("a")}.frame(t),
		udpFrame(t, false, []byte("a")),
		arpFrame(t, encap.ARPRequest),
		nil,
		make([]byte, 13),
	}
	for i, f := range frames {
		p := encap.SourcePort(f, portLo, portHi)
		if p < portLo || p != encap.SourcePort(f, portLo, portHi) {
			t.Errorf("frame %d: port %d", i, p)
		}
		for _, r := range [][2]uint16{{0, 65535}, {1000, 1001}, {7, 7}, {9, 3}} {
			p := encap.SourcePort(f, r[0], r[1])
			if hi := max(r[0], r[1]); p < r[0] || p > hi {
				t.Errorf("frame %d range %v: port %d", i, r, p)
			}
		}
	}
}

// TestSourcePortInputs checks which fields the hash covers: addresses,
// protocol and ports for TCP/UDP; not the ports of IPv4 fragments; not the
// payload, IP ID or TTL; the Ethernet header for non-IP frames.
func TestSourcePortInputs(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b seg
		same bool
	}{
		{"IPv4 source port", seg{}, seg{sport: 1}, false},
		{"IPv4 destination port", seg{}, seg{dport: 1}, false},
		{"IPv4 source address", seg{}, seg{srcIP: 1}, false},
		{"IPv4 destination address", seg{}, seg{dstIP: 1}, false},
		{"IPv6 source port", seg{v6: true}, seg{v6: true, sport: 1}, false},
		{"IPv6 source address", seg{v6: true}, seg{v6: true, srcIP: 1}, false},
		{"IPv4 fragment ignores ports", seg{mf: true}, seg{mf: true, sport: 1}, true},
		{"payload, ID, TTL, seq ignored", seg{}, seg{id: 9, ttl: 3, seq: 5, payload: []byte("x")}, true},
		{"MAC ignored for IP", seg{}, seg{srcMAC: 1}, true},
	} {
		pa := encap.SourcePort(tc.a.frame(t), 0, 65535)
		pb := encap.SourcePort(tc.b.frame(t), 0, 65535)
		if (pa == pb) != tc.same {
			t.Errorf("%s: ports %d and %d", tc.name, pa, pb)
		}
	}
	// Protocol is hashed.
	a, b := seg{}.frame(t), seg{}.frame(t)
	b[encap.EthernetHeaderLen+9] = encap.ProtocolUDP
	if encap.SourcePort(a, 0, 65535) == encap.SourcePort(b, 0, 65535) {
		t.Error("protocol not hashed")
	}
	// Non-IP: Ethernet addresses and type.
	a, b = arpFrame(t, encap.ARPRequest), arpFrame(t, encap.ARPRequest)
	b[11]++
	if encap.SourcePort(a, 0, 65535) == encap.SourcePort(b, 0, 65535) {
		t.Error("Ethernet source not hashed for ARP")
	}
	b = arpFrame(t, encap.ARPReply)
	if encap.SourcePort(a, 0, 65535) != encap.SourcePort(b, 0, 65535) {
		t.Error("ARP payload hashed")
	}
}

// TestSourcePortSpread hashes many flows that differ only in one port or
// in the low 16 bits of the source address, and checks the ports land
// evenly across the range (chi-squared over 64 buckets).
func TestSourcePortSpread(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		f := seg{v6: v6, payload: []byte("x")}.frame(t)
		src, _ := addrs(f)
		for field, b := range map[string][]byte{"port": f[tcpOffset(f):], "address": src[len(src)-2:]} {
			orig := binary.BigEndian.Uint16(b)
			const flows, buckets = 64 * 1024, 64
			var count [buckets]int
			for i := range flows {
				binary.BigEndian.PutUint16(b, uint16(i))
				p := encap.SourcePort(f, portLo, portHi)
				count[int(p-portLo)*buckets/(portHi-portLo+1)]++
			}
			binary.BigEndian.PutUint16(b, orig)
			exp := float64(flows) / buckets
			var chi2 float64
			for _, c := range count {
				chi2 += (float64(c) - exp) * (float64(c) - exp) / exp
			}
			// 63 degrees of freedom: p = 0.001 at about 103.4.
			if chi2 > 103.4 || math.IsNaN(chi2) {
				t.Errorf("v6=%v %s: chi² = %.1f over %v", v6, field, chi2, count)
			}
			t.Logf("v6=%v %s: chi² = %.1f", v6, field, chi2)
		}
	}
}
