// Package vswitch is the vxswitch datapath (it lives in the directory
// switch/; `switch` is a Go keyword, so the package is named vswitch).
//
// A Switch serves many networks over one underlay (a UDP socket on port
// 4789). Each Network is a VNI with a TAP device on its bridge and a MAC
// table (package fib):
//
//	TX, one goroutine per network:
//	  TAP read (frame lands behind 8 bytes of headroom)
//	    → gateway filter → FIB lookup of the destination MAC
//	    → VXLAN header written in place in the headroom
//	    → one datagram to the known VTEP, or a copy to every peer in the
//	      flood list for broadcast, multicast and unknown unicast
//	    → underlay send (the whole TAP read batch at once)
//
//	RX, one goroutine per switch:
//	  underlay receive (a batch of datagrams)
//	    → VXLAN header validation (flags exactly 0x08, reserved bits zero)
//	    → demultiplex by VNI → learn inner source MAC → outer source IP
//	    → TAP write of the inner frame (no copy: it is a subslice)
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
//
// # Concurrency
//
// Switch methods may be called concurrently. The VNI→network map is an
// immutable map behind an atomic pointer, replaced under Switch.mu when a
// network is added or removed, so the RX loop reads it without a lock. Each
// loop owns its buffers for its whole life. Counters are atomics, written by
// the one loop that owns them and read by Stats at any time.
package vswitch
