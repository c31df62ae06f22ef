package daemon

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// crashFile is the crash tests' hook (cmd/vxswitch/crash_test.go): when
// the daemon runs with VXSWITCH_CRASHPOINT set to a file's path, crashpoint
// kills the daemon with SIGKILL at the point that file names, so that a
// test can stop it between any two steps of an operation, the way a power
// cut or the OOM killer would. Unset (always, outside those tests), it
// costs a comparison.
var crashFile = os.Getenv("VXSWITCH_CRASHPOINT")

// crashpoint is a named point between two steps of an operation; see
// crashFile.
func crashpoint(name string) {
	if crashFile == "" {
		return
	}
	if b, err := os.ReadFile(crashFile); err == nil && strings.TrimSpace(string(b)) == name {
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // the signal is on its way
	}
}
