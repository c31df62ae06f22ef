package encap_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
)

// The ECN field an outer header gets: a copy of the inner one, CE
// becoming ECT(0) (RFC 6040 §4.1).
func TestEncapECN(t *testing.T) {
	for inner, want := range []uint8{encap.ECNNotECT, encap.ECNECT1, encap.ECNECT0, encap.ECNECT0} {
		if got := encap.EncapECN(uint8(inner)); got != want {
			t.Errorf("EncapECN(%d) = %d, want %d", inner, got, want)
		}
	}
}

// FrameECN and DecapECN over IPv4 (with and without options) and IPv6,
// untagged and behind one or two VLAN tags, for every inner and outer
// codepoint, checked with gopacket against RFC 6040 §4.2's table as Linux
// applies it: an outer CE marks ECT packets CE and refuses Not-ECT ones,
// an outer ECT(1) turns ECT(0) into ECT(1), anything else changes
// nothing; the DSCP bits are kept and the IPv4 header checksum stays
// valid.
func TestDecapECN(t *testing.T) {
	const dscp = 0xb8 // EF
	for _, shape := range []struct {
		name string
		s    seg
	}{
		{"ipv4", seg{}},
		{"ipv4 options", seg{ipOpts: true}},
		{"ipv6", seg{v6: true, flowLabel: 0xabcde}},
		{"ipv4 802.1Q", seg{tags: 1}},
		{"ipv6 802.1ad", seg{v6: true, tags: 2}},
	} {
		for inner := range uint8(4) {
			for outer := range uint8(4) {
				t.Run(fmt.Sprintf("%s inner %d outer %d", shape.name, inner, outer), func(t *testing.T) {
					s := shape.s
					s.tos, s.payload = dscp|inner, []byte("payload")
					f := s.frame(t)
					if got := encap.FrameECN(f); got != inner {
						t.Fatalf("FrameECN = %d, want %d", got, inner)
					}
					orig := bytes.Clone(f)
					ok := encap.DecapECN(f, outer)
					wantOK, want := true, inner
					switch {
					case outer == encap.ECNCE && inner == encap.ECNNotECT:
						wantOK = false
					case outer == encap.ECNCE:
						want = encap.ECNCE
					case outer == encap.ECNECT1 && inner == encap.ECNECT0:
						want = encap.ECNECT1
					}
					if ok != wantOK {
						t.Fatalf("DecapECN = %v, want %v", ok, wantOK)
					}
					if !ok {
						if !bytes.Equal(f, orig) {
							t.Error("a refused frame was changed")
						}
						return
					}
					// Byte for byte the frame built with the new field:
					// nothing else changed, and the checksums are right.
					marked := s
					marked.tos = dscp | want
					if wantF := marked.frame(t); !bytes.Equal(f, wantF) {
						t.Errorf("after DecapECN:\n got %x\nwant %x", f, wantF)
					}
					if encap.FrameECN(f) != want {
						t.Errorf("FrameECN after = %d, want %d", encap.FrameECN(f), want)
					}
				})
			}
		}
	}
}

// Frames that are not IP, or too short to tell, pass DecapECN untouched
// whatever the outer field, and have no ECN field; a wrong IPv4 header
// checksum stays exactly as wrong after marking (RFC 1624's incremental
// update), so a corrupt header is not made to look valid.
func TestDecapECNOther(t *testing.T) {
	arp := make([]byte, 42)
	copy(arp[12:], []byte{0x08, 0x06})
	v4 := seg{tos: encap.ECNECT0, payload: []byte("x")}.frame(t)
	for name, f := range map[string][]byte{
		"arp":                   arp,
		"short":                 v4[:13],
		"ipv4 cut in header":    v4[:14+19],
		"ipv4 with version 6":   func() []byte { b := bytes.Clone(v4); b[14] = 0x65; return b }(),
		"tag without a payload": {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0, 1},
	} {
		orig := bytes.Clone(f)
		if !encap.DecapECN(f, encap.ECNCE) || !bytes.Equal(f, orig) {
			t.Errorf("%s: refused or changed", name)
		}
		if encap.FrameECN(f) != encap.ECNNotECT {
			t.Errorf("%s: FrameECN %d", name, encap.FrameECN(f))
		}
	}

	bad := bytes.Clone(v4)
	h := encap.IPv4(bad[encap.EthernetHeaderLen:])
	h.SetChecksum(h.Checksum() + 1)
	if !encap.DecapECN(bad, encap.ECNCE) {
		t.Fatal("refused")
	}
	fixed := bytes.Clone(bad)
	encap.IPv4(fixed[encap.EthernetHeaderLen:]).UpdateChecksum()
	if got, want := h.Checksum(), encap.IPv4(fixed[encap.EthernetHeaderLen:]).Checksum()+1; got != want {
		t.Errorf("checksum after marking %#04x, want the correct one plus one, %#04x", got, want)
	}
}
