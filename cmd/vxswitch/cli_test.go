package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// These tests run the CLI in-process, against a fake daemon where they
// need one; the daemon_test.go and host_test.go ones run the binary
// against real daemons.

// run executes the CLI with args and returns its output and the one line
// main would print for its error ("" without one).
func run(t *testing.T, args ...string) (stdout, errLine string) {
	t.Helper()
	root := newRootCmd()
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err != nil {
		errLine = errorLine(cmd, err)
	}
	if e.Len() > 0 && !slices.Contains(args, "__complete") { // which logs its directive there
		t.Errorf("vxswitch %s wrote to stderr itself: %q", strings.Join(args, " "), e.String())
	}
	return o.String(), errLine
}

// walk calls fn for every command below root that a user can run.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	for _, sub := range cmd.Commands() {
		if sub.Hidden || sub.Name() == "help" {
			continue
		}
		fn(sub)
		walk(sub, fn)
	}
}

// Cobra's own errors are one line that names what is wrong and the
// command's usage, never its multi-line messages.
func TestCobraErrorsOneLine(t *testing.T) {
	nosock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "inspect"}, "vxswitch: network inspect: missing NAME (usage: vxswitch network inspect NAME; see 'vxswitch network inspect --help')"},
		{[]string{"peer", "add", "net"}, "vxswitch: peer add: missing VTEP_IP (usage: vxswitch peer add NAME VTEP_IP;"},
		{[]string{"fdb", "add"}, "vxswitch: fdb add: missing NAME MAC VTEP_IP (usage: vxswitch fdb add NAME MAC VTEP_IP [--ip IP]...;"},
		{[]string{"network", "attach", "--netns", "c1"}, "vxswitch: network attach: missing NAME (usage: vxswitch network attach NAME --netns NS"},
		{[]string{"network", "rm", "a", "b"}, `vxswitch: network rm: unexpected argument "b" (usage: vxswitch network rm NAME;`},
		{[]string{"stats", "a", "b"}, `vxswitch: stats: unexpected argument "b" (usage: vxswitch stats [NAME] [--json];`},
		{[]string{"info", "x"}, `vxswitch: info: unexpected argument "x" (usage: vxswitch info;`},
		{[]string{"completion", "pwsh"}, `vxswitch: completion: invalid argument "pwsh" for "vxswitch completion"`},
		{[]string{"netwrk", "ls"}, `vxswitch: unknown command "netwrk" for "vxswitch" (did you mean network?); see 'vxswitch --help'`},
		{[]string{"bogus"}, `vxswitch: unknown command "bogus" for "vxswitch"; see 'vxswitch --help'`},
		{[]string{"network", "crate", "x"}, `vxswitch: unknown command "crate" for "vxswitch network" (did you mean create?)`},
		{[]string{"network", "create", "x", "--subnet", "10.0.0.0/24", "--vni", "abc"}, `vxswitch: network create: bad --vni "abc": want a whole number, 0 or more (see 'vxswitch network create --help')`},
		{[]string{"network", "create", "x", "--subnet", "10.0.0.0/24", "--vni"}, `vxswitch: network create: --vni needs a value, a whole number, 0 or more`},
		{[]string{"network", "create", "x", "--bogus"}, `vxswitch: network create: unknown flag --bogus (see 'vxswitch network create --help')`},
		{[]string{"--bogus"}, `vxswitch: unknown flag --bogus (see 'vxswitch --help')`},
		{[]string{"network", "ls", "-z"}, `vxswitch: network ls: unknown flag -z`},
		{[]string{"daemon", "--vtep", "198.18.0.1", "--busy-poll", "5"}, `vxswitch: daemon: bad --busy-poll "5": want a duration such as 30s or 5m`},
		{[]string{"network", "create", "x", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2"}, `vxswitch: network create: bad --gateway "10.0.0.2": given twice (10.0.0.1, 10.0.0.2)`},
		{[]string{"--socket", nosock, "network", "ls"}, "vxswitch: vxswitch daemon not running at " + nosock + ": start it with `systemctl start vxswitch` or `vxswitch daemon --vtep IP`"},
	} {
		_, line := run(t, tc.args...)
		if !strings.HasPrefix(line, tc.want) || strings.Contains(line, "\n") {
			t.Errorf("vxswitch %s:\n got %q\nwant %q...", strings.Join(tc.args, " "), line, tc.want)
		}
	}
}

// A refused connection to the socket says it needs root or the socket's
// group, and names the group.
func TestSocketDeniedLine(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vxswitch.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	denied := fmt.Errorf("talk to vxswitch daemon at %s: %w", sock, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)})
	root := newRootCmd()
	root.SetArgs([]string{"--socket", sock, "network", "ls"})
	cmd, _, _ := root.Find([]string{"network", "ls"})
	cmd.ParseFlags([]string{"--socket", sock})

	if os.Getuid() == 0 {
		if err := os.Chown(sock, -1, 65534); err != nil {
			t.Fatal(err)
		}
		line := errorLine(cmd, denied)
		if !regexp.MustCompile(`^vxswitch: permission denied on the control socket ` + regexp.QuoteMeta(sock) + `: it needs root or membership in group (nogroup|65534) \(the daemon's --socket-group\)$`).MatchString(line) {
			t.Errorf("group 65534: %q", line)
		}
		os.Chown(sock, -1, 0)
		if line := errorLine(cmd, denied); !strings.Contains(line, "it needs root (or start the daemon with --socket-group GROUP") {
			t.Errorf("group root: %q", line)
		}
	}
	os.Remove(sock)
	if line := errorLine(cmd, denied); !strings.Contains(line, "it needs root, or membership in the socket's group") || strings.Contains(line, "\n") {
		t.Errorf("socket unreadable: %q", line)
	}
}

// Every command a user can run has an Example; every vxswitch command in
// them exists, takes the flags and arguments it is given there.
func TestExamples(t *testing.T) {
	invocation := regexp.MustCompile(`(?:^|[\s(])vxswitch(\s[^|#)&;<>]*)`)
	subst := regexp.MustCompile(`"\$\([^)]*\)\)?"|\$\([^)]*\)`)
	n := 0
	walk(newRootCmd(), func(cmd *cobra.Command) {
		if !cmd.Runnable() {
			return
		}
		if strings.TrimSpace(cmd.Example) == "" {
			t.Errorf("%s has no Example", cmd.CommandPath())
			return
		}
		for _, line := range strings.Split(cmd.Example, "\n") {
			line = subst.ReplaceAllString(line, "X") // "$(vxswitch network inspect app | jq ...)": an argument
			for _, m := range invocation.FindAllStringSubmatch(line, -1) {
				args := strings.Fields(strings.NewReplacer(`"`, "", `'`, "").Replace(m[1]))
				root := newRootCmd() // flags keep their values
				c, rest, err := root.Find(args)
				if err != nil || c == root {
					t.Errorf("%s: example %q: no such command", cmd.CommandPath(), line)
					continue
				}
				c.InitDefaultHelpFlag()
				if err := c.ParseFlags(rest); err != nil {
					t.Errorf("%s: example %q: %v", cmd.CommandPath(), line, err)
					continue
				}
				if err := c.ValidateArgs(c.Flags().Args()); err != nil {
					t.Errorf("%s: example %q: %v", cmd.CommandPath(), line, err)
				}
				if err := c.ValidateRequiredFlags(); err != nil {
					t.Errorf("%s: example %q: %v", cmd.CommandPath(), line, err)
				}
				n++
			}
		}
	})
	if n < 30 {
		t.Errorf("checked %d example invocations; want every command's", n)
	}
}

// `completion bash|zsh|fish` prints cobra's scripts; bash -n accepts the
// bash one.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_vxswitch",
		"zsh":  "#compdef vxswitch",
		"fish": "complete -c vxswitch",
	} {
		out, line := run(t, "completion", shell)
		if line != "" || !strings.Contains(out, want) {
			t.Errorf("completion %s: error %q, output without %q (%d bytes)", shell, line, want, len(out))
		}
		if shell == "bash" {
			f := filepath.Join(t.TempDir(), "vxswitch.bash")
			os.WriteFile(f, []byte(out), 0o644)
			if b, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v: %s", err, b)
			}
		}
	}
}

// fakeDaemon serves GET /v1/networks with the given names on a socket.
func fakeDaemon(t *testing.T, names ...string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vxswitch.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathNetworks, func(w http.ResponseWriter, r *http.Request) {
		var nets []api.Network
		for _, n := range names {
			nets = append(nets, api.Network{Name: n})
		}
		json.NewEncoder(w).Encode(nets)
	})
	mux.HandleFunc("GET "+api.PathInfo, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Info{Version: "v9.9.9", PID: 42, VTEP: "198.18.0.1"})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// Commands that take a network NAME complete the daemon's networks, and
// nothing (silently) when no daemon runs; network create does not.
func TestCompleteNetworkNames(t *testing.T) {
	sock := fakeDaemon(t, "app", "apple", "web")
	complete := func(sock string, args ...string) []string {
		out, line := run(t, append([]string{"--socket", sock, "__complete"}, args...)...)
		if line != "" {
			t.Fatalf("__complete %v: %s", args, line)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !strings.HasPrefix(lines[len(lines)-1], ":") {
			t.Fatalf("__complete %v: no directive in %q", args, out)
		}
		var names []string
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "-") { // cobra offers required flags too
				names = append(names, l)
			}
		}
		return names
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "inspect", "ap"}, "app apple"},
		{[]string{"network", "attach", ""}, "app apple web"},
		{[]string{"peer", "add", "w"}, "web"},
		{[]string{"peer", "add", "web", ""}, ""}, // the VTEP is not a network
		{[]string{"fdb", "show", ""}, "app apple web"},
		{[]string{"stats", "a"}, "app apple"},
		{[]string{"network", "create", ""}, ""},
	} {
		if got := strings.Join(complete(sock, tc.args...), " "); got != tc.want {
			t.Errorf("complete %v: %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := complete(filepath.Join(t.TempDir(), "none.sock"), "network", "inspect", ""); len(got) != 0 {
		t.Errorf("no daemon: completed %q", got)
	}
}

// version prints the CLI's and the daemon's versions; without a daemon the
// CLI's, then the one error line.
func TestVersionCmd(t *testing.T) {
	out, line := run(t, "--socket", fakeDaemon(t), "version")
	if line != "" || !regexp.MustCompile(`^client: \S+ \(go\S+, \w+/\w+\)\ndaemon: v9\.9\.9 \(pid 42, vtep 198\.18\.0\.1, socket \S+\)\n$`).MatchString(out) {
		t.Errorf("version: %q, %q", out, line)
	}
	out, line = run(t, "--socket", filepath.Join(t.TempDir(), "none.sock"), "version")
	if !strings.HasPrefix(out, "client: "+version+" ") || strings.Count(out, "\n") != 1 || !strings.Contains(line, "vxswitch daemon not running at") {
		t.Errorf("version without daemon: %q, %q", out, line)
	}
}

func TestBuildVersion(t *testing.T) {
	info := func(v string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: v}, Settings: settings}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		set  string
		read func() (*debug.BuildInfo, bool)
		want string
	}{
		{"v1.2.3-4-gabcdef0", info("v0.0.1"), "v1.2.3-4-gabcdef0"},
		{"dev", info("v0.3.0"), "v0.3.0"},
		{"dev", info("(devel)", debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef"}, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "0123456-dirty"},
		{"dev", info("(devel)", debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef"}, debug.BuildSetting{Key: "vcs.modified", Value: "false"}), "0123456"},
		{"dev", info("(devel)"), "dev"},
		{"dev", none, "dev"},
	} {
		if got := buildVersion(tc.set, tc.read); got != tc.want {
			t.Errorf("buildVersion(%q): %q, want %q", tc.set, got, tc.want)
		}
	}
}
