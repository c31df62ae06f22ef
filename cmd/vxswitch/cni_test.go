package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// cnitoolVersion is the CNI project's cnitool the tests drive the plugin
// with (it speaks CNI up to 1.1.0).
const cnitoolVersion = "v1.3.1"

var (
	cnitoolOnce sync.Once
	cnitoolPath string
	cnitoolErr  error
)

// cnitool installs cnitool with `go install` into the user's cache
// directory once (the module proxy the first time, seconds after that)
// and returns its path.
func cnitool(t *testing.T) string {
	t.Helper()
	cnitoolOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cnitoolErr = err
			return
		}
		dir := filepath.Join(cache, "vxswitch-cnitool")
		out := filepath.Join(dir, "cnitool-"+cnitoolVersion)
		if fi, err := os.Stat(out); err == nil && fi.Mode()&0o111 != 0 {
			cnitoolPath = out
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cnitoolErr = err
			return
		}
		gobin, err := os.MkdirTemp(dir, "build-")
		if err != nil {
			cnitoolErr = err
			return
		}
		defer os.RemoveAll(gobin)
		cmd := exec.Command("go", "install", "github.com/containernetworking/cni/cnitool@"+cnitoolVersion)
		cmd.Dir, cmd.Env = gobin, append(os.Environ(), "GOBIN="+gobin, "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			cnitoolErr = fmt.Errorf("go install cnitool@%s: %w: %s", cnitoolVersion, err, b)
			return
		}
		// Renamed into place whole: an interrupted install leaves no
		// partial binary under the cached name.
		if cnitoolErr = os.Rename(filepath.Join(gobin, "cnitool"), out); cnitoolErr == nil {
			cnitoolPath = out
		}
	})
	if cnitoolErr != nil {
		t.Fatal(cnitoolErr)
	}
	return cnitoolPath
}

// requireCmds skips the test unless every command is in PATH; under
// CI=true it fails instead, so CI can never pass by skipping.
func requireCmds(t *testing.T, cmds ...string) {
	t.Helper()
	var missing []string
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("%s not installed (Debian: apt-get install podman runc busybox-static)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI must install them")
	}
	t.Skip(msg + "; under CI=true this is a failure")
}

// cniEnv is what a runtime needs to run the plugin against a daemon: a
// CNI_PATH directory with the binary as `vxswitch`, and a directory with
// the network configuration list (NETCONFPATH).
type cniEnv struct {
	binDir, confDir string
}

func newCNIEnv(t *testing.T, d *topo.Daemon, cniVersion, name, network string) cniEnv {
	t.Helper()
	dir := t.TempDir()
	e := cniEnv{binDir: filepath.Join(dir, "bin"), confDir: filepath.Join(dir, "net.d")}
	for _, p := range []string{e.binDir, e.confDir} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(vxbin(t), filepath.Join(e.binDir, "vxswitch")); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{
  "cniVersion": %q,
  "name": %q,
  "plugins": [{"type": "vxswitch", "network": %q, "socket": %q}]
}
`, cniVersion, name, network, d.Socket())
	if err := os.WriteFile(filepath.Join(e.confDir, name+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// cnitoolRun runs cnitool on host h with the environment e and CNI_ARGS.
func (e cniEnv) cnitool(t *testing.T, h *topo.Host, cniArgs string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), time.Minute)
	defer cancel()
	cmd := h.Command(ctx, cnitool(t), args...)
	cmd.Env = append(os.Environ(), "CNI_PATH="+e.binDir, "NETCONFPATH="+e.confDir, "CNI_ARGS="+cniArgs)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cnitool %s: %w: %s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), nil
}

// removeCNICache removes what libcni caches for an attachment under
// /var/lib/cni if a test left it (DEL removes it): cnitool names the
// container after a hash of the namespace's path.
func removeCNICache(t *testing.T, network, netnsPath string) {
	t.Helper()
	s := sha512.Sum512([]byte(netnsPath))
	id := fmt.Sprintf("cnitool-%x", s[:10])
	t.Cleanup(func() {
		matches, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", network+"-"+id+"-*"))
		for _, m := range matches {
			os.Remove(m)
		}
	})
}

// endpointsOn lists the endpoints of network that d shows, as
// "NAME@VTEP=IP".
func endpointsOn(t *testing.T, d *topo.Daemon, network string) []string {
	t.Helper()
	var out []string
	for _, e := range networkJSON(t, d, network).Endpoints {
		out = append(out, e.Name+"@"+e.VTEP+"="+e.IP)
	}
	sort.Strings(out)
	return out
}

// TestCNITool drives the plugin with the CNI project's cnitool, against a
// daemon with the cluster store on the second of two hosts: ADD returns
// the interface, address, route and DNS, the endpoint is seen on the
// other host by its name, CHECK passes, DEL twice and DEL of a container
// never added succeed, and the endpoint and its address leave every host;
// STATUS and GC (spec 1.1) work.
func TestCNITool(t *testing.T) {
	c := newStoreCluster(t, 2, storeOpts{})
	cli(t, c.ds[0], "network", "create", "mynet", "--subnet", "10.0.0.0/24")
	web := c.tp.MustContainer("web")
	cli(t, c.ds[0], "network", "attach", "mynet", "--netns", web.Name, "--name", "web")
	e := newCNIEnv(t, c.ds[1], "1.1.0", "mynet", "mynet")
	h2 := c.hosts[1]
	pod, never := c.tp.MustContainer("pod"), c.tp.MustContainer("never")
	removeCNICache(t, "mynet", pod.Path)
	removeCNICache(t, "mynet", never.Path)

	if _, err := e.cnitool(t, h2, "", "status", "mynet", pod.Path); err != nil {
		t.Fatal(err)
	}
	out, err := e.cnitool(t, h2, "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1", "add", "mynet", pod.Path)
	if err != nil {
		t.Fatal(err)
	}
	var res current.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	if res.CNIVersion != "1.1.0" || len(res.Interfaces) != 1 || len(res.IPs) != 1 || len(res.Routes) != 1 {
		t.Fatalf("cnitool add result:\n%s", out)
	}
	if i := res.Interfaces[0]; i.Name != "eth0" || i.Mac != "02:42:0a:00:00:03" || i.Mtu != 1450 || i.Sandbox != pod.Path {
		t.Errorf("interface %+v", i)
	}
	if ip := res.IPs[0]; ip.Address.String() != "10.0.0.3/24" || ip.Gateway.String() != "10.0.0.1" {
		t.Errorf("address %s gateway %s, want 10.0.0.3/24 via 10.0.0.1", ip.Address.String(), ip.Gateway)
	}
	if r := res.Routes[0]; r.Dst.String() != "0.0.0.0/0" || r.GW.String() != "10.0.0.1" {
		t.Errorf("route %v", r)
	}
	if !slices.Equal(res.DNS.Nameservers, []string{"10.0.0.1"}) || !slices.Equal(res.DNS.Search, []string{"mynet"}) {
		t.Errorf("DNS %+v, want nameserver 10.0.0.1, search mynet", res.DNS)
	}
	// The endpoint is the cluster's: h1 sees it by its pod name, and
	// the pod reaches h1's container.
	want := []string{"pod1@198.18.0.2=10.0.0.3/24", "web@198.18.0.1=10.0.0.2/24"}
	eventually(t, "h1 sees pod1", func() bool { return slices.Equal(endpointsOn(t, c.ds[0], "mynet"), want) })
	ping(t, pod, "10.0.0.2")

	if _, err := e.cnitool(t, h2, "", "check", "mynet", pod.Path); err != nil {
		t.Errorf("cnitool check after add: %v", err)
	}
	for i := range 2 {
		if _, err := e.cnitool(t, h2, "", "del", "mynet", pod.Path); err != nil {
			t.Fatalf("cnitool del #%d: %v", i+1, err)
		}
	}
	if _, err := e.cnitool(t, h2, "", "del", "mynet", never.Path); err != nil {
		t.Errorf("cnitool del of a container never added: %v", err)
	}
	for i, d := range c.ds {
		eventually(t, fmt.Sprintf("h%d no longer lists pod1", i+1), func() bool {
			return slices.Equal(endpointsOn(t, d, "mynet"), []string{"web@198.18.0.1=10.0.0.2/24"})
		})
	}
	if _, err := e.cnitool(t, h2, "", "check", "mynet", pod.Path); err == nil {
		t.Errorf("cnitool check after del succeeded")
	}
	// The address is free on every host: h1 hands it out again.
	late := c.tp.MustContainer("late")
	if out := cli(t, c.ds[0], "network", "attach", "mynet", "--netns", late.Name); !strings.HasPrefix(out, "10.0.0.3/24 ") {
		t.Errorf("after DEL, h1 handed out %q, want the released 10.0.0.3", out)
	}
	// GC with no valid attachment (what cnitool asks) detaches this
	// configuration's endpoints only.
	if _, err := e.cnitool(t, h2, "", "add", "mynet", pod.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cnitool(t, h2, "", "gc", "mynet", pod.Path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "h1 no longer lists the endpoint GC removed", func() bool {
		return slices.Equal(endpointsOn(t, c.ds[0], "mynet"), []string{late.Name + "@198.18.0.1=10.0.0.3/24", "web@198.18.0.1=10.0.0.2/24"})
	})
	// STATUS of a configuration whose network is gone fails clearly.
	bad := newCNIEnv(t, c.ds[1], "1.1.0", "other", "nonet")
	if _, err := bad.cnitool(t, h2, "", "status", "other", pod.Path); err == nil || !strings.Contains(err.Error(), "vxswitch network nonet (in CNI network configuration other) does not exist") {
		t.Errorf("cnitool status of a missing network: %v", err)
	}
}

// podman runs Debian's podman (4.3, CNI backend) on a host, with every
// file of its own under a temporary directory (containers.conf, storage,
// state, locks) and the test's CNI environment: nothing of the machine's
// /etc/containers or /var/lib/containers is used.
type podman struct {
	t      *testing.T
	host   *topo.Host
	dir    string
	rootfs string
	cgroup string // the containers' cgroup parent, unique to the test
	global []string
	env    []string

	mu      sync.Mutex
	sandbox []string // network namespaces podman made
}

func newPodman(t *testing.T, tp *topo.Topo, h *topo.Host, e cniEnv) *podman {
	t.Helper()
	requireCmds(t, "podman", "runc", "conmon", "busybox")
	dir := t.TempDir()
	p := &podman{t: t, host: h, dir: dir, rootfs: busyboxRootfs(t, filepath.Join(dir, "rootfs")), cgroup: "/" + tp.Prefix() + "-podman"}
	for _, d := range []string{"root", "runroot", "tmp", "volumes"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// runc: Debian's crun refuses this machine's hybrid cgroup layout.
	// No default ulimits: podman's nofile default is above the hard
	// limit here. File locks, not the machine-wide shared-memory ones.
	conf := fmt.Sprintf(`[containers]
default_ulimits = []

[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = %q
volume_path = %q
`, e.binDir, e.confDir, filepath.Join(dir, "tmp"), filepath.Join(dir, "volumes"))
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "runroot"))
	for name, data := range map[string]string{"containers.conf": conf, "storage.conf": storage} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.env = []string{"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"), "CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf")}
	// The same settings as flags too: podman hands its flags, not its
	// environment, to the cleanup process conmon starts.
	p.global = []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"), "--storage-driver", "vfs",
		"--tmpdir", filepath.Join(dir, "tmp"), "--volumepath", filepath.Join(dir, "volumes"), "--network-config-dir", e.confDir,
		"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	t.Cleanup(p.cleanup)
	return p
}

// busyboxRootfs makes a root filesystem of Debian's static busybox and
// its applets at dir.
func busyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		if a := sc.Text(); a != "" && a != "busybox" && !strings.Contains(a, "/") {
			if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// run runs podman in the host's network namespace and returns its
// standard output and error.
func (p *podman) run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := p.host.Command(ctx, "podman", append(slices.Clone(p.global), args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, _, err := p.run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// netnsOf returns the network namespace podman made for a container, and
// removes it at the end of the test if podman did not.
func (p *podman) netnsOf(ctr string) string {
	p.t.Helper()
	path := strings.TrimSpace(p.must("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", ctr))
	if !strings.HasPrefix(path, "/") {
		p.t.Fatalf("podman inspect %s: sandbox %q", ctr, path)
	}
	p.mu.Lock()
	p.sandbox = append(p.sandbox, path)
	p.mu.Unlock()
	return path
}

// cleanup removes every container, the namespaces podman made, the
// cgroups its containers had and any mount left under its directory.
func (p *podman) cleanup() {
	if _, _, err := p.run("rm", "--all", "--force", "--time", "0"); err != nil {
		p.t.Errorf("podman cleanup: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ns := range p.sandbox {
		if nsutil.IsNetns(ns) {
			p.t.Errorf("podman left the container's namespace %s; removing it", ns)
			nsutil.Delete(ns)
		}
	}
	roots, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", strings.TrimPrefix(p.cgroup, "/")))
	for _, r := range roots {
		var dirs []string
		filepath.WalkDir(r, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // children first
			os.Remove(dirs[i])
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var under []string
	for line := range strings.SplitSeq(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], p.dir+"/") {
			under = append(under, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(under)))
	for _, m := range under {
		unix.Unmount(m, unix.MNT_DETACH)
	}
}

// TestPodman: podman on host 2, with the store, runs containers on a CNI
// network mynet of type vxswitch; they reach http://web, an endpoint on
// host 1, by name; podman gets the address and the resolver from the
// result; stopping and removing a container (two DELs) releases its
// endpoint and its address on every host.
func TestPodman(t *testing.T) {
	c := newStoreCluster(t, 2, storeOpts{})
	cli(t, c.ds[0], "network", "create", "mynet", "--subnet", "10.0.0.0/24")
	web := c.tp.MustContainer("web")
	cli(t, c.ds[0], "network", "attach", "mynet", "--netns", web.Name, "--name", "web")
	serveHTTP(t, web, "10.0.0.2", "hello from web on h1\n")
	pm := newPodman(t, c.tp, c.hosts[1], newCNIEnv(t, c.ds[1], "1.0.0", "mynet", "mynet"))

	// One shot, removed when it exits.
	out, _, err := pm.run("run", "--rm", "--name", "once", "--network", "mynet", "--cgroup-parent", pm.cgroup,
		"--rootfs", pm.rootfs, "wget", "-qO-", "http://web/")
	if err != nil || out != "hello from web on h1\n" {
		t.Fatalf("podman run wget http://web: %v %q", err, out)
	}
	eventually(t, "h1 no longer lists once", func() bool {
		return slices.Equal(endpointsOn(t, c.ds[0], "mynet"), []string{"web@198.18.0.1=10.0.0.2/24"})
	})

	// A container that stays: what podman and the store know of it.
	pm.must("run", "-d", "--name", "client", "--network", "mynet", "--cgroup-parent", pm.cgroup, "--rootfs", pm.rootfs, "sleep", "600")
	netns := pm.netnsOf("client")
	if ip := strings.TrimSpace(pm.must("inspect", "--format", "{{(index .NetworkSettings.Networks \"mynet\").IPAddress}}", "client")); ip != "10.0.0.3" {
		t.Errorf("podman says client has %q, want 10.0.0.3", ip)
	}
	want := []string{"client@198.18.0.2=10.0.0.3/24", "web@198.18.0.1=10.0.0.2/24"}
	eventually(t, "h1 sees client", func() bool { return slices.Equal(endpointsOn(t, c.ds[0], "mynet"), want) })
	resolv := pm.must("exec", "client", "cat", "/etc/resolv.conf")
	if !regexpLine(resolv, `^nameserver 10\.0\.0\.1$`) || !regexpLine(resolv, `^search mynet`) {
		t.Errorf("client's resolv.conf:\n%s", resolv)
	}
	if out := pm.must("exec", "client", "wget", "-qO-", "http://web/"); out != "hello from web on h1\n" {
		t.Errorf("wget http://web in client: %q", out)
	}
	if out := pm.must("exec", "client", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.0.0.3/24") {
		t.Errorf("client's eth0: %s", out)
	}

	// stop (DEL), then rm (DEL again): both clean, and the endpoint,
	// its address and its namespace are gone everywhere.
	for _, args := range [][]string{{"stop", "--time", "0", "client"}, {"rm", "client"}} {
		_, errOut, err := pm.run(args...)
		if err != nil || strings.Contains(strings.ToLower(errOut), "error") {
			t.Errorf("podman %s: %v %s", args[0], err, errOut)
		}
	}
	for i, d := range c.ds {
		eventually(t, fmt.Sprintf("h%d no longer lists client", i+1), func() bool {
			return slices.Equal(endpointsOn(t, d, "mynet"), []string{"web@198.18.0.1=10.0.0.2/24"})
		})
	}
	if nsutil.IsNetns(netns) {
		t.Errorf("client's namespace %s is still there after podman rm", netns)
	}
	late := c.tp.MustContainer("late")
	if out := cli(t, c.ds[0], "network", "attach", "mynet", "--netns", late.Name); !strings.HasPrefix(out, "10.0.0.3/24 ") {
		t.Errorf("after podman rm, h1 handed out %q, want the released 10.0.0.3", out)
	}
	var n api.Network
	if err := json.Unmarshal([]byte(cli(t, c.ds[1], "network", "inspect", "mynet")), &n); err != nil {
		t.Fatal(err)
	}
	if n.Netns != "" {
		t.Errorf("h2 kept the network's namespace %s after its last endpoint left", n.Netns)
	}

	t.Run("runtime gone without DEL", func(t *testing.T) { testPodmanGone(t, c, pm) })
}

// testPodmanGone: a container whose runtime goes without a CNI DEL:
// its conmon and then its process are killed (by the PIDs podman
// inspect gives, conmon first so that no cleanup runs) and its namespace
// is removed. vxswitch on its host notices and releases its endpoint
// and address on both hosts; podman rm afterwards still works (its DEL
// finds nothing to detach).
func testPodmanGone(t *testing.T, c *storeCluster, pm *podman) {
	pm.must("run", "-d", "--name", "victim", "--network", "mynet", "--cgroup-parent", pm.cgroup, "--rootfs", pm.rootfs, "sleep", "600")
	netns := pm.netnsOf("victim")
	listed := func(d *topo.Daemon) bool {
		return slices.ContainsFunc(endpointsOn(t, d, "mynet"), func(e string) bool { return strings.HasPrefix(e, "victim@198.18.0.2=") })
	}
	eventually(t, "h1 sees victim at 10.0.0.4", func() bool { return slices.Contains(endpointsOn(t, c.ds[0], "mynet"), "victim@198.18.0.2=10.0.0.4/24") })
	for _, f := range strings.Fields(pm.must("inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}}", "victim")) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 {
			t.Fatalf("podman inspect victim: PID %q", f)
		}
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", pid, err)
		}
	}
	if err := nsutil.Delete(netns); err != nil {
		t.Fatal(err)
	}
	for i, d := range c.ds {
		eventually(t, fmt.Sprintf("h%d no longer lists victim", i+1), func() bool { return !listed(d) })
	}
	if !strings.Contains(c.ds[1].Output(), "container is gone without a detach") {
		t.Errorf("h2 did not log the gone endpoint")
	}
	// Its address is free: the next attach, on the other host, gets the
	// lowest free one, which was victim's.
	if out := cli(t, c.ds[0], "network", "attach", "mynet", "--netns", c.tp.MustContainer("after").Name); !strings.HasPrefix(out, "10.0.0.4/24 ") {
		t.Errorf("after victim went, h1 handed out %q, want victim's 10.0.0.4", out)
	}
	// podman, its conmon gone, finds out at the first rm that the
	// container stopped, and removes it at the next.
	var err error
	for range 3 {
		if _, _, err = pm.run("rm", "--force", "--time", "0", "victim"); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("podman rm of the container whose runtime went: %v", err)
	}
}
