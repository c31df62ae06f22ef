package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// A dual-stack network (--subnet given twice, as with Docker): endpoints
// get an IPv6 address too, from the prefix and their MAC's EUI-64 or as
// asked, in containers whose namespaces have IPv6 off by default; ping
// and 64 MB of TCP over IPv6 both ways (checked end to end); the
// addresses survive a daemon restart.
func TestDualStack(t *testing.T) { offloadModes(t, testDualStack) }

func testDualStack(t *testing.T, args []string) {
	tp := topo.New(t) // IPv6 off in every namespace it makes
	bin := vxbin(t)
	var ds []*topo.Daemon
	for _, name := range []string{"h1", "h2"} {
		d := tp.MustHost(name).MustVXSwitch(topo.DaemonOptions{Binary: bin, Args: args})
		out := cli(t, d, "network", "create", "net", "--vni", "300", "--subnet", "10.0.0.0/24", "--subnet", "fd00:1::/64")
		if !strings.Contains(out, "subnet 10.0.0.0/24,fd00:1::/64") {
			t.Errorf("network create said %q", out)
		}
		ds = append(ds, d)
	}
	cli(t, ds[0], "peer", "add", "net", "198.18.0.2")
	cli(t, ds[1], "peer", "add", "net", "198.18.0.1")
	c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
	// c1 takes the first free address, 10.0.0.1, and an IPv6 one from its MAC, 02:42:0a:00:00:01; c2's is asked.
	if out := cli(t, ds[0], "network", "attach", "net", "--netns", c1.Path); strings.TrimSpace(out) != "10.0.0.1/24 02:42:0a:00:00:01 fd00:1::42:aff:fe00:1/64" {
		t.Errorf("attach c1 said %q", out)
	}
	if out := cli(t, ds[1], "network", "attach", "net", "--netns", c2.Path, "--ip", "10.0.0.3", "--ip6", "fd00:1::99"); strings.TrimSpace(out) != "10.0.0.3/24 02:42:0a:00:00:03 fd00:1::99/64" {
		t.Errorf("attach c2 said %q", out)
	}

	ping(t, c1, "fd00:1::99") // ping picks IPv6 for an IPv6 address
	ping(t, c2, "fd00:1::42:aff:fe00:1")
	// Static addresses: router advertisements on the overlay are ignored.
	if out, err := c1.Run(testCtx(t), "cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra"); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("accept_ra on c1's eth0: %q, %v; want 0", out, err)
	}
	ping(t, c1, "10.0.0.3")
	transfer(t, c1, c2, "[fd00:1::99]:5001", 64<<20)
	transfer(t, c2, c1, "[fd00:1::42:aff:fe00:1]:5001", 64<<20)

	for i, d := range ds {
		var st api.Stats
		if err := json.Unmarshal([]byte(cli(t, d, "stats", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		s := st.Networks
		if len(s) != 1 || len(s[0].Drops) != 0 {
			t.Fatalf("h%d stats: %+v", i+1, s)
		}
		if len(args) == 0 && s[0].RXCoalesced == 0 {
			t.Errorf("h%d coalesced no IPv6 TCP segments with offloads on", i+1)
		}
	}

	// The configuration, and so the addresses, survive a restart.
	if err := ds[0].Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ds[0].Start(); err != nil {
		t.Fatal(err)
	}
	var n api.Network
	if err := json.Unmarshal([]byte(cli(t, ds[0], "network", "inspect", "net")), &n); err != nil {
		t.Fatal(err)
	}
	if n.Subnet6 != "fd00:1::/64" || len(n.Endpoints) != 1 || n.Endpoints[0].IP6 != "fd00:1::42:aff:fe00:1/64" || n.Endpoints[0].Problem != "" {
		t.Errorf("after restart: subnet6 %q, endpoints %+v", n.Subnet6, n.Endpoints)
	}
	ping(t, c1, "fd00:1::99")
	if out := cli(t, ds[0], "network", "ls"); !strings.Contains(out, "10.0.0.0/24,fd00:1::/64") {
		t.Errorf("network ls:\n%s", out)
	}
}

// Dual-stack mistakes are refused with one line naming the problem, and
// leave nothing behind.
func TestDualStackErrors(t *testing.T) {
	tp := topo.New(t)
	d := tp.MustHost("h1").MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t)})
	cli(t, d, "network", "create", "v4", "--vni", "1", "--subnet", "10.1.0.0/24")
	cli(t, d, "network", "create", "ds", "--vni", "2", "--subnet", "10.2.0.0/24", "--subnet", "fd00:2::/64")
	c1, c2, c3 := tp.MustContainer("c1"), tp.MustContainer("c2"), tp.MustContainer("c3")
	cli(t, d, "network", "attach", "ds", "--netns", c1.Path, "--ip6", "fd00:2::5")
	// c3 takes by hand the address 10.2.0.9's MAC would make.
	cli(t, d, "network", "attach", "ds", "--netns", c3.Path, "--ip6", "fd00:2::42:aff:fe02:9")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"IPv6 only", []string{"network", "create", "x", "--vni", "9", "--subnet", "fd00:9::/64"}, "an IPv4 --subnet is required"},
		{"two IPv6", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00:9::/64", "--subnet", "fd00:8::/64"}, "two IPv6 --subnet values"},
		{"two IPv4", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "10.8.0.0/24"}, "two IPv4 --subnet values"},
		{"IPv6 prefix too long", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00:9::/80"}, "prefix length must be 16 to 64"},
		{"IPv6 host bits", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00:9::1/64"}, "did you mean fd00:9::/64?"},
		{"IPv6 link-local", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fe80::/64"}, "want a unique local (fd00::/8) or global unicast prefix"},
		{"--ip6 on an IPv4 network", []string{"network", "attach", "v4", "--netns", c2.Path, "--ip6", "fd00:2::6"}, "network v4 has no IPv6 subnet"},
		{"--ip6 outside", []string{"network", "attach", "ds", "--netns", c2.Path, "--ip6", "fd00:3::6"}, "not a host address of network ds's IPv6 subnet fd00:2::/64"},
		{"--ip6 taken", []string{"network", "attach", "ds", "--netns", c2.Path, "--ip6", "fd00:2::5"}, "IPv6 address fd00:2::5 is already used in network ds"},
		{"--ip6 is the subnet-router anycast", []string{"network", "attach", "ds", "--netns", c2.Path, "--ip6", "fd00:2::"}, "not a host address"},
		{"--ip6 is a reserved subnet anycast", []string{"network", "attach", "ds", "--netns", c2.Path, "--ip6", "fd00:2::fdff:ffff:ffff:ffff"}, "not a host address"},
		{"address from the MAC taken", []string{"network", "attach", "ds", "--netns", c2.Path, "--ip", "10.2.0.9"}, "made from MAC 02:42:0a:02:00:09, is already used in network ds by netns " + c3.Path + " (its --ip6); give --ip6 or --mac"},
		{"mistyped IPv6 subnet", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00::1::/64"}, `bad IPv6 subnet "fd00::1::/64"`},
		{"IPv6 gateway", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00:9::/64", "--gateway", "fd00:9::1"}, "IPv6 gateways are not supported"},
		{"two gateways", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00:9::/64", "--gateway", "fd00:9::1", "--gateway", "10.9.0.1"}, "IPv6 gateways are not supported"},
		{"IPv6 prefix too short, host bits", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00:2::/8"}, "prefix length must be 16 to 64"},
		{"dual-stack MTU under 1280", []string{"network", "create", "x", "--vni", "9", "--subnet", "10.9.0.0/24", "--subnet", "fd00:9::/64", "--mtu", "1000"}, "bad MTU 1000 for a dual-stack network: IPv6 needs at least 1280"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := d.CLI(testCtx(t), tc.args...)
			if err == nil || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("got %v, %q; want one line saying %q", err, errOut, tc.want)
			}
		})
	}
	if out := cli(t, d, "network", "ls"); strings.Contains(out, "\nx ") {
		t.Errorf("a refused network exists:\n%s", out)
	}
	var n api.Network
	if err := json.Unmarshal([]byte(cli(t, d, "network", "inspect", "ds")), &n); err != nil || len(n.Endpoints) != 2 {
		t.Errorf("network ds after refused attaches: %+v, %v", n.Endpoints, err)
	}
}
