package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// StateFile is the plugin's file under the daemon's state directory: the
// Docker networks it was asked to create, which the engine does not tell
// again after either daemon restarts. Endpoints are the daemon's (its
// state file), keyed by Docker's endpoint IDs.
const StateFile = "docker.json"

type state struct {
	Networks []netRecord `json:"networks"`
}

// netRecord is a Docker network of this engine: the cluster network it
// maps to is the one named as the Docker network (Name, read from the
// engine after CreateNetwork, since the driver is not told).
type netRecord struct {
	ID      string       `json:"id"` // Docker's network ID
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	MTU     int          `json:"mtu,omitempty"` // -o com.docker.network.driver.mtu, for a network it creates
	Name    string       `json:"name,omitempty"`
}

func loadState(dir string) (state, error) {
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("read %s: %w", path, err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return state{}, fmt.Errorf("%s is corrupt (%v); move it away and recreate the Docker networks of this engine", path, err)
	}
	return st, nil
}

// saveState replaces the file atomically (a temporary file flushed and
// renamed over it, then the directory flushed), as the daemon saves its
// own: a crash leaves the old file or the new one.
func saveState(dir string, st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(dir, "."+StateFile+".*")
	if err != nil {
		return fmt.Errorf("save %s: %w", StateFile, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, StateFile))
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", StateFile, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save %s: %w", StateFile, err)
	}
	defer d.Close()
	return d.Sync()
}
