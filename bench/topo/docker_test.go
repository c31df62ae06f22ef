package topo_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// An engine runs containers in its host's namespace, keeps them across a
// restart of dockerd (--live-restore), touches nothing of the root
// namespace's /run and /etc/docker, and leaves nothing when the Topo
// closes: no container, process, cgroup or file.
func TestDockerEngine(t *testing.T) {
	topo.RequireRoot(t)
	topo.RequireDocker(t)
	etcBefore := dirNames(t, "/etc/docker")
	_, runDockerBefore := os.Stat("/run/docker")
	tp, err := topo.Open(topo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	h, err := tp.AddHost("h1")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := h.Docker(topo.DockerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eng.ImportBusybox(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.CLI(ctx, "run", "-d", "--name", "c1", "--network", "none", topo.BusyboxImage, "sleep", "1000000"); err != nil {
		t.Fatal(err)
	}
	out, err := eng.CLI(ctx, "inspect", "-f", "{{.State.Pid}}", "c1")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(out))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("container's PID %q not running", out)
	}
	// Its cgroups are under the engine's cgroup parent, which Close
	// removes.
	if cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup"); err != nil || !strings.Contains(string(cg), "/"+h.Name+"/") {
		t.Errorf("the container is not under the engine's cgroup parent /%s: %v\n%s", h.Name, err, cg)
	}
	// dockerd runs in the host's network namespace.
	if out, err := eng.CLI(ctx, "info", "-f", "{{.Name}}"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("docker info: %v %q", err, out)
	}

	eng.Stop()
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("the container died with dockerd: --live-restore is not in effect")
	}
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := eng.CLI(ctx, "ps", "-q", "-f", "name=c1", "-f", "status=running"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("after a restart of dockerd the container is not running: %v %q", err, out)
	}
	if !slices.Equal(dirNames(t, "/etc/docker"), etcBefore) {
		t.Errorf("the root's /etc/docker changed: %v, was %v", dirNames(t, "/etc/docker"), etcBefore)
	}
	if _, err := os.Stat("/run/docker"); (err == nil) != (runDockerBefore == nil) {
		t.Errorf("the root's /run/docker appeared or went: %v", err)
	}

	dir := eng.Dir
	engineProcs := procsIn(t, mountNS(t, eng))
	if len(engineProcs) < 3 {
		t.Errorf("the engine's mount namespace has %d processes, want the holder, dockerd, containerd and a shim at least", len(engineProcs))
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("the container (PID %d) outlived Close", pid)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s left after Close", dir)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + h.Name); len(left) > 0 {
		t.Errorf("cgroups left after Close: %v", left)
	}
	// (By PID and start time: the namespace's inode number may be reused
	// once it is gone.)
	for p, start := range engineProcs {
		// A zombie is gone but for its parent's wait (init's, for a
		// daemon's children).
		if st, ok := startTime(p); ok && st == start && !zombie(p) {
			cmdline, _ := os.ReadFile("/proc/" + p + "/cmdline")
			t.Errorf("process %s of the engine's mount namespace outlived Close: %q", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

// procsIn returns the processes in mount namespace ns, with their start
// times.
func procsIn(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && l == ns {
			if st, ok := startTime(e.Name()); ok {
				out[e.Name()] = st
			}
		}
	}
	return out
}

// startTime is field 22 of /proc/PID/stat, which tells a process from a
// later one with its PID.
func startTime(pid string) (string, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", false
	}
	return f[19], true
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// mountNS is the engine's mount namespace (dockerd's).
func mountNS(t *testing.T, eng *topo.Engine) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(eng.Dir, "docker.pid"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := os.Readlink("/proc/" + strings.TrimSpace(string(b)) + "/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	own, _ := os.Readlink("/proc/self/ns/mnt")
	if l == own {
		t.Fatal("dockerd runs in the test's mount namespace")
	}
	return l
}

// zombie reports whether process pid has exited and waits to be reaped.
func zombie(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] == 'Z' || s[i+2] == 'X'
}
