package nsutil_test

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// The main goroutine keeps the main thread, and runs there what tests send
// on mainCalls while the tests run on other goroutines.
func init() { runtime.LockOSThread() }

var mainCalls = make(chan func())

func TestMain(m *testing.M) {
	done := make(chan int, 1)
	go func() { done <- m.Run() }()
	for {
		select {
		case f := <-mainCalls:
			f()
		case code := <-done:
			os.Exit(code)
		}
	}
}

// onMain runs f on the process's main thread.
func onMain(f func()) {
	done := make(chan struct{})
	mainCalls <- func() { defer close(done); f() }
	<-done
}

// Do's work on the main thread (where the runtime would wedge a thread
// left locked in a namespace) goes back to the thread's namespace before
// it returns: the namespace /proc/PID/ns/net names, and `nsenter -t PID
// -n` enters, stays the process's own; also when entering fails. (That it
// unlocks the thread cannot be seen here: the main goroutine holds its
// own lock on it.)
func TestDoOnMainThread(t *testing.T) {
	path := topo.TempNS(t, "main")
	want, _ := nsutil.Inode(path)
	onMain(func() {
		if unix.Gettid() != unix.Getpid() {
			t.Error("not on the main thread")
			return
		}
		before, err := nsutil.Inode("/proc/thread-self/ns/net")
		if err != nil {
			t.Error(err)
			return
		}
		var inside uint64
		err = nsutil.LockedDo(path, func() (err error) { inside, err = nsutil.Inode("/proc/thread-self/ns/net"); return })
		if err != nil || inside != want {
			t.Errorf("inside: namespace %d, %v; want %d", inside, err, want)
		}
		for _, p := range []string{"/proc/thread-self/ns/net", "/proc/self/ns/net"} {
			if after, err := nsutil.Inode(p); err != nil || after != before {
				t.Errorf("%s after Do: %d, %v; want %d, where the main thread was", p, after, err, before)
			}
		}
		if err := nsutil.LockedDo(path+"-missing", func() error { return nil }); err == nil {
			t.Error("Do in a missing namespace did not fail")
		}
		if after, err := nsutil.Inode("/proc/self/ns/net"); err != nil || after != before {
			t.Errorf("after a failed Do: %d, %v; want %d", after, err, before)
		}
	})
}
