package encap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

func FuzzParseVXLAN(f *testing.F) {
	f.Add([]byte{0x08, 0, 0, 0, 0, 0x10, 0, 0})
	f.Add([]byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0, 1, 2})
	f.Add([]byte{0x88, 0, 0, 1, 0, 0, 1, 0})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		vni, err := encap.ParseVXLAN(b)
		switch {
		case len(b) < encap.VXLANHeaderLen:
			if !errors.Is(err, encap.ErrShort) {
				t.Fatalf("short: %v", err)
			}
		case b[0] != encap.VXLANFlagVNI:
			if !errors.Is(err, encap.ErrBadFlags) {
				t.Fatalf("flags: %v", err)
			}
		case b[1]|b[2]|b[3]|b[7] != 0:
			if !errors.Is(err, encap.ErrReserved) {
				t.Fatalf("reserved: %v", err)
			}
		default:
			if err != nil || vni > encap.MaxVNI {
				t.Fatalf("valid header: %#x, %v", vni, err)
			}
			var w [encap.VXLANHeaderLen]byte
			encap.PutVXLAN(w[:], vni)
			if !bytes.Equal(w[:], b[:encap.VXLANHeaderLen]) {
				t.Fatalf("PutVXLAN(%#x) = %x, parsed from %x", vni, w, b[:8])
			}
		}
	})
}

func FuzzEthernetARP(f *testing.F) {
	f.Add(arpFrame(f, encap.ARPRequest), uint16(49152), uint16(65535))
	f.Add(arpFrame(f, encap.ARPReply)[:40], uint16(0), uint16(0))
	f.Add(seg{payload: []byte("x")}.frame(f), uint16(1000), uint16(2000))
	f.Add(seg{v6: true, payload: []byte("x")}.frame(f), uint16(5), uint16(1))
	f.Add(udpFrame(f, false, nil), uint16(0), uint16(65535))
	f.Fuzz(func(t *testing.T, frame []byte, lo, hi uint16) {
		p := encap.SourcePort(frame, lo, hi)
		if p < lo || (hi > lo && p > hi) || (hi <= lo && p != lo) {
			t.Fatalf("SourcePort(%d, %d) = %d", lo, hi, p)
		}
		if p != encap.SourcePort(frame, lo, hi) {
			t.Fatal("SourcePort not deterministic")
		}
		if len(frame) < encap.EthernetHeaderLen {
			return
		}
		e := encap.Ethernet(frame)
		if encap.IsMulticastMAC(e.Dst()) != (frame[0]&1 == 1) || len(e.Src()) != 6 {
			t.Fatal("Ethernet view")
		}
		_ = e.EtherType()
		a := encap.ARP(frame[encap.EthernetHeaderLen:])
		if !a.Valid() {
			return
		}
		if !bytes.Equal(a.SenderMAC(), frame[22:28]) || a.SenderIP() != [4]byte(frame[28:32]) ||
			!bytes.Equal(a.TargetMAC(), frame[32:38]) || a.TargetIP() != [4]byte(frame[38:42]) {
			t.Fatal("ARP view")
		}
		// The builders write back exactly what the views read.
		var w [encap.ARPFrameLen]byte
		encap.PutEthernet(w[:], e.Dst(), e.Src(), e.EtherType())
		encap.PutARP(w[encap.EthernetHeaderLen:], a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
		if !bytes.Equal(w[:], frame[:encap.ARPFrameLen]) {
			t.Fatalf("PutEthernet+PutARP wrote\n%x\nfrom\n%x", w, frame[:encap.ARPFrameLen])
		}
	})
}

// ParseNeighborSolicit on any bytes: no panic, only sentinel errors, the
// frame unchanged. What it accepts is a solicitation a node accepts (hop
// limit 255, code 0, a valid checksum, a target that is not multicast,
// duplicate address detection only to a solicited-node address and
// without a source link-layer option); gopacket reads the same target
// and source link-layer address; and the advertisement that answers it
// is, byte for byte, what gopacket would send.
func FuzzParseNeighborSolicit(f *testing.F) {
	for _, s := range []ns{
		{},
		{dst: ip6B, noSLL: true},
		{target: ip6LL, src: ip6LL},
		{src: net.IPv6unspecified, noSLL: true},
		{src: net.IPv6unspecified},
		{hop: 64},
		{code: 3},
		{sll: net.HardwareAddr(make([]byte, 14))},
		{opts: []layers.ICMPv6Option{{Type: 14, Data: make([]byte, 6)}, {Type: 14}}},
		{tags: 1},
	} {
		f.Add(s.frame(f), false)
	}
	f.Add(arpFrame(f, encap.ARPRequest), false)
	f.Add(seg{v6: true, payload: []byte("x")}.frame(f), true)
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x86, 0xdd, 0x60}, true)
	f.Fuzz(func(t *testing.T, frame []byte, fix bool) {
		if fix && len(frame) >= encap.EthernetHeaderLen+encap.IPv6HeaderLen+4 {
			// Past the checksum, so that the fuzzer explores the rest.
			ip := encap.IPv6(frame[encap.EthernetHeaderLen:])
			if m := frame[encap.EthernetHeaderLen+encap.IPv6HeaderLen:]; int(ip.PayloadLength()) <= len(m) && ip.PayloadLength() >= 4 {
				encap.ICMPv6(m[:ip.PayloadLength()]).UpdateChecksum(ip.Src(), ip.Dst())
			}
		}
		orig := bytes.Clone(frame)
		ip, m, err := encap.ParseNeighborSolicit(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatal("frame changed")
		}
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v is not a sentinel", err)
			}
			return
		}
		const l4 = encap.EthernetHeaderLen + encap.IPv6HeaderLen
		if encap.Ethernet(frame).EtherType() != encap.EtherTypeIPv6 || ip.NextHeader() != encap.ProtocolICMPv6 ||
			ip.HopLimit() != 255 || len(m) != int(ip.PayloadLength()) || len(m) < encap.NeighborSolicitMinLen ||
			&m[0] != &frame[l4] || &ip[0] != &frame[encap.EthernetHeaderLen] {
			t.Fatalf("accepted: ethertype %#x next header %d hop limit %d, message %d bytes of payload %d",
				encap.Ethernet(frame).EtherType(), ip.NextHeader(), ip.HopLimit(), len(m), ip.PayloadLength())
		}
		icmp := encap.ICMPv6(m)
		if icmp.Type() != encap.ICMPv6NeighborSolicit || icmp.Code() != 0 || !icmp.ChecksumValid(ip.Src(), ip.Dst()) ||
			encap.IsMulticastIPv6(m.Target()) || encap.IsMulticastIPv6(ip.Src()) {
			t.Fatalf("accepted type %d code %d target %x src %x", icmp.Type(), icmp.Code(), m.Target(), ip.Src())
		}
		sll, hasSLL := m.SourceLinkAddr()
		if encap.IsUnspecifiedIPv6(ip.Src()) && (hasSLL || !encap.IsSolicitedNodeIPv6(ip.Dst())) {
			t.Fatalf("accepted DAD to %x with source link address %v", ip.Dst(), hasSLL)
		}
		p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		l, _ := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
		if l == nil || !l.TargetAddress.Equal(net.IP(m.Target())) {
			t.Fatalf("gopacket: %v", p)
		}
		var want []byte
		for _, o := range l.Options {
			if o.Type == layers.ICMPv6OptSourceAddress {
				want = o.Data
				break
			}
		}
		if hasSLL != (len(want) >= 6) || (hasSLL && !bytes.Equal(sll, want[:6])) {
			t.Fatalf("source link address %x %v, gopacket's option %x", sll, hasSLL, want)
		}
		if encap.IsUnspecifiedIPv6(ip.Src()) {
			return
		}
		dstMAC := encap.Ethernet(frame).Src()
		if hasSLL {
			dstMAC = sll
		}
		na := naFrame(dstMAC, macB, m.Target(), ip.Src(), encap.NDPFlagSolicited|encap.NDPFlagOverride)
		checkNA(t, na)
	})
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add([]byte{0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff}, uint16(0), uint8(0))
	f.Add(bytes.Repeat([]byte{0xff}, 300), uint16(0xffff), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, initial uint16, off uint8) {
		b = b[min(int(off), len(b)):]
		if got, want := encap.Checksum(b, initial), naiveChecksum(b, initial); got != want {
			t.Fatalf("len %d: %#04x, want %#04x", len(b), got, want)
		}
	})
}

func FuzzCompleteChecksum(f *testing.F) {
	f.Add(udpFrame(f, false, []byte("hello")), 34, encap.UDPChecksumOffset)
	f.Add(seg{v6: true, payload: []byte("hello")}.frame(f), 54, encap.TCPChecksumOffset)
	f.Add([]byte{1, 2}, 0, 0)
	f.Fuzz(func(t *testing.T, frame []byte, start, off int) {
		orig := bytes.Clone(frame)
		err := encap.CompleteChecksum(frame, start, off)
		if err != nil {
			if !errors.Is(err, encap.ErrMalformed) || !bytes.Equal(frame, orig) {
				t.Fatalf("error %v, frame changed %v", err, !bytes.Equal(frame, orig))
			}
			return
		}
		// The stored checksum completes the initial sum to 0xffff.
		initial := binary.BigEndian.Uint16(orig[start+off:])
		if s := encap.Checksum(frame[start:], initial); s != 0xffff {
			t.Fatalf("sum with checksum %#04x", s)
		}
		if binary.BigEndian.Uint16(frame[start+off:]) == 0 {
			t.Fatal("stored 0")
		}
	})
}

func isSentinel(err error) bool {
	return errors.Is(err, encap.ErrShort) || errors.Is(err, encap.ErrUnsupported) || errors.Is(err, encap.ErrMalformed)
}

func FuzzParseTCPSuper(f *testing.F) {
	// Small payloads keep executions fast; the unit tests cover 64 KiB.
	f.Add(seg{payload: make([]byte, 300)}.super(f), uint16(100))
	f.Add(seg{ipOpts: true, tcpOpts: true, flags: encap.TCPFlagACK | encap.TCPFlagFIN | encap.TCPFlagCWR, payload: make([]byte, 101)}.super(f), uint16(10))
	f.Add(seg{v6: true, tcpOpts: true, payload: make([]byte, 250)}.super(f), uint16(64))
	f.Add(seg{v6: true}.super(f), uint16(1))
	f.Add(arpFrame(f, encap.ARPRequest), uint16(1))
	f.Add(seg{tags: 1, payload: make([]byte, 200)}.super(f), uint16(64))
	f.Add(seg{tags: 2, v6: true, payload: make([]byte, 200)}.super(f), uint16(50))
	f.Fuzz(func(t *testing.T, frame []byte, mss uint16) {
		s, err := encap.ParseTCPSuper(frame, int(mss))
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v is not a sentinel", err)
			}
			return
		}
		checkSegments(t, frame, s.HeaderLen(), s.Segments(), s.Segment, encap.ProtocolTCP, func(seg []byte) error {
			_, err := encap.ParseTCPSuper(seg, int(mss))
			return err
		})
	})
}

func FuzzParseUDPSuper(f *testing.F) {
	f.Add(dgram{payload: make([]byte, 300)}.super(f), uint16(100))
	f.Add(dgram{v6: true, tags: 2, payload: make([]byte, 250)}.super(f), uint16(64))
	f.Add(dgram{ipOpts: true, tags: 1}.super(f), uint16(1))
	f.Fuzz(func(t *testing.T, frame []byte, size uint16) {
		s, err := encap.ParseUDPSuper(frame, int(size))
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v is not a sentinel", err)
			}
			return
		}
		checkSegments(t, frame, s.HeaderLen(), s.Segments(), s.Segment, encap.ProtocolUDP, func(d []byte) error {
			_, err := encap.ParseUDPSuper(d, int(size))
			return err
		})
	})
}

// checkSegments checks the n segments of a superframe parsed from frame
// with headers of hl bytes: each has a valid IPv4 header checksum (if
// IPv4) and transport checksum and parses again with reparse, their
// payloads put together are the superframe's, and frame is unchanged.
func checkSegments(t *testing.T, frame []byte, hl, n int, segment func(i int, frame, hdr []byte) []byte, proto uint8, reparse func([]byte) error) {
	t.Helper()
	if hl > len(frame) || n < 1 {
		t.Fatalf("HeaderLen %d of %d, %d segments", hl, len(frame), n)
	}
	orig := bytes.Clone(frame)
	hdr := make([]byte, hl)
	payload := make([]byte, 0, len(frame))
	seg := make([]byte, 0, len(frame))
	for i := range n {
		p := segment(i, frame, hdr)
		payload = append(payload, p...)
		seg = append(append(seg[:0], hdr...), p...)
		if !isV6(seg) && !encap.IPv4(seg[l3Offset(seg):]).ChecksumValid() {
			t.Fatalf("segment %d: IPv4 checksum", i)
		}
		off := tcpOffset(seg) // the transport header's offset
		src, dst := addrs(seg)
		if encap.Checksum(seg[off:], encap.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)-off))) != 0xffff {
			t.Fatalf("segment %d: transport checksum", i)
		}
		if err := reparse(seg); err != nil {
			t.Fatalf("segment %d does not parse: %v", i, err)
		}
	}
	if !bytes.Equal(payload, frame[hl:]) {
		t.Fatal("reassembled payload differs")
	}
	if !bytes.Equal(frame, orig) {
		t.Fatal("Segment changed the frame")
	}
}

// fixSums gives a frame that looks like IPv4 or IPv6 TCP valid checksums,
// so that the fuzzer explores header fields rather than checksums.
func fixSums(f []byte) { fixL4Sums(f, encap.ProtocolTCP, encap.TCPMinHeaderLen) }

// fixL4Sums gives an untagged IPv4 or IPv6 frame of protocol proto
// (TCP or UDP, whose header is at least hdrLen bytes) valid IP and
// transport checksums.
func fixL4Sums(f []byte, proto uint8, hdrLen int) {
	if len(f) < encap.EthernetHeaderLen+encap.IPv4MinHeaderLen {
		return
	}
	ip := f[encap.EthernetHeaderLen:]
	off := 0
	switch encap.Ethernet(f).EtherType() {
	case encap.EtherTypeIPv4:
		hl := encap.IPv4(ip).HeaderLen()
		if hl < encap.IPv4MinHeaderLen || len(ip) < hl+hdrLen {
			return
		}
		encap.IPv4(ip).UpdateChecksum()
		off = encap.EthernetHeaderLen + hl
	case encap.EtherTypeIPv6:
		if len(ip) < encap.IPv6HeaderLen+hdrLen {
			return
		}
		off = encap.EthernetHeaderLen + encap.IPv6HeaderLen
	default:
		return
	}
	l4 := f[off:]
	src, dst := addrs(f)
	if proto == encap.ProtocolTCP {
		th := encap.TCP(l4)
		th.SetChecksum(0)
		th.SetChecksum(^encap.Checksum(th, encap.PseudoHeaderChecksum(proto, src, dst, uint16(len(th)))))
		return
	}
	uh := encap.UDP(l4)
	uh.SetChecksum(0)
	sum := ^encap.Checksum(uh, encap.PseudoHeaderChecksum(proto, src, dst, uint16(len(uh))))
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum"
	}
	uh.SetChecksum(sum)
}

// sameSegment compares two segments but for the urgent pointer (which GRO
// does not compare, as URG is never set) and the TCP checksum.
func sameSegment(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = bytes.Clone(a), bytes.Clone(b)
	for _, f := range [][]byte{a, b} {
		th := f[tcpOffset(f):]
		clear(th[encap.TCPChecksumOffset : encap.TCPChecksumOffset+4])
	}
	return bytes.Equal(a, b)
}

func FuzzParseTCPSeg(f *testing.F) {
	pair := func(s seg) ([]byte, []byte) {
		b := s
		b.seq += uint32(len(s.payload))
		b.id++
		b.payload = b.payload[:len(b.payload)-1]
		return s.frame(f), b.frame(f)
	}
	for _, s := range []seg{
		{payload: make([]byte, 100)},
		{tcpOpts: true, flags: encap.TCPFlagACK | encap.TCPFlagCWR, payload: make([]byte, 1448)},
		{v6: true, tcpOpts: true, payload: make([]byte, 10)},
	} {
		a, b := pair(s)
		f.Add(a, b, true)
		f.Add(a, b, false)
	}
	f.Fuzz(func(t *testing.T, a, b []byte, fix bool) {
		if fix {
			fixSums(a)
			fixSums(b)
		}
		sa, oka := encap.ParseTCPSeg(a)
		sb, okb := encap.ParseTCPSeg(b)
		for _, c := range []struct {
			f  []byte
			s  encap.TCPSeg
			ok bool
		}{{a, sa, oka}, {b, sb, okb}} {
			if c.ok && (c.s.HeaderLen()+c.s.PayloadLen() != len(c.f) || c.s.PayloadLen() < 1) {
				t.Fatalf("HeaderLen %d + PayloadLen %d != %d", c.s.HeaderLen(), c.s.PayloadLen(), len(c.f))
			}
		}
		if !oka || !okb {
			return
		}
		origA, origB := bytes.Clone(a), bytes.Clone(b)
		var r encap.TCPRun
		r.Start(a, sa)
		if !r.Append(b, sb) {
			if !bytes.Equal(a, origA) {
				t.Fatal("refused Append changed the first frame")
			}
			return
		}
		g, ok := r.Finish()
		if !ok || g.HdrLen != sa.HeaderLen() || g.Size != sa.PayloadLen() {
			t.Fatalf("Finish: %+v, %v", g, ok)
		}
		// The superframe splits back into the two segments.
		super := append(bytes.Clone(a), b[sb.HeaderLen():]...)
		s, err := encap.ParseTCPSuper(super, g.Size)
		if err != nil || s.Segments() != 2 {
			t.Fatalf("superframe: %v, %d segments", err, s.Segments())
		}
		for i, want := range [][]byte{origA, origB} {
			hdr := make([]byte, s.HeaderLen())
			got := append(hdr, s.Segment(i, super, hdr)...)
			if !sameSegment(got, want) {
				t.Fatalf("segment %d differs after coalesce+split:\n got %x\nwant %x", i, got, want)
			}
		}
		if err := encap.CompleteChecksum(super, g.CsumStart, g.CsumOffset); err != nil {
			t.Fatal(err)
		}
		src, dst := addrs(super)
		if encap.Checksum(super[g.CsumStart:], encap.PseudoHeaderChecksum(encap.ProtocolTCP, src, dst, uint16(len(super)-g.CsumStart))) != 0xffff {
			t.Fatal("completed superframe checksum invalid")
		}
	})
}

// DecapECN on any bytes: no panic; only the ECN bits of the IP header
// (and the IPv4 header checksum) may change, and only under an outer CE
// or ECT(1), to CE or ECT(1); a valid IPv4 header checksum stays valid.
func FuzzDecapECN(f *testing.F) {
	f.Add(seg{tos: encap.ECNECT0, payload: []byte("x")}.frame(f), uint8(encap.ECNCE))
	f.Add(seg{v6: true, tos: encap.ECNECT1, tags: 2}.frame(f), uint8(encap.ECNCE))
	f.Add(seg{ipOpts: true}.frame(f), uint8(encap.ECNCE))
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0, 1, 0x08, 0x00}, uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, outer uint8) {
		orig := bytes.Clone(b)
		wasValid := validIPv4Header(b)
		ecn := encap.FrameECN(b)
		ok := encap.DecapECN(b, outer)
		if !ok && (outer&3 != encap.ECNCE || ecn != encap.ECNNotECT) {
			t.Fatalf("refused with outer %d, inner %d", outer&3, ecn)
		}
		want := ecn
		switch {
		case outer&3 == encap.ECNCE && ecn != encap.ECNNotECT:
			want = encap.ECNCE
		case outer&3 == encap.ECNECT1 && ecn == encap.ECNECT0:
			want = encap.ECNECT1
		}
		if !ok || want == ecn {
			if !bytes.Equal(b, orig) {
				t.Fatal("changed, though refused or with nothing to mark")
			}
			return
		}
		if encap.FrameECN(b) != want {
			t.Fatalf("ECN %d after outer %d on ECN %d, want %d", encap.FrameECN(b), outer&3, ecn, want)
		}
		if wasValid && !validIPv4Header(b) {
			t.Fatal("a valid IPv4 header checksum became invalid")
		}
		// Nothing but the byte holding the ECN bits (the second of the
		// IP header) and the IPv4 header checksum changed, and in that
		// byte only the ECN bits.
		l3 := l3Offset(b)
		v4 := etherType(b) == encap.EtherTypeIPv4
		for i := range b {
			switch {
			case b[i] == orig[i]:
			case i == l3+1:
				mask := byte(3)
				if !v4 {
					mask = 3 << 4
				}
				if (b[i]^orig[i])&^mask != 0 {
					t.Fatalf("byte %d changed outside the ECN bits: %#02x to %#02x", i, orig[i], b[i])
				}
			case v4 && (i == l3+10 || i == l3+11):
			default:
				t.Fatalf("byte %d changed (IP header at %d)", i, l3)
			}
		}
	})
}

// validIPv4Header reports whether b is an untagged IPv4 frame with a whole
// header whose checksum verifies.
func validIPv4Header(b []byte) bool {
	if len(b) < encap.EthernetHeaderLen+encap.IPv4MinHeaderLen || binary.BigEndian.Uint16(b[12:]) != encap.EtherTypeIPv4 {
		return false
	}
	h := encap.IPv4(b[encap.EthernetHeaderLen:])
	return h.Version() == 4 && h.HeaderLen() >= encap.IPv4MinHeaderLen && len(h) >= h.HeaderLen() && h.ChecksumValid()
}

// fixUDPSums gives a frame that looks like untagged IPv4 or IPv6 UDP
// valid checksums, so that the fuzzer explores header fields rather than
// checksums.
func fixUDPSums(f []byte) { fixL4Sums(f, encap.ProtocolUDP, encap.UDPHeaderLen) }

// sameDatagram compares two UDP frames but for the UDP checksum (0 and
// 0xffff mean the same over IPv6, and a coalesced-then-split datagram
// gets a fresh one, checked separately).
func sameDatagram(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = bytes.Clone(a), bytes.Clone(b)
	for _, f := range [][]byte{a, b} {
		off := tcpOffset(f) // the transport header's offset
		clear(f[off+encap.UDPChecksumOffset : off+encap.UDPChecksumOffset+2])
	}
	return bytes.Equal(a, b)
}

// UDP coalescing on any pair of frames: ParseUDPSeg accepts only frames
// whose lengths add up; when a UDPRun takes both, Finish's superframe
// splits back (ParseUDPSuper, as the kernel's USO would) into exactly the
// two datagrams, each with a valid checksum, and a refused Append
// changes nothing.
func FuzzUDPCoalesce(f *testing.F) {
	pair := func(d dgram) ([]byte, []byte) {
		b := d
		b.id++
		b.payload = b.payload[:len(b.payload)-1]
		return d.frame(f), b.frame(f)
	}
	for _, d := range []dgram{
		{payload: make([]byte, 100)},
		{v6: true, payload: make([]byte, 1200)},
		{id: 0xffff, payload: []byte("xy")},
	} {
		a, b := pair(d)
		f.Add(a, b, true)
		f.Add(a, b, false)
	}
	f.Fuzz(func(t *testing.T, a, b []byte, fix bool) {
		if fix {
			fixUDPSums(a)
			fixUDPSums(b)
		}
		sa, oka := encap.ParseUDPSeg(a)
		sb, okb := encap.ParseUDPSeg(b)
		for _, c := range []struct {
			f  []byte
			s  encap.UDPSeg
			ok bool
		}{{a, sa, oka}, {b, sb, okb}} {
			if c.ok && (c.s.HeaderLen() >= len(c.f) || encap.UDP(c.f[c.s.HeaderLen()-encap.UDPHeaderLen:]).Length() != uint16(len(c.f)-c.s.HeaderLen()+encap.UDPHeaderLen)) {
				t.Fatalf("accepted with HeaderLen %d of %d bytes", c.s.HeaderLen(), len(c.f))
			}
		}
		if !oka || !okb {
			return
		}
		origA, origB := bytes.Clone(a), bytes.Clone(b)
		var r encap.UDPRun
		r.Start(a, sa)
		if !r.Append(b, sb) {
			if !bytes.Equal(a, origA) || !bytes.Equal(b, origB) {
				t.Fatal("a refused Append changed a frame")
			}
			return
		}
		g, ok := r.Finish()
		if !ok || !g.UDP || g.HdrLen != sa.HeaderLen() || g.Size != len(a)-sa.HeaderLen() {
			t.Fatalf("Finish: %+v, %v", g, ok)
		}
		super := append(bytes.Clone(a), b[sb.HeaderLen():]...)
		s, err := encap.ParseUDPSuper(super, g.Size)
		if err != nil || s.Segments() != 2 {
			t.Fatalf("superframe: %v, %d datagrams", err, s.Segments())
		}
		for i, want := range [][]byte{origA, origB} {
			hdr := make([]byte, s.HeaderLen())
			got := append(hdr, s.Segment(i, super, hdr)...)
			if !sameDatagram(got, want) {
				t.Fatalf("datagram %d differs after coalesce+split:\n got %x\nwant %x", i, got, want)
			}
			off := tcpOffset(got)
			src, dst := addrs(got)
			if encap.Checksum(got[off:], encap.PseudoHeaderChecksum(encap.ProtocolUDP, src, dst, uint16(len(got)-off))) != 0xffff {
				t.Fatalf("datagram %d: checksum invalid", i)
			}
		}
	})
}

// TCPSuper.Verify on any superframe: CsumValid exactly when the IPv4
// header and the TCP checksum over everything verify (a plain RFC 1071
// sum decides), CsumPartial only when the field holds the pseudo-header
// sum, and the frame is never changed.
func FuzzTCPSuperVerify(f *testing.F) {
	f.Add(seg{payload: make([]byte, 3000)}.frame(f), uint8(0))
	f.Add(seg{v6: true, payload: make([]byte, 3000)}.frame(f), uint8(1))
	f.Add(seg{payload: make([]byte, 3000)}.frame(f), uint8(2))
	f.Add(seg{tags: 1, payload: make([]byte, 500)}.frame(f), uint8(3))
	f.Fuzz(func(t *testing.T, frame []byte, mode uint8) {
		s, err := encap.ParseTCPSuper(frame, 1000)
		if err != nil {
			return
		}
		l3, off := l3Offset(frame), tcpOffset(frame)
		src, dst := addrs(frame)
		ph := encap.PseudoHeaderChecksum(encap.ProtocolTCP, src, dst, uint16(len(frame)-off))
		switch mode % 4 {
		case 1: // the partial signature
			encap.TCP(frame[off:]).SetChecksum(ph)
		case 2: // a valid checksum
			th := encap.TCP(frame[off:])
			th.SetChecksum(0)
			th.SetChecksum(^encap.Checksum(th, ph))
		}
		if !isV6(frame) && mode%4 != 3 {
			encap.IPv4(frame[l3:]).UpdateChecksum()
		}
		orig := bytes.Clone(frame)
		got := s.Verify(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatal("Verify changed the frame")
		}
		ipOK := isV6(frame) || naiveChecksum(frame[l3:l3+encap.IPv4(frame[l3:]).HeaderLen()], 0) == 0xffff
		field := encap.TCP(frame[off:]).Checksum()
		var want encap.CsumState
		switch {
		case !ipOK:
			want = encap.CsumBad
		case field == ph:
			want = encap.CsumPartial
		case naiveChecksum(frame[off:], ph) == 0xffff:
			want = encap.CsumValid
		default:
			want = encap.CsumBad
		}
		if got != want {
			t.Fatalf("Verify = %d, want %d (IPv4 header valid %v, field %#04x, pseudo-header sum %#04x)", got, want, ipOK, field, ph)
		}
	})
}
