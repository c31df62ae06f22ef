package topo

import "net"

// The Must helpers call the method of the same name without "Must" and
// fail the test given to New on error. They panic on a Topo made by Open.

func (t *Topo) fatal(err error, what string) {
	if err == nil {
		return
	}
	if t.tb == nil {
		panic("topo: " + what + ": " + err.Error())
	}
	t.tb.Helper()
	t.tb.Fatalf("topo: %s: %v", what, err)
}

// MustHost is AddHost for tests.
func (t *Topo) MustHost(name string) *Host {
	h, err := t.AddHost(name)
	t.fatal(err, "add host "+name)
	return h
}

// MustContainer is AddContainer for tests.
func (t *Topo) MustContainer(name string) *Container {
	c, err := t.AddContainer(name)
	t.fatal(err, "add container "+name)
	return c
}

// MustVXSwitch is VXSwitch for tests.
func (h *Host) MustVXSwitch(opts ...DaemonOptions) *Daemon {
	var o DaemonOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	d, err := h.VXSwitch(o)
	h.topo.fatal(err, "start vxswitch on "+h.Name)
	return d
}

// MustKernelVXLAN is KernelVXLAN for tests.
func (h *Host) MustKernelVXLAN(cfg NetConfig) *KernelNet {
	k, err := h.KernelVXLAN(cfg)
	h.topo.fatal(err, "kernel vxlan on "+h.Name)
	return k
}

// MustNetwork is Network for tests.
func (d *Daemon) MustNetwork(cfg NetConfig) *VXNet {
	n, err := d.Network(cfg)
	d.Host.topo.fatal(err, "create network on "+d.Host.Name)
	return n
}

// MustOpenNetwork is OpenNetwork for tests.
func (d *Daemon) MustOpenNetwork(name string) *VXNet {
	n, err := d.OpenNetwork(name)
	d.Host.topo.fatal(err, "open network "+name+" on "+d.Host.Name)
	return n
}

// MustMesh is Mesh for tests.
func (t *Topo) MustMesh(nets ...Network) {
	t.fatal(Mesh(nets...), "mesh")
}

// MustAttach attaches c to n for tests and returns the endpoint's MAC.
func (t *Topo) MustAttach(n Network, c *Container, ip string) net.HardwareAddr {
	mac, err := n.Attach(c, ip)
	t.fatal(err, "attach "+c.Name)
	return mac
}
