// Package tap owns the TAP devices through which vxswitch exchanges Ethernet
// frames with a network's bridge: creating a TAP, making it a port of a
// bridge, MTU, and batched frame I/O.
//
// Create works in the calling thread's network namespace. To make a TAP in
// another (a network's), call it on a thread that has entered that
// namespace, as the daemon does with internal/nsutil.Do; the device's file
// descriptor keeps working from any goroutine afterwards.
//
// The package knows nothing about VXLAN or MAC tables. The datapath depends
// only on the Device interface, so tests can use fakes.
package tap

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Device is a TAP as the datapath sees it. Read and Write may be called
// concurrently with each other (one reader goroutine and one writer goroutine
// at a time); Close unblocks both.
type Device interface {
	// Read reads at least one and at most len(bufs) frames. Frame i is
	// stored at bufs[i][offset:] and its length in sizes[i]; the bytes in
	// front of offset are left alone, so the caller can build headers there
	// in place. It blocks until a frame arrives and returns the number of
	// frames read. The caller owns bufs; a frame longer than
	// len(bufs[i])-offset is an error for that read.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)

	// Write writes bufs[i][offset:] as one frame for each i and returns the
	// number of frames written before the first error. The caller owns bufs
	// and may reuse them as soon as Write returns.
	Write(bufs [][]byte, offset int) (n int, err error)

	// BatchSize is the largest number of frames one Read returns; the
	// caller sizes its buffers by it.
	BatchSize() int
	// Name is the interface name inside its namespace.
	Name() string
	// MTU is the device's MTU (the largest frame is MTU+14 bytes).
	MTU() int
	// Close removes the device and makes pending and future Read and Write
	// calls fail with ErrClosed.
	Close() error
}

// ErrClosed is returned by Read and Write on a closed device.
var ErrClosed = errors.New("tap: device closed")

// Options say how to create a TAP.
type Options struct {
	// Name is the interface name (at most 15 bytes). Required.
	Name string
	// Bridge, when not empty, names a bridge in the same namespace that the
	// device becomes a port of.
	Bridge string
	// MTU of the device; 0 leaves the kernel's default (1500).
	MTU int
	// Offload asks for the fast path: IFF_VNET_HDR with checksum and TSO
	// offloads (the device implements Offloader). If the kernel refuses,
	// Create falls back to the simple path and tells Fallback why.
	Offload  bool
	Fallback func(reason error)
}

// Create makes a TAP device in the calling thread's network namespace as
// opts says, brings it up and returns it. On any failure nothing is left
// behind: the device is non-persistent and vanishes with its file
// descriptor.
func Create(opts Options) (Device, error) {
	if opts.Name == "" || len(opts.Name) > 15 {
		return nil, fmt.Errorf("tap: bad interface name %q (1 to 15 bytes)", opts.Name)
	}
	var dev interface {
		Device
		setMTU(int)
	}
	err := func() error {
		if opts.Offload {
			d, err := openVNet(opts.Name)
			if err == nil {
				dev = d
				return nil
			}
			if opts.Fallback != nil {
				opts.Fallback(err)
			}
		}
		d, err := openWater(opts.Name)
		if err == nil {
			dev = d
		}
		return err
	}()
	if err != nil {
		return nil, fmt.Errorf("create tap %s: %w", opts.Name, err)
	}
	mtu, err := configure(opts)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("configure tap %s: %w", opts.Name, err)
	}
	dev.setMTU(mtu)
	return dev, nil
}

// configure sets MTU, bridge and up state through netlink in the calling
// thread's namespace, and returns the device's MTU.
func configure(opts Options) (int, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	link, err := h.LinkByName(opts.Name)
	if err != nil {
		return 0, err
	}
	if opts.MTU > 0 {
		if err := h.LinkSetMTU(link, opts.MTU); err != nil {
			return 0, fmt.Errorf("set mtu %d: %w", opts.MTU, err)
		}
	}
	if opts.Bridge != "" {
		br, err := h.LinkByName(opts.Bridge)
		if err != nil {
			return 0, fmt.Errorf("bridge %s: %w", opts.Bridge, err)
		}
		if err := h.LinkSetMaster(link, br); err != nil {
			return 0, fmt.Errorf("attach to bridge %s: %w", opts.Bridge, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return 0, fmt.Errorf("set up: %w", err)
	}
	link, err = h.LinkByName(opts.Name)
	if err != nil {
		return 0, err
	}
	return link.Attrs().MTU, nil
}
