package vswitch

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

const (
	// txHeadroom is the space left in front of every frame read from a
	// TAP, so the VXLAN header is written in place and the datagram is
	// the same bytes as the frame.
	txHeadroom = encap.VXLANHeaderLen
	// bufSize holds the largest frame a TAP can hand over (64 KiB) or the
	// largest UDP datagram, plus headroom.
	bufSize = 1<<16 + txHeadroom
)

// txLoop moves frames from the network's TAP into the overlay until the TAP
// is closed. It owns its buffers for its whole life.
func (n *Network) txLoop() {
	batch := max(n.tap.BatchSize(), 1)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	sizes := make([]int, batch)
	// A flooded frame becomes one datagram per peer; out and dsts grow to
	// the largest batch×peers seen and are reused from then on.
	out := make([][]byte, 0, batch)
	dsts := make([]netip.AddrPort, 0, batch)
	for {
		k, err := n.tap.Read(bufs, sizes, txHeadroom)
		if err != nil {
			if !errors.Is(err, tap.ErrClosed) {
				n.log.Error("TAP read failed; the network stops sending until the daemon restarts", zap.Error(err))
			}
			return
		}
		out, dsts = out[:0], dsts[:0]
		now := n.fib.Now()
		for i := 0; i < k; i++ {
			out, dsts = n.encapFrame(bufs[i][:txHeadroom+sizes[i]], now, out, dsts)
		}
		n.send(out, dsts)
	}
}

// encapFrame turns buf (headroom followed by one frame) into a datagram and
// appends it to out once per destination VTEP.
func (n *Network) encapFrame(buf []byte, now int64, out [][]byte, dsts []netip.AddrPort) ([][]byte, []netip.AddrPort) {
	frame := buf[txHeadroom:]
	if len(frame) < encap.EthernetHeaderLen {
		n.c.drop(DropShort)
		return out, dsts
	}
	if n.hasG && n.isGatewayFrame(frame) {
		n.c.drop(DropGateway)
		return out, dsts
	}
	encap.PutVXLAN(buf, n.vni)
	dst := encap.Ethernet(frame).Dst()
	if !encap.IsMulticastMAC(dst) {
		if vtep, ok := n.fib.LookupAt(fib.MAC(dst), now); ok {
			n.c.txFrames.Add(1)
			n.c.txBytes.Add(uint64(len(frame)))
			n.c.txDgrams.Add(1)
			return append(out, buf), append(dsts, netip.AddrPortFrom(vtep, n.s.port))
		}
	}
	peers := n.fib.FloodList()
	if len(peers) == 0 {
		n.c.drop(DropNoPeers)
		return out, dsts
	}
	for _, p := range peers {
		out = append(out, buf)
		dsts = append(dsts, netip.AddrPortFrom(p, n.s.port))
	}
	n.c.txFrames.Add(1)
	n.c.txBytes.Add(uint64(len(frame)))
	n.c.txFlooded.Add(1)
	n.c.txDgrams.Add(uint64(len(peers)))
	return out, dsts
}

// send hands the datagrams to the underlay; a datagram the underlay refuses
// is counted and skipped so one unreachable peer cannot stall the rest.
func (n *Network) send(out [][]byte, dsts []netip.AddrPort) {
	for len(out) > 0 {
		k, err := n.s.ul.Send(out, dsts)
		if err == nil {
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		n.c.drop(DropSendError)
		n.c.txDgrams.Add(^uint64(0)) // that replica never left
		if n.log.Core().Enabled(zap.DebugLevel) {
			n.log.Debug("underlay send failed", zap.Stringer("vtep", dsts[k]), zap.Error(err))
		}
		out, dsts = out[k+1:], dsts[k+1:]
	}
}

// isGatewayFrame reports whether frame is to or from the network's gateway
// address: ARP asking for it or sent from it, or IPv4 from or to it (the
// bridge's own IGMP reports, say). Every host's bridge owns that address,
// so such frames stay on the host, where the local bridge answers them;
// crossing the overlay they would teach hosts each other's gateway MAC.
func (n *Network) isGatewayFrame(frame []byte) bool {
	switch encap.Ethernet(frame).EtherType() {
	case encap.EtherTypeARP:
		arp := encap.ARP(frame[encap.EthernetHeaderLen:])
		if !arp.Valid() {
			return false
		}
		return arp.SenderIP() == n.gw || (arp.Op() == encap.ARPRequest && arp.TargetIP() == n.gw)
	case encap.EtherTypeIPv4:
		if len(frame) < encap.EthernetHeaderLen+20 {
			return false
		}
		ip := encap.IPv4(frame[encap.EthernetHeaderLen:])
		return [4]byte(ip.Src()) == n.gw || [4]byte(ip.Dst()) == n.gw
	}
	return false
}

// rxLoop moves datagrams from the underlay into the networks' TAPs until the
// underlay is closed.
func (s *Switch) rxLoop() error {
	batch := max(s.ul.BatchSize(), 1)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	sizes := make([]int, batch)
	srcs := make([]netip.AddrPort, batch)
	// Frames for one network are handed to its TAP together.
	pending := make([][]byte, 0, batch)
	// scratch holds one segment at a time of a superframe that must be
	// split before it fits the TAP.
	scratch := make([]byte, bufSize)
	var cur *Network
	flush := func() {
		if cur != nil && len(pending) > 0 {
			cur.write(pending)
		}
		pending = pending[:0]
	}
	for {
		k, err := s.ul.Recv(bufs, sizes, srcs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return ErrClosed
			}
			s.log.Warn("underlay receive failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		nets := *s.nets.Load()
		now := int64(0)
		for i := 0; i < k; i++ {
			d := bufs[i][:sizes[i]]
			vni, err := encap.ParseVXLAN(d)
			if err != nil {
				s.global.drop(vxlanDropReason(err))
				continue
			}
			n := nets[vni]
			if n == nil {
				s.global.drop(DropUnknownVNI)
				continue
			}
			frame := d[encap.VXLANHeaderLen:]
			if len(frame) < encap.EthernetHeaderLen {
				n.c.drop(DropShort)
				continue
			}
			src := encap.Ethernet(frame).Src()
			if encap.IsMulticastMAC(src) || fib.MAC(src).IsZero() {
				n.c.drop(DropBadSrcMAC)
				continue
			}
			if n.hasG && n.isGatewayFrame(frame) {
				n.c.drop(DropGateway)
				continue
			}
			if len(frame) > n.maxFrame {
				flush()
				cur = nil
				n.splitSuper(frame, scratch)
				if now == 0 {
					now = n.fib.Now()
				}
				n.fib.Learn(fib.MAC(src), srcs[i].Addr(), now)
				continue
			}
			// A Linux sender over veth leaves inner checksums partial
			// (see encap.RepairPartialChecksum); a receiving stack
			// would drop those frames.
			if encap.RepairPartialChecksum(frame) {
				n.c.rxCsumRepaired.Add(1)
			}
			if now == 0 {
				now = n.fib.Now()
			}
			if n.fib.Learn(fib.MAC(src), srcs[i].Addr(), now) == fib.LearnMoved {
				n.noteMove(fib.MAC(src), srcs[i].Addr(), now)
			}
			if n != cur {
				flush()
				cur = n
			}
			pending = append(pending, frame)
		}
		flush()
		cur = nil
	}
}

// write hands received frames to the TAP, counting what it took and what it
// refused.
func (n *Network) write(frames [][]byte) {
	for len(frames) > 0 {
		k, err := n.tap.Write(frames, 0)
		for _, f := range frames[:k] {
			n.c.rxBytes.Add(uint64(len(f)))
		}
		n.c.rxFrames.Add(uint64(k))
		if err == nil {
			return
		}
		n.c.drop(DropTAPError)
		frames = frames[k+1:]
	}
}

// splitSuper writes a received frame longer than the TAP's MTU as
// MTU-sized segments, if it is a TCP superframe. A kernel vxlan device
// sending over veth hands the whole TSO superframe of its container to
// the underlay (veth "offloads" segmentation and checksums and nobody does
// them), so a userspace VTEP on a veth underlay receives datagrams of up to
// 64 KiB whose inner frame is a TSO superframe with a partial checksum.
// Anything else that large cannot be delivered and is dropped.
func (n *Network) splitSuper(frame, scratch []byte) {
	s, err := encap.ParseTCPSuper(frame, 1)
	if err != nil {
		n.c.drop(DropOversize)
		return
	}
	mss := n.maxFrame - s.HeaderLen()
	if mss <= 0 {
		n.c.drop(DropOversize)
		return
	}
	s, _ = encap.ParseTCPSuper(frame, mss)
	n.c.rxSplit.Add(1)
	one := [][]byte{nil}
	for i := range s.Segments() {
		h := s.HeaderLen()
		k := copy(scratch[h:], s.Segment(i, frame, scratch))
		one[0] = scratch[:h+k]
		n.write(one)
	}
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
