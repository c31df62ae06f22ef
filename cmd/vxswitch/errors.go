package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// Every error the CLI prints is one line, "vxswitch: ...", that says what
// failed and what to do. Cobra's own messages (a missing argument, an
// unknown flag, an unknown command with its multi-line "Did you mean
// this?") are replaced through its hooks: every command's Args validator
// is wrapped (oneLineArgs), flag errors go through the root's
// FlagErrorFunc (flagError), and unknown commands are refused by the
// groups' RunE (refuseUnknownSubcommands). Errors from the daemon's socket
// are translated in errorLine.

// errorLine is the one line main prints for err, which cmd returned.
func errorLine(cmd *cobra.Command, err error) string {
	socket := defaultSocket()
	if cmd != nil {
		if f := cmd.Flags().Lookup("socket"); f != nil {
			socket = f.Value.String()
		}
	}
	isDaemon := cmd != nil && cmd.Name() == "daemon"
	switch {
	case errors.Is(err, api.ErrDaemonDown):
		return fmt.Sprintf("vxswitch: vxswitch daemon not running at %s: start it with `systemctl start vxswitch` or `vxswitch daemon --vtep IP`, or point --socket or VXSWITCH_SOCKET at its socket", socket)
	case !isDaemon && (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)):
		return "vxswitch: " + socketDenied(socket)
	}
	return "vxswitch: " + strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// socketDenied says why connecting to socket was refused: only root and
// the members of the socket's group may (the daemon's --socket-group).
func socketDenied(socket string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(socket, &st); err != nil {
		// The directory is closed to us too.
		return fmt.Sprintf("permission denied on the control socket %s: it needs root, or membership in the socket's group (the daemon's --socket-group)", socket)
	}
	if st.Gid == 0 {
		return fmt.Sprintf("permission denied on the control socket %s: it needs root (or start the daemon with --socket-group GROUP and join that group)", socket)
	}
	group := strconv.FormatUint(uint64(st.Gid), 10)
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("permission denied on the control socket %s: it needs root or membership in group %s (the daemon's --socket-group)", socket, group)
}

// oneLineArgs wraps the Args validator of cmd and of every command below
// it so that a wrong number of arguments is one line naming what is
// missing or extra, with the command's usage, instead of cobra's
// "accepts 1 arg(s), received 0".
func oneLineArgs(cmd *cobra.Command) {
	if orig := cmd.Args; orig != nil {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				return argsError(cmd, args, err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		oneLineArgs(sub)
	}
}

// argsError explains err, which cmd's validator returned for args, from
// the positional arguments in cmd's Use: "NAME VTEP_IP" are required,
// "[NAME]" optional; the first "-" or "|" ends them.
func argsError(cmd *cobra.Command, args []string, err error) error {
	var required, optional []string
	for _, w := range strings.Fields(cmd.Use)[1:] {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[-") || w == "|" {
			break
		}
		if strings.HasPrefix(w, "[") {
			optional = append(optional, strings.Trim(w, "[]."))
		} else {
			required = append(required, w)
		}
	}
	where := cmdWhere(cmd)
	usage := fmt.Sprintf("(usage: %s; see '%s --help')", usageLine(cmd), cmd.CommandPath())
	switch {
	case len(args) < len(required):
		return fmt.Errorf("%smissing %s %s", where, strings.Join(required[len(args):], " "), usage)
	case len(args) > len(required)+len(optional):
		return fmt.Errorf("%sunexpected argument %q %s", where, args[len(required)+len(optional)], usage)
	}
	return fmt.Errorf("%s%v %s", where, err, usage)
}

// cmdWhere names cmd at the start of an error line, after "vxswitch: ":
// "network create: ", or nothing for the root.
func cmdWhere(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ") + ": "
}

// usageLine is the command's path with the arguments and flags its Use
// shows.
func usageLine(cmd *cobra.Command) string {
	rest := strings.TrimSpace(strings.TrimPrefix(cmd.Use, cmd.Name()))
	if rest == "" {
		return cmd.CommandPath()
	}
	return cmd.CommandPath() + " " + rest
}

// flagError is the root's FlagErrorFunc (every command inherits it): one
// line for an unknown flag, a flag without its value, or a value that does
// not parse.
func flagError(cmd *cobra.Command, err error) error {
	where := cmdWhere(cmd)
	help := fmt.Sprintf("see '%s --help'", cmd.CommandPath())
	var (
		notExist *pflag.NotExistError
		needs    *pflag.ValueRequiredError
		invalid  *pflag.InvalidValueError
		syntax   *pflag.InvalidSyntaxError
	)
	switch {
	case errors.As(err, &notExist):
		name := notExist.GetSpecifiedName()
		if sh := notExist.GetSpecifiedShortnames(); sh != "" {
			return fmt.Errorf("%sunknown flag -%s (%s)", where, name, help)
		}
		return fmt.Errorf("%sunknown flag --%s (%s)", where, name, help)
	case errors.As(err, &needs):
		f := needs.GetFlag()
		return fmt.Errorf("%s--%s needs a value, %s (%s)", where, f.Name, valueWord(f), help)
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		var num *strconv.NumError
		if errors.As(err, &num) || errors.Is(err, strconv.ErrSyntax) || strings.HasPrefix(f.Value.Type(), "duration") {
			return fmt.Errorf("%sbad --%s %q: want %s (%s)", where, f.Name, invalid.GetValue(), valueWord(f), help)
		}
		return fmt.Errorf("%sbad --%s %q: %v", where, f.Name, invalid.GetValue(), errors.Unwrap(err))
	case errors.As(err, &syntax):
		return fmt.Errorf("%sbad flag syntax %s (%s)", where, syntax.GetSpecifiedFlag(), help)
	}
	return fmt.Errorf("%s%v (%s)", where, err, help)
}

// valueWord says what a flag's value is, from its type.
func valueWord(f *pflag.Flag) string {
	switch t := f.Value.Type(); {
	case strings.HasPrefix(t, "uint"):
		return "a whole number, 0 or more"
	case strings.HasPrefix(t, "int"):
		return "a whole number"
	case t == "duration":
		return "a duration such as 30s or 5m"
	case t == "bool":
		return "true or false"
	default:
		return "a " + t
	}
}

// exitError ends the program with status 1 after the message was printed.
type exitError struct{}

func (exitError) Error() string { return "exit status 1" }

// exit prints err as one line and exits 1; cmd is the command that ran.
func exit(cmd *cobra.Command, err error) {
	var ee exitError
	if !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, errorLine(cmd, err))
	}
	os.Exit(1)
}
