package topo_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// userMain is a program in a module of its own that uses topo and the
// control API as a user's module would: it names the API's request and
// reply types and topo's typed options, and builds vxswitch with
// BuildBinary.
const userMain = `package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

var (
	_ = topo.Options{Underlay: topo.LAN, VTEPs: topo.IPv6VTEPs}
	_ = topo.NetConfig{Name: "web-net", Subnet: "10.0.0.0/24", Subnet6: "fd00:1::/64"}
	_ = api.NetworkCreate{Name: "web-net", Subnet: "10.0.0.0/24"}
	_ func(*topo.VXNet, *topo.Container, api.Attach) (api.Endpoint, error) = (*topo.VXNet).AttachEndpoint
	_ *topo.Client = api.NewClient(api.DefaultSocket)
	_ api.Counters = api.NetworkStats{}.Counters
)

func main() {
	bin, err := topo.BuildBinary(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Print(string(out))
}
`

// swappedOptions gives each typed constant where the other belongs.
const swappedOptions = `package swapped

import "github.com/vxswitch/vxswitch/bench/topo"

var _ = topo.Options{Underlay: topo.IPv6VTEPs}
var _ = topo.Options{VTEPs: topo.Direct}
`

// From a module of its own that requires vxswitch (through a replace
// directive naming this working tree, by absolute and by relative path),
// with the go.sum that `go mod tidy` makes: the program naming topo's and
// the API's types compiles, BuildBinary builds a vxswitch that runs, and
// swapping an underlay kind and a VTEP family does not compile.
func TestFromAnotherModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module of its own (a minute the first time); not with -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	// Everything comes from the module cache, where building this
	// package put it; nothing is downloaded.
	env := append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	goCmd := func(dir string, args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct{ name, replace string }{
		{"absolute replace", root},
		{"relative replace", ""}, // filled in below, relative to the module
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := t.TempDir()
			replace := tc.replace
			if replace == "" {
				rel, err := filepath.Rel(mod, root)
				if err != nil {
					t.Fatal(err)
				}
				replace = rel
			}
			files := map[string]string{
				"go.mod":             "module example.com/overlaytests\n\ngo 1.26.0\n\nrequire github.com/vxswitch/vxswitch v0.0.0\n\nreplace github.com/vxswitch/vxswitch => " + replace + "\n",
				"main.go":            userMain,
				"swapped/swapped.go": swappedOptions,
			}
			for name, data := range files {
				p := filepath.Join(mod, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := goCmd(mod, "mod", "tidy"); err != nil {
				t.Fatalf("go mod tidy: %v\n%s", err, out)
			}
			// What a user's go.sum lacks: the vxswitch command's own
			// dependencies, which building it in this module would need.
			sum, err := os.ReadFile(filepath.Join(mod, "go.sum"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(sum), "github.com/spf13/cobra v1.10.2 h1:") {
				t.Fatalf("go mod tidy put cobra's code in the user's go.sum, so this test no longer shows that BuildBinary needs none:\n%s", sum)
			}

			out, err := goCmd(mod, "run", ".", t.TempDir())
			if err != nil {
				t.Fatalf("go run: %v\n%s", err, out)
			}
			if strings.TrimSpace(out) != "vxswitch version dev" {
				t.Errorf("the vxswitch BuildBinary built says %q, want %q", out, "vxswitch version dev")
			}

			out, err = goCmd(mod, "build", "./swapped")
			if err == nil {
				t.Fatal("options with an underlay kind and a VTEP family swapped compiled")
			}
			for _, want := range []*regexp.Regexp{
				regexp.MustCompile(`swapped.go:5:\d+: cannot use topo.IPv6VTEPs .*topo.VTEPFamily.* as topo.UnderlayKind value`),
				regexp.MustCompile(`swapped.go:6:\d+: cannot use topo.Direct .*topo.UnderlayKind.* as topo.VTEPFamily value`),
			} {
				if !want.MatchString(out) {
					t.Errorf("go build ./swapped does not say %s:\n%s", want, out)
				}
			}
		})
	}
}
