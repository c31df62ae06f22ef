package vswitch_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/testenv"
	vswitch "github.com/vxswitch/vxswitch/switch"
	"github.com/vxswitch/vxswitch/switch/udp"
	"github.com/vxswitch/vxswitch/tap"
)

// The kernel is the judge of the proxy's answers: a namespace whose TAP
// is a network of a running switch sends to two addresses only the
// proxy's table knows, resolves both (ARP, and IPv6 Neighbor Discovery,
// which checks the advertisement's hop limit, ICMPv6 checksum and
// options) to the table's MAC, and no request for them reaches the
// overlay: the peer VTEP sees the datagrams that follow, not the
// requests. With a simple TAP and with one with offloads.
func TestProxyResolvesInTheKernel(t *testing.T) {
	ulNS := testenv.LoopbackUnderlayNS(t)
	h, err := nsutil.Handle(ulNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, _ := h.LinkByName("lo")
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.IP{198, 18, 0, 2}, Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	for _, offload := range []bool{false, true} {
		name := "simple"
		if offload {
			name = "offload"
		}
		t.Run(name, func(t *testing.T) {
			// The peer VTEP: a plain socket that records what the switch
			// floods to it.
			var peer net.PacketConn
			if err := nsutil.Do(ulNS, func() (err error) {
				peer, err = net.ListenPacket("udp4", "198.18.0.2:4789")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var overlay [][]byte
			peerDone := make(chan struct{})
			go func() {
				defer close(peerDone)
				b := make([]byte, 1<<16)
				for {
					k, _, err := peer.ReadFrom(b)
					if err != nil {
						return
					}
					mu.Lock()
					overlay = append(overlay, append([]byte(nil), b[:k]...))
					mu.Unlock()
				}
			}()
			t.Cleanup(func() {
				peer.Close()
				<-peerDone
			})

			// Made before the switch, so removed after it (cleanups run
			// last first): the switch closes the TAP in it.
			ns, _ := testenv.TempNSHandle(t, "proxy")
			ul, err := listenUDP(ulNS, udp.Config{Local: netip.MustParseAddrPort("198.18.0.1:4789")})
			if err != nil {
				t.Fatal(err)
			}
			sw, err := vswitch.New(vswitch.Config{Underlay: ul})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- sw.Run(context.Background()) }()
			t.Cleanup(func() {
				sw.Close()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})

			var fell error
			dev, err := createTAP(ns, tap.Options{Name: "vxt0", MTU: 1450, Offload: offload, Fallback: func(e error) { fell = e }})
			if err != nil {
				t.Fatal(err)
			}
			if fell != nil {
				dev.Close()
				t.Fatalf("offloads refused: %v", fell)
			}
			n, err := sw.AddNetwork(vswitch.NetworkConfig{VNI: 4242, TAP: dev})
			if err != nil {
				dev.Close()
				t.Fatal(err)
			}
			if n.Offload() != offload {
				t.Fatalf("Offload() = %v", n.Offload())
			}
			n.FIB().AddPeer(netip.MustParseAddr("198.18.0.2"))
			owner := fib.MAC{0x02, 0x42, 0x0a, 0x09, 0x00, 0x07}
			ip4, ip6 := netip.MustParseAddr("10.9.0.7"), netip.MustParseAddr("fd00:9::7")
			n.SetNeighbors(map[netip.Addr]fib.MAC{ip4: owner, ip6: owner})

			nh, err := nsutil.Handle(ns)
			if err != nil {
				t.Fatal(err)
			}
			defer nh.Close()
			link, err := nh.LinkByName("vxt0")
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []*netlink.Addr{
				{IPNet: &net.IPNet{IP: net.IP{10, 9, 0, 1}, Mask: net.CIDRMask(24, 32)}},
				{IPNet: &net.IPNet{IP: net.ParseIP("fd00:9::1"), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD},
			} {
				if err := nh.AddrAdd(link, a); err != nil {
					t.Fatal(err)
				}
			}

			// A datagram to each address makes the stack resolve it.
			if err := nsutil.Do(ns, func() error {
				for _, dst := range []string{"10.9.0.7:9", "[fd00:9::7]:9"} {
					c, err := net.Dial("udp", dst)
					if err != nil {
						return err
					}
					_, err = c.Write([]byte("resolve me"))
					c.Close()
					if err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for _, a := range []netip.Addr{ip4, ip6} {
				family := netlink.FAMILY_V4
				if a.Is6() {
					family = netlink.FAMILY_V6
				}
				deadline := time.Now().Add(10 * time.Second)
				for {
					neighs, err := nh.NeighList(link.Attrs().Index, family)
					if err != nil {
						t.Fatal(err)
					}
					state, mac := 0, net.HardwareAddr(nil)
					for _, e := range neighs {
						if e.IP.Equal(a.AsSlice()) {
							state, mac = e.State, e.HardwareAddr
						}
					}
					const resolved = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE
					if state&resolved != 0 && string(mac) == string(owner[:]) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%v: neighbour state %#x lladdr %v, want resolved to %v; counters %+v",
							a, state, mac, owner, n.Stats())
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			// The kernel may have taken an answer before the proxy
			// counted it.
			deadline := time.Now().Add(10 * time.Second)
			for s := n.Stats(); s.ARPProxied == 0 || s.NDProxied == 0; s = n.Stats() {
				if time.Now().After(deadline) {
					t.Fatalf("counters %+v: want ARP and ND answered", s)
				}
				time.Sleep(time.Millisecond)
			}
			if s := n.Stats(); s.Drops["tap_error"] != 0 {
				t.Errorf("counters %+v: want no TAP errors", s)
			}
			// The datagrams that waited for resolution went to the owner's
			// MAC, which no VTEP has: they are flooded to the peer, after
			// the requests would have been.
			isData := func(f []byte) bool {
				return len(f) >= encap.EthernetHeaderLen && string(encap.Ethernet(f).Dst()) == string(owner[:])
			}
			deadline = time.Now().Add(10 * time.Second)
			for {
				mu.Lock()
				data := 0
				for _, d := range overlay {
					if isData(d[encap.VXLANHeaderLen:]) {
						data++
					}
				}
				mu.Unlock()
				if data >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of the 2 datagrams reached the peer", data)
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range overlay {
				f := d[encap.VXLANHeaderLen:]
				switch encap.Ethernet(f).EtherType() {
				case encap.EtherTypeARP:
					if a := encap.ARP(f[encap.EthernetHeaderLen:]); a.Valid() && a.TargetIP() == ip4.As4() {
						t.Errorf("an ARP request for %v reached the overlay", ip4)
					}
				case encap.EtherTypeIPv6:
					if _, m, err := encap.ParseNeighborSolicit(f); err == nil && netip.AddrFrom16([16]byte(m.Target())) == ip6 {
						t.Errorf("a Neighbor Solicitation for %v reached the overlay", ip6)
					}
				}
			}
		})
	}
}
