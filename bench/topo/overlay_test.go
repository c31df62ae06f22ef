package topo_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// eventually polls cond until it holds, failing after a generous
// deadline (a guard against a hang, not a measurement).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func ping(t *testing.T, from *topo.Container, ip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := from.Run(ctx, "ping", "-c", "2", "-i", "0.2", "-W", "5", ip); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", ip, from.Name, err, out)
	}
}

func TestEUI64(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0, 0, 0x02}
	p, err := topo.EUI64("fd00:1::/64", mac)
	if err != nil || p.String() != "fd00:1::42:aff:fe00:2/64" {
		t.Errorf("EUI64(fd00:1::/64, %s) = %s, %v; want fd00:1::42:aff:fe00:2/64 as vxswitch makes it", mac, p, err)
	}
	for _, bad := range []string{"10.0.0.0/24", "fd00:1::/80", "fd00:1::", "::ffff:10.0.0.0/120"} {
		if _, err := topo.EUI64(bad, mac); err == nil {
			t.Errorf("EUI64(%q) succeeded", bad)
		}
	}
}

// NetConfig.Subnet6 makes a dual-stack network on both kinds: a vxswitch
// network and a kernel one give their endpoints the same IPv6 addresses
// (prefix and EUI-64), which reach each other across the overlay.
func TestDualStackNetConfig(t *testing.T) {
	tp := topo.New(t) // IPv6 off in namespaces, but on for dual-stack endpoints
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	cfg := topo.NetConfig{VNI: 300, Subnet: "10.0.0.0/24", Subnet6: "fd00:1::/64"}
	n1 := h1.MustVXSwitch().MustNetwork(cfg)
	k2 := h2.MustKernelVXLAN(cfg)
	tp.MustMesh(n1, k2)
	c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
	mac1 := tp.MustAttach(n1, c1, "10.0.0.2/24")
	mac2 := tp.MustAttach(k2, c2, "10.0.0.3/24")

	n, err := n1.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	want1, _ := topo.EUI64(cfg.Subnet6, mac1)
	if n.Subnet6 != cfg.Subnet6 || len(n.Endpoints) != 1 || n.Endpoints[0].IP6 != want1.String() {
		t.Fatalf("vxswitch network: subnet6 %q, endpoints %+v; want %s for c1", n.Subnet6, n.Endpoints, want1)
	}
	want2, _ := topo.EUI64(cfg.Subnet6, mac2)
	if out, err := c2.Run(context.Background(), "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"); err != nil || !strings.Contains(out, " "+want2.String()+" ") {
		t.Fatalf("kernel network's c2 has not %s: %v\n%s", want2, err, out)
	}
	ping(t, c1, want2.Addr().String())
	ping(t, c2, want1.Addr().String())
	ping(t, c1, "10.0.0.3")
}

// A store network through topo: made once with a VNI and gateway the
// cluster picks, opened on another host (no namespace there until an
// endpoint attaches), endpoints with names and aliases and addresses
// from the store, resolved by name from the other host, a detach that
// every host sees; and no resolv.conf left in /etc/netns by Close.
func TestStoreNetwork(t *testing.T) {
	topo.RequireEtcd(t)
	tp := topo.New(t)
	etcd := tp.MustEtcd(topo.EtcdOptions{})
	var ds []*topo.Daemon
	for _, name := range []string{"h1", "h2"} {
		ds = append(ds, tp.MustHost(name).MustVXSwitch(topo.DaemonOptions{Store: etcd}))
	}
	n1, err := ds[0].Network(topo.NetConfig{Name: "app", Subnet: "10.1.0.0/24", Subnet6: "fd00:7::/64"})
	if err != nil {
		t.Fatal(err)
	}
	if c := n1.Config(); c.VNI != 256 || c.Gateway != "10.1.0.1" || c.Subnet6 != "fd00:7::/64" {
		t.Errorf("Config after create: %+v; want VNI 256 and gateway 10.1.0.1 from the cluster", c)
	}
	_, err = ds[1].OpenNetwork("nope")
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("OpenNetwork of a network nobody made: %v, want a 404 *api.StatusError", err)
	}
	n2 := ds[1].MustOpenNetwork("app")
	if c := n2.Config(); c != n1.Config() {
		t.Errorf("h2 opened %+v, h1 made %+v", c, n1.Config())
	}
	if ns := n2.Netns(); ns != "" {
		t.Errorf("h2 has a namespace %s for a network without endpoints there", ns)
	}

	c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
	ep1, err := n1.AttachEndpoint(c1, api.Attach{Name: "db", Aliases: []string{"primary"}})
	if err != nil {
		t.Fatal(err)
	}
	ep2, err := n2.AttachEndpoint(c2, api.Attach{})
	if err != nil {
		t.Fatal(err)
	}
	if ep1.IP != "10.1.0.2/24" || ep1.IP6 != "fd00:7::42:aff:fe01:2/64" || ep2.IP != "10.1.0.3/24" || ep2.Name != c2.Name {
		t.Errorf("endpoints %+v and %+v: want 10.1.0.2 and .3 from the store, c2 named after its namespace", ep1, ep2)
	}
	if ns := n2.Netns(); ns == "" {
		t.Error("h2 has no namespace for the network after an endpoint attached")
	} else if _, err := os.Stat(ns); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eventually(t, "c2 resolves primary.app to c1", func() bool {
		out, err := c2.RunNetnsExec(ctx, "getent", "hosts", "primary.app")
		return err == nil && (strings.HasPrefix(out, "fd00:7::42:aff:fe01:2 ") || strings.HasPrefix(out, "10.1.0.2 "))
	})
	if out, err := c2.RunNetnsExec(ctx, "ping", "-c1", "-W5", "db"); err != nil {
		t.Fatalf("ping db from c2: %v\n%s", err, out)
	}

	if err := n1.Detach(c1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "h2 sees c1 gone", func() bool {
		n, err := n2.Inspect()
		return err == nil && len(n.Endpoints) == 1 && n.Endpoints[0].IP == "10.1.0.3/24"
	})
	resolv := filepath.Join(topo.EtcNetns, c2.Name, "resolv.conf")
	if _, err := os.Stat(resolv); err != nil {
		t.Fatalf("attach wrote no %s: %v", resolv, err)
	}
	if err := tp.Close(); err != nil { // also run by the test's cleanup, which then does nothing
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(resolv)); !os.IsNotExist(err) {
		t.Errorf("Close left %s behind: %v", filepath.Dir(resolv), err)
	}
}
