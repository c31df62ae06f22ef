package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/daemon"
)

// cli carries what every client subcommand needs.
type cli struct {
	socket string
}

func (c *cli) client() *api.Client { return api.NewClient(c.socket) }

func defaultSocket() string {
	if s := os.Getenv("VXSWITCH_SOCKET"); s != "" {
		return s
	}
	return filepath.Join(daemon.DefaultRunDir, daemon.SocketName)
}

func newRootCmd() *cobra.Command {
	c := &cli{}
	root := &cobra.Command{
		Use:   "vxswitch",
		Short: "A pure-userspace VXLAN switch",
		Long: `vxswitch joins containers on different hosts into one Ethernet segment over
VXLAN (UDP 4789), like Docker's overlay driver, without the kernel's vxlan
device: a daemon per host encapsulates and forwards frames itself.

Start the daemon with 'vxswitch daemon --vtep IP'; every other command talks
to it over its socket (--socket, or VXSWITCH_SOCKET).`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           version,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.PersistentFlags().StringVar(&c.socket, "socket", defaultSocket(), "daemon control socket (env VXSWITCH_SOCKET)")
	root.AddCommand(newDaemonCmd(), newNetworkCmd(c), newPeerCmd(c), newFDBCmd(c), newHostCmd(c), newStatsCmd(c), newInfoCmd(c))
	root.AddCommand(newVersionCmd(c), newCompletionCmd())
	root.AddCommand(newTraceCmd(c))
	// One-line errors for cobra's own (errors.go), and network names
	// completed from the daemon (completion.go).
	root.Args = cobra.ArbitraryArgs // unknown commands: refuseUnknown's one line, not cobra's "Did you mean this?"
	refuseUnknown(root)
	refuseUnknownSubcommands(root)
	oneLineArgs(root)
	root.SetFlagErrorFunc(flagError)
	c.completeNetworks(root)
	return root
}

// refuseUnknownSubcommands makes every command group (network, peer, fdb)
// fail on a subcommand it does not have, as the root does, with its
// suggestions: cobra would print the group's help and exit 0, so a
// script with a typo ("peer delete") would think it had succeeded. A
// group alone prints its help. (Cobra already passes a group's
// arguments through; a group without RunE is what stops them.)
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		if sub.HasSubCommands() && !sub.Runnable() {
			refuseUnknown(sub)
		}
		refuseUnknownSubcommands(sub)
	}
}

// refuseUnknown makes the command group cmd print its help when run alone
// and refuse anything else with one line and its suggestions.
func refuseUnknown(cmd *cobra.Command) {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		mean := ""
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets for the root only
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			mean = fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
		}
		return fmt.Errorf("unknown command %q for %q%s; see '%s --help'", args[0], cmd.CommandPath(), mean, cmd.CommandPath())
	}
}
