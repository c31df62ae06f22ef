package udp_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/testenv"
	vswitch "github.com/vxswitch/vxswitch/switch"
	"github.com/vxswitch/vxswitch/switch/udp"
)

// listen opens an underlay in the namespace at ns.
func listen(ns string, cfg udp.Config) (*udp.Underlay, error) {
	var u *udp.Underlay
	err := nsutil.Do(ns, func() (err error) {
		u, err = udp.Listen(cfg)
		return err
	})
	return u, err
}

// The real underlay, over IPv4 and IPv6, with UDP GSO and with GSO
// refused: a GSO send gathered from iovecs that do not line up with its
// datagrams arrives as exactly those datagrams (coalesced by UDP GRO or
// not), from a source port in the configured range; a message Send cannot
// send is counted and does not stop the others; sending and receiving
// allocate nothing.
func TestUDPUnderlay(t *testing.T) {
	ns := testenv.LoopbackUnderlayNS(t)
	for _, tc := range []struct {
		name  string
		local string
		gso   bool
	}{
		{"ipv4", "198.18.0.1:4789", true},
		{"ipv4 without GSO", "198.18.0.1:4790", false},
		{"ipv6", "[fd00::1]:4789", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := netip.MustParseAddrPort(tc.local)
			ul, err := listen(ns, udp.Config{Local: local, SrcPortMin: 50000, SrcPortMax: 50100})
			if err != nil {
				t.Fatal(err)
			}
			defer ul.Close()
			udp.SetGSO(ul, tc.gso)

			// Five datagrams of 1000 bytes and one of 300, in two
			// iovecs each at a third.
			var want [][]byte
			var iov [][]byte
			for i := range 6 {
				size := 1000
				if i == 5 {
					size = 300
				}
				d := bytes.Repeat([]byte{byte('a' + i)}, size)
				want = append(want, d)
				iov = append(iov, d[:size/3], d[size/3:])
			}
			other := netip.MustParseAddrPort("198.18.0.9:4789")
			if local.Addr().Is4() {
				other = netip.MustParseAddrPort("[fd00::9]:4789")
			}
			msgs := []vswitch.SendMsg{
				{Iov: iov, Dst: local, SegSize: 1000, Flow: 7},
				{Iov: [][]byte{[]byte("x")}, Dst: other, Flow: 7}, // the other family: refused
				// Refused too, and counted as its three datagrams.
				{Iov: [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 50)}, Dst: other, SegSize: 100, Flow: 7},
				{Iov: [][]byte{[]byte("last")}, Dst: local, Flow: 7},
			}
			want = append(want, []byte("last"))
			if failed, err := ul.Send(msgs); failed != 4 || err == nil {
				t.Fatalf("Send: %d failed, %v; want the four datagrams to the other family", failed, err)
			}
			recv := make([]vswitch.RecvMsg, ul.BatchSize())
			for i := range recv {
				recv[i].Buf = make([]byte, 1<<16)
			}
			var got [][]byte
			recvDatagrams(t, ul, recv, len(want), func(m *vswitch.RecvMsg, d []byte) {
				if m.Src.Addr() != local.Addr() || m.Src.Port() < 50000 || m.Src.Port() > 50100 {
					t.Errorf("from %v: want %v and a port in 50000-50100", m.Src, local.Addr())
				}
				got = append(got, append([]byte(nil), d...))
			})
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("datagram %d: %d bytes of %q, want %d of %q", i, len(got[i]), got[i][:1], len(want[i]), want[i][:1])
				}
			}
			if udp.GSO(ul) != tc.gso {
				t.Errorf("GSO is %v after the test, want %v", udp.GSO(ul), tc.gso)
			}

			one := []vswitch.SendMsg{{Iov: [][]byte{want[0]}, Dst: local, Flow: 1}}
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := ul.Send(one); err != nil {
					t.Fatal(err)
				}
				if _, err := ul.Recv(recv); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per send and receive", allocs)
			}
		})
	}
}

// A link-local VTEP names its interface, which is looked up in the
// underlay's namespace, not the caller's: two namespaces whose interfaces
// of the same name have different indexes each get their own (Go's own
// name lookup would answer from a process-wide cache), and an address
// that is not link-local takes no interface.
func TestUDPUnderlayLinkLocal(t *testing.T) {
	for i, extra := range []int{0, 2} {
		path, h := testenv.TempNSHandle(t, "ns")
		// Interfaces made before "ul" shift its index (veth pairs: this
		// kernel may lack dummy devices).
		for j := range extra {
			n := strconv.Itoa(j)
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pad" + n}, PeerName: "padp" + n}); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul"}, PeerName: "ulp"}); err != nil {
			t.Fatal(err)
		}
		ul, err := h.LinkByName("ul")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(ul); err != nil {
			t.Fatal(err)
		}
		if err := h.AddrAdd(ul, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
		u, err := listen(path, udp.Config{Local: netip.MustParseAddrPort("[fe80::1%ul]:4789")})
		if err != nil {
			t.Fatalf("namespace %d: %v", i, err)
		}
		t.Cleanup(func() { u.Close() })
		if got, err := udp.BoundIndex(u); err != nil || got != ul.Attrs().Index {
			t.Errorf("namespace %d: bound to interface %d (%v), want ul's index %d", i, got, err, ul.Attrs().Index)
		}
		refused(t, path, "[fe80::1%nope]:4789", "nope")
	}
	ns, _ := testenv.TempNSHandle(t, "ns")
	refused(t, ns, "[fd00::1%lo]:4789", "only a link-local")
}

// refused requires ListenUDP on local in ns to fail with an error saying
// want; an underlay opened after all is closed.
func refused(t *testing.T, ns, local, want string) {
	t.Helper()
	u, err := listen(ns, udp.Config{Local: netip.MustParseAddrPort(local)})
	if err == nil {
		u.Close()
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ListenUDP on %s: %v, want an error saying %q", local, err, want)
	}
}

// recvDatagrams receives until n datagrams have arrived, calling each for
// every one (a GRO slot holds several), and fails the test rather than
// hang if they have not after 10 s.
func recvDatagrams(t *testing.T, ul vswitch.Underlay, recv []vswitch.RecvMsg, n int, each func(m *vswitch.RecvMsg, d []byte)) {
	t.Helper()
	try := ul.(interface {
		TryRecv([]vswitch.RecvMsg) (int, error)
	})
	deadline := time.Now().Add(10 * time.Second)
	for got := 0; got < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d datagrams arrived", got, n)
		}
		k, err := try.TryRecv(recv)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			time.Sleep(time.Millisecond)
		}
		for i := range recv[:k] {
			m := &recv[i]
			step := m.SegSize
			if step == 0 {
				step = m.N
			}
			for off := 0; off < m.N; off += step {
				each(m, m.Buf[off:min(off+step, m.N)])
				got++
			}
		}
	}
}

// The outer ECN field travels with every datagram over the real sockets:
// set per message on send (also on a GSO message, and when one is split
// because GSO is refused) and reported per slot on receive, over IPv4 and
// IPv6.
func TestUDPUnderlayECN(t *testing.T) {
	ns := testenv.LoopbackUnderlayNS(t)
	for _, local := range []string{"198.18.0.1:4791", "[fd00::1]:4791"} {
		for _, gso := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s gso=%v", local, gso), func(t *testing.T) {
				dst := netip.MustParseAddrPort(local)
				ul, err := listen(ns, udp.Config{Local: dst, SrcPortMin: 50000, SrcPortMax: 50100})
				if err != nil {
					t.Fatal(err)
				}
				defer ul.Close()
				udp.SetGSO(ul, gso)
				recv := make([]vswitch.RecvMsg, ul.BatchSize())
				for i := range recv {
					recv[i].Buf = make([]byte, 1<<16)
				}
				for ecn := range uint8(4) {
					// A lone datagram, then three of 100 bytes as one
					// GSO message.
					msgs := []vswitch.SendMsg{
						{Iov: [][]byte{[]byte("lone")}, Dst: dst, ECN: ecn},
						{Iov: [][]byte{make([]byte, 300)}, Dst: dst, SegSize: 100, ECN: ecn},
					}
					if failed, err := ul.Send(msgs); failed != 0 || err != nil {
						t.Fatalf("Send: %d failed, %v", failed, err)
					}
					recvDatagrams(t, ul, recv, 4, func(m *vswitch.RecvMsg, _ []byte) {
						if m.ECN != ecn {
							t.Errorf("sent with ECN %d, received %d", ecn, m.ECN)
						}
					})
				}
				if udp.GSO(ul) != gso {
					t.Errorf("GSO is %v after the test, want %v", udp.GSO(ul), gso)
				}
			})
		}
	}
}

// Datagrams the kernel drops because the receive buffer is full are
// counted (SO_RXQ_OVFL): after a burst into a small buffer that nobody
// reads, what arrived plus what overflowed is what was sent.
func TestUDPUnderlayOverflow(t *testing.T) {
	ns := testenv.LoopbackUnderlayNS(t)
	local := netip.MustParseAddrPort("198.18.0.1:4792")
	ul, err := listen(ns, udp.Config{Local: local, SrcPortMin: 50000, SrcPortMax: 50100, NoOffload: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	if err := udp.SetRecvBuffer(ul, 4096); err != nil {
		t.Fatal(err)
	}
	const burst = 2000
	d := make([]byte, 200)
	msgs := make([]vswitch.SendMsg, 64)
	for i := range msgs {
		msgs[i] = vswitch.SendMsg{Iov: [][]byte{d}, Dst: local, Flow: uint16(i)}
	}
	for sent := 0; sent < burst; sent += len(msgs) {
		if failed, err := ul.Send(msgs[:min(len(msgs), burst-sent)]); failed != 0 {
			t.Fatalf("Send: %d failed: %v", failed, err)
		}
	}
	// One more after the burst, once the buffer has room, carries the
	// kernel's final count.
	recv := make([]vswitch.RecvMsg, ul.BatchSize())
	for i := range recv {
		recv[i].Buf = make([]byte, 1<<16)
	}
	got := 0
	drain := func() {
		for {
			k, err := ul.TryRecv(recv)
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				return
			}
			got += k
		}
	}
	drain()
	if _, err := ul.Send(msgs[:1]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for got+int(ul.Stats().RXOverflow) < burst+1 && time.Now().Before(deadline) {
		drain()
		time.Sleep(time.Millisecond)
	}
	over := ul.Stats().RXOverflow
	if over == 0 || got+int(over) != burst+1 {
		t.Fatalf("sent %d, received %d, overflowed %d", burst+1, got, over)
	}
	t.Logf("sent %d: received %d, %d overflowed", burst+1, got, over)
}
