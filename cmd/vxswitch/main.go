// Command vxswitch is a pure-userspace VXLAN switch: `vxswitch daemon` runs
// the switch for this host, every other subcommand talks to it over its unix
// socket. Run `vxswitch --help`.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/vxswitch/vxswitch/internal/cni"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// A container runtime runs the binary as its CNI plugin.
	if os.Getenv("CNI_COMMAND") != "" {
		cni.Main(version)
		return
	}
	if err := newRootCmd().Execute(); err != nil {
		var ee exitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(os.Stderr, "vxswitch: %v\n", err)
		}
		os.Exit(1)
	}
}

// exitError ends the program with status 1 after the message was printed.
type exitError struct{}

func (exitError) Error() string { return "exit status 1" }
