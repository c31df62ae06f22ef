package main_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// TestEgress: a container on an --egress network reaches an address on
// its host's underlay that is not on the overlay, masqueraded behind the
// host; one on an --internal network cannot; the egress bridge keeps
// containers apart; detach takes the way out along.
func TestEgress(t *testing.T) { offloadModes(t, testEgress) }

func testEgress(t *testing.T, args []string) {
	tp := topo.New(t)
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	d := h1.MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t), Args: args})
	// A server on the underlay, outside every overlay: h2's own address.
	ln, err := h2.Listen("tcp", "198.18.0.2:8080")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 10)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		seen <- host
		fmt.Fprint(w, "outside\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cli(t, d, "network", "create", "eg", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--egress")
	cli(t, d, "network", "create", "in", "--subnet", "10.1.0.0/24", "--gateway", "10.1.0.1", "--internal")
	c1, c2, c3 := tp.MustContainer("c1"), tp.MustContainer("c2"), tp.MustContainer("c3")
	cli(t, d, "network", "attach", "eg", "--netns", c1.Name)
	cli(t, d, "network", "attach", "in", "--netns", c2.Name)
	cli(t, d, "network", "attach", "eg", "--netns", c3.Name)

	routes, _ := c1.Run(testCtx(t), "ip", "route")
	if !strings.Contains(routes, "default via 172.31.0.1 dev eth1") || !strings.Contains(routes, "10.0.0.0/24 dev eth0") {
		t.Errorf("c1's routes:\n%s", routes)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	if out, err := c1.Run(ctx, "curl", "-sS", "--max-time", "20", "http://198.18.0.2:8080/"); err != nil || out != "outside\n" {
		t.Fatalf("curl from the egress network: %v %q", err, out)
	}
	if src := <-seen; src != "198.18.0.1" {
		t.Errorf("the server saw %s, want the host's address 198.18.0.1 (masqueraded)", src)
	}
	if routes, _ := c2.Run(testCtx(t), "ip", "route"); strings.Contains(routes, "default") {
		t.Errorf("an internal network's container has a default route:\n%s", routes)
	}
	if out, err := c2.Run(ctx, "curl", "-sS", "--max-time", "5", "http://198.18.0.2:8080/"); err == nil {
		t.Errorf("curl from the internal network reached the outside: %q", out)
	}
	// The egress bridge's ports are isolated: c3 reaches c1 over the
	// overlay, never through the bridge.
	ping(t, c3, "10.0.0.2")
	if out, err := c3.Run(testCtx(t), "ping", "-c", "2", "-i", "0.2", "-W", "1", "172.31.0.2"); err == nil {
		t.Errorf("c3 reached c1's egress address through the bridge:\n%s", out)
	}
	cli(t, d, "network", "detach", "eg", "--netns", c1.Name)
	if out, _ := c1.Run(testCtx(t), "ip", "-o", "link"); strings.Contains(out, "eth1") {
		t.Errorf("eth1 is left after detach:\n%s", out)
	}
	if out, _ := h1.Run(testCtx(t), "ip", "-o", "link", "show", "master", "vxgw0"); strings.Count(out, "master vxgw0") != 1 {
		t.Errorf("the egress bridge's ports after one of two endpoints left:\n%s", out)
	}
}
