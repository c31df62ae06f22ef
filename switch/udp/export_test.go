package udp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetGSO turns UDP GSO on or off, for tests of the path that sends GSO
// messages as single datagrams.
func SetGSO(u *Underlay, on bool) { u.gso.Store(on) }

// GSO reports whether the underlay sends with UDP_SEGMENT.
func GSO(u *Underlay) bool { return u.gso.Load() }

// BoundIndex is the interface index the underlay's receive socket is
// bound to (its IPv6 scope), as getsockname says.
func BoundIndex(u *Underlay) (int, error) {
	var sa unix.Sockaddr
	var serr error
	if err := u.rx.rc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	sa6, ok := sa.(*unix.SockaddrInet6)
	if !ok {
		return 0, fmt.Errorf("bound to %T", sa)
	}
	return int(sa6.ZoneId), nil
}

// SetRecvBuffer sets the receive socket's buffer (SO_RCVBUF, which the
// kernel doubles), for tests that make it overflow.
func SetRecvBuffer(u *Underlay, bytes int) error {
	return u.rx.setInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes)
}
