package vswitch

// The filter chain: per network, an ordered list of filters that every
// frame passes in both directions, between the checks that make it a
// frame at all and forwarding (see the package comment for where). A
// filter lets the frame go on, drops it for a reason (counted like every
// other drop), or consumes it: answers it itself, say, so that it is
// neither forwarded nor counted as a drop.
//
// The chain is immutable and hangs off an atomic pointer on the Network,
// replaced whole when the control plane changes what it holds (a
// neighbour table set or cleared), so the loops run it without a lock
// and a network that needs no filters pays one nil check per frame. Its
// filters, in order:
//
//   - the gateway filter (NetworkConfig.Gateway): frames to or from the
//     address every host's bridge has stay on the host;
//   - the neighbour proxy (Network.SetNeighbors): ARP requests and IPv6
//     Neighbor Solicitations from the TAP for addresses in the table are
//     answered into the TAP (Network.Inject) and consumed.
//
// The gateway filter comes first, so the local bridge, not the proxy,
// answers for the gateway address even if the table lists it.

// direction is the way a frame crosses the switch.
type direction uint8

const (
	// fromTAP: read from the network's TAP (a local container or the
	// bridge sent it), on its way into the overlay. The TX loop, or the RX
	// loop draining the TAP, runs the chain before the FIB lookup.
	fromTAP direction = iota
	// fromOverlay: received from a peer VTEP, its VXLAN header and source
	// MAC checked, on its way to the TAP. The RX loop runs the chain
	// before it learns the source MAC.
	fromOverlay
)

// action is what becomes of a frame a filter looked at.
type action uint8

const (
	// actPass: on to the next filter, then to forwarding.
	actPass action = iota
	// actDrop: not forwarded, counted under the verdict's reason.
	actDrop
	// actConsume: the filter has dealt with the frame (answered it); it is
	// neither forwarded nor counted as a drop. The filter counts it.
	actConsume
)

// verdict is a filter's decision about one frame.
type verdict struct {
	act    action
	reason DropReason // with actDrop
}

var (
	pass    = verdict{}
	consume = verdict{act: actConsume}
)

func dropFor(r DropReason) verdict { return verdict{act: actDrop, reason: r} }

// filter is one link of a network's chain.
//
// The loops call filter for every frame, so it must not allocate, lock,
// or block, except that a filter answering a frame may write the answer
// with Network.Inject. frame starts with the Ethernet header and is at
// least EthernetHeaderLen bytes long; from the TAP it may be a TSO or USO
// superframe, whose transport checksum may be partial. The filter may
// not change frame or keep it after it returns.
//
// Concurrency: a network's fromTAP frames are filtered by one goroutine at
// a time (its TX loop, or the RX loop draining its TAP, both under txMu;
// a TAP that cannot be polled is read by the TX loop alone), and its
// fromOverlay frames by the RX loop; the two directions run at the same
// time. So a filter may keep scratch space for one direction without a
// lock, but state both directions touch must be atomic.
type filter interface {
	filter(dir direction, frame []byte) verdict
}

// filterChain is an immutable list of filters, run in order.
type filterChain struct{ fs []filter }

// runChain runs the chain c of network n on frame and reports whether the
// frame goes on: false when a filter dropped it (counted here) or
// consumed it. The loops load n.filters once per frame and call runChain
// only when it is not nil, so an empty chain costs no call:
//
//	if c := n.filters.Load(); c != nil && !n.runChain(c, fromTAP, frame) {
//		return
//	}
func (n *Network) runChain(c *filterChain, dir direction, frame []byte) bool {
	for _, f := range c.fs {
		switch v := f.filter(dir, frame); v.act {
		case actPass:
		case actDrop:
			n.c.dropIn(dir, v.reason)
			return false
		case actConsume:
			return false
		}
	}
	return true
}

// setFilters builds the chain from what the network has now and installs
// it. Called under ctlMu (and by AddNetwork before the loops start).
func (n *Network) setFilters() {
	var fs []filter
	if n.gw != nil {
		fs = append(fs, n.gw)
	}
	if n.proxy.table.Load() != nil {
		fs = append(fs, &n.proxy)
	}
	if len(fs) == 0 {
		n.filters.Store(nil)
		return
	}
	n.filters.Store(&filterChain{fs: fs})
}
