package tap

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// waterDevice is the simple path: github.com/songgao/water, one frame per
// read or write system call, no offloads. It works on every kernel with
// /dev/net/tun.
type waterDevice struct {
	ifce *water.Interface
	mtu  int
}

func openWater(name string) (*waterDevice, error) {
	ifce, err := water.New(water.Config{
		DeviceType:             water.TAP,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: name},
	})
	if err != nil {
		return nil, err
	}
	// water opens /dev/net/tun without O_CLOEXEC: a child process would
	// inherit the TAP and keep it alive after Close.
	if f, ok := ifce.ReadWriteCloser.(*os.File); ok {
		if rc, err := f.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.CloseOnExec(int(fd)) })
		}
	}
	return &waterDevice{ifce: ifce}, nil
}

func (d *waterDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	n, err := d.ifce.Read(bufs[0][offset:])
	if err != nil {
		return 0, mapErr(err)
	}
	sizes[0] = n
	return 1, nil
}

func (d *waterDevice) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := d.ifce.Write(b[offset:]); err != nil {
			return i, mapErr(err)
		}
	}
	return len(bufs), nil
}

func (d *waterDevice) BatchSize() int { return 1 }
func (d *waterDevice) setMTU(m int)   { d.mtu = m }
func (d *waterDevice) Name() string   { return d.ifce.Name() }
func (d *waterDevice) MTU() int       { return d.mtu }
func (d *waterDevice) Close() error   { return d.ifce.Close() }

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) {
		return ErrClosed
	}
	return fmt.Errorf("tap: %w", err)
}
