package vswitch

import (
	"errors"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

// rxLoop moves datagrams from the underlay into the networks' TAPs. Its
// buffers are allocated once and owned by it for its whole life.
type rxLoop struct {
	s    *Switch
	msgs []RecvMsg
	gen  uint64 // batch number, to read each network's clock once a batch

	// Frames for one network without offloads, handed to its TAP
	// together.
	pending    [][]byte
	pendingNet *Network

	// The TCP (or, with runUDP, UDP) superframe being coalesced, for a
	// network with offloads: iov is its virtio-net header, first frame,
	// and the payloads of the others, all still in the receive buffers.
	gro    encap.TCPRun
	udp    encap.UDPRun
	runUDP bool
	runNet *Network
	runIov [][]byte
	vhdr   [tap.VirtioNetHdrLen]byte
	// The run's frames whole, and the first one's headers as they were,
	// to write the segments one by one should the TAP refuse the GSO
	// frame after Finish rewrote those headers.
	runFrames [][]byte
	runHdr    [encap.EthernetHeaderLen + 60 + 60]byte
	runHdrLen int

	// One frame written with its own virtio-net header.
	plainIov [2][]byte
	plainHdr [tap.VirtioNetHdrLen]byte

	// scratch holds one segment at a time of a superframe that must be
	// split before it fits the TAP.
	scratch []byte
	one     [1][]byte

	// The last sender checked with knownPeer (slot and network) and the
	// answer; reset every batch.
	vetMsg *RecvMsg
	vetNet *Network
	vetOK  bool

	// Networks whose TAP got frames in this batch, and the buffers to
	// drain their TAPs with (see drainTX).
	touched []*Network
	inline  *txLoop

	// peer is the sender of the datagrams being handled and what they
	// counted so far (peers.go).
	peer rxPeer
}

func newRxLoop(s *Switch) *rxLoop {
	batch := max(s.ul.BatchSize(), 1)
	r := &rxLoop{
		s:         s,
		msgs:      make([]RecvMsg, batch),
		pending:   make([][]byte, 0, batch*encap.MaxRunSegments),
		runIov:    make([][]byte, 0, encap.MaxRunSegments+1),
		runFrames: make([][]byte, 0, encap.MaxRunSegments),
		scratch:   make([]byte, frameBuf),
		inline:    newTxBuffers(inlineBatch),
	}
	for i := range r.msgs {
		r.msgs[i].Buf = make([]byte, frameBuf)
	}
	return r
}

// run receives until the underlay is closed.
func (r *rxLoop) run() error {
	try, canTry := r.s.ul.(tryReceiver)
	for {
		if r.s.poll > 0 && canTry {
			r.busyPoll(try)
		}
		k, err := r.s.ul.Recv(r.msgs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return ErrClosed
			}
			r.s.log.Warn("underlay receive failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		r.batch(k)
		if k == len(r.msgs) {
			fair()
		}
	}
}

// busyPoll handles datagrams as they come without sleeping, until none
// came for the switch's busy-poll time.
func (r *rxLoop) busyPoll(try tryReceiver) {
	deadline := time.Now().Add(r.s.poll)
	for {
		k, err := try.TryRecv(r.msgs)
		if err != nil {
			return // Recv reports it
		}
		if k > 0 {
			r.batch(k)
			deadline = time.Now().Add(r.s.poll)
			continue
		}
		if time.Now().After(deadline) {
			return
		}
		yield()
	}
}

// batch handles the k slots just received, datagram by datagram (a GRO
// slot holds many), and writes everything out before the next receive.
func (r *rxLoop) batch(k int) {
	nets := *r.s.nets.Load()
	r.gen++
	r.vetMsg, r.vetNet = nil, nil
	r.peer.m = nil // slots are reused; the sender's counters stay cached
	dgrams := 0
	for i := range k {
		m := &r.msgs[i]
		buf := m.Buf[:m.N]
		step := m.SegSize
		if step <= 0 {
			step = len(buf)
		}
		if len(buf) == 0 {
			// An empty datagram: counted like every other.
			r.s.global.dropRX(DropShort)
			dgrams++
			continue
		}
		for off := 0; off < len(buf); off += step {
			r.datagram(nets, buf[off:min(off+step, len(buf))], m)
			dgrams++
		}
	}
	r.s.global.rxDgrams.Add(uint64(dgrams))
	r.flushPeer()
	r.flushRun()
	r.flushPending()
	// Every write of the batch is done; drainTX may inject (the proxy's
	// answers) and so takes tapMu itself.
	for _, n := range r.touched {
		n.tapMu.Unlock()
	}
	if dgrams <= drainMaxDatagrams {
		r.drainTX()
	}
	r.touched = r.touched[:0]
}

// drainMaxDatagrams: only a batch this small (a request, a lone segment)
// is worth draining the TAPs after. Under load the TX loops are awake
// anyway, and draining would move their segmentation work into this loop
// and serialise the two directions on one CPU.
const drainMaxDatagrams = 2

// inlineBatch is how many frames drainTX takes from a TAP at most: the
// replies and ACKs the frames just written provoked, not bulk traffic,
// which is the TX loop's.
const inlineBatch = 8

// drainTX sends what the TAPs written to in this batch have queued. A
// TAP write runs the receiving stack in the writer's context, so a
// request's reply or a segment's ACK is usually queued on the TAP by the
// time the write returns; sending it now saves waiting for the network's
// TX loop to be woken and scheduled, which is most of a round trip's
// cost. The TX loop's lock keeps the two readers from reordering frames;
// if the TX loop holds it, it is at work and will send them.
func (r *rxLoop) drainTX() {
	for _, n := range r.touched {
		if !n.txMu.TryLock() {
			continue
		}
		if n.poll == nil { // read under txMu: ReplaceTAP changes it
			n.txMu.Unlock()
			continue
		}
		if k, _ := n.poll.TryRead(r.inline.bufs, r.inline.sizes, txHeadroom); k > 0 {
			r.inline.setNetwork(n)
			r.inline.batch(k)
			n.c.txDrained.Add(uint64(k))
		}
		n.txMu.Unlock()
	}
}

// touch records that n's TAP gets frames in this batch, and takes n's
// tapMu for the batch's writes to it (batch releases it): every write to
// a TAP follows a touch of its network in the same batch.
func (r *rxLoop) touch(n *Network) {
	if n.rxTouched != r.gen {
		n.rxTouched = r.gen
		n.tapMu.Lock()
		r.touched = append(r.touched, n)
	}
}

// datagram validates one datagram, learns its sender and queues its inner
// frame for the network's TAP.
func (r *rxLoop) datagram(nets map[uint32]*Network, d []byte, m *RecvMsg) {
	vni, err := encap.ParseVXLAN(d)
	if err != nil {
		r.s.global.dropRX(vxlanDropReason(err))
		return
	}
	n := nets[vni]
	if n == nil {
		r.s.global.dropRX(DropUnknownVNI)
		return
	}
	// The sender's counters: the datagrams of a slot share them.
	p := r.peer.p
	if r.peer.m != m || r.peer.n != n {
		p = r.peerOf(n, m)
	}
	if r.s.peersOnly && !r.knownPeer(n, m) {
		n.dropPeerRX(p, DropUnknownVTEP)
		return
	}
	frame := d[encap.VXLANHeaderLen:]
	if len(frame) < encap.EthernetHeaderLen {
		n.dropPeerRX(p, DropShort)
		return
	}
	src := encap.Ethernet(frame).Src()
	if encap.IsMulticastMAC(src) || fib.MAC(src).IsZero() {
		n.dropPeerRX(p, DropBadSrcMAC)
		return
	}
	if c := n.filters.Load(); c != nil && !n.runChain(c, fromOverlay, frame) {
		return
	}
	if n.rxGen != r.gen {
		n.rxGen, n.rxNow = r.gen, n.fib.Now()
	}
	if n.fib.Learn(fib.MAC(src), m.Src.Addr(), n.rxNow) == fib.LearnMoved {
		n.noteMove(fib.MAC(src), m.Src.Addr(), n.rxNow)
	}
	r.touch(n)
	// Congestion the underlay marked reaches the inner flow, or the frame
	// is dropped if the flow cannot hear of it (RFC 6040), after learning
	// as Linux's vxlan does.
	if !encap.DecapECN(frame, m.ECN) {
		n.dropPeerRX(p, DropNotECT)
		return
	}
	r.peer.frames++
	r.peer.bytes += uint64(len(frame))
	if tr := n.tracer.Load(); tr != nil {
		tr.record(TraceIn, frame)
	}
	// Linux's bridge and veth forward frames up to the MTU plus the
	// Ethernet header plus one VLAN tag (is_skb_forwardable), so a
	// tagged frame of full MTU passes as it is; only longer ones are
	// split or dropped.
	if len(frame) > n.maxFrame+encap.VLANTagLen {
		r.flushRun()
		r.flushPending()
		r.splitSuper(n, frame)
		return
	}
	if n.off == nil {
		// A Linux sender over veth leaves inner checksums partial (see
		// encap.RepairPartialChecksum); a receiving stack would drop
		// those frames.
		if !n.repair(frame) {
			return
		}
		if r.pendingNet != n {
			r.flushPending()
			r.pendingNet = n
		}
		r.pending = append(r.pending, frame)
		return
	}
	r.offloaded(n, frame)
}

// offloaded hands a frame to a TAP with offloads: TCP segments of one flow
// are coalesced into a superframe written with one writev; anything else
// is written as it is.
func (r *rxLoop) offloaded(n *Network, frame []byte) {
	seg, ok := encap.ParseTCPSeg(frame)
	if !ok {
		switch encap.RepairPartialChecksum(frame) {
		case encap.Repaired:
			n.c.rxCsumRepaired.Add(1)
			seg, ok = encap.ParseTCPSeg(frame)
		case encap.RepairRefused:
			n.c.dropRX(DropBadCsum)
			return
		}
	}
	if ok && !n.noGRO.Load() {
		if r.runNet == n && !r.runUDP && r.gro.Append(frame, seg) {
			r.extendRun(frame, seg.HeaderLen())
			return
		}
		r.flushRun()
		r.gro.Start(frame, seg)
		r.startRun(n, false, frame, seg.HeaderLen())
		return
	}
	if !ok && n.uso && !n.noUSO.Load() {
		if useg, uok := encap.ParseUDPSeg(frame); uok {
			if r.runNet == n && r.runUDP && r.udp.Append(frame, useg) {
				r.extendRun(frame, useg.HeaderLen())
				return
			}
			r.flushRun()
			r.udp.Start(frame, useg)
			r.startRun(n, true, frame, useg.HeaderLen())
			return
		}
	}
	r.flushRun()
	// A segment ParseTCPSeg accepted has verified checksums; tell the
	// kernel so it need not verify them again.
	vh := tap.VirtioNetHdr{}
	if ok {
		vh.Flags = tap.VirtioNetHdrFDataValid
	}
	r.writeVec(n, &vh, frame)
}

// startRun begins the superframe of network n with frame, whose headers
// are hdrLen bytes; the caller has started r.gro (TCP) or r.udp (udp).
func (r *rxLoop) startRun(n *Network, udp bool, frame []byte, hdrLen int) {
	r.runNet, r.runUDP = n, udp
	r.runIov = append(r.runIov[:0], r.vhdr[:], frame)
	r.runFrames = append(r.runFrames[:0], frame)
	r.runHdrLen = hdrLen
}

// extendRun adds the payload of frame, which the run's Append accepted.
func (r *rxLoop) extendRun(frame []byte, hdrLen int) {
	r.runIov = append(r.runIov, frame[hdrLen:])
	r.runFrames = append(r.runFrames, frame)
}

// writeVec writes one frame with its own virtio-net header.
func (r *rxLoop) writeVec(n *Network, vh *tap.VirtioNetHdr, frame []byte) {
	if r.writeVecRaw(n, vh, frame) != nil {
		n.c.dropRX(DropTAPError)
		return
	}
	n.c.rxFrames.Add(1)
	n.c.rxBytes.Add(uint64(len(frame)))
}

// writeVecRaw is writeVec without counting.
func (r *rxLoop) writeVecRaw(n *Network, vh *tap.VirtioNetHdr, frame []byte) error {
	vh.Encode(r.plainHdr[:])
	r.plainIov[0], r.plainIov[1] = r.plainHdr[:], frame
	err := n.off.WriteVec(r.plainIov[:])
	r.plainIov[1] = nil
	return err
}

// flushRun writes the superframe being coalesced, if any.
func (r *rxLoop) flushRun() {
	n := r.runNet
	if n == nil {
		return
	}
	r.runNet = nil
	segs := len(r.runFrames)
	frame := r.runIov[1]
	copy(r.runHdr[:r.runHdrLen], frame)
	var gso encap.GSO
	var ok bool
	if r.runUDP {
		gso, ok = r.udp.Finish()
	} else {
		gso, ok = r.gro.Finish()
	}
	if !ok {
		r.writeVec(n, &tap.VirtioNetHdr{Flags: tap.VirtioNetHdrFDataValid}, frame)
		return
	}
	vh := tap.VirtioNetHdr{
		Flags:      tap.VirtioNetHdrFNeedsCsum,
		GSOType:    tap.GSOTCPv4,
		HdrLen:     uint16(gso.HdrLen),
		GSOSize:    uint16(gso.Size),
		CsumStart:  uint16(gso.CsumStart),
		CsumOffset: uint16(gso.CsumOffset),
	}
	switch {
	case gso.UDP:
		vh.GSOType = tap.GSOUDPL4
	case gso.V6:
		vh.GSOType = tap.GSOTCPv6
	}
	if gso.ECN {
		vh.GSOType |= tap.GSOECN
	}
	vh.Encode(r.vhdr[:])
	err := n.off.WriteVec(r.runIov)
	if errors.Is(err, tap.ErrGSORefused) {
		off, what := &n.noGRO, "TCP"
		if r.runUDP {
			off, what = &n.noUSO, "UDP"
		}
		if !off.Swap(true) {
			n.log.Warn("the kernel refuses GSO writes to this TAP; receiving without coalescing", zap.String("transport", what), zap.Error(err))
		}
		// Put the first frame back as it was and write the segments
		// one by one.
		copy(frame, r.runHdr[:r.runHdrLen])
		for _, f := range r.runFrames {
			r.writeVec(n, &tap.VirtioNetHdr{Flags: tap.VirtioNetHdrFDataValid}, f)
		}
		return
	}
	if err != nil {
		n.c.rxDrops[DropTAPError].Add(uint64(segs))
		return
	}
	bytes := 0
	for _, b := range r.runIov[1:] {
		bytes += len(b)
	}
	n.c.rxFrames.Add(uint64(segs))
	n.c.rxBytes.Add(uint64(bytes + (segs-1)*gso.HdrLen))
	n.c.rxCoalesced.Add(1)
}

// flushPending writes the frames queued for a network without offloads.
func (r *rxLoop) flushPending() {
	if r.pendingNet != nil && len(r.pending) > 0 {
		r.pendingNet.writeFrames(r.pending)
	}
	r.pending, r.pendingNet = r.pending[:0], nil
}

// writeFrames hands frames to a TAP without offloads, counting what it
// took and what it refused.
func (n *Network) writeFrames(frames [][]byte) {
	for len(frames) > 0 {
		k, err := n.tap.Write(frames, 0)
		for _, f := range frames[:k] {
			n.c.rxBytes.Add(uint64(len(f)))
		}
		n.c.rxFrames.Add(uint64(k))
		if err == nil {
			return
		}
		n.c.dropRX(DropTAPError)
		frames = frames[k+1:]
	}
}

// repair completes a received frame's partial checksum (see
// encap.RepairPartialChecksum) and reports whether the frame goes on:
// false when the repair was refused, which is counted.
func (n *Network) repair(frame []byte) bool {
	switch encap.RepairPartialChecksum(frame) {
	case encap.Repaired:
		n.c.rxCsumRepaired.Add(1)
	case encap.RepairRefused:
		n.c.dropRX(DropBadCsum)
		return false
	}
	return true
}

// splitSuper writes a received frame longer than the TAP's MTU as
// MTU-sized segments, if it is a TCP superframe. A kernel vxlan device
// sending over veth hands the whole TSO superframe of its container to the
// underlay (veth "offloads" segmentation and checksums and nobody does
// them), so a userspace VTEP on a veth underlay receives datagrams of up to
// 64 KiB whose inner frame is a TSO superframe with a partial checksum; a
// peer whose MTU is larger than this network's sends whole frames with
// complete checksums. Anything else that large cannot be delivered and is
// dropped.
//
// Every segment gets a fresh, valid checksum, so the superframe's are
// verified first (encap.TCPSuper.Verify): one that fails is dropped as
// bad_csum rather than handed on with its corruption vouched for. The
// superframe counts as one received frame, delivered only if the TAP took
// every segment.
func (r *rxLoop) splitSuper(n *Network, frame []byte) {
	s, err := encap.ParseTCPSuper(frame, 1)
	if err != nil || s.SetMSS(n.maxFrame-s.HeaderLen()) != nil {
		n.c.dropRX(DropOversize)
		return
	}
	if s.Verify(frame) == encap.CsumBad {
		n.c.dropRX(DropBadCsum)
		return
	}
	n.c.rxSplit.Add(1)
	h := s.HeaderLen()
	var failed error
	for i := range s.Segments() {
		k := copy(r.scratch[h:], s.Segment(i, frame, r.scratch))
		seg := r.scratch[:h+k]
		var err error
		if n.off != nil {
			err = r.writeVecRaw(n, &tap.VirtioNetHdr{Flags: tap.VirtioNetHdrFDataValid}, seg)
		} else {
			r.one[0] = seg
			_, err = n.tap.Write(r.one[:], 0)
			r.one[0] = nil
		}
		if err != nil {
			failed = err
		}
	}
	if failed != nil {
		n.c.dropRX(DropTAPError)
		return
	}
	n.c.rxFrames.Add(1)
	n.c.rxBytes.Add(uint64(len(frame)))
}

// knownPeer reports whether the sender of slot m is a VTEP network n
// knows (fib.Table.KnownVTEP), asking the FIB once per slot and network:
// the datagrams of a GRO slot share their sender.
func (r *rxLoop) knownPeer(n *Network, m *RecvMsg) bool {
	if r.vetMsg != m || r.vetNet != n {
		r.vetMsg, r.vetNet = m, n
		r.vetOK = n.fib.KnownVTEP(m.Src.Addr())
	}
	return r.vetOK
}

// dropPeerRX counts a datagram from peer p dropped for reason r.
func (n *Network) dropPeerRX(p *peerCounters, r DropReason) {
	n.c.dropRX(r)
	p.rxDrops[r].Add(1)
}

func vxlanDropReason(err error) DropReason {
	switch {
	case errors.Is(err, encap.ErrBadFlags):
		return DropBadFlags
	case errors.Is(err, encap.ErrReserved):
		return DropReserved
	default:
		return DropShort
	}
}
