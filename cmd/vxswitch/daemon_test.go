package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// No kernel vxlan anywhere on the vxswitch side: every link in the
// namespaces the daemon made (and in its host) is listed, and there is a
// TAP on br0 and no vxlan device.
func TestNoKernelVXLAN(t *testing.T) {
	c := newCluster(t, 2)
	ping(t, c.ctrs[0], "10.0.0.3")
	d := c.ds[0]
	nsDir := filepath.Join(d.RunDir, "netns")
	ents, err := os.ReadDir(nsDir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no namespaces under %s: %v", nsDir, err)
	}
	paths := []string{c.hosts[0].Path}
	for _, e := range ents {
		paths = append(paths, filepath.Join(nsDir, e.Name()))
	}
	var taps int
	for _, p := range paths {
		h, err := nsutil.Handle(p)
		if err != nil {
			t.Fatal(err)
		}
		links, err := h.LinkList()
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			t.Logf("%s: %s (%s)", filepath.Base(p), l.Attrs().Name, l.Type())
			switch l := l.(type) {
			case *netlink.Vxlan:
				t.Errorf("kernel vxlan device %s in %s", l.Name, p)
			case *netlink.Tuntap:
				if l.Mode != netlink.TUNTAP_MODE_TAP {
					t.Errorf("%s is a TUN, want a TAP", l.Name)
				}
				if l.MasterIndex == 0 {
					t.Errorf("TAP %s is not on a bridge", l.Name)
				}
				taps++
			}
		}
	}
	if taps != 1 {
		t.Errorf("found %d TAPs, want 1 (one network)", taps)
	}
}

// Restart: stop the daemon on one host (SIGTERM) and start it again;
// networks, endpoints, peers and static entries come back and traffic
// flows again without re-attaching anything.
func TestRestart(t *testing.T) { offloadModes(t, testRestart) }

func testRestart(t *testing.T, args []string) {
	c := newCluster(t, 2, args...)
	d := c.ds[0]
	cli(t, d, "fdb", "add", "net", "02:42:0a:00:00:63", "198.18.0.2")
	ping(t, c.ctrs[0], "10.0.0.3")
	before := cli(t, d, "network", "inspect", "net")

	netns := filepath.Join(d.RunDir, "netns", "vx-256")
	for _, how := range []string{"stop", "crash", "reboot"} {
		switch how {
		case "crash":
			// No chance to clean up anything.
			d.KillForTest(syscall.SIGKILL)
		case "reboot":
			// The network's namespace (and with it br0 and every
			// endpoint's veth) is gone; the containers survived.
			d.Stop()
			if err := nsutil.Delete(netns); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		after := cli(t, d, "network", "inspect", "net")
		if after != before {
			t.Errorf("network differs after restart (%s):\nbefore %s\nafter  %s", how, before, after)
		}
		if out := cli(t, d, "peer", "ls", "net"); strings.TrimSpace(out) != "198.18.0.2" {
			t.Errorf("peers after restart: %q", out)
		}
		if out := cli(t, d, "fdb", "show", "net"); !strings.Contains(out, "02:42:0a:00:00:63 dst 198.18.0.2 vni 256 static") {
			t.Errorf("static entry missing after restart:\n%s", out)
		}
		ping(t, c.ctrs[0], "10.0.0.3")
		ping(t, c.ctrs[1], "10.0.0.2")
	}
}

// snapshot is what a failed command must leave unchanged: the daemon's
// namespaces, the links in them and in the test's namespaces, and the
// state file.
type snapshot struct {
	netns []string
	links []string
	state string
}

func takeSnapshot(t *testing.T, d *topo.Daemon, extra ...string) snapshot {
	t.Helper()
	var s snapshot
	ents, _ := os.ReadDir(filepath.Join(d.RunDir, "netns"))
	var paths []string
	for _, e := range ents {
		s.netns = append(s.netns, e.Name())
		paths = append(paths, filepath.Join(d.RunDir, "netns", e.Name()))
	}
	for _, p := range append(paths, extra...) {
		h, err := nsutil.Handle(p)
		if err != nil {
			t.Fatal(err)
		}
		links, _ := h.LinkList()
		h.Close()
		for _, l := range links {
			s.links = append(s.links, filepath.Base(p)+"/"+l.Attrs().Name)
		}
	}
	sort.Strings(s.links)
	b, _ := os.ReadFile(filepath.Join(d.StateDir, "state.json"))
	s.state = string(b)
	return s
}

// Every CLI error exits non-zero with one line naming the problem and
// leaves no namespace, link or state entry behind.
func TestCLIErrors(t *testing.T) {
	tp := topo.New(t)
	bin := vxbin(t)
	h := tp.MustHost("h1")
	d := h.MustVXSwitch(topo.DaemonOptions{Binary: bin})
	d.MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24", Gateway: "10.0.0.1"})
	c1 := tp.MustContainer("c1")
	c2 := tp.MustContainer("c2")
	cli(t, d, "network", "attach", "net", "--netns", c1.Name, "--ip", "10.0.0.5")

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown network", []string{"network", "inspect", "nope"}, "no network named nope"},
		{"attach to unknown network", []string{"network", "attach", "nope", "--netns", c2.Name}, "no network named nope"},
		{"VNI in use", []string{"network", "create", "other", "--vni", "256", "--subnet", "10.1.0.0/24"}, "VNI 256 is already used by network net"},
		{"name in use", []string{"network", "create", "net", "--vni", "300", "--subnet", "10.1.0.0/24"}, "network net already exists"},
		{"bad VNI", []string{"network", "create", "big", "--vni", "16777216", "--subnet", "10.1.0.0/24"}, "bad VNI 16777216"},
		{"bad CIDR", []string{"network", "create", "x", "--vni", "300", "--subnet", "10.1.0.0/33"}, `bad subnet "10.1.0.0/33"`},
		{"CIDR with host bits", []string{"network", "create", "x", "--vni", "300", "--subnet", "10.1.0.7/24"}, "did you mean 10.1.0.0/24"},
		{"gateway outside subnet", []string{"network", "create", "x", "--vni", "300", "--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1"}, "bad gateway 10.2.0.1"},
		{"netns not found", []string{"network", "attach", "net", "--netns", "no-such-netns"}, `netns "no-such-netns" not found`},
		{"bad IP", []string{"network", "attach", "net", "--netns", c2.Name, "--ip", "10.0.0.300"}, `bad IP "10.0.0.300"`},
		{"IP outside subnet", []string{"network", "attach", "net", "--netns", c2.Name, "--ip", "10.9.0.3/24"}, `bad IP "10.9.0.3/24"`},
		{"IP in use", []string{"network", "attach", "net", "--netns", c2.Name, "--ip", "10.0.0.5"}, "IP 10.0.0.5 is already used"},
		{"gateway IP", []string{"network", "attach", "net", "--netns", c2.Name, "--ip", "10.0.0.1"}, "IP 10.0.0.1 is network net's gateway"},
		{"not a namespace", []string{"network", "attach", "net", "--netns", "/tmp"}, `vxswitch: netns "/tmp" (/tmp): not a network namespace`},
		{"unknown subcommand", []string{"peer", "delete", "net", "198.18.0.2"}, `unknown command "delete" for "vxswitch peer"`},
		{"unknown network subcommand", []string{"network", "bogus"}, `unknown command "bogus" for "vxswitch network"`},
		{"misspelt subcommand", []string{"network", "crate", "x"}, `unknown command "crate" for "vxswitch network" (did you mean create?)`},
		{"gateway twice", []string{"network", "create", "x", "--vni", "300", "--subnet", "10.1.0.0/24", "--gateway", "10.1.0.1", "--gateway", "10.1.0.2"}, "given twice (10.1.0.1, 10.1.0.2): a network has one IPv4 gateway"},
		{"bad MAC", []string{"network", "attach", "net", "--netns", c2.Name, "--mac", "02:42:zz:00:00:01"}, `bad MAC "02:42:zz:00:00:01"`},
		{"multicast MAC", []string{"network", "attach", "net", "--netns", c2.Name, "--mac", "01:00:5e:00:00:01"}, `bad MAC "01:00:5e:00:00:01"`},
		{"already attached", []string{"network", "attach", "net", "--netns", c1.Name}, "already attached"},
		{"ifname in use", []string{"network", "attach", "net", "--netns", c2.Name, "--ifname", "lo"}, "interface lo already exists"},
		{"bad peer IP", []string{"peer", "add", "net", "198.18.0"}, `bad VTEP IP "198.18.0"`},
		{"own VTEP as peer", []string{"peer", "add", "net", "198.18.0.1"}, "this host's own address"},
		{"remove unknown peer", []string{"peer", "rm", "net", "198.18.0.9"}, "198.18.0.9 is not a peer"},
		{"fdb bad MAC", []string{"fdb", "add", "net", "xx", "198.18.0.2"}, `bad MAC "xx"`},
		{"fdb bad VTEP", []string{"fdb", "add", "net", "02:42:0a:00:00:09", "nope"}, `bad VTEP IP "nope"`},
		{"fdb rm unknown", []string{"fdb", "rm", "net", "02:42:0a:00:00:09"}, "no static or learned entry"},
		{"network with endpoints", []string{"network", "rm", "net"}, "has 1 attached endpoint"},
		{"detach not attached", []string{"network", "detach", "net", "--netns", c2.Name}, "is not attached"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := takeSnapshot(t, d, c1.Path, c2.Path)
			out, errOut, err := d.CLI(testCtx(t), tc.args...)
			if err == nil {
				t.Fatalf("vxswitch %s succeeded: %s", strings.Join(tc.args, " "), out)
			}
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "vxswitch: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q: want one line \"vxswitch: ...%s...\"", errOut, tc.want)
			}
			if after := takeSnapshot(t, d, c1.Path, c2.Path); !slices.Equal(after.netns, before.netns) ||
				!slices.Equal(after.links, before.links) || after.state != before.state {
				t.Errorf("left something behind:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}

	t.Run("daemon not running", func(t *testing.T) {
		_, errOut, err := topo.RunCLI(testCtx(t), bin, filepath.Join(t.TempDir(), "none.sock"), "network", "ls")
		if err == nil || !strings.Contains(errOut, "vxswitch daemon not running at") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("got %v, %q", err, errOut)
		}
	})
	t.Run("socket from VXSWITCH_SOCKET", func(t *testing.T) {
		cmd := exec.CommandContext(testCtx(t), bin, "network", "ls")
		cmd.Env = append(os.Environ(), "VXSWITCH_SOCKET="+d.Socket())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "net") {
			t.Errorf("got %v, %q", err, out)
		}
	})

	// The successful path of each, for contrast, leaves the state it
	// says.
	cli(t, d, "network", "detach", "net", "--netns", c1.Name)
	cli(t, d, "network", "rm", "net")
	if out := cli(t, d, "network", "ls"); strings.Contains(out, "net ") {
		t.Errorf("network still listed after rm:\n%s", out)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.RunDir, "netns")); len(ents) != 0 {
		t.Errorf("namespaces left after rm: %v", ents)
	}
}

// The daemon refuses to start with one line that names the problem.
func TestDaemonStartErrors(t *testing.T) {
	tp := topo.New(t)
	bin := vxbin(t)
	h := tp.MustHost("h1")
	running := h.MustVXSwitch(topo.DaemonOptions{Binary: bin})
	corrupt := t.TempDir()
	os.WriteFile(filepath.Join(corrupt, "state.json"), []byte("{"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"vtep not on this host", []string{"--vtep", "198.18.9.9"}, "is not an address of any interface"},
		{"bad vtep", []string{"--vtep", "nope"}, `bad --vtep "nope"`},
		{"no vtep", nil, `required flag(s) "vtep" not set`},
		{"dirs in use", []string{"--vtep", "198.18.0.1", "--run-dir", running.RunDir, "--state-dir", running.StateDir}, "another vxswitch daemon is using"},
		{"corrupt state", []string{"--vtep", "198.18.0.1", "--state-dir", corrupt}, "is corrupt"},
		{"bad offload", []string{"--vtep", "198.18.0.1", "--offload", "maybe"}, `bad --offload "maybe"`},
		{"bad port range", []string{"--vtep", "198.18.0.1", "--src-port-range", "9-1"}, `bad --src-port-range "9-1"`},
		{"port 0", []string{"--vtep", "198.18.0.1", "--port", "0"}, "bad --port 0"},
		{"link-local vtep without its interface", []string{"--vtep", "fe80::1"}, "is link-local: name its interface too, as in fe80::1%eth0"},
		{"interface on a routable vtep", []string{"--vtep", "2001:2::1%eth0"}, "only a link-local address takes an interface"},
		{"link-local vtep not on its interface", []string{"--vtep", "fe80::1%lo"}, "interface lo in this network namespace has no address fe80::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"daemon", "--run-dir", t.TempDir(), "--state-dir", t.TempDir()}, tc.args...)
			if tc.name == "corrupt state" || tc.name == "dirs in use" {
				args = append([]string{"daemon", "--run-dir", t.TempDir()}, tc.args...)
			}
			daemonRefuses(t, &h.NS, bin, args, tc.want)
		})
	}
}

// daemonRefuses runs `bin args...` (a daemon command line) in ns and
// requires it to exit with an error whose last line is "vxswitch: ..."
// containing want, and no panic.
func daemonRefuses(t *testing.T, ns *topo.NS, bin string, args []string, want string) {
	t.Helper()
	// A daemon that starts after all would run until killed: bound the
	// wait so such a failure ends this test, not the whole run.
	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	out, err := ns.Command(ctx, bin, args...).CombinedOutput()
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	last := lines[len(lines)-1]
	if err == nil || !strings.HasPrefix(last, "vxswitch: ") || !strings.Contains(last, want) || strings.Contains(string(out), "panic") {
		t.Errorf("got %v:\n%s\nwant a last line \"vxswitch: ...%s...\"", err, out, want)
	}
}

// readOnly makes dir read-only for the rest of the test (a bind mount),
// so that saving the state fails.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
}

// When the state cannot be saved, every change is undone: the user never
// sees a change the next start would not restore, and nothing is left
// half made.
func TestRollbackWhenStateCannotBeSaved(t *testing.T) {
	tp := topo.New(t)
	bin := vxbin(t)
	h := tp.MustHost("h1")
	d := h.MustVXSwitch(topo.DaemonOptions{Binary: bin})
	d.MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24", Gateway: "10.0.0.1"})
	d.MustNetwork(topo.NetConfig{Name: "empty", VNI: 257, Subnet: "10.1.0.0/24"})
	c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
	cli(t, d, "network", "attach", "net", "--netns", c1.Name, "--ip", "10.0.0.5")
	cli(t, d, "peer", "add", "net", "198.18.0.2")
	cli(t, d, "fdb", "add", "net", "02:42:0a:00:00:09", "198.18.0.2")
	readOnly(t, d.StateDir)
	show := func() string { return cli(t, d, "network", "inspect", "net") + cli(t, d, "network", "ls") }
	before := show()
	for _, args := range [][]string{
		{"network", "create", "x", "--vni", "300", "--subnet", "10.2.0.0/24"},
		{"network", "rm", "empty"},
		{"network", "attach", "net", "--netns", c2.Name},
		{"network", "detach", "net", "--netns", c1.Name},
		{"peer", "add", "net", "198.18.0.3"},
		{"peer", "rm", "net", "198.18.0.2"},
		{"fdb", "add", "net", "02:42:0a:00:00:0a", "198.18.0.2"},
		{"fdb", "rm", "net", "02:42:0a:00:00:09"},
	} {
		snap := takeSnapshot(t, d, c1.Path, c2.Path)
		_, errOut, err := d.CLI(testCtx(t), args...)
		if err == nil || !strings.Contains(errOut, "read-only file system") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: %v %q: want one line about the read-only state", strings.Join(args, " "), err, errOut)
		}
		if after := takeSnapshot(t, d, c1.Path, c2.Path); !slices.Equal(after.netns, snap.netns) || !slices.Equal(after.links, snap.links) {
			t.Errorf("%s left something behind:\nbefore %+v\nafter  %+v", strings.Join(args, " "), snap, after)
		}
		if now := show(); now != before {
			t.Errorf("%s changed the running configuration:\nbefore %s\nafter  %s", strings.Join(args, " "), before, now)
		}
	}
	// The datapath agrees with the configuration: the static entry and
	// the peer are still in the MAC table.
	out := cli(t, d, "fdb", "show", "net")
	for _, want := range []string{"02:42:0a:00:00:09 dst 198.18.0.2 vni 256 static", "00:00:00:00:00:00 dst 198.18.0.2 vni 256 flood"} {
		if !strings.Contains(out, want) {
			t.Errorf("fdb show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "198.18.0.3") || strings.Contains(out, "02:42:0a:00:00:0a") {
		t.Errorf("fdb show has an entry whose save failed:\n%s", out)
	}
}

// A daemon that starts without its state file (an operator moved a
// damaged one away, as the refusal advises) or with another state dir on
// the same run dir removes nothing: the networks' namespaces and the
// containers' interfaces stay, and with the state file back everything
// works as before.
func TestSweepKeepsWithoutItsStateFile(t *testing.T) {
	c := newCluster(t, 2)
	d := c.ds[0]
	ping(t, c.ctrs[0], "10.0.0.3")
	netns := filepath.Join(d.RunDir, "netns", "vx-256")
	state := filepath.Join(d.StateDir, "state.json")
	away := filepath.Join(t.TempDir(), "state.json")
	for _, how := range []string{"state moved away", "restarted after that", "another state dir"} {
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		switch how {
		case "state moved away":
			if err := os.Rename(state, away); err != nil {
				t.Fatal(err)
			}
		case "another state dir":
			// The first start of a second daemon on this run dir (the
			// first start without a state file saved an empty one).
			d.StateDir = t.TempDir()
		}
		if err := d.Start(); err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if out := cli(t, d, "network", "ls"); strings.Contains(out, "net ") {
			t.Errorf("%s: the daemon lists a network it has no state for:\n%s", how, out)
		}
		if !nsutil.IsNetns(netns) {
			t.Fatalf("%s: the network's namespace %s was removed", how, netns)
		}
		// The container's interface is still there: its veth pair was
		// not deleted with anything.
		if out, err := c.ctrs[0].Run(testCtx(t), "ip", "-br", "addr", "show", "eth0"); err != nil || !strings.Contains(out, "10.0.0.2/") {
			t.Fatalf("%s: container's eth0: %v %q", how, err, out)
		}
	}
	// The state file back in its own state dir: the network is whole.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	d.StateDir = filepath.Dir(state)
	if err := os.Rename(away, state); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	ping(t, c.ctrs[0], "10.0.0.3")
}
