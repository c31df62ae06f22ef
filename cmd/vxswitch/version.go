package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { version = buildVersion(version, debug.ReadBuildInfo) }

// buildVersion is the binary's version: the one -ldflags set
// (scripts/build.sh, from git describe); else the module's version when
// built with `go install ...@vX`; else the commit the go command
// recorded (with -dirty for uncommitted changes); else "dev".
func buildVersion(set string, read func() (*debug.BuildInfo, bool)) string {
	if set != "dev" && set != "" {
		return set
	}
	bi, ok := read()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 7 {
		rev = rev[:7] // as git describe --always abbreviates it
	}
	return rev + dirty
}

func newVersionCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the version of this CLI and of the running daemon",
		Long: `Show the version of this CLI and of the daemon at the socket, one line each.
When no daemon answers, the client line is printed, then one error line,
and the exit status is 1 (as 'docker version' does). 'vxswitch --version'
prints the CLI's version alone.`,
		Example: `  vxswitch version
  vxswitch --socket /run/vxswitch-b/vxswitch.sock version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "client: %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			info, err := c.client().Info(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "daemon: %s (pid %d, vtep %s, socket %s)\n", orDash(info.Version), info.PID, info.VTEP, c.socket)
			return nil
		},
	}
}
