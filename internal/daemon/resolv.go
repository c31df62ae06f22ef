package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// etcNetns is where `ip netns exec NS` finds files it bind-mounts over
// /etc for NS's commands (so /etc/netns/NS/resolv.conf becomes their
// /etc/resolv.conf).
var etcNetns = "/etc/netns"

// resolvMarker starts every resolv.conf vxswitch writes, so that it only
// ever removes or rewrites its own.
const resolvMarker = "# written by vxswitch for network "

// writeResolvConf points a named namespace's resolver at the network's
// DNS server (its gateway), with the network as search domain, as Docker
// does for its containers: `ip netns exec NS getent hosts web` then finds
// endpoint web on any host. A namespace that is not named (a path such as
// /proc/PID/ns/net) gets nothing, and one that has a resolv.conf of its
// own keeps it. It returns the file it wrote, or "".
func writeResolvConf(netnsPath string, n *network) (string, error) {
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
	data := fmt.Sprintf("%s%s; removed when it detaches\nnameserver %s\nsearch %s\n", resolvMarker, n.Name, n.Gateway, n.Name)
	tmp := path + ".vxswitch"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
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
