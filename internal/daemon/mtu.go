package daemon

import (
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// The underlay's MTU. The overlay MTU a new network gets by default, and
// the longest frame the switch sends (vswitch.Switch.SetMaxInnerFrame),
// follow the underlay's MTU as the kernel applies it to the VTEP's
// datagrams: the MTU of the interface that holds the VTEP address,
// lowered by the MTU of any route through that interface that sets one
// (`ip route ... mtu 1400`; the default route's included), since the
// datagrams to some peer take that route. The daemon reads it at start
// and checks it every underlayCheck, so that an MTU lowered under a
// running network reaches the datapath, which then answers frames that no
// longer fit with ICMP "fragmentation needed" or "packet too big" instead
// of losing them as send errors. Polling (two netlink requests a second)
// keeps the datapath free of system calls for it, and needs no
// subscription to tear down.

// underlayCheck is how often the daemon reads the underlay's MTU.
const underlayCheck = time.Second

// outerHeaders is what the underlay adds in front of an inner frame:
// outer IPv4 (20) or IPv6 (40), UDP (8) and VXLAN (8).
func (d *Daemon) outerHeaders() int {
	if d.cfg.VTEP.Is4() {
		return 36
	}
	return 56
}

// maxInnerFrame is the longest inner frame the underlay carries now.
// With d.mu held (or before the daemon serves).
func (d *Daemon) maxInnerFrame() int { return d.ulIf.mtu - d.outerHeaders() }

// underlayMTU returns the MTU of the underlay interface ifIndex in the
// namespace at netnsPath, lowered by the MTU of any route through it
// that sets one.
func underlayMTU(netnsPath string, ifIndex int, v4 bool) (int, error) {
	h, err := nsutil.Handle(netnsPath)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByIndex(ifIndex)
	if err != nil {
		return 0, err
	}
	mtu := l.Attrs().MTU
	family := netlink.FAMILY_V4
	if !v4 {
		family = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{LinkIndex: ifIndex, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return mtu, nil // the link's MTU still holds
	}
	for _, r := range routes {
		if r.MTU > 0 && r.MTU < mtu {
			mtu = r.MTU
		}
	}
	return mtu, nil
}

// watchUnderlay checks the underlay's MTU every underlayCheck until the
// daemon stops, and tells the switch when it changes.
func (d *Daemon) watchUnderlay() {
	t := time.NewTicker(underlayCheck)
	defer t.Stop()
	for {
		select {
		case <-d.stopping:
			return
		case <-t.C:
		}
		mtu, err := underlayMTU(d.cfg.Netns, d.ulIf.index, d.cfg.VTEP.Is4())
		if err != nil {
			continue // the link may be gone for a moment; the datapath keeps the last MTU
		}
		d.mu.Lock()
		old := d.ulIf.mtu
		if mtu != old {
			d.ulIf.mtu = mtu
			d.sw.SetMaxInnerFrame(d.maxInnerFrame())
		}
		d.mu.Unlock()
		if mtu != old {
			d.log.Warn("the underlay's MTU changed; frames that no longer fit are answered with ICMP \"too big\"",
				zap.String("link", d.ulIf.name), zap.Int("from", old), zap.Int("to", mtu), zap.Int("max_inner_frame", mtu-d.outerHeaders()))
		}
	}
}
