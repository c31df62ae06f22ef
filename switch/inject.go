package vswitch

import (
	"errors"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/tap"
)

// ErrFrameSize is returned by Inject for a frame shorter than an Ethernet
// header or longer than the TAP takes (its MTU, the Ethernet header and
// one VLAN tag).
var ErrFrameSize = errors.New("frame too short or longer than the TAP's MTU")

// Inject writes one Ethernet frame into the network's TAP, towards the
// bridge, as if it had come from the overlay: the neighbour proxy's
// answers go this way. frame must be a whole frame with complete
// checksums; on a TAP with offloads it goes with a zero virtio-net header
// (no segmentation, checksums not marked as verified, so the kernel
// checks them). The caller owns frame and may reuse it when Inject
// returns. Inject allocates nothing when frame is on the heap already
// (the device keeps pointers into it while it writes).
//
// A write the TAP refuses is counted as DropTAPError and its error
// returned. Injected frames are not counted as received (RXFrames); the
// proxy counts its answers itself.
//
// Inject may be called from any goroutine, the datapath's included: the
// TAP takes one writer at a time (the device with offloads writes through
// scratch space of its own), so writes to a network's TAP are serialised
// by tapMu, which the RX loop holds for each network it writes to from
// its first write in a batch to the end of the batch's writes, and
// Inject for its one write. A frame injected while the RX loop delivers
// a batch goes before or after that batch's frames, never between their
// bytes.
func (n *Network) Inject(frame []byte) error {
	var err error
	n.tapMu.Lock()
	if len(frame) < encap.EthernetHeaderLen || len(frame) > n.maxFrame+encap.VLANTagLen {
		n.tapMu.Unlock()
		return ErrFrameSize
	}
	w := &n.inject
	if n.off != nil {
		// A zero header: no GSO, no partial checksum.
		w.hdr = [tap.VirtioNetHdrLen]byte{}
		w.iov[0], w.iov[1] = w.hdr[:], frame
		err = n.off.WriteVec(w.iov[:])
		w.iov[1] = nil
	} else {
		w.one[0] = frame
		_, err = n.tap.Write(w.one[:], 0)
		w.one[0] = nil
	}
	n.tapMu.Unlock()
	if err != nil {
		n.c.dropTX(DropTAPError)
	}
	return err
}

// injectScratch is what Inject hands the TAP, kept in the Network so that
// a write allocates nothing; guarded by tapMu. The frame's slot is
// cleared after each write, to hold no pointer into the caller's buffer.
type injectScratch struct {
	hdr [tap.VirtioNetHdrLen]byte
	iov [2][]byte
	one [1][]byte
}
