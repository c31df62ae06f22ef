package vswitch

import "github.com/vxswitch/vxswitch/encap"

// gatewayFilter drops frames to or from the network's gateway address, in
// both directions: ARP asking for it or sent from it, or IPv4 from or to
// it (the bridge's own IGMP reports, say). Every host's bridge owns that
// address, so such frames stay on the host, where the local bridge
// answers them; crossing the overlay they would teach hosts each other's
// gateway MAC. Superframes pass it too: their IPv4 header is looked at
// like any other.
type gatewayFilter struct{ gw [4]byte }

func (g *gatewayFilter) filter(_ direction, frame []byte) verdict {
	if isGatewayFrame(g.gw, frame) {
		return dropFor(DropGateway)
	}
	return pass
}

// isGatewayFrame reports whether frame is to or from gw (see
// gatewayFilter).
func isGatewayFrame(gw [4]byte, frame []byte) bool {
	switch encap.Ethernet(frame).EtherType() {
	case encap.EtherTypeARP:
		arp := encap.ARP(frame[encap.EthernetHeaderLen:])
		if !arp.Valid() {
			return false
		}
		return arp.SenderIP() == gw || (arp.Op() == encap.ARPRequest && arp.TargetIP() == gw)
	case encap.EtherTypeIPv4:
		if len(frame) < encap.EthernetHeaderLen+encap.IPv4MinHeaderLen {
			return false
		}
		ip := encap.IPv4(frame[encap.EthernetHeaderLen:])
		return [4]byte(ip.Src()) == gw || [4]byte(ip.Dst()) == gw
	}
	return false
}
