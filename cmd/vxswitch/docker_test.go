package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/api"
)

// dockerHosts is n hosts with etcd, each with a vxswitch daemon that
// serves the Docker plugin "vxswitch" and a Docker engine whose DNS
// servers are the network's gateway (daemon.json "dns"), as the README
// sets them up.
type dockerHosts struct {
	tp   *topo.Topo
	ds   []*topo.Daemon
	engs []*topo.Engine
}

func newDockerHosts(t *testing.T, n int) *dockerHosts {
	t.Helper()
	topo.RequireDocker(t)
	topo.RequireEtcd(t)
	tp := topo.New(t)
	c := &dockerHosts{tp: tp}
	var hosts []*topo.Host
	for i := range n {
		hosts = append(hosts, tp.MustHost("h"+string(rune('1'+i))))
	}
	e := tp.MustEtcd(topo.EtcdOptions{})
	bin := vxbin(t)
	for _, h := range hosts {
		c.ds = append(c.ds, h.MustVXSwitch(topo.DaemonOptions{Binary: bin, Store: e,
			Args: []string{"--docker-plugin", h.DockerPlugin("vxswitch"), "--docker-host", h.DockerHost()}}))
	}
	// After the daemons: the Topo closes the engines first, and they
	// remove their containers through the plugin.
	for _, h := range hosts {
		eng := h.MustDocker(topo.DockerOptions{Config: map[string]any{"dns": []string{"10.0.0.1"}}})
		eng.MustImportBusybox()
		c.engs = append(c.engs, eng)
	}
	return c
}

func docker(t *testing.T, eng *topo.Engine, args ...string) string {
	t.Helper()
	out, err := eng.CLI(testCtx(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// fetch runs wget in a running container and returns what it printed.
// (busybox-static 1.35's wget crashes with -T; timeout bounds it.)
func fetch(t *testing.T, eng *topo.Engine, ctr, url string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	return eng.CLI(ctx, "exec", ctr, "timeout", "10", "wget", "-qO-", url)
}

// containerIP is a container's address on network mynet.
func containerIP(t *testing.T, eng *topo.Engine, ctr string) string {
	t.Helper()
	return docker(t, eng, "inspect", "-f", `{{(index .NetworkSettings.Networks "mynet").IPAddress}}`, ctr)
}

func clusterEndpoints(t *testing.T, d *topo.Daemon) []api.Endpoint {
	t.Helper()
	var n api.Network
	if err := json.Unmarshal([]byte(cli(t, d, "network", "inspect", "mynet")), &n); err != nil {
		t.Fatal(err)
	}
	return n.Endpoints
}

func findEndpoint(eps []api.Endpoint, name string) (api.Endpoint, bool) {
	for _, e := range eps {
		if e.Name == name {
			return e, true
		}
	}
	return api.Endpoint{}, false
}

// TestDockerStory is the seed's story with two real engines and the
// store: one `docker network create` per engine makes one cluster
// network, web (busybox httpd) on engine 1 is fetched by name from a
// container on engine 2, the containers got different addresses, the
// network survives a restart of vxswitch and of dockerd, and removing a
// container releases its endpoint, names and address everywhere.
func TestDockerStory(t *testing.T) {
	c := newDockerHosts(t, 2)
	e1, e2 := c.engs[0], c.engs[1]
	for _, eng := range c.engs {
		docker(t, eng, "network", "create", "-d", "vxswitch", "--ipam-driver", "vxswitch", "--subnet", "10.0.0.0/24", "mynet")
	}
	// One cluster network, made by the first engine's plugin, found by
	// the second's.
	for i, d := range c.ds {
		eventually(t, "mynet in the cluster store", func() bool {
			out := cli(t, d, "network", "ls")
			return strings.Contains(out, "mynet") && strings.Contains(out, "cluster")
		})
		if n := networkJSON(t, d, "mynet"); n.VNI != 256 || n.Subnet != "10.0.0.0/24" || n.Gateway != "10.0.0.1" {
			t.Errorf("h%d: mynet is %+v, want VNI 256, 10.0.0.0/24, gateway 10.0.0.1", i+1, n)
		}
	}

	docker(t, e1, "run", "-d", "--name", "web", "--network", "mynet", "--network-alias", "www", topo.BusyboxImage,
		"sh", "-c", "echo page-from-web > /www/index.html && exec httpd -f -p 80 -h /www")
	docker(t, e2, "run", "-d", "--name", "client", "--network", "mynet", topo.BusyboxImage, "sleep", "1000000")
	webIP, clientIP := containerIP(t, e1, "web"), containerIP(t, e2, "client")
	if webIP == "" || clientIP == "" || webIP == clientIP {
		t.Fatalf("web has %q and client %q: want two different addresses", webIP, clientIP)
	}
	// web's name (and alias) reach engine 2 through the store: engine 2's
	// embedded DNS forwards names it does not know to its dns server,
	// the network's gateway, which is vxswitch's DNS on host 2.
	for _, url := range []string{"http://web/", "http://www/", "http://web.mynet/"} {
		eventually(t, "client on engine 2 fetches "+url, func() bool {
			out, err := fetch(t, e2, "client", url)
			return err == nil && strings.TrimSpace(out) == "page-from-web"
		})
	}
	// The story's own form: a one-off container.
	if out := docker(t, e2, "run", "--rm", "--network", "mynet", topo.BusyboxImage, "wget", "-qO-", "http://web"); out != "page-from-web" {
		t.Errorf("docker run --rm ... wget -qO- http://web printed %q", out)
	}
	// Host 2 sees web as host 1's endpoint, up, under Docker's endpoint
	// ID, with its container's name and aliases.
	webEID := docker(t, e1, "inspect", "-f", `{{(index .NetworkSettings.Networks "mynet").EndpointID}}`, "web")
	ep, ok := findEndpoint(clusterEndpoints(t, c.ds[1]), "web")
	if !ok || ep.ID != webEID || ep.VTEP != "198.18.0.1" || ep.State != "up" || ep.IP != webIP+"/24" || !strings.Contains(strings.Join(ep.Aliases, " "), "www") {
		t.Errorf("host 2's view of web: %+v (found %v); want ID %s on 198.18.0.1, up, %s/24, alias www", ep, ok, webEID, webIP)
	}

	// Restart vxswitch on host 1 and dockerd on host 2: the containers
	// keep talking, and new ones still join (the engine does not create
	// its networks again after a restart).
	c.ds[0].Stop()
	if err := c.ds[0].Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web reachable after vxswitch restarted on host 1", func() bool {
		out, err := fetch(t, e2, "client", "http://web/")
		return err == nil && strings.TrimSpace(out) == "page-from-web"
	})
	e2.Stop()
	if err := e2.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web reachable after dockerd restarted on host 2", func() bool {
		out, err := fetch(t, e2, "client", "http://web/")
		return err == nil && strings.TrimSpace(out) == "page-from-web"
	})
	if out := docker(t, e2, "run", "--rm", "--network", "mynet", topo.BusyboxImage, "wget", "-qO-", "http://web"); out != "page-from-web" {
		t.Errorf("a new container after both restarts printed %q", out)
	}
	if out := docker(t, e1, "run", "--rm", "--network", "mynet", topo.BusyboxImage, "ping", "-c", "1", "-W", "5", "client"); !strings.Contains(out, "1 packets received") {
		t.Errorf("engine 1 pinging client by name: %s", out)
	}

	t.Run("container gone while its engine is away", func(t *testing.T) { testEngineKilled(t, c) })

	// Removing web releases its endpoint, names and address on every
	// host: host 2 no longer has it, the name stops answering, and the
	// next container gets its address.
	docker(t, e1, "rm", "-f", "web")
	for i, d := range c.ds {
		eventually(t, "web's endpoint gone from host "+string(rune('1'+i)), func() bool {
			for _, e := range clusterEndpoints(t, d) {
				if e.ID == webEID || e.IP == webIP+"/24" {
					return false
				}
			}
			return true
		})
	}
	eventually(t, "web's name gone", func() bool {
		out, err := c.engs[1].CLI(testCtx(t), "exec", "client", "nslookup", "web")
		return err != nil || !strings.Contains(out, webIP)
	})
	docker(t, e2, "run", "-d", "--name", "next", "--network", "mynet", topo.BusyboxImage, "sleep", "1000000")
	if ip := containerIP(t, e2, "next"); ip != webIP {
		t.Errorf("the next container got %s, want web's released %s", ip, webIP)
	}
	// An address asked for (--ip) is the cluster's to give, once.
	docker(t, e1, "run", "-d", "--name", "fixed", "--network", "mynet", "--ip", "10.0.0.50", topo.BusyboxImage, "sleep", "1000000")
	if ip := containerIP(t, e1, "fixed"); ip != "10.0.0.50" {
		t.Errorf("docker run --ip 10.0.0.50 got %s", ip)
	}
	if out, err := e2.CLI(testCtx(t), "run", "--rm", "--network", "mynet", "--ip", "10.0.0.50", topo.BusyboxImage, "true"); err == nil ||
		!strings.Contains(out, "IP 10.0.0.50 is already used") {
		t.Errorf("a second --ip 10.0.0.50 on the other engine: %v: %s", err, out)
	}
	// No reservation is left behind by any of it.
	for i, d := range c.ds {
		for _, e := range clusterEndpoints(t, d) {
			if e.State == "reserved" || strings.HasPrefix(e.ID, "reserved-") {
				t.Errorf("host %d: a reservation left: %+v", i+1, e)
			}
		}
	}
}

// testEngineKilled: a container that goes while its engine is away,
// without a Leave. dockerd on host 1 stops (with --live-restore it
// leaves its containers running and tells no driver anything), then
// the container's process is killed (by its PID); Docker keeps a
// sandbox's namespace mounted under /run/docker/netns until it cleans up
// itself, so the namespace goes when that mount does (unmounted here, as
// a reboot or the engine's mount namespace going would). Host 1's
// vxswitch notices before dockerd is back and releases the endpoint on
// both hosts; dockerd, started again, cleans up after the container it
// lost (its Leave and DeleteEndpoint find nothing, and succeed), and web
// and client keep talking. (dockerd is stopped, not killed: after a
// SIGKILL here the next dockerd took the containerd it manages for
// still running and timed out on its socket.)
func testEngineKilled(t *testing.T, c *dockerHosts) {
	e1, e2 := c.engs[0], c.engs[1]
	docker(t, e1, "run", "-d", "--name", "doomed", "--network", "mynet", topo.BusyboxImage, "sleep", "1000000")
	eid := docker(t, e1, "inspect", "-f", `{{(index .NetworkSettings.Networks "mynet").EndpointID}}`, "doomed")
	ip := containerIP(t, e1, "doomed") + "/24"
	key := docker(t, e1, "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "doomed")
	pid, err := strconv.Atoi(docker(t, e1, "inspect", "-f", "{{.State.Pid}}", "doomed"))
	if err != nil || pid <= 1 {
		t.Fatalf("doomed's PID: %v", err)
	}
	eventually(t, "host 2 has doomed up", func() bool {
		e, ok := findEndpoint(clusterEndpoints(t, c.ds[1]), "doomed")
		return ok && e.ID == eid && e.State == "up"
	})

	e1.Stop()
	stopped := true
	t.Cleanup(func() {
		// A failure before the Start below must not leave the rest of
		// TestDockerStory without dockerd on host 1.
		if stopped {
			if err := e1.Start(); err != nil {
				t.Errorf("restart dockerd on host 1: %v", err)
			}
		}
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := e1.InMountNS(testCtx(t), "umount", key); err != nil {
		t.Fatal(err)
	}
	for i, d := range c.ds {
		eventually(t, fmt.Sprintf("doomed's endpoint released on host %d", i+1), func() bool {
			for _, e := range clusterEndpoints(t, d) {
				if e.ID == eid || e.IP == ip {
					return false
				}
			}
			return true
		})
	}
	if !strings.Contains(c.ds[0].Output(), "container is gone without a detach") {
		t.Errorf("host 1's vxswitch did not log the gone endpoint")
	}

	if err := e1.Start(); err != nil {
		t.Fatal(err)
	}
	stopped = false
	eventually(t, "web reachable after dockerd on host 1 came back", func() bool {
		out, err := fetch(t, e2, "client", "http://web/")
		return err == nil && strings.TrimSpace(out) == "page-from-web"
	})
	docker(t, e1, "rm", "-f", "doomed")
	if out := docker(t, e1, "run", "--rm", "--network", "mynet", topo.BusyboxImage, "wget", "-qO-", "http://web"); out != "page-from-web" {
		t.Errorf("a new container on engine 1 after its restart printed %q", out)
	}
}

// A Docker network whose name is a cluster network's with another subnet
// is refused at its first container, with the fix in the message.
func TestDockerSubnetMismatch(t *testing.T) {
	c := newDockerHosts(t, 1)
	cli(t, c.ds[0], "network", "create", "mynet", "--subnet", "10.8.0.0/24")
	docker(t, c.engs[0], "network", "create", "-d", "vxswitch", "--ipam-driver", "vxswitch", "--subnet", "10.9.0.0/24", "mynet")
	out, err := c.engs[0].CLI(testCtx(t), "run", "--rm", "--network", "mynet", topo.BusyboxImage, "true")
	if err == nil || !strings.Contains(out, "network mynet exists with subnet 10.8.0.0/24, not 10.9.0.0/24; give --subnet 10.8.0.0/24") {
		t.Errorf("a container on a mismatched network: %v: %s", err, out)
	}
	for _, args := range [][]string{
		{"network", "create", "-d", "vxswitch", "--ipam-driver", "vxswitch", "nosubnet"},
		{"network", "create", "-d", "vxswitch", "--ipam-driver", "vxswitch", "--subnet", "10.9.0.0/24", "samesubnet"},
	} {
		if out, err := c.engs[0].CLI(testCtx(t), args...); err == nil || !strings.Contains(out, "vxswitch: ") {
			t.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}
