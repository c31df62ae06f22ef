// Package topo builds throwaway network topologies out of Linux network
// namespaces for tests and benchmarks: hosts joined by a veth underlay,
// containers, and VXLAN overlays between them — either vxswitch daemons or
// the Linux kernel's own vxlan device laid out as Docker's overlay driver
// lays it out (a namespace per network with br0 and a vxlan port created
// in the host namespace and moved in).
//
//	func TestOverlay(t *testing.T) {
//		tp := topo.New(t) // skips unless root (fails under CI=true)
//		h1, h2 := tp.MustHost("h1"), tp.MustHost("h2") // 198.18.0.1 and .2 on one LAN
//		n1 := h1.MustVXSwitch().MustNetwork(topo.NetConfig{VNI: 256, Subnet: "10.0.0.0/24"})
//		n2 := h2.MustKernelVXLAN(topo.NetConfig{VNI: 256, Subnet: "10.0.0.0/24"}) // or vxswitch
//		tp.MustMesh(n1, n2) // each host the other's peer
//		c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
//		tp.MustAttach(n1, c1, "10.0.0.2/24")
//		tp.MustAttach(n2, c2, "10.0.0.3/24")
//		if out, err := c1.Run(ctx, "ping", "-c1", "10.0.0.3"); err != nil {
//			t.Fatal(out)
//		}
//	}
//
// Example shows the same without a testing.T.
//
// Options.Underlay (LAN or Direct) and Options.VTEPs (IPv4VTEPs,
// IPv6VTEPs, LinkLocalVTEPs) have types of their own, so one given for
// the other does not compile. NetConfig.Subnet6 makes a network
// dual-stack, on vxswitch and kernel networks alike. A Daemon's Client
// is the control API's (package github.com/vxswitch/vxswitch/cmd/vxswitch/api,
// whose request types it takes), and VXNet.AttachEndpoint takes a whole
// api.Attach: names, aliases, addresses. BuildBinary builds the vxswitch
// command from another module as well as from this one.
//
// Everything a Topo makes is named with its unique prefix (vxt<pid>-<hex>),
// lives only in namespaces it created (nothing is configured in the root
// namespace; attach may write EtcNetns/NAME/resolv.conf for a container
// NAME) and is removed by Close, which New registers with t.Cleanup,
// so it also runs when a test fails. Processes are started with a parent
// death signal, so they die with the test binary even when it is killed by
// -timeout; namespaces left behind by such a binary are removed by the next
// New or Open (their prefix names a process that no longer exists).
// Underlay addresses come from 198.18.0.0/15 (RFC 2544 benchmarking space),
// or with Options.VTEPs from 2001:2::/48 (RFC 5180) or fe80::/64.
//
// Etcd starts an etcd cluster for tests of the cluster store: each member
// is a host of its own on the LAN, at 198.18.0.100, .101, ... (outside
// AddHost's sequence, so h1, h2, ... keep .1, .2, ... in any order),
// serving clients on :2379 and peers on :2380, with its data under
// RunBase. StoreURL gives the daemon's --store value; with
// EtcdOptions.TLS clients and peers use certificates the Topo makes (a
// client certificate is required: CACert, ClientCert, ClientKey). Members
// stop, crash (Kill) and come back with their data. Debian's etcd-server
// (3.4) is the default binary; BuildEtcd builds a current release for
// EtcdOptions.Binary.
//
//	e := tp.MustEtcd(topo.EtcdOptions{Members: 3})
//	d1 := h1.MustVXSwitch(topo.DaemonOptions{Store: e}) // and d2 on h2
//	n1 := d1.MustNetwork(topo.NetConfig{Name: "web-net", Subnet: "10.0.0.0/24"}) // once: VNI and gateway from the cluster
//	n2 := d2.MustOpenNetwork("web-net")                                         // h2 has it from the store
//	n1.AttachEndpoint(c1, api.Attach{Name: "web"})                              // no IP: the next free one
//	tp.MustAttach(n2, c2, "")
//	c2.RunNetnsExec(ctx, "ping", "-c1", "web") // names resolve through the network's DNS
//	e.Member(0).Kill()                         // the store loses a member
//
// Example_store is that story, runnable.
//
// The "Must" helpers fail the test through the testing.TB given to New; the
// plain methods return errors, for use outside tests (bench/ uses them).
package topo
