package topo

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture records every frame seen on one interface of a namespace, like
// `tcpdump -i IF`, through an AF_PACKET socket (no libpcap). Decode the
// frames with gopacket.
type Capture struct {
	fd     int
	mu     sync.Mutex
	frames [][]byte

	done     chan struct{} // closed by Stop
	stopped  chan struct{} // closed when the reader returned
	stopOnce sync.Once
}

// Capture starts capturing on ifname inside the namespace.
func (n *NS) Capture(ifname string) (*Capture, error) {
	var fd int
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s in %s: %w", ifname, n.Name, err)
	}
	// A read timeout lets the reader notice Stop without closing the fd
	// under a blocked read.
	tv := unix.Timeval{Usec: 100_000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	c := &Capture{fd: fd, done: make(chan struct{})}
	stopped := make(chan struct{})
	go c.loop(stopped)
	n.topo.onClose(func() error { c.Stop(); return nil })
	c.stopped = stopped
	return c, nil
}

func (c *Capture) loop(stopped chan struct{}) {
	defer close(stopped)
	buf := make([]byte, 1<<16)
	for {
		select {
		case <-c.done:
			return
		default:
		}
		k, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		f := append([]byte(nil), buf[:k]...)
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
	}
}

// Frames returns a copy of the list of frames captured so far.
func (c *Capture) Frames() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.frames...)
}

// Stop ends the capture and returns every frame captured. It may be
// called more than once.
func (c *Capture) Stop() [][]byte {
	c.stopOnce.Do(func() {
		// Let frames in flight reach the socket.
		time.Sleep(50 * time.Millisecond)
		close(c.done)
		<-c.stopped
		unix.Close(c.fd)
	})
	return c.Frames()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
