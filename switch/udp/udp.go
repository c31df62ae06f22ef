// Package udp is vxswitch's Linux underlay: the UDP sockets that carry
// VXLAN datagrams between VTEPs, with batching (recvmmsg, sendmmsg), UDP
// GSO (UDP_SEGMENT) and GRO, a pool of send sockets for per-flow source
// ports, Don't Fragment, and the outer ECN field. *Underlay implements
// vswitch.Underlay, kept apart from the datapath as wireguard-go keeps
// its conn package apart from its device.
//
// Listen opens the sockets in the calling thread's network namespace: to
// open them in another, call it on a thread that has entered it (the
// daemon uses internal/nsutil.Do). The sockets keep their namespace and
// may be used from any goroutine afterwards.
package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"go.uber.org/zap"

	vswitch "github.com/vxswitch/vxswitch/switch"
)

const (
	// socketBuffer is the send and receive buffer asked for: enough to
	// absorb a burst of a few thousand full-size datagrams while a loop is
	// descheduled on a 2-core machine (the default ~200 KiB drops under
	// iperf-class load).
	socketBuffer = 8 << 20
	// udpBatch is how many messages one recvmmsg or sendmmsg carries at
	// most; with GRO each slot may hold 64 KiB, so 16 slots are up to 1
	// MiB of datagrams per system call.
	udpBatch = 16
	// maxSendIov bounds the iovecs of one sendmmsg (the kernel's
	// UIO_MAXIOV is 1024 per message): a full superframe with 64
	// segments is 128 iovecs, replicated to a few peers.
	maxSendIov = 1024
	// DefaultSourcePorts is the number of send sockets, each bound to its
	// own source port in the configured range; the inner flow's hash picks
	// one, as the kernel's vxlan picks a port per flow.
	DefaultSourcePorts = 8
)

// Config configures the underlay socket(s).
type Config struct {
	// Local is the VTEP address and the VXLAN port to receive on. An
	// IPv6 link-local address carries its interface as the zone (a name
	// or an index in the calling thread's namespace, as in fe80::1%eth0):
	// every socket is bound to that interface, and link-local VTEPs are
	// reached through it.
	Local netip.AddrPort
	// SrcPortMin and SrcPortMax bound the outer source ports (RFC 7348
	// recommends 49152–65535, the default when both are 0).
	SrcPortMin, SrcPortMax uint16
	// SourcePorts is how many source ports (send sockets) are used; 0
	// means DefaultSourcePorts.
	SourcePorts int
	// NoOffload disables UDP GSO and GRO (sendmmsg/recvmmsg of single
	// datagrams only).
	NoOffload bool
	// Logger says when the kernel refuses GSO; nil means no logging.
	Logger *zap.Logger
}

// Underlay is the Linux underlay: one socket on the VXLAN port for
// receiving (recvmmsg, with UDP_GRO) and a pool of send sockets, one per
// source port (sendmmsg, with UDP_SEGMENT). It implements
// vswitch.Underlay.
type Underlay struct {
	rx  *udpSock
	tx  []*udpSock
	gso atomic.Bool // UDP_SEGMENT works; cleared for good when the kernel says it cannot (EIO)
	v4  bool
	log *zap.Logger

	// overflow counts the datagrams the kernel dropped for the receive
	// socket, from its wrapping 32-bit count (SO_RXQ_OVFL), of which
	// lastDrops is the latest seen; Recv writes both, Stats reads
	// overflow.
	overflow  atomic.Uint64
	lastDrops uint32
	// gsoSplits counts GSO messages refused (EINVAL, EIO) and sent again
	// one datagram at a time; einvalLogged says the first EINVAL was
	// logged.
	gsoSplits    atomic.Uint64
	einvalLogged atomic.Bool

	// Receive scratch, used only by the one goroutine in Recv.
	r struct {
		n, got int
		err    error
	}
	recvWaitFn func(fd uintptr) bool
	recvNowFn  func(fd uintptr)
	rhdrs      [udpBatch]mmsghdr
	riov       [udpBatch]unix.Iovec
	rnames     [udpBatch]unix.RawSockaddrInet6
	rctrl      [udpBatch]cmsgSpace
}

var _ vswitch.Underlay = (*Underlay)(nil)

// cmsgBuf holds three control messages with payloads of up to 4 bytes
// (UDP_GRO delivers an int, IP_TOS a byte or IPV6_TCLASS an int, and
// SO_RXQ_OVFL a uint32; UDP_SEGMENT takes a uint16 and IP_TOS or
// IPV6_TCLASS an int) on 32- and 64-bit Linux.
const cmsgBuf = 96

// cmsgSpace is one message's control buffer, aligned for the cmsghdr
// (whose length field is a size_t) written into it.
type cmsgSpace struct {
	_ [0]uint64
	b [cmsgBuf]byte
}

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel fills in,
// padded to the msghdr's alignment (so 64 bytes on 64-bit Linux, 32 on
// 32-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// udpSock is one socket with the scratch its sends need; mu serialises
// the networks' TX loops (and RX drains) that share it.
type udpSock struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	port uint16

	mu  sync.Mutex
	snd struct {
		from, n, sent int
		err           error
	}
	sndHdrs *[udpBatch]mmsghdr
	sendFn  func(fd uintptr) bool
	// The batch being sent: slot i carries message slot[i].
	hdrs  [udpBatch]mmsghdr
	slot  [udpBatch]int
	iov   [maxSendIov]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6
	ctrl  [udpBatch]cmsgSpace
	// A GSO message sent as single datagrams, with its own scratch so
	// that a batch in flight is not disturbed.
	split struct {
		hdrs  [udpBatch]mmsghdr
		iov   [maxSendIov]unix.Iovec
		names [udpBatch]unix.RawSockaddrInet6
		ctrl  [udpBatch]cmsgSpace
	}
}

// Listen opens the underlay in the calling thread's network namespace:
// the receive socket on cfg.Local and the send sockets on source ports
// drawn from the range. Every socket sets Don't Fragment (VTEPs must not
// fragment).
func Listen(cfg Config) (*Underlay, error) {
	cfg.Local = netip.AddrPortFrom(cfg.Local.Addr().Unmap(), cfg.Local.Port())
	if !cfg.Local.Addr().IsValid() {
		return nil, fmt.Errorf("underlay: invalid local address %s", cfg.Local)
	}
	if cfg.SrcPortMin == 0 && cfg.SrcPortMax == 0 {
		cfg.SrcPortMin, cfg.SrcPortMax = 49152, 65535
	}
	if cfg.SrcPortMin == 0 || cfg.SrcPortMax < cfg.SrcPortMin {
		return nil, fmt.Errorf("underlay: bad source port range %d-%d", cfg.SrcPortMin, cfg.SrcPortMax)
	}
	n := cfg.SourcePorts
	if n <= 0 {
		n = DefaultSourcePorts
	}
	n = min(n, int(cfg.SrcPortMax-cfg.SrcPortMin)+1)
	if z := cfg.Local.Addr().Zone(); z != "" && !cfg.Local.Addr().IsLinkLocalUnicast() {
		return nil, fmt.Errorf("underlay: %s: only a link-local address takes an interface (%%%s)", cfg.Local.Addr(), z)
	}
	u := &Underlay{v4: cfg.Local.Addr().Is4(), log: cfg.Logger}
	if u.log == nil {
		u.log = zap.NewNop()
	}
	err := func() error {
		var err error
		// The zone is resolved here, in the underlay's namespace, and
		// bound by index: Go's own name lookup caches names
		// process-wide, across namespaces.
		if cfg.Local, err = zoneIndex(cfg.Local); err != nil {
			return err
		}
		if u.rx, err = openSock(cfg.Local, u.v4); err != nil {
			return err
		}
		for len(u.tx) < n {
			s, err := openSourcePort(cfg, u.v4)
			if err != nil {
				return err
			}
			u.tx = append(u.tx, s)
		}
		return nil
	}()
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("underlay: %w", err)
	}
	// The outer ECN field of every datagram comes with it (RFC 6040
	// decapsulation).
	if u.v4 {
		err = u.rx.setInt(unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
	} else {
		err = u.rx.setInt(unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1)
	}
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("underlay: receive the outer ECN field: %w", err)
	}
	// The kernel's count of datagrams it dropped for the socket comes
	// with every datagram (SO_RXQ_OVFL), so that what was lost before
	// the switch could read it is counted too.
	if err := u.rx.setInt(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		u.log.Warn("the kernel does not report receive buffer overflows (SO_RXQ_OVFL); datagrams it drops are not counted", zap.Error(err))
	}
	// A receive buffer smaller than asked (no CAP_NET_ADMIN, a low
	// net.core.rmem_max) overflows sooner under bursts; say so once.
	if got, err := u.rx.getInt(unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil && got < socketBuffer {
		u.log.Warn("the underlay's receive buffer is smaller than asked; bursts may overflow it (see rx_overflow)",
			zap.Int("bytes", got), zap.Int("asked", socketBuffer))
	}
	if !cfg.NoOffload {
		// Without GRO (an old kernel) every datagram is a slot of its own.
		if err := u.rx.setInt(unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
			u.log.Warn("the kernel refuses UDP GRO on the underlay; receiving datagram by datagram", zap.Error(err))
		}
		// A kernel that knows UDP_SEGMENT answers getsockopt for it.
		_, gsoErr := u.tx[0].getInt(unix.SOL_UDP, unix.UDP_SEGMENT)
		u.gso.Store(gsoErr == nil)
		if gsoErr != nil {
			u.log.Warn("the kernel has no UDP GSO (UDP_SEGMENT); sending datagram by datagram", zap.Error(gsoErr))
		}
	}
	for i := range u.riov {
		u.rhdrs[i].hdr.Iov = &u.riov[i]
		u.rhdrs[i].hdr.SetIovlen(1)
	}
	u.recvWaitFn = u.recvmmsg
	u.recvNowFn = func(fd uintptr) { u.recvmmsg(fd) }
	return u, nil
}

// openSourcePort binds a send socket to a free port in the range, trying
// random ports.
func openSourcePort(cfg Config, v4 bool) (*udpSock, error) {
	span := int(cfg.SrcPortMax-cfg.SrcPortMin) + 1
	var last error
	for range 64 {
		port := cfg.SrcPortMin + uint16(rand.IntN(span))
		s, err := openSock(netip.AddrPortFrom(cfg.Local.Addr(), port), v4)
		if err == nil {
			return s, nil
		}
		last = err
		if !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("no free source port in %d-%d: %w", cfg.SrcPortMin, cfg.SrcPortMax, last)
}

// zoneIndex replaces the zone of a link-local address with its
// interface's index in the calling thread's namespace.
func zoneIndex(ap netip.AddrPort) (netip.AddrPort, error) {
	z := ap.Addr().Zone()
	if z == "" {
		return ap, nil
	}
	if _, err := strconv.ParseUint(z, 10, 32); err == nil {
		return ap, nil
	}
	ifi, err := net.InterfaceByName(z)
	if err != nil {
		return ap, fmt.Errorf("interface of %s: %w", ap.Addr(), err)
	}
	return netip.AddrPortFrom(ap.Addr().WithZone(strconv.Itoa(ifi.Index)), ap.Port()), nil
}

func openSock(local netip.AddrPort, v4 bool) (*udpSock, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return nil, err
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &udpSock{conn: conn, rc: rc, port: local.Port()}
	s.sendFn = s.send
	if v4 {
		err = s.setInt(unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	} else {
		err = s.setInt(unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("set don't-fragment: %w", err)
	}
	// The FORCE variants exceed net.core.[rw]mem_max as root; the plain
	// ones are capped by it otherwise (without an error: Listen reads
	// back what it got).
	if s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
		s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	}
	if s.setInt(unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
		s.setInt(unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	}
	for i := range s.hdrs {
		s.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		s.split.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&s.split.names[i]))
	}
	return s, nil
}

func (s *udpSock) setInt(level, opt, v int) error {
	var serr error
	if err := s.rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return err
	}
	return serr
}

func (s *udpSock) getInt(level, opt int) (int, error) {
	var v int
	var serr error
	if err := s.rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		return 0, err
	}
	return v, serr
}

func (u *Underlay) BatchSize() int { return udpBatch }

// GSOEnabled reports whether UDP_SEGMENT is in use: the switch groups
// small frames into GSO messages only then.
func (u *Underlay) GSOEnabled() bool { return u.gso.Load() }

func (u *Underlay) Close() error {
	var err error
	if u.rx != nil {
		err = u.rx.conn.Close()
	}
	for _, s := range u.tx {
		s.conn.Close()
	}
	return err
}

// Recv is one recvmmsg: it waits for the first datagram and takes what
// else is queued, up to len(msgs) slots.
func (u *Underlay) Recv(msgs []vswitch.RecvMsg) (int, error) { return u.recv(msgs, true) }

// TryRecv is Recv without waiting: 0 slots and no error when nothing is
// queued.
func (u *Underlay) TryRecv(msgs []vswitch.RecvMsg) (int, error) { return u.recv(msgs, false) }

func (u *Underlay) recv(msgs []vswitch.RecvMsg, wait bool) (int, error) {
	n := min(len(msgs), udpBatch)
	for i := range n {
		h := &u.rhdrs[i].hdr
		u.riov[i].Base = unsafe.SliceData(msgs[i].Buf)
		u.riov[i].SetLen(len(msgs[i].Buf))
		h.Name = (*byte)(unsafe.Pointer(&u.rnames[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &u.rctrl[i].b[0]
		h.SetControllen(cmsgBuf)
		h.Flags = 0
	}
	u.r.n, u.r.got, u.r.err = n, 0, nil
	var err error
	if wait {
		err = u.rx.rc.Read(u.recvWaitFn)
	} else {
		err = u.rx.rc.Control(u.recvNowFn)
	}
	got, serr := u.r.got, u.r.err
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	for i := range got {
		m := &msgs[i]
		h := &u.rhdrs[i]
		m.N = int(h.len)
		m.SegSize, m.ECN = 0, 0
		if h.hdr.Controllen > 0 {
			var drops uint32
			var ok bool
			m.SegSize, m.ECN, drops, ok = recvCmsgs(u.rctrl[i].b[:h.hdr.Controllen])
			if ok && drops != u.lastDrops {
				u.overflow.Add(uint64(drops - u.lastDrops))
				u.lastDrops = drops
			}
		}
		if m.SegSize >= m.N {
			m.SegSize = 0
		}
		m.Src = sockaddrToAddrPort(&u.rnames[i])
	}
	return got, nil
}

// recvmmsg is the poller callback of recv; its arguments and results
// travel in u.r and it is bound once (recvWaitFn, recvNowFn), so a
// receive allocates nothing.
//
// recvmmsg and sendmmsg are raw system calls, like the TAP's reads and
// writes (see the comment above rawRead in package tap): with
// MSG_DONTWAIT and a non-blocking socket they never block.
func (u *Underlay) recvmmsg(fd uintptr) bool {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&u.rhdrs[0])), uintptr(u.r.n), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			u.r.got = int(r)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			u.r.err = errno
			return true
		}
	}
}

// recvCmsgs returns the segment size of a UDP_GRO control message (an
// int, in the host's byte order; 0 without one), the ECN field of an
// IP_TOS (a byte) or IPV6_TCLASS (an int) one, and the drop count of an
// SO_RXQ_OVFL one (a uint32; hasDrops says there was one).
func recvCmsgs(ctrl []byte) (segSize int, ecn uint8, drops uint32, hasDrops bool) {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(ctrl) {
			break
		}
		data := ctrl[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO:
			switch {
			case len(data) >= 4:
				segSize = int(binary.NativeEndian.Uint32(data))
			case len(data) >= 2:
				segSize = int(binary.NativeEndian.Uint16(data))
			}
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TOS && len(data) >= 1:
			ecn = data[0] & 3
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_TCLASS && len(data) >= 4:
			ecn = uint8(binary.NativeEndian.Uint32(data)) & 3
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
			drops, hasDrops = binary.NativeEndian.Uint32(data), true
		}
		ctrl = ctrl[min(len(ctrl), unix.CmsgSpace(l-unix.SizeofCmsghdr)):]
	}
	return segSize, ecn, drops, hasDrops
}

// Stats returns what the underlay counted: the datagrams the kernel
// dropped for the receive socket (as of the last datagram received: the
// kernel reports the count with each) and the GSO messages sent again
// one datagram at a time.
func (u *Underlay) Stats() vswitch.UnderlayStats {
	return vswitch.UnderlayStats{RXOverflow: u.overflow.Load(), TXGSOSplit: u.gsoSplits.Load()}
}

// putCmsgs writes the control messages a send of m needs into c and
// returns their length: UDP_SEGMENT with segSize when it is not 0, and
// the outer ECN field when it is not Not-ECT (the socket's default).
func putCmsgs(c []byte, segSize int, ecn uint8, v4 bool) int {
	n := 0
	if segSize > 0 {
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		ch.SetLen(unix.CmsgLen(2))
		binary.NativeEndian.PutUint16(c[unix.SizeofCmsghdr:], uint16(segSize))
		n = unix.CmsgSpace(2)
	}
	if ecn != 0 {
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[n]))
		ch.Level, ch.Type = unix.IPPROTO_IP, unix.IP_TOS
		if !v4 {
			ch.Level, ch.Type = unix.IPPROTO_IPV6, unix.IPV6_TCLASS
		}
		ch.SetLen(unix.CmsgLen(4))
		binary.NativeEndian.PutUint32(c[n+unix.SizeofCmsghdr:], uint32(ecn&3))
		n += unix.CmsgSpace(4)
	}
	return n
}

// The port of a raw sockaddr is in network byte order whatever the host's.

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
}

// putSockaddr writes ap, a destination, into sa. A link-local one needs
// no scope: the socket is bound to the interface of its link-local
// address, and the kernel sends there.
func putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, v4 bool) uint32 {
	if v4 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], ap.Port())
		sa4.Addr = ap.Addr().As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = ap.Addr().As16()
	sa.Flowinfo, sa.Scope_id = 0, 0
	return unix.SizeofSockaddrInet6
}

// errBadMessage is returned for a message Send cannot send at all.
var errBadMessage = errors.New("underlay: message without data, with too many iovecs, or to another address family")

// Send sends every message, each on the socket of its flow's source port,
// grouping the messages of each socket into sendmmsg calls in their
// order. It returns how many datagrams failed and the first error.
func (u *Underlay) Send(msgs []vswitch.SendMsg) (failed int, err error) {
	for i, s := range u.tx {
		f, e := u.sendOn(s, i, msgs)
		failed += f
		if err == nil {
			err = e
		}
	}
	return failed, err
}

// sendOn sends, in order, the messages of msgs that belong to socket idx.
// A GSO message the kernel refuses is sent again as single datagrams; EIO
// (no checksum offload on the route) turns GSO off for good.
func (u *Underlay) sendOn(s *udpSock, idx int, msgs []vswitch.SendMsg) (failed int, first error) {
	fail := func(m *vswitch.SendMsg, err error) {
		m.Failed = true
		failed += m.Datagrams()
		if first == nil {
			first = err
		}
	}
	nsock := len(u.tx)
	s.mu.Lock()
	defer s.mu.Unlock()
	j := 0
	for j < len(msgs) {
		gso := u.gso.Load()
		cnt, iovs := 0, 0
		var splitNext *vswitch.SendMsg
		for ; j < len(msgs) && cnt < udpBatch; j++ {
			m := &msgs[j]
			if int(m.Flow)%nsock != idx {
				continue
			}
			if len(m.Iov) == 0 || len(m.Iov) > maxSendIov || m.Dst.Addr().Unmap().Is4() != u.v4 {
				fail(m, errBadMessage)
				continue
			}
			if m.SegSize > 0 && !gso {
				splitNext = m // after what is prepared, to keep the order
				j++
				break
			}
			if iovs+len(m.Iov) > maxSendIov {
				break
			}
			s.fill(cnt, m, s.iov[iovs:iovs+len(m.Iov)], u.v4, gso)
			s.slot[cnt] = j
			iovs += len(m.Iov)
			cnt++
		}
		for done := 0; done < cnt; {
			k, err := s.sendmmsg(done, cnt)
			done += k
			if err == nil {
				break
			}
			m := &msgs[s.slot[done]]
			if m.SegSize > 0 && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL)) {
				if errors.Is(err, unix.EIO) && u.gso.Swap(false) {
					u.log.Warn("the kernel cannot send UDP GSO on this route; sending datagrams one by one", zap.Error(err))
				}
				// EINVAL refuses one message (a segment larger than the
				// route's MTU, say): it is split, counted, and logged
				// the first time.
				if errors.Is(err, unix.EINVAL) && !u.einvalLogged.Swap(true) {
					u.log.Warn("the kernel refused a UDP GSO message; sending it datagram by datagram (counted as tx_gso_split)",
						zap.Stringer("vtep", m.Dst.Addr()), zap.Int("segment", m.SegSize), zap.Error(err))
				}
				u.gsoSplits.Add(1)
				err = u.sendSplit(s, m)
			}
			if err != nil {
				fail(m, err)
			}
			done++
		}
		if splitNext != nil {
			if err := u.sendSplit(s, splitNext); err != nil {
				fail(splitNext, err)
			}
		}
	}
	return failed, first
}

// fill prepares slot i of the socket's mmsghdr array for m.
func (s *udpSock) fill(i int, m *vswitch.SendMsg, iov []unix.Iovec, v4, gso bool) {
	total := 0
	for j, b := range m.Iov {
		iov[j].Base = unsafe.SliceData(b)
		iov[j].SetLen(len(b))
		total += len(b)
	}
	h := &s.hdrs[i].hdr
	h.Namelen = putSockaddr(&s.names[i], m.Dst, v4)
	h.Iov = &iov[0]
	h.SetIovlen(len(iov))
	h.Flags = 0
	seg := 0
	if gso && m.SegSize > 0 && total > m.SegSize {
		seg = m.SegSize
	}
	setControl(h, &s.ctrl[i], seg, m.ECN, v4)
}

// setControl points h at the control messages a send needs (see
// putCmsgs), written into c, or at none.
func setControl(h *unix.Msghdr, c *cmsgSpace, segSize int, ecn uint8, v4 bool) {
	if n := putCmsgs(c.b[:], segSize, ecn, v4); n > 0 {
		h.Control = &c.b[0]
		h.SetControllen(n)
		return
	}
	h.Control = nil
	h.SetControllen(0)
}

// sendmmsg sends the prepared slots [from, n) of hdrs, waiting while the
// socket's buffer is full. It returns how many went out before an error.
// Its arguments travel in s.snd (under s.mu) so the bound callback
// allocates nothing.
func (s *udpSock) sendmmsg(from, n int) (int, error) {
	return s.sendHdrs(&s.hdrs, from, n)
}

func (s *udpSock) sendHdrs(hdrs *[udpBatch]mmsghdr, from, n int) (int, error) {
	s.snd.from, s.snd.n, s.snd.sent, s.snd.err = from, n, 0, nil
	s.sndHdrs = hdrs
	err := s.rc.Write(s.sendFn)
	if err != nil {
		return s.snd.sent, err
	}
	return s.snd.sent, s.snd.err
}

func (s *udpSock) send(fd uintptr) bool {
	for s.snd.from+s.snd.sent < s.snd.n {
		at := s.snd.from + s.snd.sent
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.sndHdrs[at])), uintptr(s.snd.n-at), 0, 0, 0)
		switch errno {
		case 0:
			s.snd.sent += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			s.snd.err = errno
			return true
		}
	}
	return true
}

// sendSplit sends a GSO message as single datagrams of m.SegSize bytes,
// cutting its iovecs at datagram boundaries, with the socket's split
// scratch.
func (u *Underlay) sendSplit(s *udpSock, m *vswitch.SendMsg) error {
	sp := &s.split
	var iv int  // index of the current Iov slice
	var off int // offset in it
	for iv < len(m.Iov) {
		n, iovs := 0, 0
		// A datagram of a GSO message from the TX loop spans two
		// iovecs; leave room for a few more before starting one.
		for iv < len(m.Iov) && n < udpBatch && iovs+8 <= maxSendIov {
			start := iovs
			need := m.SegSize
			for need > 0 && iv < len(m.Iov) {
				if iovs == maxSendIov {
					return errors.New("underlay: GSO message too fragmented to split")
				}
				b := m.Iov[iv][off:]
				take := min(len(b), need)
				sp.iov[iovs].Base = unsafe.SliceData(b)
				sp.iov[iovs].SetLen(take)
				iovs++
				need -= take
				off += take
				if off == len(m.Iov[iv]) {
					iv, off = iv+1, 0
				}
			}
			h := &sp.hdrs[n].hdr
			h.Namelen = putSockaddr(&sp.names[n], m.Dst, u.v4)
			h.Iov = &sp.iov[start]
			h.SetIovlen(iovs - start)
			setControl(h, &sp.ctrl[n], 0, m.ECN, u.v4)
			n++
		}
		if k, err := s.sendHdrs(&sp.hdrs, 0, n); err != nil || k < n {
			return err
		}
	}
	return nil
}
