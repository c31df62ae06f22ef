package topo

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Docker engines.
//
// Host.Docker runs a Docker engine (Debian's docker.io, dockerd 20.10) as
// the host's: dockerd in the host's network namespace, so its containers'
// interfaces, its docker_gwbridge and its sandboxes are the host's and
// nothing is configured in the root namespace (--iptables=false,
// --ip-masq=false, --bridge=none). Each engine also has a mount namespace
// of its own, held by a process of the Topo's for the engine's lifetime
// (so that a restarted dockerd finds its containers, with --live-restore):
// a private /run (a tmpfs: the engine's exec root, its containerd's
// sockets and its /run/docker/plugins, where the host's plugin socket is
// bound) and a private /etc/docker (daemon.json, key.json); the network
// namespaces mounted elsewhere are unmounted in it, so it pins none of
// them. Everything else of the engine (data root, API socket, plugin
// directory) is under DockerBase/<prefix>/<host>, outside /run.
//
//	d := h1.MustVXSwitch(topo.DaemonOptions{Binary: bin, Store: e,
//		Args: []string{"--docker-plugin", h1.DockerPlugin("vxswitch"), "--docker-host", h1.DockerHost()}})
//	eng := h1.MustDocker(topo.DockerOptions{Config: map[string]any{"dns": []string{"10.0.0.1"}}})
//	eng.MustImport(topo.BusyboxImage)
//	out, err := eng.CLI(ctx, "run", "--rm", "--network", "mynet", topo.BusyboxImage, "wget", "-qO-", "http://web")
//
// Start the plugin's daemon before the engine: the Topo's Close runs in
// reverse, so the engine removes its containers (calling the plugin)
// before the daemon stops. Close removes every container, stops dockerd
// and every process in the engine's mount namespace (by PID), and removes
// the engine's cgroups (--cgroup-parent /<prefix>-<host>) and files.

// DockerBase is where engines keep their files (DockerBase/<prefix>/...).
// It is outside /run, which each engine sees a tmpfs of its own on.
const DockerBase = "/var/tmp/vxtest-docker"

// BusyboxImage is the image ImportBusybox makes: busybox-static's
// applets in /bin, with /www, /tmp and /etc.
const BusyboxImage = "vxtest/busybox:latest"

// DockerStartTimeout bounds the wait for an engine to answer after it
// started: a guard against a hang, not a measurement.
const DockerStartTimeout = 90 * time.Second

// DockerOptions configure an engine made by Host.Docker.
type DockerOptions struct {
	// Dockerd is the engine's binary ("" : dockerd from PATH).
	Dockerd string
	// CLI is the docker client ("" : /usr/bin/docker, Debian's docker.io
	// client that matches its engine, or else docker from PATH).
	CLI string
	// Config is written as the engine's /etc/docker/daemon.json, e.g.
	// {"dns": ["10.0.0.1"]}. It must not repeat a setting the fixture
	// gives as a flag (data-root, exec-root, pidfile, hosts, iptables,
	// ip-masq, bridge, live-restore, cgroup-parent, userland-proxy).
	Config map[string]any
	// Args are extra dockerd flags.
	Args []string
}

// Engine is a Docker engine on a host.
type Engine struct {
	Host *Host
	// Dir holds the engine's files: data/ (--data-root), etc/ (its
	// /etc/docker), plugins/ (its /run/docker/plugins) and docker.sock.
	Dir  string
	opts DockerOptions

	holder *Proc // holds the mount namespace
	proc   *Proc // dockerd; nil while stopped
	past   strings.Builder
	cgroup string // --cgroup-parent
}

// dockerDir returns (and makes, with its removal registered) the
// directory of host h's engine.
func (h *Host) dockerDir() (string, error) {
	t := h.topo
	base := filepath.Join(DockerBase, t.prefix)
	dir := filepath.Join(base, h.Name)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	t.mu.Lock()
	if !t.hasDockerBase {
		t.hasDockerBase = true
		t.cleanups = append(t.cleanups, func() error {
			err := os.RemoveAll(base)
			os.Remove(DockerBase) // if no other Topo uses it
			return err
		})
	}
	t.mu.Unlock()
	for _, sub := range []string{"data", "etc", "plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// DockerPlugin is the socket path at which a plugin named name is found
// by h's engine (its /run/docker/plugins/NAME.sock): give it to the
// plugin's daemon (vxswitch daemon --docker-plugin PATH), before or after
// the engine starts. It panics if the directory cannot be made.
func (h *Host) DockerPlugin(name string) string {
	dir, err := h.dockerDir()
	if err != nil {
		panic("topo: " + err.Error())
	}
	return filepath.Join(dir, "plugins", name+".sock")
}

// DockerHost is h's engine's API, as docker -H and vxswitch
// --docker-host take it.
func (h *Host) DockerHost() string {
	dir, err := h.dockerDir()
	if err != nil {
		panic("topo: " + err.Error())
	}
	return "unix://" + filepath.Join(dir, "docker.sock")
}

// RequireDocker skips tb unless dockerd (Debian's docker.io) and a static
// busybox (busybox-static) are installed; under CI=true it fails instead.
func RequireDocker(tb testing.TB) {
	tb.Helper()
	_, errD := exec.LookPath("dockerd")
	_, errB := staticBusybox()
	if errD == nil && errB == nil {
		return
	}
	msg := "dockerd and a static busybox are needed (Debian: apt-get install docker.io busybox-static)"
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg + "; CI must install them")
	}
	tb.Skip(msg + "; under CI=true this is a failure")
}

// holderScript makes the engine's mount namespace (see Docker) and then
// holds it. $1 is the engine's directory.
const holderScript = `set -e
findmnt -rn -t nsfs -o TARGET | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
[ -d /etc/docker ] || { echo "no /etc/docker: install docker.io"; exit 1; }
mount -t tmpfs -o mode=0755 vxtest-run /run
mkdir -p /run/docker/plugins
mount --bind "$1/plugins" /run/docker/plugins
mount --bind "$1/etc" /etc/docker
echo ready
exec sleep infinity
`

// Docker starts a Docker engine on h (see the package's Docker section)
// and waits until it answers.
func (h *Host) Docker(opts DockerOptions) (*Engine, error) {
	t := h.topo
	if opts.Dockerd == "" {
		opts.Dockerd = "dockerd"
	}
	if opts.CLI == "" {
		opts.CLI = "docker"
		if _, err := os.Stat("/usr/bin/docker"); err == nil {
			opts.CLI = "/usr/bin/docker"
		}
	}
	dir, err := h.dockerDir()
	if err != nil {
		return nil, err
	}
	e := &Engine{Host: h, Dir: dir, opts: opts, cgroup: "/" + h.Name}
	if opts.Config != nil {
		b, err := json.MarshalIndent(opts.Config, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", "daemon.json"), b, 0o644); err != nil {
			return nil, err
		}
	}
	// Started without cleanups of their own: close stops them in order.
	e.holder, err = h.startEnv(os.Environ(), "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", holderScript, "holder", dir)
	if err != nil {
		return nil, err
	}
	t.onClose(e.close)
	deadline := time.Now().Add(DockerStartTimeout)
	for !strings.Contains(e.holder.Output(), "ready") {
		select {
		case <-e.holder.Done():
			return nil, fmt.Errorf("engine's mount namespace on %s: %s", h.Name, e.holder.Output())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("engine's mount namespace on %s not ready: %s", h.Name, e.holder.Output())
		}
	}
	if err := e.Start(); err != nil {
		return nil, err
	}
	return e, nil
}

// MustDocker is Docker for tests.
func (h *Host) MustDocker(opts ...DockerOptions) *Engine {
	var o DockerOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	e, err := h.Docker(o)
	h.topo.fatal(err, "start a Docker engine on "+h.Name)
	return e
}

// Socket is the engine's API socket.
func (e *Engine) Socket() string { return filepath.Join(e.Dir, "docker.sock") }

// Start starts dockerd (again, after Stop) in the engine's namespaces and
// waits until it answers. Containers left running by Stop are restored.
func (e *Engine) Start() error {
	if e.proc != nil {
		return errors.New("dockerd is running")
	}
	args := []string{"--target", strconv.Itoa(e.holder.PID()), "--mount", "--", e.opts.Dockerd,
		"--data-root", filepath.Join(e.Dir, "data"), "--exec-root", "/run/docker", "--pidfile", filepath.Join(e.Dir, "docker.pid"),
		"-H", "unix://" + e.Socket(), "--iptables=false", "--ip-masq=false", "--bridge=none", "--live-restore",
		"--cgroup-parent", e.cgroup, "--userland-proxy=false"}
	p, err := e.Host.startEnv(os.Environ(), "nsenter", append(args, e.opts.Args...)...)
	if err != nil {
		return err
	}
	e.proc = p
	c := e.apiClient()
	deadline := time.Now().Add(DockerStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.Done():
			e.proc = nil
			return fmt.Errorf("dockerd on %s exited at start: %v; output: %s", e.Host.Name, p.err, tail(p.Output(), 40))
		default:
		}
		if resp, err := c.Get("http://docker/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("dockerd on %s did not answer on %s within %v: %s", e.Host.Name, e.Socket(), DockerStartTimeout, tail(p.Output(), 40))
}

// Stop stops dockerd (SIGTERM, by PID) and waits for it. With
// --live-restore its containers keep running, and Start restores them.
func (e *Engine) Stop() {
	if e.proc == nil {
		return
	}
	e.proc.Stop()
	e.past.WriteString(e.proc.Output())
	e.proc = nil
}

// InMountNS runs a command in the engine's mount namespace, where its
// /run is (its sandboxes' namespaces are mounted under
// /run/docker/netns), and returns its combined output.
func (e *Engine) InMountNS(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--mount=/proc/" + strconv.Itoa(e.holder.PID()) + "/ns/mnt", "--", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s's engine mount namespace: %w: %s", name, strings.Join(args, " "), e.Host.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Output is what dockerd said, every run.
func (e *Engine) Output() string {
	if e.proc == nil {
		return e.past.String()
	}
	return e.past.String() + e.proc.Output()
}

func (e *Engine) apiClient() *http.Client {
	sock := e.Socket()
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
}

// CLI runs the docker client against the engine and returns its output
// (stdout and stderr).
func (e *Engine) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.opts.CLI, append([]string{"-H", "unix://" + e.Socket()}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s on %s: %w: %s", strings.Join(args, " "), e.Host.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ImportBusybox makes BusyboxImage in the engine from busybox-static.
func (e *Engine) ImportBusybox(ctx context.Context) error {
	img, err := busyboxTar()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, e.opts.CLI, "-H", "unix://"+e.Socket(), "import", "-", BusyboxImage)
	cmd.Stdin = bytes.NewReader(img)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker import on %s: %w: %s", e.Host.Name, err, out)
	}
	return nil
}

// MustImportBusybox is ImportBusybox for tests.
func (e *Engine) MustImportBusybox() {
	e.Host.topo.fatal(e.ImportBusybox(context.Background()), "import busybox on "+e.Host.Name)
}

// staticBusybox finds a statically linked busybox (a dynamic one would
// not run in an image without its libraries).
func staticBusybox() (string, error) {
	path, err := exec.LookPath("busybox")
	if err != nil {
		return "", err
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: install busybox-static", path)
		}
	}
	return path, nil
}

// busyboxTar is a root filesystem of busybox and its applets.
func busyboxTar() ([]byte, error) {
	path, err := staticBusybox()
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "etc/", "tmp/", "www/", "proc/", "sys/", "dev/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, a := range strings.Fields(string(list)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	for name, body := range map[string]string{"etc/passwd": "root:x:0:0:root:/:/bin/sh\n", "etc/group": "root:x:0:\n"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// close removes every container (while the plugins are still up, so the
// engine tells them), stops dockerd and every other process in the
// engine's mount namespace, the namespace's holder, and removes the
// engine's cgroups. Its files go with DockerBase/<prefix>.
func (e *Engine) close() error {
	var first error
	if e.proc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if ids, err := e.CLI(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			if _, err := e.CLI(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil && first == nil {
				first = err
			}
		}
		cancel()
		if tb := e.Host.topo.tb; tb != nil && tb.Failed() {
			tb.Logf("dockerd on %s said:\n%s", e.Host.Name, tail(e.Output(), 60))
		}
		e.Stop()
	}
	if e.holder != nil {
		killMountNS(e.holder.PID())
		e.holder.Stop()
	}
	if err := removeCgroups(e.cgroup); err != nil && first == nil {
		first = err
	}
	return first
}

// killMountNS kills (SIGKILL, by PID) every process but holder in the
// mount namespace holder is in, and waits until they are gone: the
// engine's containerd and container shims, and anything their
// containers left.
func killMountNS(holder int) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder))
	if err != nil {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var left []int
		ents, _ := os.ReadDir("/proc")
		for _, ent := range ents {
			pid, err := strconv.Atoi(ent.Name())
			if err != nil || pid == holder {
				continue
			}
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && l == ns {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroupRoots are the mount points of the cgroup hierarchies.
func cgroupRoots() []string {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var roots []string
	for _, line := range strings.Split(string(mounts), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) > 0 && (g[0] == "cgroup" || g[0] == "cgroup2") {
			roots = append(roots, f[4])
		}
	}
	return roots
}

// removeCgroups removes the cgroup directory parent (and what is below
// it, deepest first) from every cgroup hierarchy.
func removeCgroups(parent string) error {
	var first error
	for _, hier := range cgroupRoots() {
		root := filepath.Join(hier, parent)
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// Containers still running (dockerd was stopped and never came
		// back) are the engine's: they go with it.
		for _, dir := range dirs {
			procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, f := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			// A cgroup empties a moment after its last process died.
			var err error
			for range 100 {
				if err = os.Remove(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil && first == nil {
				first = fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
			}
		}
	}
	return first
}

// sweepDocker removes what engines of a killed test binary left: their
// files under DockerBase and their cgroups (named <prefix>-<host>).
func sweepDocker(dead func(name string) bool) {
	if ents, err := os.ReadDir(DockerBase); err == nil {
		for _, e := range ents {
			if dead(e.Name()) {
				dir := filepath.Join(DockerBase, e.Name())
				killMounting(dir)
				os.RemoveAll(dir)
			}
		}
	}
	for _, hier := range cgroupRoots() {
		ents, _ := os.ReadDir(hier)
		for _, e := range ents {
			if e.IsDir() && dead(e.Name()) {
				removeCgroups("/" + e.Name())
			}
		}
	}
}

// killMounting kills (SIGKILL, by PID) the processes whose mount
// namespace has something of dir mounted: an engine's containerd and
// container shims, which outlive a test binary that was killed (their
// parent death signal went with dockerd, which they do not have). Its
// containers' own processes go with its cgroups.
func killMounting(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
		if err == nil && bytes.Contains(mi, []byte(" "+dir+"/")) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
