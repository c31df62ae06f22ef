package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// stateVersion is bumped when the file format changes incompatibly.
// Version 2 adds the IPv6 subnet and addresses of dual-stack networks; it
// is written only when there is one, so that a vxswitch that knows only
// version 1 refuses such a file (instead of dropping what it does not
// know on its next save) and still reads an IPv4-only one.
const (
	stateVersion     = 1
	stateVersionIPv6 = 2
)

// stateFileName is the daemon's configuration, under the state dir.
const stateFileName = "state.json"

// state is everything the user configured: what a restart restores.
// Learned MAC entries and counters are not configuration and are not kept.
type state struct {
	Version  int        `json:"version"`
	Networks []netState `json:"networks"`
	// loaded says the state came from a file (not a first start).
	loaded bool
}

type netState struct {
	// Cluster is set for a network of the cluster store: this host keeps
	// it (a copy of the store's record, so that it comes back while etcd
	// is away) only while it has endpoints or static configuration here.
	Cluster bool `json:"cluster,omitempty"`
	// Revision is the store's create revision of a cluster network.
	Revision int64        `json:"revision,omitempty"`
	Name     string       `json:"name"`
	VNI      uint32       `json:"vni"`
	Subnet   netip.Prefix `json:"subnet"`
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway  netip.Addr   `json:"gateway,omitzero"`
	MTU      int          `json:"mtu"`
	// Egress gives every endpoint a way out through the host's gateway
	// bridge; Internal networks have no default route at all.
	Egress   bool `json:"egress,omitempty"`
	Internal bool `json:"internal,omitempty"`
	// MaxLearned is the network's own bound on learned MAC entries;
	// 0: the daemon's --max-learned.
	MaxLearned int           `json:"max_learned,omitempty"`
	Peers      []netip.Addr  `json:"peers,omitempty"`
	Static     []staticEntry `json:"static_fdb,omitempty"`
	Endpoints  []epState     `json:"endpoints,omitempty"`
}

type staticEntry struct {
	MAC  string       `json:"mac"`
	VTEP netip.Addr   `json:"vtep"`
	IPs  []netip.Addr `json:"ips,omitempty"` // answered by the ARP/ND proxy
}

// epState is an endpoint of this host. Its life has up to three steps
// (see ops.go): created (ID, addresses and MAC held, nothing plumbed:
// Netns, Sandbox and Veth empty), joined (plumbed into Netns, or handed
// off to a runtime's Sandbox), and left again. `network attach` does the
// first two at once. An endpoint with an empty Netns has no namespace of
// this host's to watch: it is not joined yet, or a runtime (Docker) owns
// its namespace and says when it goes.
type epState struct {
	// ID names the endpoint (in the cluster store too); Name and Aliases
	// are its DNS names.
	ID      string   `json:"id,omitempty"`
	Name    string   `json:"name,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	// Netns is the namespace the endpoint is plumbed into; empty while
	// it is not, or when it was handed off (Sandbox).
	Netns string `json:"netns"`
	// NetnsInode identifies the namespace Netns named at attach time: a
	// path like /proc/PID/ns/net may later name another process's.
	NetnsInode uint64       `json:"netns_inode,omitempty"`
	IfName     string       `json:"ifname"`
	IP         netip.Prefix `json:"ip"`
	IP6        netip.Prefix `json:"ip6,omitzero"`
	MAC        string       `json:"mac"`
	Veth       string       `json:"veth"`
	// ResolvConf is the /etc/netns/NS/resolv.conf attach wrote (and
	// detach removes), if it wrote one.
	ResolvConf string `json:"resolv_conf,omitempty"`
	// EgressIP and EgressVeth: the endpoint's interface on the host's
	// egress bridge (networks made with --egress).
	EgressIP   netip.Prefix `json:"egress_ip,omitzero"`
	EgressVeth string       `json:"egress_veth,omitempty"`
	// Sandbox is set while the endpoint is joined by hand-off: the
	// runtime's name for the container's namespace (Docker's
	// SandboxKey), for display only. Peer is the container end of the
	// veth pair as it was made, in the daemon's namespace, for the
	// runtime to move; the pair (Veth) stays until the endpoint is
	// deleted, since the runtime moves that end back at leave.
	Sandbox string `json:"sandbox,omitempty"`
	Peer    string `json:"peer,omitempty"`
	// Reserved is when a provisional endpoint was made to hold an
	// address before the endpoint that will use it exists (Docker's
	// IPAM asks first); zero for every other endpoint. A reservation
	// that is not claimed within Config.ReservationTTL is released.
	Reserved time.Time `json:"reserved,omitzero"`
}

// joined reports whether the endpoint is plumbed or handed off: only
// joined endpoints are published and answer DNS.
func (e epState) joined() bool { return e.Netns != "" || e.Sandbox != "" }

// holder describes the endpoint in messages about what it holds.
func (e epState) holder() string {
	if e.Netns != "" {
		return "netns " + e.Netns
	}
	return "endpoint " + e.ID
}

// prevFileName is the state file as it was before the last save: the
// last good copy, for an operator whose state.json was damaged outside
// vxswitch (a disk error, a hand edit).
const prevFileName = stateFileName + ".prev"

// tmpPattern names saveState's temporary files; one left by a crash
// between its creation and its rename is removed by loadState.
const tmpPattern = "." + stateFileName + ".*"

// loadState reads the state file. A file that is empty, truncated, not
// JSON or inconsistent (a network or an endpoint listed twice) is refused
// with one line that names the last good copy, if there is one, and the
// command that puts it back: the daemon never starts from a state it
// cannot trust, and never writes over the damaged file.
func loadState(dir string) (state, error) {
	path := filepath.Join(dir, stateFileName)
	if tmps, err := filepath.Glob(filepath.Join(dir, tmpPattern)); err == nil {
		for _, t := range tmps {
			os.Remove(t) // never renamed: the save it was for did not happen
		}
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return state{Version: stateVersion}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("read state: %w", err)
	}
	st, err := parseState(data)
	if errors.Is(err, errVersion) {
		return state{}, fmt.Errorf("state file %s has version %d, this vxswitch reads versions %d and %d", path, st.Version, stateVersion, stateVersionIPv6)
	}
	if err != nil {
		return state{}, fmt.Errorf("state file %s is corrupt (%v); %s", path, err, recovery(dir))
	}
	st.loaded = true
	return st, nil
}

// errVersion: a state file of a version this vxswitch does not read.
var errVersion = errors.New("unknown state file version")

// parseState decodes and checks a state file's contents.
func parseState(data []byte) (state, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return state{}, errors.New("it is empty")
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return state{}, err
	}
	if st.Version != stateVersion && st.Version != stateVersionIPv6 {
		return st, errVersion
	}
	names, vnis := map[string]bool{}, map[uint32]bool{}
	for _, n := range st.Networks {
		if names[n.Name] || vnis[n.VNI] {
			return state{}, fmt.Errorf("network %s or VNI %d is listed twice", n.Name, n.VNI)
		}
		names[n.Name], vnis[n.VNI] = true, true
		ids, ips := map[string]bool{}, map[netip.Addr]bool{}
		for _, ep := range n.Endpoints {
			if (ep.ID != "" && ids[ep.ID]) || (ep.IP.IsValid() && ips[ep.IP.Addr()]) {
				return state{}, fmt.Errorf("network %s lists endpoint %s or address %s twice", n.Name, ep.ID, ep.IP.Addr())
			}
			ids[ep.ID], ips[ep.IP.Addr()] = ep.ID != "", true
		}
	}
	return st, nil
}

// recovery says what an operator can do about a damaged state file in
// dir: start from the last good copy if there is one, or from nothing.
func recovery(dir string) string {
	path, prev := filepath.Join(dir, stateFileName), filepath.Join(dir, prevFileName)
	data, err := os.ReadFile(prev)
	if err == nil {
		if _, err = parseState(data); err == nil {
			mod := "at an unknown time"
			if fi, err := os.Stat(prev); err == nil {
				mod = fi.ModTime().UTC().Format(time.RFC3339)
			}
			return fmt.Sprintf("the copy before the last change, saved %s, is %s: `mv %s %s` to start from it, or move %s away to start with no networks (their namespaces are kept)",
				mod, prev, prev, path, path)
		}
	}
	return fmt.Sprintf("there is no good earlier copy (%s); move %s away to start with no networks (their namespaces are kept)", prev, path)
}

// saveState replaces the state file atomically: the new contents are written
// to a temporary file in the same directory, flushed to disk, and renamed
// over the old file, and the directory is flushed, so a crash at any moment
// leaves either the old or the new file, never a torn one. The old file
// stays as state.json.prev (a hard link made before the rename: no copy,
// and state.json exists throughout).
func saveState(dir string, st state) error {
	st.Version = stateVersion
	for _, n := range st.Networks {
		if n.Subnet6.IsValid() {
			st.Version = stateVersionIPv6
		}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(dir, "."+stateFileName+".*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	crashpoint("save:written")
	path, prev := filepath.Join(dir, stateFileName), filepath.Join(dir, prevFileName)
	if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Link(path, prev); err != nil && !errors.Is(err, os.ErrNotExist) {
		// A file system without hard links (vfat, some FUSE ones): a
		// copy does; the previous copy is a convenience, never a reason
		// to refuse a change (a read-only directory fails the rename).
		if old, rerr := os.ReadFile(path); rerr == nil {
			os.WriteFile(prev, old, 0o600)
		}
	}
	crashpoint("save:linked")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
