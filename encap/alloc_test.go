package encap_test

import (
	"bytes"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
)

// TestZeroAllocs proves the hot-path functions allocate nothing.
func TestZeroAllocs(t *testing.T) {
	vx := make([]byte, encap.VXLANHeaderLen)
	data := make([]byte, 1500)
	super := seg{tcpOpts: true, payload: make([]byte, 20000)}.super(t)
	hdr := make([]byte, 128)
	frames := split(t, seg{tcpOpts: true, payload: make([]byte, 10*1000)}.super(t), 1000)
	firstHdr := bytes.Clone(frames[0][:66])
	arp := arpFrame(t, encap.ARPRequest)
	udp := udpFrame(t, false, data[:100])
	sol := ns{}.frame(t)
	reply := make([]byte, encap.NeighborAdvertFrameLen)

	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"PutVXLAN+ParseVXLAN", func() {
			encap.PutVXLAN(vx, 42)
			if _, err := encap.ParseVXLAN(vx); err != nil {
				t.Fatal(err)
			}
		}},
		{"ParseVXLAN error", func() {
			if _, err := encap.ParseVXLAN(vx[:3]); err == nil {
				t.Fatal("no error")
			}
		}},
		{"Checksum", func() { encap.Checksum(data, 1) }},
		{"PseudoHeaderChecksum", func() { encap.PseudoHeaderChecksum(6, data[:16], data[16:32], 9) }},
		{"CompleteChecksum", func() {
			if err := encap.CompleteChecksum(udp, 34, encap.UDPChecksumOffset); err != nil {
				t.Fatal(err)
			}
		}},
		{"ParseTCPSuper+Segment", func() {
			s, err := encap.ParseTCPSuper(super, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for i := range s.Segments() {
				s.Segment(i, super, hdr)
			}
		}},
		{"ParseTCPSuper error", func() {
			if _, err := encap.ParseTCPSuper(arp, 1000); err == nil {
				t.Fatal("no error")
			}
		}},
		{"ParseTCPSeg+Append+Finish", func() {
			copy(frames[0], firstHdr) // undo the previous run's Finish
			var r encap.TCPRun
			for i, f := range frames {
				s, ok := encap.ParseTCPSeg(f)
				if !ok {
					t.Fatalf("segment %d refused", i)
				}
				if i == 0 {
					r.Start(f, s)
				} else if !r.Append(f, s) {
					t.Fatalf("segment %d not appended", i)
				}
			}
			if _, ok := r.Finish(); !ok {
				t.Fatal("no GSO")
			}
		}},
		{"SourcePort", func() {
			encap.SourcePort(super, 49152, 65535)
			encap.SourcePort(arp, 49152, 65535)
		}},
		{"ParseNeighborSolicit+SourceLinkAddr", func() {
			if _, m, err := encap.ParseNeighborSolicit(sol); err != nil || m == nil {
				t.Fatal(err)
			} else if _, ok := m.SourceLinkAddr(); !ok {
				t.Fatal("no source link address")
			}
		}},
		{"ParseNeighborSolicit error", func() {
			if _, _, err := encap.ParseNeighborSolicit(udp); err == nil {
				t.Fatal("no error")
			}
		}},
		{"PutEthernet+PutARP", func() {
			encap.PutEthernet(reply, arp[6:12], arp[0:6], encap.EtherTypeARP)
			encap.PutARP(reply[encap.EthernetHeaderLen:], encap.ARPReply, arp[6:12], [4]byte{1, 2, 3, 4}, arp[0:6], [4]byte{5, 6, 7, 8})
		}},
		{"PutIPv6+PutNeighborAdvert+UpdateChecksum", func() {
			encap.PutIPv6(reply[encap.EthernetHeaderLen:], sol[22:38], sol[38:54], encap.ProtocolICMPv6, 255, encap.NeighborAdvertLen)
			m := reply[encap.EthernetHeaderLen+encap.IPv6HeaderLen : encap.NeighborAdvertFrameLen]
			encap.PutNeighborAdvert(m, encap.NDPFlagSolicited, sol[62:78], arp[0:6])
			encap.ICMPv6(m).UpdateChecksum(sol[22:38], sol[38:54])
		}},
		{"Ethernet+ARP views", func() {
			e := encap.Ethernet(arp)
			a := encap.ARP(arp[encap.EthernetHeaderLen:])
			if !encap.IsMulticastMAC(e.Dst()) || !a.Valid() || a.SenderIP() == a.TargetIP() {
				t.Fatal("views")
			}
		}},
	} {
		if n := testing.AllocsPerRun(100, tc.fn); n != 0 {
			t.Errorf("%s: %v allocs per run", tc.name, n)
		}
	}
}
