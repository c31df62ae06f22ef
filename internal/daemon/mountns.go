package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrPrivateMountNamespace is CheckMountNamespace's refusal.
var ErrPrivateMountNamespace = errors.New("the daemon is in a private mount namespace")

// CheckMountNamespace refuses to run where the networks' namespaces the
// daemon bind-mounts under runDir/netns would be seen by no one else: in a
// mount namespace of its own whose mounts do not propagate back to the
// host's (PID 1's). `ip netns exec NS vxswitch daemon` does exactly that
// (it unshares the mount namespace and makes every mount a slave to
// remount /sys): the namespace files the daemon prints are then unusable
// from outside, and when it stops they go, and its containers' interfaces
// with them. `nsenter --net=/run/netns/NS` changes the network namespace
// alone.
//
// The mount that holds runDir/netns is looked for among PID 1's: the same
// mount (same ID) means the same mount namespace; otherwise a mount of
// PID 1 in its shared peer group (shared:N, or a slave of it, master:N)
// means mounts made under it propagate there, as with systemd's default
// shared /run. When PID 1's mounts cannot be read it does not refuse.
func CheckMountNamespace(runDir string) error {
	self, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	pid1, err := os.ReadFile("/proc/1/mountinfo")
	if err != nil {
		return nil
	}
	dir := filepath.Join(runDir, "netns")
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	// The nearest existing ancestor, with symbolic links (/var/run)
	// resolved: a directory not made yet will be on its mount.
	for p := dir; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dir = filepath.Join(r, strings.TrimPrefix(dir, p))
			break
		}
		if p == "/" {
			break
		}
	}
	if mountVisible(self, pid1, dir) {
		return nil
	}
	return fmt.Errorf("%w (started with `ip netns exec`?): the network namespaces it keeps under %s would be invisible outside it and gone when it stops; start it with `nsenter --net=/run/netns/NAME vxswitch daemon ...` instead", ErrPrivateMountNamespace, filepath.Join(runDir, "netns"))
}

// mount is a line of /proc/PID/mountinfo.
type mount struct {
	id     int
	point  string
	shared int // peer group (shared:N), 0 if not shared
	master int // peer group it receives from (master:N), 0 if none
}

// parseMountinfo reads /proc/PID/mountinfo (proc(5)).
func parseMountinfo(b []byte) []mount {
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 7 {
			continue
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		m := mount{id: id, point: unescapeMount(f[4])}
		for _, o := range f[6:] {
			if o == "-" {
				break
			}
			if v, ok := strings.CutPrefix(o, "shared:"); ok {
				m.shared, _ = strconv.Atoi(v)
			} else if v, ok := strings.CutPrefix(o, "master:"); ok {
				m.master, _ = strconv.Atoi(v)
			}
		}
		out = append(out, m)
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountVisible reports whether what is mounted under dir in the mount
// namespace self describes is seen in the one pid1 describes.
func mountVisible(self, pid1 []byte, dir string) bool {
	var holder *mount
	mine := parseMountinfo(self)
	for i := range mine {
		m := &mine[i]
		if under(dir, m.point) && (holder == nil || len(m.point) >= len(holder.point)) {
			holder = m // the last of equal length is on top
		}
	}
	if holder == nil {
		return true // nothing to go on
	}
	for _, m := range parseMountinfo(pid1) {
		if m.id == holder.id {
			return true // the same mount: the same namespace
		}
		if holder.shared != 0 && (m.shared == holder.shared || m.master == holder.shared) {
			return true // mounts under it propagate to PID 1's
		}
	}
	return false
}

// under reports whether path is mountpoint or below it.
func under(path, mountpoint string) bool {
	if mountpoint == "/" {
		return true
	}
	return path == mountpoint || strings.HasPrefix(path, mountpoint+"/")
}
