package vswitch

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

const (
	// frameBuf holds the largest frame a TAP hands over (a 64 KiB TSO
	// superframe) or the largest datagram, plus headroom.
	frameBuf = 1<<16 + 64
	// txHeadroom is the space in front of every frame read from a TAP:
	// the virtio-net header lands there (with offloads) and the VXLAN
	// header is then written there in place, so a plain frame becomes a
	// datagram without a copy.
	txHeadroom = tap.VirtioNetHdrLen
	// hdrSlot is the scratch space for one segment's headers: VXLAN (8) +
	// Ethernet (14) + two VLAN tags (8) + IPv4 or IPv6 with options (60) +
	// TCP with options (60) = 150, rounded up.
	hdrSlot = 152
	// txSegs is how many segments' headers one batch holds before it is
	// sent: enough for a batch of full superframes (each at most ~47
	// segments of a 1500-byte underlay); a batch with more is sent in
	// parts.
	txSegs = 512
	// txMsgs bounds the messages of one send (segments of a superframe
	// are grouped into UDP_SEGMENT messages, one per peer).
	txMsgs = 256
)

// txLoop moves frames from one network's TAP into the overlay. Its
// buffers are allocated once and owned by it for its whole life.
type txLoop struct {
	n *Network

	bufs  [][]byte
	sizes []int

	hdrs []byte // txSegs header slots of hdrSlot bytes
	nhdr int    // slots used in this batch
	iov  [][]byte
	msgs []SendMsg
	one  [1]netip.Addr // the unicast destination, as a one-VTEP list
	now  int64
	// waited is how long the loop last waited for the TAP (see
	// yieldToSender).
	waited time.Duration
	// yieldNext: the batch just sent asks poll to yield the CPU once the
	// network's lock is released.
	yieldNext bool
	stats     txStats
	// The superframe being split: parsed into the loop's own fields, so
	// that nothing escapes to the heap.
	tsup encap.TCPSuper
	usup encap.UDPSuper
	// open is the index in msgs of the message extend may add datagrams
	// to, or -1; its iovecs start at iov[openAt].
	open, openAt int
	// maxInner is the switch's MaxInnerFrame for this batch (0: no
	// limit), and icmp the scratch a "too big" answer is built in.
	maxInner int
	icmp     [encap.TooBigMaxLen]byte
	// peers caches the counters of the VTEPs the loop sends to.
	peers peerCache
}

// txStats are a batch's counts, added to the network's counters once per
// batch.
type txStats struct {
	frames, bytes, flooded, dgrams uint64
}

func newTxLoop(n *Network) *txLoop {
	t := newTxBuffers(max(n.tap.BatchSize(), 1))
	t.setNetwork(n)
	return t
}

// newTxBuffers allocates a TX loop's buffers, for a network set later.
func newTxBuffers(batch int) *txLoop {
	t := &txLoop{
		bufs:  make([][]byte, batch),
		sizes: make([]int, batch),
		hdrs:  make([]byte, txSegs*hdrSlot),
		iov:   make([][]byte, 0, 2*txSegs+batch),
		msgs:  make([]SendMsg, 0, txMsgs),
		open:  -1,
		// Until it has waited for its TAP, a loop does not yield: the
		// RX loop's drain (which never waits) and the simple TAP's loop
		// (whose reads wait inside) never do.
		waited: streamGap,
	}
	for i := range t.bufs {
		t.bufs[i] = make([]byte, frameBuf)
	}
	return t
}

func (t *txLoop) setNetwork(n *Network) {
	if t.n != n {
		t.n, t.peers = n, peerCache{}
	}
}

// run reads batches until the TAP is closed (then it returns nil) or
// fails (it returns the error). With a TAP that can be read without
// blocking, it reads and sends under the network's txMu, so that the RX
// loop can drain the TAP too (see rxLoop.drainTX) without reordering
// frames.
func (t *txLoop) run() error {
	for {
		var k int
		var err error
		if p := t.n.poll; p != nil {
			k, err = t.poll(p)
			switch {
			case err != nil:
			case k < len(t.bufs):
				w := time.Now()
				err = p.WaitReadable()
				t.waited = time.Since(w)
			default:
				fair()
			}
		} else {
			k, err = t.n.tap.Read(t.bufs, t.sizes, txHeadroom)
			if err == nil {
				t.batch(k)
			}
		}
		if err != nil {
			if errors.Is(err, tap.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// poll reads and sends what the TAP has queued, and with busy polling
// keeps doing so until nothing came for the switch's busy-poll time. It
// returns how many frames the last read took.
func (t *txLoop) poll(p tap.Poller) (int, error) {
	var deadline time.Time
	for {
		t.n.txMu.Lock()
		k, err := p.TryRead(t.bufs, t.sizes, txHeadroom)
		if k > 0 {
			t.batch(k)
		}
		t.n.txMu.Unlock()
		if t.yieldNext {
			// Outside txMu, so that the RX loop can drain the TAP
			// meanwhile.
			t.yieldNext = false
			schedYield()
		}
		if err != nil || k == len(t.bufs) || t.n.s.poll <= 0 {
			return k, err
		}
		now := time.Now()
		switch {
		case k > 0 || deadline.IsZero():
			deadline = now.Add(t.n.s.poll)
		case now.After(deadline):
			return 0, nil
		}
		yield()
	}
}

// yieldToSender reports whether the TX loop, having just sent a batch of
// k frames and bytes after waiting waited for the TAP, should give up the
// CPU for a moment: when the batch was one or two small frames and the
// wait was short, a sender is streaming small frames (a UDP flow, say),
// and the loop would otherwise be woken for every frame, each time
// preempting the sender before it queued the next. Yielding lets the
// sender queue a batch, which the next read takes whole and sends as one
// UDP_SEGMENT message. With 64-byte UDP in make bench that took the
// received packets from about 100k/s to 155k/s and the daemons' CPU from
// 84% to 55%. After a long wait (a request, a ping) or with large frames
// (TCP superframes), the loop does not yield; where nothing else is
// runnable on its CPU, the yield returns at once.
func yieldToSender(k int, bytes uint64, waited time.Duration) bool {
	return k <= streamBatch && bytes <= streamBatch*maxPlainFrame && waited < streamGap
}

const (
	// streamBatch is the most frames a batch of a small-frame stream
	// holds when the loop keeps up with it.
	streamBatch = 2
	// maxPlainFrame is the largest frame that is not a superframe: an
	// MTU-sized Ethernet frame.
	maxPlainFrame = 1514
	// streamGap: waits shorter than this mean frames keep coming.
	streamGap = 100 * time.Microsecond
)

// fair lets the runtime run another goroutine after a full batch, when
// the loop is about to go on without waiting. The datapath's system
// calls are raw (see tap.rawRead) and so never hand the loop's P to
// another goroutine; a loop that never waits, a saturated network's,
// would otherwise keep other networks' loops off the CPU until the
// runtime preempts it, 10 ms at a time.
func fair() { runtime.Gosched() }

// yield lets other threads of the machine run between two polls: a
// polling loop must not starve the processes whose packets it waits for.
// Unlike schedYield, through an ordinary system call: a busy-polling loop
// yields again and again, and where other threads are runnable each
// yield may keep it off the CPU for a time slice, during which the
// runtime can hand its P to another goroutine (the RX loop, another
// network's loop). The --busy-poll figures in the README were measured
// so.
func yield() {
	fair()
	unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}

// schedYield lets other threads of the machine run on this CPU, once,
// after a light batch. Raw, like the datapath's other system calls: it
// never blocks for long, and an entersyscall could wake sysmon (see
// tap.rawRead).
func schedYield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// batch encapsulates and sends the k frames just read.
func (t *txLoop) batch(k int) {
	t.now = t.n.fib.Now()
	t.maxInner = int(t.n.s.maxInner.Load())
	for i := range k {
		t.frame(t.bufs[i], t.sizes[i])
	}
	t.yieldNext = yieldToSender(k, t.stats.bytes, t.waited)
	t.flush()
	c := &t.n.c
	if t.stats != (txStats{}) {
		c.txFrames.Add(t.stats.frames)
		c.txBytes.Add(t.stats.bytes)
		c.txFlooded.Add(t.stats.flooded)
		c.txDgrams.Add(t.stats.dgrams)
		t.stats = txStats{}
	}
}

// frame handles one frame (or superframe) at buf[txHeadroom:][:size].
func (t *txLoop) frame(buf []byte, size int) {
	n := t.n
	var vh tap.VirtioNetHdr
	if t.n.off != nil {
		vh.Decode(buf[txHeadroom-tap.VirtioNetHdrLen:])
	}
	frame := buf[txHeadroom : txHeadroom+size]
	if len(frame) < encap.EthernetHeaderLen {
		n.c.dropTX(DropShort)
		return
	}
	if c := n.filters.Load(); c != nil && !n.runChain(c, fromTAP, frame) {
		return
	}
	vteps, flooded := t.destinations(frame)
	if len(vteps) == 0 {
		n.c.dropTX(DropNoPeers)
		return
	}
	flow := encap.SourcePort(frame, 0, 0xffff)
	ecn := encap.EncapECN(encap.FrameECN(frame))
	switch vh.GSOType &^ tap.GSOECN {
	case tap.GSONone:
		if t.maxInner > 0 && len(frame) > t.maxInner {
			t.tooBig(frame)
			n.c.dropTX(DropTooBig)
			return
		}
		if vh.Flags&tap.VirtioNetHdrFNeedsCsum != 0 {
			if encap.CompleteChecksum(frame, int(vh.CsumStart), int(vh.CsumOffset)) != nil {
				n.c.dropTX(DropBadGSO)
				return
			}
		}
		if tr := n.tracer.Load(); tr != nil {
			tr.record(TraceOut, frame)
		}
		encap.PutVXLAN(buf[txHeadroom-encap.VXLANHeaderLen:], n.vni)
		d := buf[txHeadroom-encap.VXLANHeaderLen : txHeadroom+size]
		t.reserve(1, len(vteps))
		t.count(1, len(frame), len(vteps), flooded)
		if len(vteps) == 1 && t.extend(netip.AddrPortFrom(vteps[0], n.s.port), flow, ecn, d) {
			return
		}
		at := len(t.iov)
		t.iov = append(t.iov, d)
		for _, v := range vteps {
			t.msgs = append(t.msgs, SendMsg{Iov: t.iov[at : at+1], Dst: netip.AddrPortFrom(v, n.s.port), Flow: flow, ECN: ecn})
		}
		t.open = -1
		if len(vteps) == 1 {
			t.open, t.openAt = len(t.msgs)-1, at
		}
	case tap.GSOTCPv4, tap.GSOTCPv6:
		t.super(frame, int(vh.GSOSize), false, vteps, flooded, flow, ecn)
	case tap.GSOUDPL4:
		t.super(frame, int(vh.GSOSize), true, vteps, flooded, flow, ecn)
	default:
		n.c.dropTX(DropBadGSO) // not negotiated
	}
}

// extend appends datagram d to the batch's open message when that goes
// to the same VTEP from the same flow with the same outer ECN field, and d
// keeps it a valid UDP_SEGMENT
// message: every datagram but the last exactly SegSize bytes, at most
// MaxGSOSegments of them and MaxUDPPayload bytes in all. Runs of small
// frames (a UDP stream, a train of ACKs) then cost the kernel one skb
// per message instead of one per datagram on both hosts, and reach a
// receiver with UDP_GRO as one buffer; where the message meets a socket
// or device without UDP GSO, the kernel splits it.
//
// The open message is the last one appended and its iovecs are the last
// ones, so d's iovec extends them in place; reserve, called first, has
// made room for it.
func (t *txLoop) extend(dst netip.AddrPort, flow uint16, ecn uint8, d []byte) bool {
	if t.open < 0 || !t.n.s.gso() {
		return false
	}
	m := &t.msgs[t.open]
	if m.Dst != dst || m.Flow != flow || m.ECN != ecn {
		return false
	}
	seg := m.SegSize
	if seg == 0 {
		seg = len(m.Iov[0])
	}
	segs := len(m.Iov)
	if len(d) > seg || segs >= MaxGSOSegments || segs*seg+len(d) > MaxUDPPayload {
		return false
	}
	t.iov = append(t.iov, d)
	m.Iov = t.iov[t.openAt:len(t.iov)]
	m.SegSize = seg
	if len(d) < seg {
		t.open = -1 // a shorter datagram must be the last
	}
	return true
}

// destinations returns the VTEPs a frame goes to: the one its destination
// MAC is behind, or the flood list for broadcast, multicast and unknown
// unicast. The slice must not be modified.
func (t *txLoop) destinations(frame []byte) (vteps []netip.Addr, flooded bool) {
	dst := encap.Ethernet(frame).Dst()
	if !encap.IsMulticastMAC(dst) {
		if v, ok := t.n.fib.LookupAt(fib.MAC(dst), t.now); ok {
			t.one[0] = v
			return t.one[:], false
		}
	}
	return t.n.fib.FloodList(), true
}

// super splits a TSO superframe (udp false) or a USO superframe (udp
// true) into segments: each segment's headers go into a header slot
// behind a VXLAN header, its payload stays in the read buffer, and the
// iovec pairs are grouped into UDP_SEGMENT messages of at most
// MaxGSOSegments datagrams and MaxUDPPayload bytes. size is the
// virtio-net gso_size; flow and ecn are the messages' (see SendMsg).
func (t *txLoop) super(frame []byte, size int, udp bool, vteps []netip.Addr, flooded bool, flow uint16, ecn uint8) {
	n := t.n
	var hl, segs int
	if udp {
		s, err := encap.ParseUDPSuper(frame, size)
		if err != nil || s.HeaderLen()+encap.VXLANHeaderLen > hdrSlot {
			n.c.dropTX(DropBadGSO)
			return
		}
		// Datagrams are messages: they are never cut smaller, and one
		// the overlay cannot carry is dropped.
		if s.HeaderLen()+size > n.maxFrame {
			n.c.dropTX(DropOversize)
			return
		}
		if t.maxInner > 0 && s.HeaderLen()+size > t.maxInner {
			t.tooBig(frame)
			n.c.dropTX(DropTooBig)
			return
		}
		t.usup, hl, segs = s, s.HeaderLen(), s.Segments()
	} else {
		s, err := encap.ParseTCPSuper(frame, size)
		if err != nil || s.HeaderLen()+encap.VXLANHeaderLen > hdrSlot {
			n.c.dropTX(DropBadGSO)
			return
		}
		hl = s.HeaderLen()
		// A sender whose MTU exceeds the overlay's (GSO frames skip the
		// bridge's MTU check) would make datagrams the underlay cannot
		// carry; TCP segments may always be cut smaller. When the
		// underlay is what is too small, the sender is told too, so
		// that its next superframes fit.
		limit := n.maxFrame
		if t.maxInner > 0 && t.maxInner < limit {
			limit = t.maxInner
			if hl+size > limit {
				t.tooBig(frame)
			}
		}
		if limit -= hl; size > limit && s.SetMSS(limit) == nil {
			size = limit
		}
		t.tsup, segs = s, s.Segments()
	}
	if tr := n.tracer.Load(); tr != nil {
		tr.record(TraceOut, frame)
	}
	dgram := encap.VXLANHeaderLen + hl + size
	perMsg := max(1, min(MaxGSOSegments, MaxUDPPayload/dgram))
	t.open = -1
	for first := 0; first < segs; first += perMsg {
		k := min(perMsg, segs-first)
		t.reserve(k, len(vteps))
		at := len(t.iov)
		bytes := 0
		for i := first; i < first+k; i++ {
			slot := t.hdrs[t.nhdr*hdrSlot : (t.nhdr+1)*hdrSlot]
			t.nhdr++
			encap.PutVXLAN(slot, n.vni)
			var payload []byte
			if udp {
				payload = t.usup.Segment(i, frame, slot[encap.VXLANHeaderLen:])
			} else {
				payload = t.tsup.Segment(i, frame, slot[encap.VXLANHeaderLen:])
			}
			t.iov = append(t.iov, slot[:encap.VXLANHeaderLen+hl], payload)
			bytes += hl + len(payload)
		}
		seg := 0
		if k > 1 {
			seg = dgram
		}
		for _, v := range vteps {
			t.msgs = append(t.msgs, SendMsg{Iov: t.iov[at:len(t.iov)], Dst: netip.AddrPortFrom(v, n.s.port), SegSize: seg, Flow: flow, ECN: ecn})
		}
		t.count(k, bytes, len(vteps)*k, flooded)
	}
}

// tooBig answers frame, too long for the underlay, with an ICMP
// "fragmentation needed" or ICMPv6 "packet too big" into the TAP (see
// Switch.SetMaxInnerFrame and encap.PutTooBig), if the network's rate
// limit allows and the frame may be answered.
func (t *txLoop) tooBig(frame []byte) {
	n := t.n
	l3 := encap.EthernetHeaderLen
	for tags := 0; tags < 2 && len(frame) >= l3+encap.VLANTagLen; tags++ {
		if et := binary.BigEndian.Uint16(frame[l3-2:]); et != encap.EtherTypeVLAN && et != encap.EtherTypeQinQ {
			break
		}
		l3 += encap.VLANTagLen
	}
	// The answer must fit the TAP itself.
	b := t.icmp[:min(len(t.icmp), n.maxFrame)]
	if !n.icmpAllow(t.now) {
		return
	}
	if k := encap.PutTooBig(b, frame, t.maxInner-l3); k > 0 && n.Inject(b[:k]) == nil {
		n.c.pmtuAnswered.Add(1)
	}
}

// reserve makes room for segs header slots and msgs messages, sending
// what the batch holds so far if needed. The read buffers stay valid, so
// sending early is safe.
func (t *txLoop) reserve(segs, msgs int) {
	if t.nhdr+segs > txSegs || len(t.msgs)+msgs > cap(t.msgs) || len(t.iov)+2*segs > cap(t.iov) {
		t.flush()
	}
}

func (t *txLoop) count(frames, bytes, dgrams int, flooded bool) {
	t.stats.frames += uint64(frames)
	t.stats.bytes += uint64(bytes)
	t.stats.dgrams += uint64(dgrams)
	if flooded {
		t.stats.flooded += uint64(frames)
	}
}

// flush sends the batch's messages; messages the underlay could not send
// (a peer that is unreachable, say) are counted and the rest go on.
func (t *txLoop) flush() {
	if len(t.msgs) > 0 {
		if failed, err := t.n.s.ul.Send(t.msgs); failed > 0 && !errors.Is(err, net.ErrClosed) {
			t.n.c.txDrops[DropSendError].Add(uint64(failed))
			if t.n.log.Core().Enabled(zap.DebugLevel) {
				t.n.log.Debug("underlay send failed", zap.Int("datagrams", failed), zap.Error(err))
			}
		}
		t.countPeers()
	}
	clear(t.iov) // hold no pointers into buffers between batches
	t.msgs, t.iov, t.nhdr, t.open = t.msgs[:0], t.iov[:0], 0, -1
}
