package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VirtioNetHdrLen is the size of struct virtio_net_hdr, which a TAP opened
// with IFF_VNET_HDR exchanges in front of every frame (the default
// TUNSETVNETHDRSZ).
const VirtioNetHdrLen = 10

// Virtio-net header flags and GSO types (include/uapi/linux/virtio_net.h).
const (
	// VirtioNetHdrFNeedsCsum: the transport checksum is partial; the
	// receiver completes it from CsumStart, storing at CsumStart+CsumOffset.
	VirtioNetHdrFNeedsCsum = 1
	// VirtioNetHdrFDataValid: the checksums were verified.
	VirtioNetHdrFDataValid = 2

	GSONone  = 0
	GSOTCPv4 = 1
	GSOTCPv6 = 4
	// GSOUDPL4 is UDP segmentation (USO, VIRTIO_NET_HDR_GSO_UDP_L4): the
	// payload is cut into datagrams of GSOSize bytes, the last possibly
	// shorter, each with its own IP and UDP header.
	GSOUDPL4 = 5
	// GSOECN is or'ed into GSOType when the first segment carries CWR.
	GSOECN = 0x80
)

// Offload flags for TUNSETOFFLOAD (include/uapi/linux/if_tun.h).
const (
	tunFCsum   = 0x01
	tunFTSO4   = 0x02
	tunFTSO6   = 0x04
	tunFTSOECN = 0x08
	tunFUSO4   = 0x20 // Linux 6.2 and later, only together with tunFUSO6
	tunFUSO6   = 0x40
)

// VirtioNetHdr is struct virtio_net_hdr. Its fields are in the host's byte
// order (a TAP without TUNSETVNETLE/BE uses the native order).
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // Ethernet + IP + transport header bytes
	GSOSize    uint16 // payload bytes per segment (the MSS)
	CsumStart  uint16 // from the start of the Ethernet header
	CsumOffset uint16 // from CsumStart
}

// Decode reads a header from the first VirtioNetHdrLen bytes of b.
func (h *VirtioNetHdr) Decode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	h.Flags, h.GSOType = b[0], b[1]
	h.HdrLen = binary.NativeEndian.Uint16(b[2:])
	h.GSOSize = binary.NativeEndian.Uint16(b[4:])
	h.CsumStart = binary.NativeEndian.Uint16(b[6:])
	h.CsumOffset = binary.NativeEndian.Uint16(b[8:])
}

// Encode writes the header into the first VirtioNetHdrLen bytes of b.
func (h *VirtioNetHdr) Encode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	b[0], b[1] = h.Flags, h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}

// Offloader is implemented by devices opened with IFF_VNET_HDR and TSO
// offloads negotiated (Create with Options.Offload). Such a device hands
// over TSO superframes of up to 64 KiB with partial checksums and takes
// them back, one system call per superframe instead of per segment.
//
// On such a device, Read stores each frame's virtio-net header in the
// VirtioNetHdrLen bytes in front of offset (so offset must be at least
// VirtioNetHdrLen), and Write sends bufs[i][offset-VirtioNetHdrLen:], whose
// first VirtioNetHdrLen bytes the caller has filled with a header.
type Offloader interface {
	// VNetHdr reports that Read and Write carry virtio-net headers as
	// described above.
	VNetHdr() bool
	// WriteVec writes one frame gathered from iov without copying it
	// (writev); the frame starts with its virtio-net header. The caller
	// owns iov and the slices it points to.
	WriteVec(iov [][]byte) error
}

// UDPOffloader is implemented by an Offloader whose kernel also agreed to
// UDP segmentation offload (Linux 6.2 and later). Read may then return
// GSOUDPL4 superframes, and WriteVec takes them.
type UDPOffloader interface {
	USO() bool
}

// ErrGSORefused is returned by WriteVec when the kernel refuses a GSO
// frame; the caller should stop coalescing for this device.
var ErrGSORefused = errors.New("tap: kernel refused a GSO frame")

// vnetBatch is how many frames one Read returns at most: after a blocking
// read, the device is drained without blocking until it is empty or this
// many frames were read, so small frames are handled in batches while a
// lone superframe is handled at once.
const vnetBatch = 16

// maxIov bounds WriteVec's iovec array (the kernel's UIO_MAXIOV is 1024;
// a coalesced superframe has at most 64 segments plus a header).
const maxIov = 128

// vnetDevice is the fast path: /dev/net/tun opened directly with
// IFF_VNET_HDR and checksum + TSO4 + TSO6 offloads, read and written
// through the runtime's poller.
type vnetDevice struct {
	f      *os.File
	rc     syscall.RawConn
	name   string
	mtu    int
	uso    bool
	closed atomic.Bool

	// Read side: one reader at a time (the TX loop, or the RX loop's
	// drain, under the network's lock) and one WaitReadable caller.
	r struct {
		bufs   [][]byte
		sizes  []int
		offset int
		n      int
		err    error
	}
	readNowFn  func(fd uintptr)
	readWaitFn func(fd uintptr) bool
	pollInFn   func(fd uintptr) bool
	pfd        [1]unix.PollFd

	// Write side: one writer at a time (the RX loop).
	writeIov [maxIov]unix.Iovec
	one      [1][]byte
	w        struct {
		n   int
		err error
	}
	writevFn func(fd uintptr) bool
}

// openVNet creates (in the calling thread's namespace) a TAP with a
// virtio-net header and negotiates offloads. It fails, leaving nothing
// behind, if the kernel refuses either.
func openVNet(name string) (*vnetDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	// TSO flags are only honoured together with TUN_F_CSUM. UDP
	// segmentation is asked for too; a kernel older than 6.2 refuses the
	// flags it does not know, and then gets the TCP ones alone.
	const tso = tunFCsum | tunFTSO4 | tunFTSO6 | tunFTSOECN
	uso := true
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tso|tunFUSO4|tunFUSO6); err != nil {
		uso = false
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tso); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("TUNSETOFFLOAD: %w", err)
		}
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &vnetDevice{f: f, rc: rc, name: ifr.Name(), uso: uso}
	d.readNowFn, d.readWaitFn, d.pollInFn, d.writevFn = d.readNow, d.readWait, d.pollIn, d.writev
	return d, nil
}

func (d *vnetDevice) VNetHdr() bool  { return true }
func (d *vnetDevice) USO() bool      { return d.uso }
func (d *vnetDevice) setMTU(m int)   { d.mtu = m }
func (d *vnetDevice) BatchSize() int { return vnetBatch }
func (d *vnetDevice) Name() string   { return d.name }
func (d *vnetDevice) MTU() int       { return d.mtu }
func (d *vnetDevice) Close() error {
	d.closed.Store(true)
	return d.f.Close()
}

// mapErr turns the poller's error for a closed file into ErrClosed.
func (d *vnetDevice) mapErr(err error) error {
	if err != nil && d.closed.Load() {
		return ErrClosed
	}
	return mapErr(err)
}

// Poller is implemented by devices that can be read without blocking,
// so that a caller can hold a lock only while frames are actually read
// and processed: TryRead returns at once, WaitReadable waits without
// reading.
type Poller interface {
	// TryRead is Read without waiting: it returns 0 frames and no error
	// when none is queued.
	TryRead(bufs [][]byte, sizes []int, offset int) (int, error)
	// WaitReadable waits until a frame is queued (or the device is
	// closed: then it returns ErrClosed).
	WaitReadable() error
}

// TryRead reads whatever is queued, up to len(bufs) frames, without
// waiting.
func (d *vnetDevice) TryRead(bufs [][]byte, sizes []int, offset int) (int, error) {
	return d.read(bufs, sizes, offset, false)
}

// Read reads one frame, waiting for it, then whatever else is queued, up
// to len(bufs) frames.
func (d *vnetDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return d.read(bufs, sizes, offset, true)
}

// read is Read and TryRead. The poller's callbacks are method values
// bound once in openVNet and their arguments and results travel in d.r,
// so that a read allocates nothing (a closure per call would escape to
// the heap). One reader at a time.
func (d *vnetDevice) read(bufs [][]byte, sizes []int, offset int, wait bool) (int, error) {
	if offset < VirtioNetHdrLen {
		return 0, fmt.Errorf("tap: offset %d leaves no room for the virtio-net header", offset)
	}
	r := &d.r
	r.bufs, r.sizes, r.offset, r.n, r.err = bufs, sizes, offset, 0, nil
	var err error
	if wait {
		err = d.rc.Read(d.readWaitFn)
	} else {
		err = d.rc.Control(d.readNowFn)
	}
	n, rerr := r.n, r.err
	r.bufs, r.sizes = nil, nil
	if n > 0 {
		return n, nil
	}
	if err != nil {
		return 0, d.mapErr(err)
	}
	return 0, d.mapErr(rerr)
}

func (d *vnetDevice) readNow(fd uintptr) {
	d.r.n, d.r.err = readQueued(int(fd), d.r.bufs, d.r.sizes, d.r.offset)
}

func (d *vnetDevice) readWait(fd uintptr) bool {
	d.readNow(fd)
	return d.r.n > 0 || d.r.err != nil // wait for the first frame only
}

// WaitReadable waits for the device to become readable. One waiter at a
// time.
func (d *vnetDevice) WaitReadable() error {
	return d.mapErr(d.rc.Read(d.pollInFn))
}

func (d *vnetDevice) pollIn(fd uintptr) bool {
	d.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	var zero unix.Timespec // do not wait
	n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&d.pfd[0])), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
	return errno != 0 || n > 0
}

// The datapath's system calls (read, writev and ppoll here; recvmmsg and
// sendmmsg in the switch) never block: the descriptors are non-blocking
// and the runtime's poller does the waiting. They are therefore made as
// raw system calls, which skip the runtime's entersyscall/exitsyscall.
// That matters for latency: the first entersyscall after the process
// was idle wakes the runtime's sysmon thread, one more cross-CPU wake-up
// per hop, on a machine where waking an idle vCPU costs tens of µs.
// gVisor's fdbased link endpoint (pkg/tcpip/link/rawfile) does the same.

// rawRead is read(2) as a raw system call; see above.
func rawRead(fd int, b []byte) (int, unix.Errno) {
	r, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return int(r), errno
}

// readQueued reads frames until the device is empty or bufs are full.
func readQueued(fd int, bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	for n < len(bufs) {
		k, errno := rawRead(fd, bufs[n][offset-VirtioNetHdrLen:])
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return n, nil
		case errno != 0:
			return n, errno
		case k < VirtioNetHdrLen:
			continue // cannot happen with IFF_VNET_HDR; skip rather than return garbage
		}
		sizes[n] = k - VirtioNetHdrLen
		n++
	}
	return n, nil
}

// Write writes each bufs[i][offset-VirtioNetHdrLen:] as one frame.
func (d *vnetDevice) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		d.one[0] = b[offset-VirtioNetHdrLen:]
		if err := d.WriteVec(d.one[:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

// WriteVec writes one frame gathered from iov with a single writev. One
// writer at a time (see read on why the arguments travel in d).
func (d *vnetDevice) WriteVec(iov [][]byte) error {
	if len(iov) > maxIov {
		return fmt.Errorf("tap: %d iovecs, at most %d", len(iov), maxIov)
	}
	for i, b := range iov {
		d.writeIov[i].Base = unsafe.SliceData(b)
		d.writeIov[i].SetLen(len(b))
	}
	d.w.n, d.w.err = len(iov), nil
	err := d.rc.Write(d.writevFn)
	werr := d.w.err
	// EINVAL for a frame with a GSO header is the kernel refusing GSO
	// writes; for any other frame it is just an error.
	if werr == ErrGSORefused && (len(iov[0]) < 2 || iov[0][1] == GSONone) {
		werr = unix.EINVAL
	}
	clear(d.writeIov[:len(iov)]) // hold no pointers into the caller's buffers
	if err != nil {
		return d.mapErr(err)
	}
	if werr != nil && werr != ErrGSORefused {
		return d.mapErr(werr)
	}
	return werr
}

func (d *vnetDevice) writev(fd uintptr) bool {
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&d.writeIov[0])), uintptr(d.w.n))
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case unix.EINVAL:
			d.w.err = ErrGSORefused
		default:
			d.w.err = errno
		}
		return true
	}
}
