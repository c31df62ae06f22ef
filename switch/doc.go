// Package vswitch is the vxswitch datapath (it lives in the directory
// switch/; `switch` is a Go keyword, so the package is named vswitch).
//
// A Switch serves many networks over one underlay (UDP sockets on port
// 4789: package switch/udp, or a fake in tests). Each Network is a VNI
// with a TAP device on its bridge and a MAC table (package fib). The
// switch sees both devices through small interfaces (Underlay,
// tap.Device) and knows nothing of namespaces: whoever builds it opens
// them in the right one.
//
//	TX, one goroutine per network:
//	  TAP read (frame lands behind 10 bytes of headroom)
//	    → filter chain: gateway filter, neighbour proxy
//	      (an ARP request or NS it can answer is answered into the TAP
//	       with Inject, and goes no further)
//	    → FIB lookup of the destination MAC
//	    → size check against the underlay (SetMaxInnerFrame): a frame
//	      too big is answered with ICMP "too big" into the TAP (Inject)
//	      and dropped; a TCP superframe is cut to fit
//	    → VXLAN header written in place in the headroom
//	    → one datagram to the known VTEP, or a copy to every peer in the
//	      flood list for broadcast, multicast and unknown unicast
//	    → underlay send (the whole TAP read batch at once)
//
//	RX, one goroutine per switch:
//	  underlay receive (a batch of datagrams)
//	    → VXLAN header validation (flags exactly 0x08, reserved bits zero)
//	    → demultiplex by VNI → with PeersOnly, the sender must be a VTEP
//	      the network knows → source MAC check
//	    → filter chain (the gateway filter; the proxy lets received
//	      frames pass)
//	    → learn inner source MAC → outer source IP
//	    → checksums checked before any is rewritten (a partial one
//	      completed, a superframe split for the TAP)
//	    → TAP write of the inner frame (no copy: it is a subslice)
//
// The filter chain (filter.go) is per network: an immutable list behind
// an atomic pointer, replaced whole when the control plane changes it, so
// the loops run it without a lock, and a network without filters pays a
// nil check per frame. A filter passes a frame, drops it for a counted
// reason, or consumes it. Today there are two: the gateway filter
// (NetworkConfig.Gateway) and the neighbour proxy (Network.SetNeighbors),
// which answers ARP requests and IPv6 Neighbor Solicitations for the
// addresses in the network's table, as the kernel vxlan's `proxy` option
// does (proxy.go says exactly which, and why not DAD probes).
//
// Network.Inject is the one way to write a frame into a network's TAP
// from outside the RX loop (the proxy's answers): the TAP takes one writer
// at a time, so Inject and the RX loop share the network's TAP write lock,
// which the RX loop takes once per network per batch, not per frame.
//
// With a TAP that has offloads (tap.Offloader), a TAP read may return a
// TSO or USO superframe, split into segments whose headers go into the TX
// loop's header slots (payloads stay in the read buffer) and sent as
// UDP_SEGMENT messages; runs of small frames to one VTEP are grouped into
// such messages too. The RX loop walks UDP GRO buffers datagram by
// datagram and coalesces TCP segments (and, with USO, UDP datagrams) of a
// flow into superframes written with one writev. All datapath system
// calls are non-blocking and raw (see tap.rawRead for why).
//
// Received frames are only ever written to the TAP, never sent back to the
// overlay (split horizon), so the overlay cannot loop. Every frame that is
// not forwarded is counted under a drop reason; nothing is logged per packet.
// Every received datagram ends in exactly one counter (see
// SwitchCounters): a switch-level drop, a delivered frame (RXFrames, one per
// datagram), or a network's receive drop (Counters.RXDrops); the kernel's
// own drops for the socket are read as it reports them (RXOverflow).
//
// Per remote VTEP, a network also counts what it sent to and received
// from it (Network.PeerStats; peers.go says how the loops find a VTEP's
// counters without a map lookup per frame). Network.StartTrace copies
// every frame the network forwards, both ways, to a reader through a
// bounded set of records, dropping (and counting) rather than waiting
// when the reader is behind; without a trace a frame costs one atomic
// load.
//
// A TAP that fails (deleted from outside, say) stops its network's TX loop,
// which reports it (NetworkConfig.OnTAPFailure); Network.ReplaceTAP gives
// the running network a new one, keeping its MAC table and counters.
//
// # Concurrency
//
// Switch methods may be called concurrently, and so may Network's
// (SetNeighbors, Inject, ReplaceTAP, FIB, Stats). The VNI→network map is an immutable
// map behind an atomic pointer, replaced under Switch.mu when a network is
// added or removed, so the RX loop reads it without a lock; a network's
// filter chain and neighbour table likewise. Each loop owns its buffers
// for its whole life. Counters are atomics, written by the loop that owns
// them and read by Stats at any time.
//
// Locks, none of them taken per frame: a network's ctlMu serialises its
// control changes (the filter chain, ReplaceTAP, which also takes txMu and
// tapMu to swap the TAP's fields); its txMu is held while a
// batch is read from its TAP and sent (by its TX loop, or by the RX loop
// draining the TAP); its tapMu while the RX loop writes a batch's frames
// to its TAP, and while Inject writes one. Order: ctlMu, then txMu, then
// tapMu (the TX path may inject while it holds txMu); the RX loop releases
// every tapMu before it drains a TAP under txMu.
package vswitch
