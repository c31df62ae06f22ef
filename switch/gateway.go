package vswitch

import "github.com/vxswitch/vxswitch/encap"

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
		if len(frame) < encap.EthernetHeaderLen+encap.IPv4MinHeaderLen {
			return false
		}
		ip := encap.IPv4(frame[encap.EthernetHeaderLen:])
		return [4]byte(ip.Src()) == n.gw || [4]byte(ip.Dst()) == n.gw
	}
	return false
}
