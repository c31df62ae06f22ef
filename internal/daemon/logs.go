package daemon

import (
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/internal/store"
)

// maxChangeLines bounds the lines one change of the cluster store's view
// logs per network (a host with hundreds of endpoints joining, say): the
// rest are counted in one more line. What the store says changes only
// when a host or an endpoint comes or goes, never per packet, so logs
// stay bounded whatever the underlay carries.
const maxChangeLines = 16

// logStoreEntries logs, one line each, the MAC entries from the cluster
// store that a sync of network n installs (a remote endpoint appeared or
// moved to another host) or withdraws (it went), as `network create` and
// `peer add` are logged, and with them how many of the store's entries
// static ones shadow; d.mu is held.
func (d *Daemon) logStoreEntries(log *zap.Logger, n *network, entries map[fib.MAC]netip.Addr, shadowed int) {
	type change struct {
		mac        fib.MAC
		vtep, from netip.Addr
	}
	var added, moved, removed []change
	for mac, vtep := range entries {
		old, ok := n.storeMACs[mac]
		switch {
		case !ok:
			added = append(added, change{mac: mac, vtep: vtep})
		case old != vtep:
			moved = append(moved, change{mac: mac, vtep: vtep, from: old})
		}
	}
	for mac, vtep := range n.storeMACs {
		if _, ok := entries[mac]; !ok {
			removed = append(removed, change{mac: mac, vtep: vtep})
		}
	}
	n.storeMACs = entries
	lines := 0
	for _, l := range []struct {
		msg string
		cs  []change
	}{
		{"MAC entry from the cluster store added", added},
		{"MAC entry from the cluster store moved to another host", moved},
		{"MAC entry from the cluster store withdrawn", removed},
	} {
		slices.SortFunc(l.cs, func(a, b change) int { return slices.Compare(a.mac[:], b.mac[:]) })
		for _, c := range l.cs {
			if lines == maxChangeLines {
				break
			}
			lines++
			fields := []zap.Field{zap.Stringer("mac", c.mac), zap.Stringer("vtep", c.vtep)}
			if c.from.IsValid() {
				fields = append(fields, zap.Stringer("from", c.from))
			}
			log.Info(l.msg, fields...)
		}
	}
	if lines > 0 && shadowed > 0 {
		log.Info("MAC entries from the cluster store shadowed by static ones", zap.Int("shadowed", shadowed))
	}
	if more := len(added) + len(moved) + len(removed) - lines; more > 0 {
		log.Info("more MAC entries from the cluster store changed", zap.Int("added", len(added)), zap.Int("moved", len(moved)),
			zap.Int("withdrawn", len(removed)), zap.Int("not_logged", more), zap.Int("entries", len(entries)))
	}
}

// logHosts logs the hosts that joined the cluster (registered, or came
// back) and those that left it (stopped, or their lease expired) between
// two views of the store, one line each.
func (c *cluster) logHosts(old, v *store.View) {
	var was map[netip.Addr]store.Live
	if old != nil {
		was = old.Live
	}
	joined, left, lines := 0, 0, 0
	for vtep, l := range v.Live {
		if _, ok := was[vtep]; !ok && vtep != c.advertise {
			if joined++; lines < maxChangeLines {
				lines++
				c.log.Info("host joined the cluster", zap.Stringer("vtep", vtep), zap.String("hostname", l.Hostname), zap.String("version", l.Version))
			}
		}
	}
	for vtep, l := range was {
		if _, ok := v.Live[vtep]; !ok && vtep != c.advertise {
			if left++; lines < maxChangeLines {
				lines++
				c.log.Info("host left the cluster (stopped, or its lease expired)", zap.Stringer("vtep", vtep), zap.String("hostname", l.Hostname))
			}
		}
	}
	if joined+left > lines {
		c.log.Info("more hosts joined or left the cluster than logged one by one", zap.Int("joined", joined), zap.Int("left", left),
			zap.Int("not_logged", joined+left-lines))
	}
}
