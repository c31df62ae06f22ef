package topo

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// Where BuildBinary looks for vxswitch, by what the running program's
// build information says about it.
func TestSourceOf(t *testing.T) {
	dep := func(m debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "example.com/user", Version: "(devel)"}, Deps: []*debug.Module{
			{Path: "github.com/spf13/cobra", Version: "v1.10.2"}, &m}}
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want source
	}{
		{"no build information", nil, source{goList: true}},
		{"vxswitch's own tests", &debug.BuildInfo{Main: debug.Module{Path: ModulePath, Version: "(devel)"}}, source{goList: true}},
		{"a checkout stamped by version control", &debug.BuildInfo{Main: debug.Module{Path: ModulePath, Version: "v0.0.0-20261201000000-0123456789ab+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}}}, source{goList: true}},
		{"go install vxswitch@v1.2.3", &debug.BuildInfo{Main: debug.Module{Path: ModulePath, Version: "v1.2.3"}}, source{path: ModulePath, version: "v1.2.3"}},
		{"a dependency", dep(debug.Module{Path: ModulePath, Version: "v1.2.3"}), source{path: ModulePath, version: "v1.2.3"}},
		{"replaced by a directory", dep(debug.Module{Path: ModulePath, Version: "v0.0.0", Replace: &debug.Module{Path: "/src/vxswitch"}}), source{dir: "/src/vxswitch"}},
		{"replaced by a relative directory", dep(debug.Module{Path: ModulePath, Version: "v0.0.0", Replace: &debug.Module{Path: "../vxswitch"}}), source{goList: true}},
		{"replaced by a fork", dep(debug.Module{Path: ModulePath, Version: "v1.2.3", Replace: &debug.Module{Path: "example.com/fork", Version: "v1.2.4"}}),
			source{path: "example.com/fork", version: "v1.2.4"}},
		{"not a dependency", &debug.BuildInfo{Main: debug.Module{Path: "example.com/user"}}, source{goList: true}},
	} {
		if got := sourceOf(tc.bi); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// A module version is found in the module cache through `go mod download`
// (here one of vxswitch's own dependencies), and a module that is nowhere
// is ErrNoModule with the go command's reason.
func TestGoModDir(t *testing.T) {
	// A build puts a dependency's .mod and .zip in the cache but not
	// always its .info, without which an offline `go mod download` fails:
	// complete it first as .ci/run's `go mod download` does (from the
	// cache when it is whole, else from the module proxy).
	if out, err := exec.Command("go", "mod", "download", "github.com/spf13/cobra").CombinedOutput(); err != nil {
		t.Fatalf("go mod download github.com/spf13/cobra: %v\n%s", err, out)
	}
	t.Setenv("GOPROXY", "off") // the module cache only
	t.Setenv("GOFLAGS", "")
	dir, err := goModDir(t.TempDir(), "mod", "download", "-json", "github.com/spf13/cobra@v1.10.2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cobra.go")); err != nil {
		t.Errorf("go mod download gave %s: %v", dir, err)
	}
	_, err = goModDir(t.TempDir(), "mod", "download", "-json", "example.com/nowhere@v1.0.0")
	if !errors.Is(err, ErrNoModule) {
		t.Errorf("a module that is nowhere: %v, want ErrNoModule", err)
	}
	t.Log(err)
}
