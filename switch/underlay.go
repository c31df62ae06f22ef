package vswitch

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// Underlay carries VXLAN datagrams between VTEPs. Recv is called by one
// goroutine, Send by several (one per network); Close unblocks both.
type Underlay interface {
	// Recv reads at least one and at most len(bufs) datagrams. Datagram i
	// is stored at bufs[i][:sizes[i]] and came from srcs[i]. The caller
	// owns all three slices.
	Recv(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (n int, err error)
	// Send sends bufs[i] to dsts[i] for every i and returns how many were
	// sent before the first error; the caller skips the failed datagram
	// and calls again with the rest. The caller owns bufs and may reuse
	// them when Send returns.
	Send(bufs [][]byte, dsts []netip.AddrPort) (n int, err error)
	// BatchSize is the largest number of datagrams one Recv returns.
	BatchSize() int
	// LocalAddr is the address datagrams are sent from and received on.
	LocalAddr() netip.AddrPort
	// Close makes pending and future Recv and Send calls fail with
	// net.ErrClosed.
	Close() error
}

// udpUnderlay is the portable underlay: one UDP socket, one datagram per
// system call.
type udpUnderlay struct {
	conn  *net.UDPConn
	local netip.AddrPort
}

// socketBuffer is the send and receive buffer size asked for: big enough to
// absorb a burst of a few thousand full-size datagrams while the loop is
// descheduled on a 2-core machine (the kernel default of ~200 KiB drops
// under iperf-class load).
const socketBuffer = 4 << 20

// ListenUDP opens the underlay socket bound to local inside the network
// namespace at netnsPath (the caller's when empty). The socket sets the
// Don't Fragment bit on IPv4 (VTEPs must not fragment, as the kernel's vxlan
// does) and refuses to fragment on IPv6.
func ListenUDP(netnsPath string, local netip.AddrPort) (Underlay, error) {
	if !local.Addr().IsValid() {
		return nil, fmt.Errorf("underlay: invalid local address %s", local)
	}
	var conn *net.UDPConn
	err := nsutil.Do(netnsPath, func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("underlay: listen on %s: %w", local, err)
	}
	if err := tuneSocket(conn, local.Addr().Is4()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("underlay: %s: %w", local, err)
	}
	return &udpUnderlay{conn: conn, local: local}, nil
}

func tuneSocket(conn *net.UDPConn, v4 bool) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if v4 {
			serr = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		} else {
			serr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
		}
		if serr != nil {
			serr = fmt.Errorf("set don't-fragment: %w", serr)
			return
		}
		// The FORCE variants exceed net.core.[rw]mem_max as root; fall
		// back to the plain ones (capped by the sysctl) otherwise.
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func (u *udpUnderlay) Recv(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	n, src, err := u.conn.ReadFromUDPAddrPort(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	srcs[0] = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	return 1, nil
}

func (u *udpUnderlay) Send(bufs [][]byte, dsts []netip.AddrPort) (int, error) {
	for i := range bufs {
		if _, err := u.conn.WriteToUDPAddrPort(bufs[i], dsts[i]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (u *udpUnderlay) BatchSize() int            { return 1 }
func (u *udpUnderlay) LocalAddr() netip.AddrPort { return u.local }
func (u *udpUnderlay) Close() error              { return u.conn.Close() }
