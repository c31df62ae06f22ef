package vswitch

import (
	"maps"
	"net/netip"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
)

// The neighbour proxy answers, from a table the control plane keeps, the
// ARP requests and IPv6 Neighbor Solicitations that local containers send
// for addresses on other hosts, as the kernel vxlan device does with its
// `proxy` option (Docker's overlay sets `proxy l2miss l3miss`): the
// answer is written into the TAP and the request never enters the
// overlay, so address resolution costs no flood to every peer.
//
// What it answers (frames from the TAP only; everything else passes on
// unchanged):
//
//   - An untagged ARP request (Ethernet broadcast or unicast; IPv4 over
//     Ethernet) for a target IP in the table, with an ARP reply from the
//     table's MAC: Ethernet source and ARP sender the table's MAC and the
//     target IP, Ethernet destination and ARP target the requester's
//     sender MAC and IP.
//   - An untagged IPv6 Neighbor Solicitation that passes the checks of
//     RFC 4861 §7.1.1 (encap.ParseNeighborSolicit), to a solicited-node
//     multicast or a unicast address, for a target in the table, with a
//     Neighbor Advertisement: from the target address and the table's
//     MAC to the solicitation's source address and its source link-layer
//     address (or, without that option, its Ethernet source), hop limit
//     255, Solicited and Override set, Router clear, a target link-layer
//     address option with the table's MAC, and its ICMPv6 checksum.
//
// What it leaves alone: requests for addresses not in the table (flooded
// or sent unicast as before; the kernel's proxy drops them, but here the
// owner may still be reachable through the overlay), VLAN-tagged frames,
// gratuitous ARP (sender IP = target IP), and duplicate address detection
// (an ARP probe from 0.0.0.0, an NS from ::): conflict detection stays
// between the hosts that hold the addresses, so a container that
// configures an address the table lists is not told by the switch that
// its own address is taken, and a real conflict is still found by the
// probe reaching the other owner. A request whose sender has the very MAC
// the table gives (a station asking about itself) is not answered either.
// An answer the TAP refuses is counted as tap_error and the request goes
// on into the overlay, where the owner can answer it.

// neighborTable is an immutable snapshot of a network's neighbour table.
type neighborTable struct {
	m map[netip.Addr]fib.MAC
}

// neighborProxy is the proxy's filter. reply is the scratch an answer is
// built in; only fromTAP frames are answered, which one goroutine at a
// time filters (see filter), so it needs no lock.
type neighborProxy struct {
	n     *Network
	table atomic.Pointer[neighborTable]
	reply [max(encap.ARPFrameLen, encap.NeighborAdvertFrameLen)]byte
}

// SetNeighbors replaces the network's neighbour table: the IPv4 and IPv6
// addresses whose ARP requests and Neighbor Solicitations the switch
// answers itself, with the MAC to answer. A nil or empty map clears it
// and takes the proxy out of the network's filter chain.
//
// The map is copied: the caller keeps it and may change it afterwards.
// IPv4-mapped IPv6 addresses are taken as IPv4 and zones are dropped.
// Entries that could never be answered are left out and logged: an
// invalid, unspecified, loopback or multicast address, or a multicast or
// all-zero MAC.
//
// SetNeighbors may be called at any time from any goroutine; the
// datapath sees the whole new table from some frame on, never a mix, and
// never waits for it. A reconciler may call it on every pass: a table
// equal to the one installed changes nothing and logs nothing.
func (n *Network) SetNeighbors(m map[netip.Addr]fib.MAC) {
	var t *neighborTable
	skipped, example := 0, netip.Addr{}
	if len(m) > 0 {
		t = &neighborTable{m: make(map[netip.Addr]fib.MAC, len(m))}
		for a, mac := range m {
			a = a.Unmap().WithZone("")
			if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() ||
				encap.IsMulticastMAC(mac[:]) || mac.IsZero() {
				skipped++
				example = a
				continue
			}
			t.m[a] = mac
		}
		if len(t.m) == 0 {
			t = nil
		}
	}
	n.ctlMu.Lock()
	if old := n.proxy.table.Load(); (old == nil && t == nil) || (old != nil && t != nil && maps.Equal(old.m, t.m)) {
		n.ctlMu.Unlock()
		return
	}
	n.proxy.table.Store(t)
	n.setFilters()
	n.ctlMu.Unlock()
	if skipped > 0 {
		n.log.Warn("neighbour entries the proxy cannot answer were left out; give unicast addresses and unicast MACs",
			zap.Int("count", skipped), zap.Stringer("example", example))
	}
}

// Neighbors returns a copy of the network's neighbour table (nil when it
// is empty), as SetNeighbors left it.
func (n *Network) Neighbors() map[netip.Addr]fib.MAC {
	t := n.proxy.table.Load()
	if t == nil {
		return nil
	}
	return maps.Clone(t.m)
}

func (p *neighborProxy) filter(dir direction, frame []byte) verdict {
	if dir != fromTAP {
		return pass
	}
	switch encap.Ethernet(frame).EtherType() {
	case encap.EtherTypeARP:
		return p.arp(frame)
	case encap.EtherTypeIPv6:
		return p.solicit(frame)
	}
	return pass
}

// arp answers an ARP request for an address in the table.
func (p *neighborProxy) arp(frame []byte) verdict {
	a := encap.ARP(frame[encap.EthernetHeaderLen:])
	if !a.Valid() || a.Op() != encap.ARPRequest {
		return pass
	}
	sip, tip := a.SenderIP(), a.TargetIP()
	if sip == tip || sip == [4]byte{} {
		return pass // gratuitous ARP, or a probe (RFC 5227)
	}
	t := p.table.Load()
	if t == nil {
		return pass
	}
	mac, ok := t.m[netip.AddrFrom4(tip)]
	if !ok || fib.MAC(a.SenderMAC()) == mac {
		return pass
	}
	r := p.reply[:encap.ARPFrameLen]
	encap.PutEthernet(r, a.SenderMAC(), mac[:], encap.EtherTypeARP)
	encap.PutARP(r[encap.EthernetHeaderLen:], encap.ARPReply, mac[:], tip, a.SenderMAC(), sip)
	if p.n.Inject(r) != nil {
		return pass // counted; the owner may answer through the overlay
	}
	p.n.c.arpProxied.Add(1)
	return consume
}

// solicit answers an IPv6 Neighbor Solicitation for an address in the
// table.
func (p *neighborProxy) solicit(frame []byte) verdict {
	ip, ns, err := encap.ParseNeighborSolicit(frame)
	if err != nil || encap.IsUnspecifiedIPv6(ip.Src()) {
		return pass // not a valid NS, or duplicate address detection
	}
	t := p.table.Load()
	if t == nil {
		return pass
	}
	target := ns.Target()
	mac, ok := t.m[netip.AddrFrom16([16]byte(target))]
	if !ok {
		return pass
	}
	dstMAC := encap.Ethernet(frame).Src()
	if ll, ok := ns.SourceLinkAddr(); ok {
		dstMAC = ll
	}
	if fib.MAC(dstMAC) == mac {
		return pass
	}
	const l3, l4 = encap.EthernetHeaderLen, encap.EthernetHeaderLen + encap.IPv6HeaderLen
	r := p.reply[:encap.NeighborAdvertFrameLen]
	encap.PutEthernet(r, dstMAC, mac[:], encap.EtherTypeIPv6)
	encap.PutIPv6(r[l3:], target, ip.Src(), encap.ProtocolICMPv6, encap.NDPHopLimit, encap.NeighborAdvertLen)
	encap.PutNeighborAdvert(r[l4:], encap.NDPFlagSolicited|encap.NDPFlagOverride, target, mac[:])
	na := encap.IPv6(r[l3:])
	encap.ICMPv6(r[l4:]).UpdateChecksum(na.Src(), na.Dst())
	if p.n.Inject(r) != nil {
		return pass
	}
	p.n.c.ndProxied.Add(1)
	return consume
}
