package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// etcNetns is where `ip netns exec NS` finds files it bind-mounts over
// /etc for NS's commands (so /etc/netns/NS/resolv.conf becomes their
// /etc/resolv.conf).
var etcNetns = "/etc/netns"

// resolvMarker starts every resolv.conf vxswitch writes, so that it only
// ever removes or rewrites its own; resolvOwner, on the next line, names
// the daemon (by its run dir) that wrote it, so that the daemon finds
// its own after a crash (sweepResolvConfs) and only those.
const (
	resolvMarker = "# written by vxswitch for network "
	resolvOwner  = "# by the vxswitch daemon of run dir "
)

// writeResolvConf points a named namespace's resolver at the network's
// DNS server (its gateway), with the network as search domain, as Docker
// does for its containers: `ip netns exec NS getent hosts web` then finds
// endpoint web on any host. A namespace that is not named (a path such as
// /proc/PID/ns/net) gets nothing, and one that has a resolv.conf of its
// own keeps it. It returns the file it wrote, or "".
func (d *Daemon) writeResolvConf(netnsPath string, n *network) (string, error) {
	if filepath.Dir(netnsPath) != nsutil.DefaultDir || !n.Gateway.IsValid() {
		return "", nil
	}
	dir := filepath.Join(etcNetns, filepath.Base(netnsPath))
	path := filepath.Join(dir, "resolv.conf")
	if old, err := os.ReadFile(path); err == nil && !bytes.HasPrefix(old, []byte(resolvMarker)) {
		return "", nil // the user's: leave it
	} else if err == nil {
		return "", nil // written for another network this namespace is on
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	data := fmt.Sprintf("%s%s; removed when it detaches\n%s%s\nnameserver %s\nsearch %s\n", resolvMarker, n.Name, resolvOwner, d.cfg.RunDir, n.Gateway, n.Name)
	if err := replaceFile(path, []byte(data), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// removeResolvConf removes a resolv.conf that writeResolvConf wrote for
// network, and its directory if that is empty then.
func removeResolvConf(path, network string) {
	if path == "" {
		return
	}
	old, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(old, []byte(resolvMarker+network+";")) {
		return
	}
	if err := os.Remove(path); err == nil || errors.Is(err, os.ErrNotExist) {
		os.Remove(filepath.Dir(path)) // only if empty
	}
}

// sweepResolvConfs removes the resolv.conf files this daemon wrote that
// no endpoint names: written by an attach a crash cut short before it
// was saved, or kept by a detach cut short after. Files of other daemons
// (another run dir) and of the user are left alone.
func (d *Daemon) sweepResolvConfs() {
	owned := map[string]bool{}
	for _, n := range d.nets {
		for _, ep := range n.Endpoints {
			owned[ep.ResolvConf] = true
		}
	}
	paths, _ := filepath.Glob(filepath.Join(etcNetns, "*", "resolv.conf"))
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if owned[path] || err != nil || !bytes.Contains(b, []byte("\n"+resolvOwner+d.cfg.RunDir+"\n")) {
			continue
		}
		rest, ok := bytes.CutPrefix(b, []byte(resolvMarker))
		network, _, _ := bytes.Cut(rest, []byte(";"))
		if !ok {
			continue
		}
		removeResolvConf(path, string(network))
		d.log.Warn("removed a resolv.conf no endpoint owns: left by an attach or detach a crash interrupted", zap.String("file", path))
	}
}
