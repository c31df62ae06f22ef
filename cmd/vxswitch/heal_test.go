package main_test

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// nsExec runs a command in the namespace at path (a network's, which
// is not a topo namespace) and returns its output.
func nsExec(t *testing.T, path string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(testCtx(t), "nsenter", append([]string{"--net=" + path}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// adminUp matches the UP flag in `ip link` output (a TAP's operational
// state is UNKNOWN).
var adminUp = regexp.MustCompile(`[<,]UP[,>]`)

// pingOnce reports whether one ping from c to ip is answered.
func pingOnce(ctx context.Context, c *topo.Container, ip string) bool {
	_, err := c.Run(ctx, "ping", "-c", "1", "-W", "1", ip)
	return err == nil
}

// A TAP deleted from outside (`ip link del` in the network's namespace)
// is noticed, made again and put back on br0, and traffic resumes: a TCP
// transfer that was halfway completes with the same SHA-256, and the
// network keeps its learned entries.
func TestTAPDeletedFromOutside(t *testing.T) { offloadModes(t, testTAPDeleted) }

func testTAPDeleted(t *testing.T, args []string) {
	c := newCluster(t, 2, args...)
	ping(t, c.ctrs[0], "10.0.0.3")
	netns := c.nets[0].Netns()
	halfway, resume := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(resume)
		<-halfway
		if out, err := nsExec(t, netns, "ip", "link", "del", "vxlan256"); err != nil {
			t.Errorf("ip link del: %v: %s", err, out)
			return
		}
		// Not eventually: this is not the test's goroutine.
		ctx := testCtx(t)
		for {
			out, err := nsExec(t, netns, "ip", "-o", "link", "show", "vxlan256")
			if err == nil && strings.Contains(out, "master br0") && adminUp.MatchString(out) {
				return
			}
			select {
			case <-ctx.Done():
				t.Error("the TAP did not come back on br0")
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	gatedTransfer(t, c.ctrs[0], c.ctrs[1], "10.0.0.3:5001", 16<<20, halfway, resume)
	eventually(t, "ping to work both ways", func() bool {
		return pingOnce(testCtx(t), c.ctrs[0], "10.0.0.3") && pingOnce(testCtx(t), c.ctrs[1], "10.0.0.2")
	})
	if s := stats(t, c.nets[0]); s.FIB.Learned == 0 {
		t.Errorf("learned entries lost: %+v", s.FIB)
	}
	if out := cli(t, c.ds[0], "network", "inspect", "net"); strings.Contains(out, "failed") {
		t.Errorf("the network still reports a problem:\n%s", out)
	}
}

// The underlay link going down and up again, and the peer's daemon
// restarting, each during a TCP transfer: the transfer completes with
// the same SHA-256.
func TestLinkFlapAndPeerRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(t *testing.T, c *cluster)
	}{
		{"link down and up", func(t *testing.T, c *cluster) {
			h := c.hosts[0]
			for _, state := range []string{"down", "up"} {
				if out, err := h.Run(testCtx(t), "ip", "link", "set", topo.UnderlayIf, state); err != nil {
					t.Errorf("ip link set %s: %v: %s", state, err, out)
				}
			}
		}},
		{"peer daemon restart", func(t *testing.T, c *cluster) {
			if err := c.ds[1].Stop(); err != nil {
				t.Error(err)
			}
			if err := c.ds[1].Start(); err != nil {
				t.Error(err)
			}
		}},
		{"peer daemon killed and started", func(t *testing.T, c *cluster) {
			c.ds[1].KillForTest(9)
			c.ds[1].Stop()
			if err := c.ds[1].Start(); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 2)
			ping(t, c.ctrs[0], "10.0.0.3")
			halfway, resume := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(resume)
				<-halfway
				tc.fault(t, c)
			}()
			gatedTransfer(t, c.ctrs[0], c.ctrs[1], "10.0.0.3:5001", 16<<20, halfway, resume)
			eventually(t, "ping to work both ways", func() bool {
				return pingOnce(testCtx(t), c.ctrs[0], "10.0.0.3") && pingOnce(testCtx(t), c.ctrs[1], "10.0.0.2")
			})
		})
	}
}

// The underlay's MTU lowered to 1400 on both hosts after the network was
// made (overlay MTU 1450): frames that no longer fit are answered with
// ICMP "fragmentation needed" into the sender's network, so TCP adapts
// and transfers both ways complete with the same SHA-256.
func TestUnderlayMTULowered(t *testing.T) { offloadModes(t, testUnderlayMTULowered) }

func testUnderlayMTULowered(t *testing.T, args []string) {
	c := newCluster(t, 2, args...)
	ping(t, c.ctrs[0], "10.0.0.3")
	for _, h := range c.hosts {
		if out, err := h.Run(testCtx(t), "ip", "link", "set", topo.UnderlayIf, "mtu", "1400"); err != nil {
			t.Fatalf("ip link set mtu: %v: %s", err, out)
		}
	}
	transfer(t, c.ctrs[0], c.ctrs[1], "10.0.0.3:5001", 16<<20)
	transfer(t, c.ctrs[1], c.ctrs[0], "10.0.0.2:5001", 16<<20)
	// c1 sent first, full-size, and was told; c1's answer to c2's SYN
	// then carried the smaller MSS its path MTU allows.
	if s := stats(t, c.nets[0]); s.PMTUAnswered == 0 {
		t.Errorf("h1 answered no frame as too big: %+v", s.Counters)
	}
	for i, n := range c.nets {
		s := stats(t, n)
		t.Logf("h%d: %d frames answered as too big, drops %v", i+1, s.PMTUAnswered, s.Drops)
	}
	// A network made now gets the lower MTU (the daemon saw it: it
	// answered frames by it).
	cli(t, c.ds[0], "network", "create", "later", "--subnet", "10.9.0.0/24")
	if out := cli(t, c.ds[0], "network", "inspect", "later"); !strings.Contains(out, `"mtu": 1350`) {
		t.Errorf("a network made after the change:\n%s", out)
	}
}

// The default overlay MTU follows a route through the underlay that sets
// a lower MTU than its link's.
func TestOverlayMTUFollowsRoute(t *testing.T) {
	tp := topo.New(t)
	h := tp.MustHost("h1")
	if out, err := h.Run(testCtx(t), "ip", "route", "replace", "198.18.0.0/24", "dev", topo.UnderlayIf, "mtu", "1300"); err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	}
	d := h.MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t)})
	cli(t, d, "network", "create", "net", "--subnet", "10.0.0.0/24")
	if out := cli(t, d, "network", "inspect", "net"); !strings.Contains(out, `"mtu": 1250`) {
		t.Errorf("network on an underlay routed with MTU 1300:\n%s", out)
	}
}
