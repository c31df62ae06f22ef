package vswitch

import (
	"net/netip"
)

// RecvMsg is one slot of a batched receive.
type RecvMsg struct {
	// Buf is the caller's buffer; a receive fills it from the start.
	Buf []byte
	// N is the number of bytes received.
	N int
	// SegSize, when not zero, says that Buf[:N] holds several datagrams
	// of SegSize bytes each, the last possibly shorter, coalesced by the
	// kernel (UDP GRO). Never forward such a buffer as one datagram.
	SegSize int
	// Src is the sender.
	Src netip.AddrPort
	// ECN is the outer IP header's ECN field (the same for every datagram
	// of a GRO buffer: the kernel coalesces only equal ones).
	ECN uint8
}

// SendMsg is one message of a batched send.
type SendMsg struct {
	// Iov is gathered into the datagram(s) without copying. The caller
	// owns the slices and may reuse them when Send returns.
	Iov [][]byte
	// Dst is the destination VTEP and port.
	Dst netip.AddrPort
	// SegSize, when not zero, says that Iov holds several datagrams of
	// SegSize bytes each, the last possibly shorter, to be sent with one
	// UDP_SEGMENT send (or one by one where the kernel refuses).
	SegSize int
	// Flow is a hash of the inner flow; it selects the outer source port,
	// so that ECMP and receive steering can spread flows (RFC 7348).
	Flow uint16
	// ECN is the outer IP header's ECN field for every datagram of the
	// message (see encap.EncapECN); the DSCP bits stay 0.
	ECN uint8
	// Failed is set by Send when it could not send the message (all of
	// its datagrams are counted as failed); the caller clears it before
	// it sends the message again.
	Failed bool
}

// Datagrams returns how many datagrams m is.
func (m *SendMsg) Datagrams() int {
	if m.SegSize <= 0 {
		return 1
	}
	total := 0
	for _, b := range m.Iov {
		total += len(b)
	}
	return max(1, (total+m.SegSize-1)/m.SegSize)
}

// The limits of one UDP_SEGMENT message (SendMsg with SegSize), which the
// TX loop keeps to and an underlay may rely on.
const (
	// MaxGSOSegments is the most datagrams of one GSO message:
	// UDP_MAX_SEGMENTS on kernels before 6.9 (later kernels take 128).
	MaxGSOSegments = 64
	// MaxUDPPayload is the most bytes of one GSO message: the largest UDP
	// payload over IPv4.
	MaxUDPPayload = 65507
)

// Underlay carries VXLAN datagrams between VTEPs. Recv is called by one
// goroutine; Send by several at once (one per network); Close unblocks
// both. Package switch/udp has the Linux implementation (UDP sockets with
// GSO and GRO); tests use fakes.
type Underlay interface {
	// Recv waits for at least one datagram and fills up to len(msgs)
	// slots, returning how many.
	Recv(msgs []RecvMsg) (n int, err error)
	// Send sends every message (keeping the order of each flow's) and
	// returns how many datagrams could not be sent (all of a message's
	// that failed, which it marks Failed) and the first error. The caller owns msgs and may
	// reuse them when Send returns.
	Send(msgs []SendMsg) (failed int, err error)
	// BatchSize is the largest number of slots one Recv fills.
	BatchSize() int
	// Close makes pending and future Recv and Send calls fail with
	// net.ErrClosed.
	Close() error
}

// tryReceiver is an Underlay that can also be read without waiting, for
// busy polling.
type tryReceiver interface {
	// TryRecv is Recv without waiting: 0 and no error when nothing is
	// queued.
	TryRecv(msgs []RecvMsg) (int, error)
}

// gsoReporter is implemented by an underlay that may lose UDP_SEGMENT on
// the way (the kernel refuses it on some routes); without it, an
// underlay is taken to send GSO messages as such.
type gsoReporter interface {
	// GSOEnabled reports whether GSO messages are currently sent as
	// such rather than split into single datagrams.
	GSOEnabled() bool
}

// UnderlayStats are what an underlay counts of its own.
type UnderlayStats struct {
	// RXOverflow: datagrams the kernel dropped before they were read
	// (SO_RXQ_OVFL).
	RXOverflow uint64
	// TXGSOSplit: GSO messages the kernel refused, sent again one
	// datagram at a time.
	TXGSOSplit uint64
}

// underlayStatser is implemented by an underlay that counts what the
// kernel did with its datagrams; Switch.Stats reports it.
type underlayStatser interface {
	Stats() UnderlayStats
}
