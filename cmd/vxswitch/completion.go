package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script (bash, zsh or fish)",
		Long: `Print the completion script for bash, zsh or fish. Commands, flags and,
from the running daemon, network names complete; with no daemon running,
names do not complete and nothing is printed.

bash needs the bash-completion package (Debian: apt-get install
bash-completion).`,
		Example: `  source <(vxswitch completion bash)                                 # this shell only
  vxswitch completion bash > /etc/bash_completion.d/vxswitch          # every bash, from the next login
  vxswitch completion zsh > "${fpath[1]}/_vxswitch"                  # zsh (compinit must be on)
  vxswitch completion fish > ~/.config/fish/completions/vxswitch.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, w := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			default:
				return root.GenFishCompletion(w, true)
			}
		},
	}
}

// completionTimeout bounds how long a completion waits for the daemon: a
// shell must not hang on a tab.
const completionTimeout = 2 * time.Second

// completeNetworks gives every command whose first argument is a network
// NAME (as its Use says; not `network create`, which takes a new one) the
// names of the daemon's networks as completions, and every --netns flag
// the namespaces `ip netns` lists.
func (c *cli) completeNetworks(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		c.completeNetworks(sub)
	}
	if f := cmd.Flags().Lookup("netns"); f != nil {
		cmd.RegisterFlagCompletionFunc("netns", completeNetns)
	}
	words := strings.Fields(cmd.Use)
	if cmd.Name() == "create" || len(words) < 2 || (words[1] != "NAME" && words[1] != "[NAME]") || cmd.ValidArgsFunction != nil {
		return
	}
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		nets, err := c.client().Networks(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp // silent: no daemon, no names
		}
		var names []string
		for _, n := range nets {
			if strings.HasPrefix(n.Name, toComplete) {
				names = append(names, n.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNetns lists the named namespaces (/run/netns); a path completes
// as a file.
func completeNetns(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.HasPrefix(toComplete, "/") || strings.HasPrefix(toComplete, ".") {
		return nil, cobra.ShellCompDirectiveDefault
	}
	ents, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), toComplete) {
			names = append(names, e.Name())
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
