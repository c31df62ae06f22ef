package daemon

import "testing"

// mountVisible on mountinfo as each case leaves it.
func TestMountVisible(t *testing.T) {
	const host = `21 26 0:20 / /proc rw,relatime shared:12 - proc proc rw
26 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 26 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw
31 30 0:26 / /run/my\040dir rw shared:7 - tmpfs tmpfs rw
`
	// The same namespace: the same mount IDs, shared or not.
	const private = `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
`
	// What ip netns exec makes: new IDs, every mount a slave of the host's.
	const netnsExec = `121 126 0:20 / /proc rw,relatime master:12 - proc proc rw
126 101 254:0 / / rw,relatime master:1 - ext4 /dev/vda rw
130 126 0:25 / /run rw,nosuid,nodev master:5 - tmpfs tmpfs rw
`
	// A service's own namespace whose /run stays in the host's peer group.
	const sharedRun = `126 101 254:0 / / rw,relatime master:1 - ext4 /dev/vda rw
130 126 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw
`
	for _, tc := range []struct {
		name, self, pid1, dir string
		want                  bool
	}{
		{"same namespace", host, host, "/run/vxswitch/netns", true},
		{"same namespace, private mounts", private, private, "/run/vxswitch/netns", true},
		{"ip netns exec", netnsExec, host, "/run/vxswitch/netns", false},
		{"ip netns exec, dir on /", netnsExec, host, "/var/lib/x/netns", false},
		{"own namespace, /run shared with the host", sharedRun, host, "/run/vxswitch/netns", true},
		{"own namespace, / a slave", sharedRun, host, "/srv/netns", false},
		{"escaped mount point", host, host, "/run/my dir/netns", true},
	} {
		if got := mountVisible([]byte(tc.self), []byte(tc.pid1), tc.dir); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if m := parseMountinfo([]byte(host)); len(m) != 4 || m[3].point != "/run/my dir" || m[3].shared != 7 || m[2].id != 30 {
		t.Errorf("parseMountinfo: %+v", m)
	}
}

// The test process runs where the host's mounts are (topo's daemons too,
// started with nsenter --net).
func TestCheckMountNamespaceHere(t *testing.T) {
	if err := CheckMountNamespace(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
