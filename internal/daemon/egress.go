package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/veth"
)

// Egress is the way out of a network that has none of its own, as
// Docker's docker_gwbridge is for its overlay networks (the seed's eth1):
// each host has one gateway bridge, vxgw0, in its underlay namespace, with
// the first address of the egress subnet; every endpoint of an --egress
// network gets a second interface, eth1, on it, with an address of that
// subnet and its default route through it, while the overlay subnet stays
// on eth0; traffic from the subnet that leaves the host is masqueraded
// (nftables, table inet vxswitch). The bridge's ports are isolated, so
// containers reach the host and the world through it but never each
// other. An --internal network has neither egress nor a default route.
const (
	egressBridge = "vxgw0"
	egressIfName = "eth1"
	// nftTable is vxswitch's own nftables table in the underlay
	// namespace; nothing else of the host's rules is touched.
	nftTable = "vxswitch"
)

// DefaultEgressSubnet is the gateway bridge's subnet on every host, from
// the private range Docker takes its docker_gwbridge from; give another
// (--egress-subnet) where it collides with the host's networks.
var DefaultEgressSubnet = netip.MustParsePrefix("172.31.0.0/16")

// egressGateway is the bridge's own address: the endpoints' default
// route.
func (d *Daemon) egressGateway() netip.Addr { return d.cfg.EgressSubnet.Addr().Next() }

// ensureEgress makes the gateway bridge, forwarding and masquerading in
// the underlay namespace, idempotently (it repairs them too).
func (d *Daemon) ensureEgress() error {
	h, err := nsutil.Handle(d.cfg.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := h.LinkByName(egressBridge)
	if err != nil {
		noSnooping := false
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: egressBridge}, MulticastSnooping: &noSnooping}); err != nil {
			return fmt.Errorf("create egress bridge %s: %w", egressBridge, err)
		}
		if br, err = h.LinkByName(egressBridge); err != nil {
			return err
		}
		d.log.Info("egress bridge made", zap.String("bridge", egressBridge), zap.Stringer("subnet", d.cfg.EgressSubnet))
	}
	gw := d.egressGateway()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(d.cfg.EgressSubnet.Bits(), 32)}}
	if err := h.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("set %s on %s: %w", gw, egressBridge, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("set %s up: %w", egressBridge, err)
	}
	if err := nsutil.SetSysctl(d.cfg.Netns, "net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	return d.masquerade()
}

// masquerade installs vxswitch's nftables table in the underlay
// namespace: the egress subnet masqueraded on its way out of any
// interface but the bridge, and forwarded in and out of the bridge
// (replies only, inwards). The table is replaced whole.
func (d *Daemon) masquerade() error {
	var opts []nftables.ConnOption
	if d.cfg.Netns != "" {
		fd, err := unix.Open(d.cfg.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", d.cfg.Netns, err)
		}
		defer unix.Close(fd)
		opts = append(opts, nftables.WithNetNSFd(fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable}
	c.AddTable(t) // so that the delete below never fails on a missing table
	c.DelTable(t)
	t = c.AddTable(t)
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	subnet := d.cfg.EgressSubnet
	mask := net.CIDRMask(subnet.Bits(), 32)
	bridge := ifname(egressBridge)
	// ip saddr SUBNET oifname != vxgw0 masquerade
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: subnet.Addr().AsSlice()},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: bridge},
		&expr.Masq{},
	}})
	accept := policy(nftables.ChainPolicyAccept)
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: accept})
	// Out of the bridge: accepted here. Into it: replies only, so that
	// nothing outside reaches the containers unasked.
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: bridge},
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: install table inet %s: %w", nftTable, err)
	}
	return nil
}

func policy(p nftables.ChainPolicy) *nftables.ChainPolicy { return &p }

// ifname is an interface name as nftables compares it: NUL-padded to 16.
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

// pickEgressIP returns the lowest address of the egress subnet no
// endpoint of this host holds.
func (d *Daemon) pickEgressIP() (netip.Prefix, error) {
	used := map[netip.Addr]bool{d.egressGateway(): true}
	for _, n := range d.nets {
		for _, e := range n.Endpoints {
			used[e.EgressIP.Addr()] = true
		}
	}
	s := d.cfg.EgressSubnet
	for a := d.egressGateway().Next(); s.Contains(a); a = a.Next() {
		if !used[a] && usableHost(s, a) {
			return netip.PrefixFrom(a, s.Bits()), nil
		}
	}
	return netip.Prefix{}, conflict("the egress subnet %s of this host is full; give the daemon a larger --egress-subnet", s)
}

// plumbEgress gives an endpoint of an --egress network its second
// interface on the gateway bridge.
func (d *Daemon) plumbEgress(ep *epState) error {
	if err := d.ensureEgress(); err != nil {
		return err
	}
	var err error
	if !ep.EgressIP.IsValid() {
		if ep.EgressIP, err = d.pickEgressIP(); err != nil {
			return err
		}
	}
	if ep.EgressVeth == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		ep.EgressVeth = "vxe" + hex.EncodeToString(b[:])
	}
	return veth.Attach(veth.Spec{BridgeNetns: d.cfg.Netns, Bridge: egressBridge, HostName: ep.EgressVeth, Netns: ep.Netns,
		IfName: egressIfName, IP: ep.EgressIP, Gateway: d.egressGateway(), MTU: d.ulIf.mtu, Isolated: true})
}

// unplumbEgress deletes an endpoint's egress veth.
func (d *Daemon) unplumbEgress(ep epState) error {
	if ep.EgressVeth == "" {
		return nil
	}
	return veth.Delete(d.cfg.Netns, ep.EgressVeth)
}
