package topo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// ModulePath is vxswitch's Go module.
const ModulePath = "github.com/vxswitch/vxswitch"

// ErrNoModule is returned by BuildBinary when it cannot find vxswitch's
// source.
var ErrNoModule = errors.New("cannot find the source of module " + ModulePath)

// BuildBinary builds the vxswitch command into dir and returns its path.
// Tests build it once per package run (go build caches the work).
//
// It builds the vxswitch this program was built with, in that module's
// own directory and with its own go.mod and go.sum: the module cache's
// copy of the version required, the directory a replace directive names,
// or the working tree when vxswitch is the main module. A module that
// uses this package therefore needs no go.sum entries for the command's
// own dependencies (cobra and the rest), which `go mod tidy` does not
// add for it. It needs the go command in PATH (`go test` puts its own
// there).
func BuildBinary(dir string) (string, error) {
	src, version, err := moduleSource()
	if err != nil {
		return "", err
	}
	out, err := filepath.Abs(filepath.Join(dir, "vxswitch"))
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", out}
	if version != "" {
		args = append(args, "-ldflags", "-X main.version="+version)
	}
	cmd := exec.Command("go", append(args, "./cmd/vxswitch")...)
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build vxswitch in %s: %w: %s", src, err, bytes.TrimSpace(b))
	}
	return out, nil
}

// A source is where BuildBinary finds vxswitch, as the build information
// of the running program says.
type source struct {
	// dir is the module's directory when the build information names
	// one (a replace directive with an absolute path).
	dir string
	// path and version name a module version to download (into the
	// module cache, where it normally is already) when dir is "".
	path, version string
	// goList: neither; ask `go list -m` in the working directory, which
	// knows the main module's directory and relative replace targets.
	goList bool
}

// sourceOf picks vxswitch's source out of a program's build information.
func sourceOf(bi *debug.BuildInfo) source {
	if bi == nil {
		return source{goList: true}
	}
	m, main := &bi.Main, true
	if m.Path != ModulePath {
		m, main = nil, false
		for _, d := range bi.Deps {
			if d.Path == ModulePath {
				m = d
				break
			}
		}
	}
	if m == nil {
		return source{goList: true}
	}
	if r := m.Replace; r != nil {
		if r.Version == "" { // a directory
			if filepath.IsAbs(r.Path) {
				return source{dir: r.Path}
			}
			return source{goList: true}
		}
		m = r
	}
	// A main module built in its own checkout (version "(devel)", or
	// stamped from version control since Go 1.24): build that checkout.
	if m.Version == "" || m.Version == "(devel)" || main && vcsStamped(bi) {
		return source{goList: true}
	}
	return source{path: m.Path, version: m.Version}
}

func vcsStamped(bi *debug.BuildInfo) bool {
	for _, s := range bi.Settings {
		if s.Key == "vcs" {
			return true
		}
	}
	return false
}

// moduleSource returns vxswitch's source directory, and the version to
// stamp into the binary ("" for a working tree).
func moduleSource() (dir, version string, err error) {
	bi, _ := debug.ReadBuildInfo()
	s := sourceOf(bi)
	switch {
	case s.dir != "":
		return s.dir, "", nil
	case !s.goList:
		dir, err := goModDir(os.TempDir(), "mod", "download", "-json", s.path+"@"+s.version)
		return dir, s.version, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	dir, err = goModDir(wd, "list", "-m", "-json", ModulePath)
	return dir, "", err
}

// goModDir runs a go command that prints a module as JSON, in dir, and
// returns the module's directory.
func goModDir(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var m struct {
		Dir   string
		Error any // a string from go mod download, an object from go list
	}
	json.Unmarshal(out, &m)
	if err == nil && m.Dir != "" {
		return m.Dir, nil
	}
	why := strings.TrimSpace(stderr.String())
	switch e := m.Error.(type) {
	case string:
		why = e
	case map[string]any:
		why = fmt.Sprint(e["Err"])
	}
	if why == "" {
		why = fmt.Sprint(err)
	}
	return "", fmt.Errorf("%w: go %s: %s (run it from a module that requires %s, or give DaemonOptions.Binary a vxswitch built with `make build`)",
		ErrNoModule, strings.Join(args, " "), why, ModulePath)
}
