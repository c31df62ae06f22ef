// Package testenv holds the few test fixtures that packages below the
// daemon need, so that their tests do not import bench/topo (which
// imports the daemon built on them): the root check, a bare network
// namespace and the spawner thread for child processes. bench/topo's
// RequireRoot and TempNS are these, and its processes start through
// Start.
package testenv

import (
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// RequireRoot skips tb unless the process runs as root; under CI=true it
// fails instead, so CI can never pass by skipping.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("this test needs root (network namespaces); CI must run it as root")
	}
	tb.Skip("needs root to create network namespaces; run the tests as root (under CI=true this is a failure)")
}

// TempNS makes a bare network namespace named name for the test (which
// needs root, see RequireRoot), under the test's temporary directory,
// and deletes it when the test ends.
func TempNS(tb testing.TB, name string) string {
	tb.Helper()
	RequireRoot(tb)
	path, err := nsutil.Create(tb.TempDir(), name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nsutil.Delete(path) })
	return path
}

// The parent death signal is sent when the *thread* that forked the child
// exits, and nsutil.Do ends the threads it locks (any thread may later be
// one of them). So every child that asks for the signal is forked from
// one thread that is locked for the life of the process and does nothing
// else: the signal then fires only when the test binary dies.
var (
	spawnOnce sync.Once
	spawnReq  chan spawnJob
)

type spawnJob struct {
	cmd *exec.Cmd
	err chan error
}

// Start starts cmd from the process's spawner thread, so that a parent
// death signal in cmd.SysProcAttr fires when the test binary exits, and
// only then.
func Start(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReq = make(chan spawnJob)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread only forks
			for job := range spawnReq {
				job.err <- job.cmd.Start()
			}
		}()
	})
	job := spawnJob{cmd: cmd, err: make(chan error, 1)}
	spawnReq <- job
	return <-job.err
}
