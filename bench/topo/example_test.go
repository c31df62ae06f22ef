package topo_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// TestMain skips the package when not root (these tests build network
// namespaces), except under CI=true, where everything must run. The
// store example needs etcd as well (Debian: apt-get install etcd-server).
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		fmt.Println("skipping bench/topo: its tests and example need root (network namespaces)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Two hosts on one LAN, a vxswitch daemon on each, one overlay network, a
// container on each host; a line sent over TCP from one container comes
// back from the other across the overlay.
func Example() {
	tp, err := topo.Open(topo.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tp.Close()

	var nets []topo.Network
	var ctrs []*topo.Container
	for i, name := range []string{"h1", "h2"} {
		h, err := tp.AddHost(name)
		if err != nil {
			fmt.Println(err)
			return
		}
		d, err := h.VXSwitch(topo.DaemonOptions{}) // in-process daemon
		if err != nil {
			fmt.Println(err)
			return
		}
		n, err := d.Network(topo.NetConfig{VNI: 256, Subnet: "10.0.0.0/24"})
		if err != nil {
			fmt.Println(err)
			return
		}
		c, err := tp.AddContainer(fmt.Sprintf("c%d", i+1))
		if err != nil {
			fmt.Println(err)
			return
		}
		if _, err := n.Attach(c, fmt.Sprintf("10.0.0.%d/24", i+2)); err != nil {
			fmt.Println(err)
			return
		}
		nets, ctrs = append(nets, n), append(ctrs, c)
	}
	if err := topo.Mesh(nets...); err != nil {
		fmt.Println(err)
		return
	}

	// An echo server in c2, a client in c1.
	ln, err := ctrs[1].Listen("tcp", "10.0.0.3:7")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		line, _ := bufio.NewReader(conn).ReadString('\n')
		fmt.Fprint(conn, line)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := ctrs[0].Dial(ctx, "tcp", "10.0.0.3:7")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Fprintln(conn, "hello across the overlay")
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(reply)
	// Output: hello across the overlay
}

// The cluster store: an etcd member and two hosts whose daemons join it.
// The network is made once, on h1, and every host has it; containers
// attach without an address (the store hands out the next free one), and
// one reaches the other by name across the overlay: each host's daemon
// serves the endpoints' names at the gateway, and attach pointed the
// container's resolv.conf there (as `ip netns exec` shows it).
func Example_store() {
	tp, err := topo.Open(topo.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tp.Close()
	etcd, err := tp.Etcd(topo.EtcdOptions{}) // one member, at 198.18.0.100:2379
	if err != nil {
		fmt.Println(err)
		return
	}
	var ds []*topo.Daemon
	for _, name := range []string{"h1", "h2"} {
		h, err := tp.AddHost(name)
		if err != nil {
			fmt.Println(err)
			return
		}
		d, err := h.VXSwitch(topo.DaemonOptions{Store: etcd}) // --store etcd://198.18.0.100:2379
		if err != nil {
			fmt.Println(err)
			return
		}
		ds = append(ds, d)
	}

	// Once, for every host: the lowest free VNI and the subnet's first
	// address as gateway.
	n1, err := ds[0].Network(topo.NetConfig{Name: "web-net", Subnet: "10.0.0.0/24"})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := n1.Config()
	fmt.Printf("%s: vni %d, gateway %s\n", cfg.Name, cfg.VNI, cfg.Gateway)
	n2, err := ds[1].OpenNetwork("web-net") // h2 has it from the store
	if err != nil {
		fmt.Println(err)
		return
	}

	web, err := tp.AddContainer("web")
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := tp.AddContainer("client")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range []struct {
		n    *topo.VXNet
		c    *topo.Container
		name string
	}{{n1, web, "web"}, {n2, client, "client"}} {
		ep, err := a.n.AttachEndpoint(a.c, api.Attach{Name: a.name}) // no IP: the store's next free one
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s on %s: %s %s\n", ep.Name, a.n.Host().Name[len(tp.Prefix())+1:], ep.IP, ep.MAC)
	}

	// h2 hears of web from the store within moments: until then the name
	// is unknown there, so try for a while.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := client.RunNetnsExec(ctx, "ping", "-c1", "-W2", "web")
		if err == nil {
			fmt.Println("client: ping web: ok")
			break
		}
		if ctx.Err() != nil {
			fmt.Println(err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Output:
	// web-net: vni 256, gateway 10.0.0.1
	// web on h1: 10.0.0.2/24 02:42:0a:00:00:02
	// client on h2: 10.0.0.3/24 02:42:0a:00:00:03
	// client: ping web: ok
}
