package tap_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/testenv"
	"github.com/vxswitch/vxswitch/tap"
)

var (
	tapMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	peerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// newTAP makes a namespace with a TAP that holds 10.9.0.1/24 (so the
// namespace's own stack answers frames written to it) and a permanent
// neighbour 10.9.0.2 behind it.
func newTAP(t *testing.T, offload bool) (tap.Device, string) {
	t.Helper()
	ns := testenv.TempNS(t, "tap")
	var fell error
	var dev tap.Device
	err := nsutil.Do(ns, func() (err error) {
		dev, err = tap.Create(tap.Options{Name: "tap0", MTU: 1500, Offload: offload, Fallback: func(e error) { fell = e }})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if fell != nil {
		t.Fatalf("offloads refused: %v", fell)
	}
	h, err := nsutil.Handle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, _ := h.LinkByName("tap0")
	h.LinkSetHardwareAddr(l, tapMAC)
	h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IP{10, 9, 0, 1}, Mask: net.CIDRMask(24, 32)}})
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT, IP: net.IP{10, 9, 0, 2}, HardwareAddr: peerMAC}); err != nil {
		t.Fatal(err)
	}
	return dev, ns
}

func echoRequest(t *testing.T) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: peerMAC, DstMAC: tapMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{10, 9, 0, 2}, DstIP: net.IP{10, 9, 0, 1}},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1},
		gopacket.Payload([]byte("tap test")))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readFrame reads frames until one matches, with a deadline.
func readFrame(t *testing.T, dev tap.Device, offset int, match func(f []byte) bool) (tap.VirtioNetHdr, []byte) {
	t.Helper()
	bufs := [][]byte{make([]byte, 1<<16+offset)}
	sizes := []int{0}
	done := time.After(5 * time.Second)
	for {
		got := make(chan error, 1)
		go func() { _, err := dev.Read(bufs, sizes, offset); got <- err }()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-done:
			t.Fatal("no frame from the TAP")
		}
		var vh tap.VirtioNetHdr
		if o, ok := dev.(tap.Offloader); ok && o.VNetHdr() {
			vh.Decode(bufs[0][offset-tap.VirtioNetHdrLen:])
		}
		if f := bufs[0][offset : offset+sizes[0]]; match(f) {
			return vh, f
		}
	}
}

func isEchoReply(f []byte) bool {
	return len(f) > 34 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 1 && f[34] == 0
}

// Both paths: a frame written to the TAP reaches the namespace's stack,
// whose answer comes back out of the TAP.
func TestEcho(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(map[bool]string{false: "water", true: "vnet"}[offload], func(t *testing.T) {
			dev, _ := newTAP(t, offload)
			if _, ok := dev.(tap.Offloader); ok != offload {
				t.Fatalf("offload %v but Offloader %v", offload, ok)
			}
			offset := 0
			req := echoRequest(t)
			buf := req
			if offload {
				offset = tap.VirtioNetHdrLen
				buf = append(make([]byte, offset), req...) // a zero header: a plain frame
			}
			if _, err := dev.Write([][]byte{buf}, offset); err != nil {
				t.Fatal(err)
			}
			vh, f := readFrame(t, dev, offset, isEchoReply)
			if vh.GSOType != tap.GSONone {
				t.Errorf("echo reply with GSO type %d", vh.GSOType)
			}
			if gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).TypeCode.Type() != layers.ICMPv4TypeEchoReply {
				t.Error("not an echo reply")
			}
		})
	}
}

// With offloads, the kernel hands over partial checksums (completed with
// encap.CompleteChecksum), accepts a GSO superframe written with WriteVec,
// and reading and writing allocate nothing.
func TestOffloads(t *testing.T) {
	dev, ns := newTAP(t, true)
	o := dev.(tap.Offloader)
	p := dev.(tap.Poller)

	// A UDP datagram from the namespace to the neighbour leaves with a
	// partial checksum: the TAP negotiated TUN_F_CSUM.
	var conn net.PacketConn
	if err := nsutil.Do(ns, func() (err error) { conn, err = net.ListenPacket("udp4", "10.9.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteTo(make([]byte, 100), &net.UDPAddr{IP: net.IP{10, 9, 0, 2}, Port: 9})
	vh, f := readFrame(t, dev, tap.VirtioNetHdrLen, func(f []byte) bool { return len(f) > 34 && f[23] == 17 })
	if vh.Flags&tap.VirtioNetHdrFNeedsCsum == 0 || vh.CsumStart != 34 || vh.CsumOffset != 6 {
		t.Fatalf("UDP frame's header %+v: want NEEDS_CSUM at 34+6", vh)
	}
	if err := encap.CompleteChecksum(f, int(vh.CsumStart), int(vh.CsumOffset)); err != nil {
		t.Fatal(err)
	}
	ip := encap.IPv4(f[14:])
	if encap.Checksum(f[34:], encap.PseudoHeaderChecksum(17, ip.Src(), ip.Dst(), uint16(len(f)-34))) != 0xffff {
		t.Error("completed UDP checksum is invalid")
	}

	// A TCP superframe of 3 segments with a GSO header is taken.
	payload := make([]byte, 3*1000)
	buf := gopacket.NewSerializeBuffer()
	tcpl := &layers.TCP{SrcPort: 5000, DstPort: 5001, Seq: 1, ACK: true, Window: 100}
	ipl := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 9, 0, 2}, DstIP: net.IP{10, 9, 0, 1}}
	tcpl.SetNetworkLayerForChecksum(ipl)
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: peerMAC, DstMAC: tapMAC, EthernetType: layers.EthernetTypeIPv4}, ipl, tcpl, gopacket.Payload(payload))
	super := buf.Bytes()
	th := encap.TCP(super[34:])
	th.SetChecksum(encap.PseudoHeaderChecksum(6, super[26:30], super[30:34], uint16(len(super)-34)))
	hdr := make([]byte, tap.VirtioNetHdrLen)
	(&tap.VirtioNetHdr{Flags: tap.VirtioNetHdrFNeedsCsum, GSOType: tap.GSOTCPv4, HdrLen: 54, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}).Encode(hdr)
	if err := o.WriteVec([][]byte{hdr, super[:54], super[54:]}); err != nil {
		t.Fatalf("GSO write refused: %v", err)
	}

	bufs := [][]byte{make([]byte, 1<<16+tap.VirtioNetHdrLen)}
	sizes := []int{0}
	req := append(make([]byte, tap.VirtioNetHdrLen), echoRequest(t)...)
	iov := [][]byte{req}
	time.Sleep(50 * time.Millisecond)
	for { // drain what the namespace sent (a RST for the superframe)
		if k, _ := p.TryRead(bufs, sizes, tap.VirtioNetHdrLen); k == 0 {
			break
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := o.WriteVec(iov); err != nil {
			t.Fatal(err)
		}
		if _, err := p.TryRead(bufs, sizes, tap.VirtioNetHdrLen); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per write and read", allocs)
	}
}

// Close unblocks a pending Read with ErrClosed.
func TestCloseUnblocks(t *testing.T) {
	for _, offload := range []bool{false, true} {
		dev, _ := newTAP(t, offload)
		errc := make(chan error, 1)
		go func() {
			for { // the namespace may send a frame or two (IPv6) first
				if _, err := dev.Read([][]byte{make([]byte, 1<<16+10)}, []int{0}, 10); err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(20 * time.Millisecond)
		dev.Close()
		select {
		case err := <-errc:
			if err != tap.ErrClosed {
				t.Errorf("offload %v: Read after Close: %v, want ErrClosed", offload, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("offload %v: Close did not unblock Read", offload)
		}
	}
}

// On kernels with UDP segmentation offload (6.2 and later; this suite
// runs on one), the TAP hands over a UDP_SEGMENT send as one GSO_UDP_L4
// superframe and takes one back, which the namespace's stack receives as
// the datagrams it holds.
func TestUSO(t *testing.T) {
	dev, ns := newTAP(t, true)
	if u, ok := dev.(tap.UDPOffloader); !ok || !u.USO() {
		t.Fatal("the kernel did not negotiate UDP segmentation offload")
	}
	o := dev.(tap.Offloader)

	// Out: one send of 1200 bytes with UDP_SEGMENT 500.
	var conn *net.UDPConn
	if err := nsutil.Do(ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP{10, 9, 0, 1}, Port: 7000})
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 500) }); err != nil || serr != nil {
		t.Fatalf("UDP_SEGMENT: %v %v", err, serr)
	}
	if _, err := conn.WriteTo(make([]byte, 1200), &net.UDPAddr{IP: net.IP{10, 9, 0, 2}, Port: 9}); err != nil {
		t.Fatal(err)
	}
	vh, f := readFrame(t, dev, tap.VirtioNetHdrLen, func(f []byte) bool { return len(f) > 34 && f[23] == 17 })
	if vh.GSOType != tap.GSOUDPL4 || vh.GSOSize != 500 || vh.Flags&tap.VirtioNetHdrFNeedsCsum == 0 || vh.CsumStart != 34 || vh.CsumOffset != 6 {
		t.Fatalf("UDP_SEGMENT send arrived with header %+v", vh)
	}
	if len(f) != 42+1200 {
		t.Fatalf("superframe of %d bytes, want %d", len(f), 42+1200)
	}

	// In: a superframe of 500 + 500 + 200 bytes to the socket above.
	payload := make([]byte, 1200)
	for i := range payload {
		payload[i] = byte(i / 100)
	}
	buf := gopacket.NewSerializeBuffer()
	udpl := &layers.UDP{SrcPort: 9, DstPort: 7000}
	ipl := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 9, 0, 2}, DstIP: net.IP{10, 9, 0, 1}}
	udpl.SetNetworkLayerForChecksum(ipl)
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: peerMAC, DstMAC: tapMAC, EthernetType: layers.EthernetTypeIPv4}, ipl, udpl, gopacket.Payload(payload))
	super := buf.Bytes()
	encap.UDP(super[34:]).SetChecksum(encap.PseudoHeaderChecksum(17, super[26:30], super[30:34], uint16(len(super)-34)))
	hdr := make([]byte, tap.VirtioNetHdrLen)
	(&tap.VirtioNetHdr{Flags: tap.VirtioNetHdrFNeedsCsum, GSOType: tap.GSOUDPL4, HdrLen: 42, GSOSize: 500, CsumStart: 34, CsumOffset: 6}).Encode(hdr)
	if err := o.WriteVec([][]byte{hdr, super[:42], super[42:]}); err != nil {
		t.Fatalf("USO write refused: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rb := make([]byte, 2000)
	for i, want := range []int{500, 500, 200} {
		n, _, err := conn.ReadFrom(rb)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if n != want || !bytes.Equal(rb[:n], payload[i*500:i*500+n]) {
			t.Fatalf("datagram %d: %d bytes, want %d of the superframe's payload", i, n, want)
		}
	}
}
