// Command vxswitch is a pure-userspace VXLAN switch: `vxswitch daemon` runs
// the switch for this host, every other subcommand talks to it over its unix
// socket. Run `vxswitch --help`.
package main

import (
	"os"

	"github.com/vxswitch/vxswitch/internal/cni"
)

// version is set at build time with -ldflags "-X main.version=..."
// (scripts/build.sh); otherwise it comes from the build info (version.go).
var version = "dev"

func main() {
	// A container runtime runs the binary as its CNI plugin.
	if os.Getenv("CNI_COMMAND") != "" {
		cni.Main(version)
		return
	}
	if cmd, err := newRootCmd().ExecuteC(); err != nil {
		exit(cmd, err) // one line (errors.go)
	}
}
