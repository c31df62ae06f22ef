package topo_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// TestMain skips the package when not root (these tests build network
// namespaces), except under CI=true, where everything must run.
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
