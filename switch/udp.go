package vswitch

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
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
	// maxGSOSegments is UDP_MAX_SEGMENTS on kernels before 6.9; later
	// kernels take 128.
	maxGSOSegments = 64
	// maxUDPPayload is the largest UDP payload over IPv4.
	maxUDPPayload = 65507
	// DefaultSourcePorts is the number of send sockets, each bound to its
	// own source port in the configured range; the inner flow's hash picks
	// one, as the kernel's vxlan picks a port per flow.
	DefaultSourcePorts = 8
)

// UDPConfig configures the underlay socket(s).
type UDPConfig struct {
	// Netns is the namespace to open the sockets in ("": the caller's).
	Netns string
	// Local is the VTEP address and the VXLAN port to receive on.
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
}

// udpUnderlay is the Linux underlay: one socket on the VXLAN port for
// receiving (recvmmsg, with UDP_GRO) and a pool of send sockets, one per
// source port (sendmmsg, with UDP_SEGMENT).
type udpUnderlay struct {
	local netip.AddrPort
	rx    *udpSock
	tx    []*udpSock
	gso   atomic.Bool // UDP_SEGMENT works; cleared when the kernel refuses it
	gro   bool
	v4    bool

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
	rctrl      [udpBatch][cmsgSpace]byte
}

// cmsgSpace holds one 2-byte UDP_GRO or UDP_SEGMENT control message.
const cmsgSpace = 24 // unix.CmsgSpace(2) on 64-bit Linux

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// udpSock is one socket with the scratch its sends need; mu serialises
// the networks' TX loops that share it.
type udpSock struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	port uint16

	mu  sync.Mutex
	snd struct {
		n, sent int
		err     error
	}
	sendFn func(fd uintptr) bool
	hdrs   [udpBatch]mmsghdr
	iov    [maxSendIov]unix.Iovec
	names  [udpBatch]unix.RawSockaddrInet6
	ctrl   [udpBatch][cmsgSpace]byte
}

// ListenUDP opens the underlay in the namespace cfg.Netns: the receive
// socket on cfg.Local and the send sockets on source ports drawn from the
// range. Every socket sets Don't Fragment (VTEPs must not fragment).
func ListenUDP(cfg UDPConfig) (Underlay, error) {
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
	u := &udpUnderlay{local: cfg.Local, v4: cfg.Local.Addr().Is4()}
	err := nsutil.Do(cfg.Netns, func() error {
		var err error
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
	})
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("underlay: %w", err)
	}
	if !cfg.NoOffload {
		u.gro = u.rx.setInt(unix.SOL_UDP, unix.UDP_GRO, 1) == nil
		// A kernel that knows UDP_SEGMENT answers getsockopt for it.
		_, gsoErr := u.tx[0].getInt(unix.SOL_UDP, unix.UDP_SEGMENT)
		u.gso.Store(gsoErr == nil)
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
func openSourcePort(cfg UDPConfig, v4 bool) (*udpSock, error) {
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
	// ones are capped by it otherwise.
	if s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
		s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	}
	if s.setInt(unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
		s.setInt(unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	}
	for i := range s.hdrs {
		s.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
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

func (u *udpUnderlay) BatchSize() int            { return udpBatch }
func (u *udpUnderlay) LocalAddr() netip.AddrPort { return u.local }

// SourcePorts returns the outer source ports in use.
func (u *udpUnderlay) SourcePorts() []uint16 {
	out := make([]uint16, len(u.tx))
	for i, s := range u.tx {
		out[i] = s.port
	}
	return out
}

func (u *udpUnderlay) Close() error {
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
func (u *udpUnderlay) Recv(msgs []RecvMsg) (int, error) { return u.recv(msgs, true) }

// TryRecv is Recv without waiting: 0 slots and no error when nothing is
// queued.
func (u *udpUnderlay) TryRecv(msgs []RecvMsg) (int, error) { return u.recv(msgs, false) }

func (u *udpUnderlay) recv(msgs []RecvMsg, wait bool) (int, error) {
	n := min(len(msgs), udpBatch)
	for i := range n {
		h := &u.rhdrs[i].hdr
		u.riov[i].Base = unsafe.SliceData(msgs[i].Buf)
		u.riov[i].SetLen(len(msgs[i].Buf))
		h.Name = (*byte)(unsafe.Pointer(&u.rnames[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &u.rctrl[i][0]
		h.SetControllen(cmsgSpace)
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
		m.SegSize = 0
		if h.hdr.Controllen > 0 {
			m.SegSize = groSize(u.rctrl[i][:h.hdr.Controllen])
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
func (u *udpUnderlay) recvmmsg(fd uintptr) bool {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&u.rhdrs[0])), uintptr(u.r.n), unix.MSG_DONTWAIT, 0, 0)
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

// groSize returns the segment size of a UDP_GRO control message, or 0.
func groSize(ctrl []byte) int {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(ctrl) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.SizeofCmsghdr+2 {
			return int(*(*uint16)(unsafe.Pointer(&ctrl[unix.SizeofCmsghdr])))
		}
		ctrl = ctrl[min(len(ctrl), (l+7)&^7):]
	}
	return 0
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := uint16(sa.Port>>8 | sa.Port<<8)
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
}

func putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, v4 bool) uint32 {
	port := ap.Port()
	if v4 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		sa4.Port = port>>8 | port<<8
		sa4.Addr = ap.Addr().As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Port = port>>8 | port<<8
	sa.Addr = ap.Addr().As16()
	sa.Flowinfo, sa.Scope_id = 0, 0
	return unix.SizeofSockaddrInet6
}

// Send groups consecutive messages of the same source port into sendmmsg
// calls.
func (u *udpUnderlay) Send(msgs []SendMsg) (int, error) {
	sent := 0
	for sent < len(msgs) {
		s := u.tx[int(msgs[sent].Flow)%len(u.tx)]
		end := sent + 1
		for end < len(msgs) && u.tx[int(msgs[end].Flow)%len(u.tx)] == s {
			end++
		}
		k, err := u.sendOn(s, msgs[sent:end])
		sent += k
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// sendOn sends msgs on one socket, as many sendmmsg calls as the scratch
// arrays need. A GSO message the kernel refuses turns GSO off for good and
// is sent again as single datagrams.
func (u *udpUnderlay) sendOn(s *udpSock, msgs []SendMsg) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := 0
	for sent < len(msgs) {
		gso := u.gso.Load()
		n, iovs := 0, 0
		for sent+n < len(msgs) && n < udpBatch {
			m := &msgs[sent+n]
			if !gso && m.SegSize > 0 {
				if n > 0 {
					break // send what is prepared, then split this one
				}
				if err := u.sendSplit(s, m); err != nil {
					return sent, err
				}
				sent++
				continue
			}
			if iovs+len(m.Iov) > maxSendIov {
				if n == 0 {
					return sent, fmt.Errorf("underlay: message of %d iovecs", len(m.Iov))
				}
				break
			}
			s.fill(n, m, s.iov[iovs:iovs+len(m.Iov)], u.v4, gso)
			iovs += len(m.Iov)
			n++
		}
		if n == 0 {
			continue
		}
		k, err := s.sendmmsg(n)
		sent += k
		if err != nil {
			if k < n && msgs[sent].SegSize > 0 && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL)) {
				u.gso.Store(false) // the kernel refuses UDP_SEGMENT: split from now on
				continue
			}
			return sent, err
		}
	}
	return sent, nil
}

// fill prepares slot i of the socket's mmsghdr array for m.
func (s *udpSock) fill(i int, m *SendMsg, iov []unix.Iovec, v4, gso bool) {
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
	if gso && m.SegSize > 0 && total > m.SegSize {
		c := s.ctrl[i][:]
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		ch.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&c[unix.SizeofCmsghdr])) = uint16(m.SegSize)
		h.Control = &c[0]
		h.SetControllen(unix.CmsgSpace(2))
	} else {
		h.Control = nil
		h.SetControllen(0)
	}
}

// sendmmsg sends the first n prepared slots, waiting while the socket's
// buffer is full. It returns how many went out before an error. Its
// arguments travel in s.snd (under s.mu) so the bound callback allocates
// nothing.
func (s *udpSock) sendmmsg(n int) (int, error) {
	s.snd.n, s.snd.sent, s.snd.err = n, 0, nil
	err := s.rc.Write(s.sendFn)
	if err != nil {
		return s.snd.sent, err
	}
	return s.snd.sent, s.snd.err
}

func (s *udpSock) send(fd uintptr) bool {
	for s.snd.sent < s.snd.n {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[s.snd.sent])), uintptr(s.snd.n-s.snd.sent), 0, 0, 0)
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
// cutting its iovecs at datagram boundaries.
func (u *udpUnderlay) sendSplit(s *udpSock, m *SendMsg) error {
	var iv int  // index of the current Iov slice
	var off int // offset in it
	for iv < len(m.Iov) {
		n, iovs := 0, 0
		for iv < len(m.Iov) && n < udpBatch {
			start := iovs
			need := m.SegSize
			for need > 0 && iv < len(m.Iov) {
				if iovs == maxSendIov {
					return errors.New("underlay: GSO message too fragmented to split")
				}
				b := m.Iov[iv][off:]
				take := min(len(b), need)
				s.iov[iovs].Base = unsafe.SliceData(b)
				s.iov[iovs].SetLen(take)
				iovs++
				need -= take
				off += take
				if off == len(m.Iov[iv]) {
					iv, off = iv+1, 0
				}
			}
			h := &s.hdrs[n].hdr
			h.Namelen = putSockaddr(&s.names[n], m.Dst, u.v4)
			h.Iov = &s.iov[start]
			h.SetIovlen(iovs - start)
			h.Control = nil
			h.SetControllen(0)
			n++
		}
		if _, err := s.sendmmsg(n); err != nil {
			return err
		}
	}
	return nil
}
