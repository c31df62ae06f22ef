// Package nsutil holds the network-namespace mechanics every other part of
// vxswitch needs: running a function inside a namespace, and creating,
// naming and deleting namespaces that outlive the process that made them.
//
// A network namespace belongs to an OS thread, not to a goroutine, and the Go
// scheduler moves goroutines between threads. Do therefore runs its function
// on a fresh goroutine that locks its thread, enters the namespace and never
// unlocks: when that goroutine returns, the runtime terminates the thread, so
// a thread that was switched into another namespace can never be reused by
// unrelated code, whatever the function did (the containernetworking `ns.Do`
// pattern, made safe by Go's thread-exit-on-locked-goroutine rule).
//
// The one exception is the process's main thread, which the runtime cannot
// end: a goroutine exiting locked to it wedges it instead, and it would
// stay in the namespace for good, keeping the namespace alive after it was
// deleted and making /proc/PID/ns/net (the main thread's, what `nsenter -t
// PID -n` enters) name it. On the main thread Do therefore returns to the
// network namespace it started in, before Do returns, and unlocks; only
// if that fails does it leave the thread wedged. Only the network
// namespace is put back there, so fn must change nothing else about its
// thread (none of this package's callers do).
//
// Sockets and file descriptors opened inside Do keep their namespace after
// Do returns: a UDP socket made in a host namespace can be read from any
// goroutine.
package nsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultDir is where `ip netns` keeps named namespaces.
const DefaultDir = "/run/netns"

// ErrNotNetns is returned for a path that exists but is not a network
// namespace (for example an empty file left behind by a crashed program).
var ErrNotNetns = errors.New("not a network namespace")

// ErrNotFound is returned when a namespace name or path does not exist.
var ErrNotFound = errors.New("network namespace not found")

// Do runs fn on a dedicated OS thread that has entered the network namespace
// at path. An empty path runs fn in the caller's namespace (still on a
// dedicated thread). Goroutines started by fn do not inherit the namespace.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Not unlocked (except on the main thread, see lockedDo): the
		// thread exits with this goroutine, so its namespace cannot leak
		// into the rest of the program.
		runtime.LockOSThread()
		lockedDo(path, fn, errc)
	}()
	return <-errc
}

// lockedDo is Do's work, on a thread its goroutine has locked: it sends
// fn's result (or the failure to enter) on errc. On the main thread it
// then goes back to the thread's first namespace and unlocks, if it can.
func lockedDo(path string, fn func() error, errc chan<- error) {
	back := -1
	if unix.Gettid() == unix.Getpid() {
		if fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			back = fd
			defer unix.Close(fd)
		}
	}
	if path != "" {
		if err := enter(path); err != nil {
			// The thread's namespace did not change.
			if back >= 0 {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
	}
	err := fn()
	// Back before Do returns, so that its caller never sees the main
	// thread (and /proc/PID/ns/net) still in the namespace.
	if back >= 0 && unix.Setns(back, unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	errc <- err
}

func enter(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("enter netns %s: %w", path, ErrNotFound)
		}
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("enter netns %s: %w", path, ErrNotNetns)
		}
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	return nil
}

// IsNetns reports whether path is a mounted network namespace (or any nsfs
// file, such as /proc/PID/ns/net).
func IsNetns(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// Resolve turns what a user typed into a namespace path: a name as listed by
// `ip netns` (looked up in DefaultDir) or a path (anything containing a
// slash). It fails with ErrNotFound or ErrNotNetns.
func Resolve(nameOrPath string) (string, error) {
	if nameOrPath == "" {
		return "", fmt.Errorf("empty netns name: %w", ErrNotFound)
	}
	p := nameOrPath
	if !strings.Contains(p, "/") {
		p = filepath.Join(DefaultDir, p)
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("netns %q: %w", nameOrPath, ErrNotFound)
	}
	if !IsNetns(p) {
		return "", fmt.Errorf("netns %q (%s): %w", nameOrPath, p, ErrNotNetns)
	}
	return p, nil
}

// Create makes a new, empty network namespace and bind-mounts it at
// dir/name, so that it lives on after this process exits (what `ip netns
// add` does). dir is created if needed. When dir is DefaultDir it is also
// turned into a shared mount point, exactly as iproute2 does, so that
// namespaces made here and by `ip netns add` behave the same; other
// directories (a daemon's run dir, a test's temporary dir) are left as they
// are, as Docker leaves /var/run/docker/netns. It fails with os.ErrExist if
// dir/name exists.
func Create(dir, name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return "", fmt.Errorf("bad netns name %q", name)
	}
	if filepath.Clean(dir) == DefaultDir {
		if err := ensureSharedDir(dir); err != nil {
			return "", err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns %s: %w", path, err)
	}
	f.Close()

	err = Do("", func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", self, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("create netns %s: %w", path, err)
	}
	return path, nil
}

// Delete unmounts a namespace made by Create and removes its file. The
// namespace itself disappears when nothing else holds it (no process inside,
// no open descriptor). Deleting a path that does not exist is not an error.
func Delete(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// ensureSharedDir makes dir a mount point with shared propagation, exactly
// like iproute2's netns_add: bind it onto itself when it is not a mount point
// yet, then mark it shared.
func ensureSharedDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet.
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s onto itself: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// Handle returns a netlink handle whose requests act in the namespace at
// path (the caller's when path is empty), without switching any thread.
// The caller closes it.
func Handle(path string) (*netlink.Handle, error) {
	if path == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("open netns %s: %w", path, ErrNotFound)
		}
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in netns %s: %w", path, err)
	}
	return h, nil
}

// SetSysctl writes value to the sysctl key of the namespace at path. As
// with sysctl(8), the key is dotted ("net.ipv6.conf.all.disable_ipv6"),
// or slashed where a component holds a dot, as an interface name may
// ("net/ipv6/conf/eth0.100/disable_ipv6"). Network sysctls under
// /proc/sys/net belong to the namespace of the thread that opens them, so
// this needs no remount of /proc or /sys.
func SetSysctl(path, key, value string) error {
	return Do(path, func() error {
		rel := key
		if !strings.Contains(key, "/") {
			rel = strings.ReplaceAll(key, ".", "/")
		}
		f := filepath.Join("/proc/sys", rel)
		if err := os.WriteFile(f, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, Describe(path), err)
		}
		return nil
	})
}

// Describe names the namespace at path for messages: the path, or "the
// current netns" for the empty path that stands for the caller's.
func Describe(path string) string {
	if path == "" {
		return "the current netns"
	}
	return path
}

// Inode returns the identity of the namespace at path (its nsfs inode
// number, what `ls -i` and `readlink /proc/PID/ns/net` show), so a caller
// can tell later whether a path still names the same namespace.
func Inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
