package main_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/vxswitch/vxswitch/bench/topo"
)

// nobody is the user the unprivileged tests run the CLI as.
const nobody = 65534

// publicBinary copies the vxswitch binary where any user may run it (the
// build directory is private).
func publicBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vxswitch-pub-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(vxbin(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "vxswitch")
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runAs runs `bin --socket socket args...` as user nobody with the given
// supplementary groups.
func runAs(t *testing.T, groups []uint32, bin, socket string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(testCtx(t), bin, append([]string{"--socket", socket}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: groups}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// The control socket is 0660 and, with --socket-group, the group's: a
// member uses it, anyone else gets one line saying it needs root or the
// group, and so does anyone without the flag.
func TestSocketGroup(t *testing.T) {
	tp := topo.New(t)
	bin := publicBinary(t)
	const gid = 4242 // numeric: no group database entry needed
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	grouped := h1.MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t), Args: []string{"--socket-group", "4242"}})
	plain := h2.MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t)})
	grouped.MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24"})

	var st syscall.Stat_t
	if err := syscall.Stat(grouped.Socket(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 || st.Gid != gid || st.Uid != 0 {
		t.Fatalf("socket mode %o uid %d gid %d, want 660 root %d", st.Mode&0o777, st.Uid, st.Gid, gid)
	}

	out, errOut, err := runAs(t, []uint32{nobody, gid}, bin, grouped.Socket(), "network", "ls")
	if err != nil || !strings.Contains(out, "net ") {
		t.Errorf("member of %d: network ls: %v: %q %q", gid, err, out, errOut)
	}
	want := regexp.MustCompile(`^vxswitch: permission denied on the control socket ` + regexp.QuoteMeta(grouped.Socket()) + `: it needs root or membership in group 4242 \(the daemon's --socket-group\)\n$`)
	for _, args := range [][]string{{"network", "ls"}, {"network", "create", "x", "--subnet", "10.9.0.0/24"}, {"info"}} {
		out, errOut, err = runAs(t, []uint32{nobody}, bin, grouped.Socket(), args...)
		if err == nil || !want.MatchString(errOut) || out != "" {
			t.Errorf("non-member: %s: %v: stdout %q, stderr %q", strings.Join(args, " "), err, out, errOut)
		}
	}
	_, errOut, err = runAs(t, []uint32{nobody, gid}, bin, plain.Socket(), "network", "ls")
	if err == nil || !strings.HasPrefix(errOut, "vxswitch: permission denied on the control socket "+plain.Socket()+": it needs root (or start the daemon with --socket-group GROUP") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("no --socket-group: %v: %q", err, errOut)
	}
	if _, errOut, err := runAs(t, nil, bin, filepath.Join(t.TempDir(), "none.sock"), "network", "ls"); err == nil || strings.Count(errOut, "\n") != 1 ||
		!strings.HasPrefix(errOut, "vxswitch: permission denied on the control socket") && !strings.HasPrefix(errOut, "vxswitch: vxswitch daemon not running") {
		t.Errorf("no daemon, as nobody: %v: %q", err, errOut)
	}
	// What the member made is the daemon's, as if root had asked.
	if _, errOut, err := runAs(t, []uint32{gid}, bin, grouped.Socket(), "network", "create", "x", "--vni", "300", "--subnet", "10.9.0.0/24"); err != nil {
		t.Fatalf("member: network create: %v: %s", err, errOut)
	}
	cli(t, grouped, "network", "rm", "x")
}

// `vxswitch version` shows both versions, the same for one binary; with
// no daemon, the CLI's and one error line, exit status 1.
func TestVersion(t *testing.T) {
	tp := topo.New(t)
	bin := vxbin(t)
	d := tp.MustHost("h1").MustVXSwitch(topo.DaemonOptions{Binary: bin})
	out := cli(t, d, "version")
	m := regexp.MustCompile(`^client: (\S+) \(go[^,]+, linux/\w+\)\ndaemon: (\S+) \(pid \d+, vtep 198\.18\.0\.1, socket ` + regexp.QuoteMeta(d.Socket()) + `\)\n$`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] || m[1] == "" {
		t.Errorf("version: %q", out)
	}
	out, errOut, err := topo.RunCLI(testCtx(t), bin, filepath.Join(t.TempDir(), "none.sock"), "version")
	if err == nil || !strings.HasPrefix(out, "client: ") || strings.Count(out, "\n") != 1 ||
		!strings.HasPrefix(errOut, "vxswitch: vxswitch daemon not running at ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("version without daemon: %v: %q %q", err, out, errOut)
	}
}

// A daemon started with `ip netns exec` (a private mount namespace, whose
// network namespaces no one else would see) refuses to start with one
// line that names nsenter; the same daemon started with nsenter runs.
func TestIPNetnsExecRefused(t *testing.T) {
	tp := topo.New(t)
	bin := vxbin(t)
	h := tp.MustHost("h1")
	dir := t.TempDir()
	args := []string{"netns", "exec", h.Name, bin, "daemon", "--vtep", h.Addr.String(),
		"--run-dir", filepath.Join(dir, "run"), "--state-dir", filepath.Join(dir, "state")}
	cmd := exec.CommandContext(testCtx(t), "ip", args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	want := "vxswitch: the daemon is in a private mount namespace (started with `ip netns exec`?): the network namespaces it keeps under " +
		filepath.Join(dir, "run", "netns") + " would be invisible outside it and gone when it stops; start it with `nsenter --net=/run/netns/NAME vxswitch daemon ...` instead\n"
	if err == nil || e.String() != want {
		t.Fatalf("ip netns exec ... daemon: %v\nstderr %q\nwant   %q\nstdout %q", err, e.String(), want, o.String())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "run", "netns")); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
	// nsenter --net, as topo starts every daemon: it runs.
	d := h.MustVXSwitch(topo.DaemonOptions{Binary: bin})
	cli(t, d, "info")
}
