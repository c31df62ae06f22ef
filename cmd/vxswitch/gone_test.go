package main_test

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// killNetns destroys a container's namespace as a killed runtime leaves
// it: the process in it is SIGKILLed (by PID) and reaped, then its file
// is removed (`ip netns del`), with no detach. The kernel destroys the
// namespace, and the veth pair with it, asynchronously.
func killNetns(t *testing.T, ct *topo.Container, p *topo.Proc) {
	t.Helper()
	p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.Done()
	if err := nsutil.Delete(ct.Path); err != nil {
		t.Fatal(err)
	}
}

// localEndpoint is host d's own endpoint of network with ID id, if listed.
func localEndpoint(t *testing.T, d *topo.Daemon, network, id string) (api.Endpoint, bool) {
	t.Helper()
	for _, e := range networkJSON(t, d, network).Endpoints {
		if e.ID == id {
			return e, true
		}
	}
	return api.Endpoint{}, false
}

// attachJSON attaches ct on d and returns the endpoint.
func attachJSON(t *testing.T, d *topo.Daemon, network string, ct *topo.Container, args ...string) api.Endpoint {
	t.Helper()
	cli(t, d, append([]string{"network", "attach", network, "--netns", ct.Name}, args...)...)
	for _, e := range networkJSON(t, d, network).Endpoints {
		if e.Netns == ct.Path {
			return e
		}
	}
	t.Fatalf("%s is not listed after attach", ct.Name)
	return api.Endpoint{}
}

// TestGoneNamespace: a container namespace destroyed without a detach is
// noticed by its host, which releases its endpoint everywhere: its
// address (the next attach gets it), its MAC entry and name on the other
// host, its veth. While the store is away it is listed as gone, and
// released when the store answers; one that went while the daemon was
// down is released at start instead of coming back. Containers that live
// on keep their endpoints and keep talking throughout.
func TestGoneNamespace(t *testing.T) {
	c := newStoreCluster(t, 2, storeOpts{})
	h1, h2 := c.ds[0], c.ds[1]
	cli(t, h1, "network", "create", "gnet", "--subnet", "10.0.0.0/24")
	keep := c.tp.MustContainer("keep")
	kept := attachJSON(t, h1, "gnet", keep)
	peer := c.tp.MustContainer("peer")
	peerIP := strings.Split(attachJSON(t, h2, "gnet", peer).IP, "/")[0]
	netns := networkJSON(t, h1, "gnet").Netns
	ping(t, keep, peerIP)

	// victim is a container of h1 with a process in it, attached as name.
	type victim struct {
		ct   *topo.Container
		proc *topo.Proc
		ep   api.Endpoint
	}
	newVictim := func(name string) victim {
		ct := c.tp.MustContainer(name)
		p, err := ct.Start("sleep", "1000000")
		if err != nil {
			t.Fatal(err)
		}
		v := victim{ct: ct, proc: p, ep: attachJSON(t, h1, "gnet", ct, "--name", name)}
		eventually(t, "h2 has "+name+"'s MAC entry", func() bool { return hasFDB(t, h2, "gnet", v.ep.MAC+" dst 198.18.0.1 vni 256 store") })
		return v
	}
	// releasedEverywhere waits until no host lists v and h2 has dropped
	// its MAC entry and name, and checks that its veth went.
	releasedEverywhere := func(t *testing.T, v victim) {
		t.Helper()
		for i, d := range c.ds {
			eventually(t, fmt.Sprintf("h%d no longer lists %s", i+1, v.ct.Name), func() bool {
				for _, e := range networkJSON(t, d, "gnet").Endpoints {
					if e.ID == v.ep.ID || e.IP == v.ep.IP {
						return false
					}
				}
				return true
			})
		}
		eventually(t, "h2 drops "+v.ct.Name+"'s MAC entry", func() bool { return !hasFDB(t, h2, "gnet", v.ep.MAC+" dst 198.18.0.1 vni 256 store") })
		eventually(t, v.ct.Name+"'s name stops resolving on h2", func() bool {
			_, err := inNetns(t, peer, "getent", "hosts", v.ct.Name)
			return err != nil
		})
		if out, err := nsExec(t, netns, "ip", "-o", "link", "show", v.ep.Veth); err == nil {
			t.Errorf("%s's veth is still in the network's namespace: %s", v.ct.Name, out)
		}
		if _, ok := localEndpoint(t, h1, "gnet", kept.ID); !ok {
			t.Fatal("the endpoint whose container lives was released too")
		}
		ping(t, keep, peerIP)
	}

	t.Run("released everywhere", func(t *testing.T) {
		v := newVictim("victim")
		eventually(t, "the victim's name resolves on h2", func() bool {
			out, err := inNetns(t, peer, "getent", "hosts", "victim")
			return err == nil && strings.HasPrefix(out, strings.Split(v.ep.IP, "/")[0]+" ")
		})
		killNetns(t, v.ct, v.proc)
		releasedEverywhere(t, v)
		if !strings.Contains(h1.Output(), "container is gone without a detach") {
			t.Errorf("h1 did not log the gone endpoint:\n%s", h1.Output())
		}
		// The store no longer holds the address: the next attach, on the
		// other host, gets it.
		if next := attachJSON(t, h2, "gnet", c.tp.MustContainer("next")); next.IP != v.ep.IP {
			t.Errorf("the next attach got %s, want the released %s", next.IP, v.ep.IP)
		}
	})

	t.Run("gone while the store is away", func(t *testing.T) {
		v := newVictim("away")
		m := c.etcd.Member(0)
		m.Stop()
		t.Cleanup(func() {
			if !m.Running() {
				m.Start()
			}
		})
		killNetns(t, v.ct, v.proc)
		var gone api.Endpoint
		eventually(t, "h1 lists the endpoint as gone", func() bool {
			var ok bool
			gone, ok = localEndpoint(t, h1, "gnet", v.ep.ID)
			return ok && gone.State == "gone"
		})
		if at, err := time.Parse(time.RFC3339Nano, gone.Gone); err != nil || at.IsZero() {
			t.Errorf("gone endpoint's time %q: %v", gone.Gone, err)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		releasedEverywhere(t, v)
	})

	t.Run("gone while the daemon is down", func(t *testing.T) {
		v := newVictim("down")
		if err := h1.Stop(); err != nil {
			t.Fatal(err)
		}
		killNetns(t, v.ct, v.proc)
		if err := h1.Start(); err != nil {
			t.Fatal(err)
		}
		releasedEverywhere(t, v)
		if ep, ok := localEndpoint(t, h1, "gnet", kept.ID); !ok || ep.Problem != "" || ep.State != "up" {
			t.Errorf("the living endpoint after the restart: %+v (listed %v)", ep, ok)
		}
	})
}

// TestGoneEgressVeth: the bridge end of an --egress endpoint's veth,
// deleted from outside, is made again once: the egress pair, which
// survived, is kept (not made again over its eth1, which failed and
// deleted the new veth, which kicked the watcher again, for ever). The
// container talks to its peer and the outside again, and the veth made
// again stays (the same link: no loop deleting and making it).
func TestGoneEgressVeth(t *testing.T) {
	tp := topo.New(t)
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	d := h1.MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t)})
	ln, err := h2.Listen("tcp", "198.18.0.2:8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "outside\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cli(t, d, "network", "create", "eg", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--egress")
	c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
	ep := attachJSON(t, d, "eg", c1)
	peerIP := strings.Split(attachJSON(t, d, "eg", c2).IP, "/")[0]
	netns := networkJSON(t, d, "eg").Netns
	curl := func() {
		t.Helper()
		if out, err := c1.Run(testCtx(t), "curl", "-sS", "--max-time", "20", "http://198.18.0.2:8080/"); err != nil || out != "outside\n" {
			t.Fatalf("curl from the egress network: %v %q", err, out)
		}
	}
	ping(t, c1, peerIP)
	curl()
	eth1 := func() string {
		out, err := c1.Run(testCtx(t), "ip", "-o", "link", "show", "eth1")
		if err != nil {
			t.Fatalf("c1's eth1: %v %s", err, out)
		}
		return strings.SplitN(out, ":", 2)[0]
	}
	eth1Before := eth1()

	if out, err := nsExec(t, netns, "ip", "link", "del", ep.Veth); err != nil {
		t.Fatalf("delete %s: %v %s", ep.Veth, err, out)
	}
	// index is the veth's ifindex, or "" while it is missing.
	index := func() string {
		out, err := nsExec(t, netns, "ip", "-o", "link", "show", ep.Veth)
		if err != nil {
			return ""
		}
		return strings.SplitN(out, ":", 2)[0]
	}
	var idx string
	eventually(t, "the veth is made again and c1 has eth0 back", func() bool {
		idx = index()
		_, err := c1.Run(testCtx(t), "ip", "-o", "link", "show", "eth0")
		return idx != "" && err == nil
	})
	ping(t, c1, peerIP)
	curl()
	if now := index(); now != idx {
		t.Errorf("the veth made again was replaced: ifindex %s, then %q", idx, now)
	}
	if now := eth1(); now != eth1Before {
		t.Errorf("c1's eth1 was made again (ifindex %s, then %s): the egress pair had survived", eth1Before, now)
	}
	out := d.Output()
	if n := strings.Count(out, "deleted from outside; made it again"); n != 1 {
		t.Errorf("the veth was made again %d times, want 1:\n%s", n, out)
	}
	if strings.Contains(out, "cannot be made again") {
		t.Errorf("making the veth again failed:\n%s", out)
	}
}

// TestGoneProcPath: an endpoint attached by /proc/PID/ns/net whose
// process exited while a bind mount holds the namespace is not gone: its
// veth is still in the network's namespace, which says the namespace
// lives, though the path no longer names it. A look (another container
// gone) releases only the gone one.
func TestGoneProcPath(t *testing.T) {
	tp := topo.New(t)
	d := tp.MustHost("h1").MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t)})
	cli(t, d, "network", "create", "pnet", "--subnet", "10.0.0.0/24")
	held, peer := tp.MustContainer("held"), tp.MustContainer("peer")
	p, err := held.Start("sleep", "1000000")
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/proc/%d/ns/net", p.Cmd.Process.Pid)
	cli(t, d, "network", "attach", "pnet", "--netns", path)
	var ep api.Endpoint
	for _, e := range networkJSON(t, d, "pnet").Endpoints {
		if e.Netns == path {
			ep = e
		}
	}
	if ep.ID == "" {
		t.Fatalf("the endpoint attached by %s is not listed", path)
	}
	peerIP := strings.Split(attachJSON(t, d, "pnet", peer).IP, "/")[0]
	ping(t, held, peerIP)
	p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.Done()

	// The look: a gone container (no process in it) elsewhere.
	gone := tp.MustContainer("gone")
	goneEP := attachJSON(t, d, "pnet", gone)
	if err := nsutil.Delete(gone.Path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gone container's endpoint is released", func() bool {
		_, ok := localEndpoint(t, d, "pnet", goneEP.ID)
		return !ok
	})
	if e, ok := localEndpoint(t, d, "pnet", ep.ID); !ok || e.State == "gone" {
		t.Fatalf("the endpoint whose namespace a bind mount holds: %+v (listed %v)\n%s", e, ok, d.Output())
	}
	ping(t, held, peerIP)
}
