package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

// sweepResolvConfs removes only the files this daemon wrote that no
// endpoint names: not another daemon's, not the user's, not one an
// endpoint of its state names.
func TestSweepResolvConfs(t *testing.T) {
	old := etcNetns
	etcNetns = t.TempDir()
	t.Cleanup(func() { etcNetns = old })
	d := &Daemon{cfg: Config{RunDir: "/run/vx-a"}, log: zap.NewNop(), nets: map[string]*network{}}
	other := &Daemon{cfg: Config{RunDir: "/run/vx-b"}, log: zap.NewNop()}
	n := &network{netState: netState{Name: "web", Gateway: netip.MustParseAddr("10.0.0.1")}}
	write := func(dd *Daemon, ns string) string {
		t.Helper()
		path, err := dd.writeResolvConf(filepath.Join("/run/netns", ns), n)
		if err != nil || path == "" {
			t.Fatalf("write for %s: %q %v", ns, path, err)
		}
		return path
	}
	kept := write(d, "kept")
	n.Endpoints = []epState{{ID: "e1", ResolvConf: kept}}
	d.nets["web"] = n
	left := write(d, "left")
	others := write(other, "others")
	user := filepath.Join(etcNetns, "user", "resolv.conf")
	os.MkdirAll(filepath.Dir(user), 0o755)
	if err := os.WriteFile(user, []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.sweepResolvConfs()
	for path, want := range map[string]bool{kept: true, left: false, others: true, user: true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", path, err == nil, want)
		}
	}
	if _, err := os.Stat(filepath.Dir(left)); err == nil {
		t.Errorf("the directory of %s is left", left)
	}
}
