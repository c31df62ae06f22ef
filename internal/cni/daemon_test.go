package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// local is a host with a vxswitch daemon (in process) and a network
// "web" without a store, gateway 10.0.0.1.
type local struct {
	tp *topo.Topo
	d  *topo.Daemon
}

func newLocal(t *testing.T) *local {
	t.Helper()
	tp := topo.New(t)
	d := tp.MustHost("h1").MustVXSwitch()
	d.MustNetwork(topo.NetConfig{Name: "web", VNI: 256, Subnet: "10.0.0.0/24", Gateway: "10.0.0.1"})
	return &local{tp: tp, d: d}
}

// conf is a network configuration for network, with prev as prevResult
// if not nil.
func (l *local) conf(t *testing.T, cniVersion, network string, prev *current.Result) []byte {
	t.Helper()
	c := map[string]any{"cniVersion": cniVersion, "name": "cninet", "type": Type, "network": network, "socket": l.d.Socket()}
	if prev != nil {
		c["prevResult"] = prev
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *local) endpoints(t *testing.T) []api.Endpoint {
	t.Helper()
	n, err := l.d.Client.Network(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	return n.Endpoints
}

// TestPlugin: ADD, CHECK and DEL against a real daemon, in real
// namespaces: the result describes what was made, two containers added
// by the plugin talk, CHECK notices what was broken, DEL is idempotent.
func TestPlugin(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	c1, c2 := l.tp.MustContainer("c1"), l.tp.MustContainer("c2")
	a1 := &skel.CmdArgs{ContainerID: "ctr-one", Netns: c1.Path, IfName: "eth0", StdinData: l.conf(t, "1.1.0", "web", nil)}
	res, err := Add(ctx, a1)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"cniVersion":"1.1.0","interfaces":[{"mac":"02:42:0a:00:00:02","mtu":1450,"name":"eth0","sandbox":%q}],`+
		`"ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]}`, c1.Path)
	if got, _ := json.Marshal(res); string(got) != want {
		t.Errorf("ADD result\n%s\nwant\n%s", got, want)
	}
	eps := l.endpoints(t)
	if len(eps) != 1 || eps[0].ID != EndpointID("cninet", "ctr-one", "eth0") || eps[0].Name != "ctr-one" || eps[0].IP != "10.0.0.2/24" {
		t.Errorf("the daemon's endpoints after ADD: %+v", eps)
	}
	// An older spec version gets the result in its own format.
	a2 := &skel.CmdArgs{ContainerID: "ctr-two", Netns: c2.Path, IfName: "eth0", Args: "IgnoreUnknown=1;K8S_POD_NAME=two", StdinData: l.conf(t, "0.4.0", "web", nil)}
	res2, err := Add(ctx, a2)
	if err != nil {
		t.Fatal(err)
	}
	var printed strings.Builder
	r040, err := res2.GetAsVersion("0.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r040.PrintTo(&printed); err != nil {
		t.Fatal(err)
	}
	if s := printed.String(); !strings.Contains(s, `"cniVersion": "0.4.0"`) || !strings.Contains(s, `"address": "10.0.0.3/24"`) || strings.Contains(s, "mtu") {
		t.Errorf("0.4.0 result:\n%s", s)
	}
	if out, err := c2.Run(ctx, "ping", "-c", "2", "-i", "0.2", "-W", "5", "10.0.0.2"); err != nil {
		t.Errorf("ping between two containers added by the plugin: %v\n%s", err, out)
	}
	if eps := l.endpoints(t); len(eps) != 2 || eps[1].Name != "two" {
		t.Errorf("K8S_POD_NAME did not name the endpoint: %+v", eps)
	}

	// CHECK passes on what ADD made, with the result as prevResult.
	check := &skel.CmdArgs{ContainerID: "ctr-one", Netns: c1.Path, IfName: "eth0", StdinData: l.conf(t, "1.1.0", "web", res)}
	if err := Check(ctx, check); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	// ...and fails on a result that does not match, naming the difference.
	other := *res
	other.IPs = []*current.IPConfig{{Interface: current.Int(0), Address: *mustCIDR(t, "10.0.0.7/24")}}
	wrong := *check
	wrong.StdinData = l.conf(t, "1.1.0", "web", &other)
	if err := Check(ctx, &wrong); err == nil || !strings.Contains(err.Error(), "[10.0.0.7/24]") {
		t.Errorf("CHECK with a wrong prevResult: %v", err)
	}
	wrongNS := *check
	wrongNS.Netns = c2.Path
	if err := Check(ctx, &wrongNS); err == nil || !strings.Contains(err.Error(), "not in "+c2.Path) {
		t.Errorf("CHECK with another namespace: %v", err)
	}
	// Something broken in the namespace: the interface down, the
	// default route gone.
	h, err := c1.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, check); err == nil || !strings.Contains(err.Error(), "is down") {
		t.Errorf("CHECK with the interface down: %v", err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, check); err == nil || !strings.Contains(err.Error(), "no route 0.0.0.0/0 via 10.0.0.1") {
		t.Errorf("CHECK with the default route gone (setting a link down removes it): %v", err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: []byte{10, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, check); err != nil {
		t.Errorf("CHECK after repair: %v", err)
	}

	// ADD again for the same attachment is refused, naming why.
	if _, err := Add(ctx, a1); errCode(err) != ErrRefused || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("second ADD: %v", err)
	}

	// DEL, twice, and for a container never added.
	del := &skel.CmdArgs{ContainerID: "ctr-one", IfName: "eth0", StdinData: l.conf(t, "1.1.0", "web", nil)}
	for i := range 2 {
		if err := Del(ctx, del); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if err := Del(ctx, &skel.CmdArgs{ContainerID: "never", IfName: "eth0", StdinData: l.conf(t, "1.1.0", "web", nil)}); err != nil {
		t.Errorf("DEL of a container never added: %v", err)
	}
	if eps := l.endpoints(t); len(eps) != 1 || eps[0].Name != "two" {
		t.Errorf("endpoints after DEL: %+v", eps)
	}
	if _, err := h.LinkByName("eth0"); err == nil {
		t.Errorf("eth0 is still in the container after DEL")
	}
	if err := Check(ctx, check); errCode(err) != types.ErrUnknownContainer {
		t.Errorf("CHECK after DEL: %v", err)
	}
	// The address is free again.
	a3 := &skel.CmdArgs{ContainerID: "ctr-three", Netns: c1.Path, IfName: "eth0", StdinData: l.conf(t, "1.0.0", "web", nil)}
	res3, err := Add(ctx, a3)
	if err != nil {
		t.Fatal(err)
	}
	if res3.IPs[0].Address.String() != "10.0.0.2/24" {
		t.Errorf("ADD after DEL got %s, want the released 10.0.0.2/24", res3.IPs[0].Address.String())
	}
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	n, err := types.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPluginChained: behind another plugin, ADD appends its interface to
// the previous result and its IPs point at that interface.
func TestPluginChained(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	c1 := l.tp.MustContainer("c1")
	prev := &current.Result{CNIVersion: "1.0.0", Interfaces: []*current.Interface{{Name: "lo0", Sandbox: c1.Path}},
		IPs: []*current.IPConfig{{Interface: current.Int(0), Address: *mustCIDR(t, "192.0.2.1/32")}}}
	res, err := Add(ctx, &skel.CmdArgs{ContainerID: "c", Netns: c1.Path, IfName: "net1", StdinData: l.conf(t, "1.0.0", "web", prev)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 2 || res.Interfaces[1].Name != "net1" || len(res.IPs) != 2 || *res.IPs[1].Interface != 1 ||
		res.IPs[0].Address.String() != "192.0.2.1/32" {
		t.Errorf("chained result: %+v", res)
	}
	if err := Check(ctx, &skel.CmdArgs{ContainerID: "c", Netns: c1.Path, IfName: "net1", StdinData: l.conf(t, "1.0.0", "web", res)}); err != nil {
		t.Errorf("CHECK of a chained result: %v", err)
	}
}

// TestPluginGC: GC detaches this configuration's endpoints that the
// runtime no longer lists, and nothing else.
func TestPluginGC(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	var ctrs []*topo.Container
	for i := range 3 {
		c := l.tp.MustContainer(fmt.Sprintf("c%d", i))
		ctrs = append(ctrs, c)
		if i == 2 { // attached by hand, as with the CLI
			if _, err := l.d.Client.Attach(ctx, "web", api.Attach{Netns: c.Path}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := Add(ctx, &skel.CmdArgs{ContainerID: c.Name, Netns: c.Path, IfName: "eth0", StdinData: l.conf(t, "1.1.0", "web", nil)}); err != nil {
			t.Fatal(err)
		}
	}
	gc := map[string]any{"cniVersion": "1.1.0", "name": "cninet", "type": Type, "network": "web", "socket": l.d.Socket(),
		"cni.dev/valid-attachments": []types.GCAttachment{{ContainerID: ctrs[0].Name, IfName: "eth0"}}}
	b, _ := json.Marshal(gc)
	if err := GC(ctx, &skel.CmdArgs{StdinData: b}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range l.endpoints(t) {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	if want := []string{ctrs[0].Name, ctrs[2].Name}; !slices.Equal(names, want) {
		t.Errorf("after GC the network has %v, want %v", names, want)
	}
	// GC on a network that is gone has nothing to do.
	gc["network"] = "gone"
	b, _ = json.Marshal(gc)
	if err := GC(ctx, &skel.CmdArgs{StdinData: b}); err != nil {
		t.Errorf("GC of a missing network: %v", err)
	}
}

// TestPluginStatus: STATUS against a real daemon, before and after it
// stops.
func TestPluginStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := newLocal(t)
	args := &skel.CmdArgs{StdinData: l.conf(t, "1.1.0", "web", nil)}
	if err := Status(ctx, args); err != nil {
		t.Fatal(err)
	}
	if err := Status(ctx, &skel.CmdArgs{StdinData: l.conf(t, "1.1.0", "nonet", nil)}); errCode(err) != types.ErrPluginNotAvailable {
		t.Errorf("STATUS of a missing network: %v", err)
	}
	if err := l.d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := Status(ctx, args); errCode(err) != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with the daemon stopped: %v", err)
	}
}

// TestPluginEgress: on an --egress network the result lists the second
// interface the daemon made, its address, and the default route through
// the host's gateway bridge; CHECK verifies them; on an --internal
// network there is no default route.
func TestPluginEgress(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	for _, nc := range []api.NetworkCreate{
		{Name: "eg", Subnet: "10.1.0.0/24", Gateway: "10.1.0.1", Egress: true},
		{Name: "in", Subnet: "10.2.0.0/24", Gateway: "10.2.0.1", Internal: true},
	} {
		if _, err := l.d.Client.CreateNetwork(ctx, nc); err != nil {
			t.Fatal(err)
		}
	}
	c1, c2 := l.tp.MustContainer("c1"), l.tp.MustContainer("c2")
	res, err := Add(ctx, &skel.CmdArgs{ContainerID: "eg1", Netns: c1.Path, IfName: "eth0", StdinData: l.conf(t, "1.0.0", "eg", nil)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(res)
	want := fmt.Sprintf(`{"cniVersion":"1.0.0","interfaces":[{"mac":"02:42:0a:01:00:02","name":"eth0","sandbox":%[1]q},{"mac":%[2]q,"name":"eth1","sandbox":%[1]q}],`+
		`"ips":[{"address":"10.1.0.2/24","gateway":"10.1.0.1","interface":0},{"address":"172.31.0.2/16","gateway":"172.31.0.1","interface":1}],`+
		`"routes":[{"dst":"0.0.0.0/0","gw":"172.31.0.1"}]}`, c1.Path, linkMAC(t, c1, "eth1"))
	if string(got) != want {
		t.Errorf("ADD result on an egress network\n%s\nwant\n%s", got, want)
	}
	check := &skel.CmdArgs{ContainerID: "eg1", Netns: c1.Path, IfName: "eth0", StdinData: l.conf(t, "1.0.0", "eg", res)}
	if err := Check(ctx, check); err != nil {
		t.Errorf("CHECK on an egress network: %v", err)
	}
	h, err := c1.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth1, err := h.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(eth1); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, check); err == nil || !strings.Contains(err.Error(), "no route 0.0.0.0/0 via 172.31.0.1") {
		t.Errorf("CHECK with the egress interface gone: %v", err)
	}

	res, err = Add(ctx, &skel.CmdArgs{ContainerID: "in1", Netns: c2.Path, IfName: "eth0", StdinData: l.conf(t, "1.0.0", "in", nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 1 || len(res.IPs) != 1 || len(res.Routes) != 0 {
		t.Errorf("ADD result on an internal network: %+v", res)
	}
}

func linkMAC(t *testing.T, c *topo.Container, name string) string {
	t.Helper()
	h, err := c.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr.String()
}
