package vswitch

import (
	"sync/atomic"
)

// DropReason says why a frame or datagram was not forwarded.
type DropReason int

// Drop reasons. Switch-level reasons are counted before a datagram is
// matched to a network; the others are counted per network, each either
// for a received datagram (Counters.RXDrops) or for a frame on its way
// into the overlay.
const (
	// DropShort: a datagram too short for a VXLAN header and an Ethernet
	// header (an empty one included), or a frame shorter than an Ethernet
	// header.
	DropShort DropReason = iota
	// DropBadFlags: VXLAN flags byte other than 0x08 (RFC 7348: the I flag
	// alone).
	DropBadFlags
	// DropReserved: a reserved VXLAN bit set.
	DropReserved
	// DropUnknownVNI: no network with that VNI on this host.
	DropUnknownVNI
	// DropBadSrcMAC: a received frame with a multicast, broadcast or zero
	// source MAC, which no station may send.
	DropBadSrcMAC
	// DropNoPeers: a frame to flood while the flood list is empty.
	DropNoPeers
	// DropGateway: a frame to or from the network's gateway address, which
	// every host has on its own bridge and which must stay on the host.
	DropGateway
	// DropBadGSO: a frame from the TAP with a virtio-net header that
	// cannot be honoured (malformed superframe or checksum offsets, or a
	// GSO type that was not negotiated).
	DropBadGSO
	// DropOversize: a received frame longer than the TAP's MTU that is
	// not a TCP superframe (which would be split).
	DropOversize
	// DropSendError: the underlay refused a datagram.
	DropSendError
	// DropTAPError: the TAP refused a frame.
	DropTAPError
	// DropNotECT: a datagram the underlay marked Congestion Experienced
	// carrying an IP packet that is not ECN-capable (RFC 6040 §4.2).
	DropNotECT
	// DropBadCsum: a received frame whose checksums the switch would
	// have rewritten (completing a partial checksum, splitting a
	// superframe) failed verification: its IPv4 header checksum, or the
	// TCP checksum over the whole superframe.
	DropBadCsum
	// DropUnknownVTEP: with Config.PeersOnly, a datagram from a VTEP the
	// network does not know (see Network's KnownVTEP).
	DropUnknownVTEP
	// DropTooBig: a frame from the TAP too big for the underlay's MTU
	// that could not be cut smaller; the sender was told with an ICMP
	// "fragmentation needed" or ICMPv6 "packet too big" where it can
	// hear it (Counters.PMTUAnswered).
	DropTooBig
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropShort:       "short",
	DropBadFlags:    "bad_flags",
	DropReserved:    "reserved_bits",
	DropUnknownVNI:  "unknown_vni",
	DropBadSrcMAC:   "bad_src_mac",
	DropNoPeers:     "no_peers",
	DropGateway:     "gateway_local",
	DropBadGSO:      "bad_gso",
	DropOversize:    "oversize",
	DropSendError:   "send_error",
	DropTAPError:    "tap_error",
	DropNotECT:      "ce_not_ect",
	DropBadCsum:     "bad_csum",
	DropUnknownVTEP: "unknown_vtep",
	DropTooBig:      "too_big",
}

func (r DropReason) String() string {
	if r < 0 || r >= numDropReasons {
		return "unknown"
	}
	return dropNames[r]
}

// counters are updated by the datapath loops with atomic adds and read by
// Stats. Fields written by different loops are far enough apart in practice
// (TX fields by the network's TX loop, RX fields by the RX loop); padding is
// not worth its memory for this many networks.
type counters struct {
	txFrames, txBytes   atomic.Uint64
	txFlooded, txDgrams atomic.Uint64
	txDrained           atomic.Uint64
	rxDgrams            atomic.Uint64 // switch level only: every datagram received
	rxFrames, rxBytes   atomic.Uint64
	rxCsumRepaired      atomic.Uint64
	rxSplit             atomic.Uint64
	rxCoalesced         atomic.Uint64
	arpProxied          atomic.Uint64
	ndProxied           atomic.Uint64
	pmtuAnswered        atomic.Uint64
	// rxDrops are received datagrams dropped; txDrops everything else
	// (frames from the TAP, injected frames).
	rxDrops, txDrops [numDropReasons]atomic.Uint64
}

// dropRX counts a received datagram dropped for r.
func (c *counters) dropRX(r DropReason) { c.rxDrops[r].Add(1) }

// dropTX counts a frame from the TAP (or injected) dropped for r.
func (c *counters) dropTX(r DropReason) { c.txDrops[r].Add(1) }

// Counters is a snapshot of a network's (or the switch's) counters.
type Counters struct {
	// TXFrames and TXBytes count frames read from the TAP and sent into the
	// overlay (a flooded frame counts once; bytes are inner frame bytes).
	TXFrames uint64 `json:"tx_frames"`
	TXBytes  uint64 `json:"tx_bytes"`
	// TXFlooded counts frames sent to every peer (broadcast, multicast,
	// unknown unicast).
	TXFlooded uint64 `json:"tx_flooded"`
	// TXDatagrams counts VXLAN datagrams sent, replicas included.
	TXDatagrams uint64 `json:"tx_datagrams"`
	// TXDrained counts frames the RX loop took from the TAP right after
	// writing to it (replies and ACKs its writes provoked), without
	// waiting for the TX loop to wake up.
	TXDrained uint64 `json:"tx_drained"`
	// RXFrames and RXBytes count frames received from the overlay and
	// written to the TAP.
	RXFrames uint64 `json:"rx_frames"`
	RXBytes  uint64 `json:"rx_bytes"`
	// RXCsumRepaired counts received frames whose partial transport
	// checksum (left by a Linux sender over veth) was completed.
	RXCsumRepaired uint64 `json:"rx_csum_repaired"`
	// RXSplit counts received TCP superframes (from a kernel VTEP on a
	// veth underlay) split into MTU-sized segments for the TAP.
	RXSplit uint64 `json:"rx_split"`
	// RXCoalesced counts TCP superframes written to the TAP, each made of
	// several received segments (software GRO).
	RXCoalesced uint64 `json:"rx_coalesced"`
	// ARPProxied and NDProxied count ARP requests and IPv6 Neighbor
	// Solicitations from the TAP that the neighbour proxy answered into
	// the TAP (see Network.SetNeighbors); they are not sent into the
	// overlay and not counted in TXFrames.
	ARPProxied uint64 `json:"arp_proxied"`
	NDProxied  uint64 `json:"nd_proxied"`
	// PMTUAnswered counts ICMP "fragmentation needed" and ICMPv6 "packet
	// too big" messages written into the TAP for frames too big for the
	// underlay.
	PMTUAnswered uint64 `json:"pmtu_answered"`
	// Drops counts frames and datagrams not forwarded, by reason (only
	// non-zero reasons appear); RXDrops is the part of it that counts
	// received datagrams.
	Drops   map[string]uint64 `json:"drops,omitempty"`
	RXDrops map[string]uint64 `json:"rx_drops,omitempty"`
}

// SwitchCounters are the switch-level counters: what the underlay
// received and what was dropped before a datagram could be matched to a
// network. Every datagram the kernel had for the underlay socket ends in
// exactly one place:
//
//	RXDatagrams + RXOverflow = datagrams that arrived for the socket
//	RXDatagrams = Σ Drops (switch level)
//	            + Σ over networks (RXFrames + Σ RXDrops)
//
// where a network's RXFrames counts delivered received frames, one per
// datagram however it was written (coalesced with others or split).
type SwitchCounters struct {
	// RXDatagrams counts datagrams received from the underlay (each of a
	// GRO buffer's, empty ones included).
	RXDatagrams uint64 `json:"rx_datagrams"`
	// RXOverflow counts datagrams the kernel dropped for the underlay
	// socket before the switch could read them (SO_RXQ_OVFL: a full
	// receive buffer, or a bad outer UDP checksum). The kernel reports
	// it with the next datagram received. With UDP GRO on the socket it
	// counts a dropped GRO buffer once, whatever it held, so under
	// overflow with offloads on it is a lower bound.
	RXOverflow uint64 `json:"rx_overflow"`
	// TXGSOSplit counts UDP_SEGMENT messages the kernel refused that were
	// sent again one datagram at a time.
	TXGSOSplit uint64 `json:"tx_gso_split"`
	// Drops counts datagrams dropped before a network was found (short,
	// bad_flags, reserved_bits, unknown_vni).
	Drops map[string]uint64 `json:"drops,omitempty"`
}

func (c *counters) snapshot() Counters {
	s := Counters{
		PMTUAnswered:   c.pmtuAnswered.Load(),
		TXFrames:       c.txFrames.Load(),
		TXBytes:        c.txBytes.Load(),
		TXFlooded:      c.txFlooded.Load(),
		TXDatagrams:    c.txDgrams.Load(),
		TXDrained:      c.txDrained.Load(),
		RXFrames:       c.rxFrames.Load(),
		RXBytes:        c.rxBytes.Load(),
		RXCsumRepaired: c.rxCsumRepaired.Load(),
		RXSplit:        c.rxSplit.Load(),
		RXCoalesced:    c.rxCoalesced.Load(),
		ARPProxied:     c.arpProxied.Load(),
		NDProxied:      c.ndProxied.Load(),
	}
	s.Drops, s.RXDrops = c.dropMaps()
	return s
}

// dropMaps returns the non-zero drops by reason, all and received only
// (nil when none).
func (c *counters) dropMaps() (all, rx map[string]uint64) {
	for r := range numDropReasons {
		v, t := c.rxDrops[r].Load(), c.txDrops[r].Load()
		if v != 0 {
			if rx == nil {
				rx = make(map[string]uint64)
			}
			rx[r.String()] = v
		}
		if v+t != 0 {
			if all == nil {
				all = make(map[string]uint64)
			}
			all[r.String()] = v + t
		}
	}
	return all, rx
}

// dropIn counts a frame dropped on its way in direction dir.
func (c *counters) dropIn(dir direction, r DropReason) {
	if dir == fromOverlay {
		c.dropRX(r)
		return
	}
	c.dropTX(r)
}
