package nsutil_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// ours is the namespace of a fresh thread of this process (not
// /proc/self, which is the main thread's).
func ours(t *testing.T) uint64 {
	var ino uint64
	if err := nsutil.Do("", func() (err error) { ino, err = nsutil.Inode("/proc/thread-self/ns/net"); return }); err != nil {
		t.Fatal(err)
	}
	return ino
}

func TestNamespaces(t *testing.T) {
	topo.RequireRoot(t)
	self := ours(t)
	dir := t.TempDir()
	path, err := nsutil.Create(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer nsutil.Delete(path)
	if _, err := nsutil.Create(dir, "a"); !errors.Is(err, os.ErrExist) {
		t.Errorf("second Create: %v, want ErrExist", err)
	}
	if !nsutil.IsNetns(path) || nsutil.IsNetns(dir) {
		t.Error("IsNetns")
	}
	ino, err := nsutil.Inode(path)
	if err != nil || ino == self {
		t.Errorf("Inode %d, %v: want a namespace other than ours (%d)", ino, err, self)
	}

	// Do runs in the namespace: it has only lo, and the caller's
	// namespace is untouched afterwards.
	var names []string
	err = nsutil.Do(path, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	})
	if err != nil || len(names) != 1 || names[0] != "lo" {
		t.Errorf("interfaces in the new namespace: %v, %v", names, err)
	}
	if ours(t) != self {
		t.Error("the caller's thread changed namespace")
	}

	if p, err := nsutil.Resolve(path); err != nil || p != path {
		t.Errorf("Resolve(%s) = %s, %v", path, p, err)
	}
	if _, err := nsutil.Resolve("no-such-netns-here"); !errors.Is(err, nsutil.ErrNotFound) {
		t.Errorf("Resolve of a missing name: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	if _, err := nsutil.Resolve(plain); !errors.Is(err, nsutil.ErrNotNetns) {
		t.Errorf("Resolve of a plain file: %v", err)
	}
	if err := nsutil.Do(plain, func() error { return nil }); !errors.Is(err, nsutil.ErrNotNetns) {
		t.Errorf("Do in a plain file: %v", err)
	}

	if err := nsutil.Delete(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("Delete left the file")
	}
	if err := nsutil.Delete(path); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

// SetSysctl writes in the namespace given, with a dotted key or a slashed
// one whose interface name holds a dot, and leaves the caller's alone.
func TestSetSysctl(t *testing.T) {
	path := topo.TempNS(t, "sysctl")
	h, err := nsutil.Handle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v.1"}, PeerName: "v.2"}); err != nil {
		t.Fatal(err)
	}
	read := func(ns, f string) string {
		var b []byte
		if err := nsutil.Do(ns, func() (err error) { b, err = os.ReadFile(f); return }); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	const fwd = "/proc/sys/net/ipv6/conf/all/forwarding"
	before := read("", fwd)
	other := "1" // not the caller's value, so that a write there shows
	if before == "1" {
		other = "0"
	}
	for _, tc := range []struct{ key, file, value string }{
		{"net.ipv6.conf.all.forwarding", fwd, other},
		{"net/ipv6/conf/v.1/accept_ra", "/proc/sys/net/ipv6/conf/v.1/accept_ra", "0"},
		{"net/ipv6/conf/v.1/accept_ra", "/proc/sys/net/ipv6/conf/v.1/accept_ra", "2"},
	} {
		if err := nsutil.SetSysctl(path, tc.key, tc.value); err != nil {
			t.Fatalf("SetSysctl %s: %v", tc.key, err)
		}
		if got := read(path, tc.file); got != tc.value {
			t.Errorf("%s = %q after setting %q", tc.file, got, tc.value)
		}
	}
	if after := read("", fwd); after != before {
		t.Errorf("the caller's %s changed from %s to %s", fwd, before, after)
	}
}
