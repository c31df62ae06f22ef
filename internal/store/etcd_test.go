package store

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/testenv"
)

// etcd is one etcd member in a namespace of the test's own, listening on
// that namespace's loopback.
type etcd struct {
	netns string
	dir   string
	cmd   *exec.Cmd
	out   *bytes.Buffer
	done  chan struct{}
}

// startEtcd runs Debian's etcd (etcd-server) in a new namespace and
// returns it with a Store connected to it from that namespace. Both go
// when the test ends.
func startEtcd(t *testing.T) (*etcd, *Store) {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatal("these tests need etcd: apt-get install etcd-server")
	}
	e := &etcd{netns: testenv.TempNS(t, "etcd"), dir: t.TempDir()}
	h, err := nsutil.Handle(e.netns)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.start(t)
	s, err := Open(Config{URL: "etcd://127.0.0.1:2379", Netns: e.netns, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.waitHealthy(t, s)
	return e, s
}

func (e *etcd) start(t *testing.T) {
	t.Helper()
	const cl, peer = "http://127.0.0.1:2379", "http://127.0.0.1:2380"
	e.cmd = exec.Command("nsenter", "--net="+e.netns, "etcd", "--name", "vxt", "--data-dir", e.dir,
		"--listen-client-urls", cl, "--advertise-client-urls", cl,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "vxt="+peer,
		// Old revisions are compacted by the tests themselves.
		"--auto-compaction-retention", "0")
	e.out = &bytes.Buffer{}
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	// nsenter execs etcd in its own process: killed with the test binary.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := testenv.Start(e.cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	e.done = done
	cmd := e.cmd
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { e.stop() })
}

// stop kills etcd (by its PID) and waits for it.
func (e *etcd) stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	<-e.done
	e.cmd = nil
}

func (e *etcd) waitHealthy(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s.cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd (pid %d, exited %v) did not answer: %v\n%s", e.cmd.Process.Pid, e.cmd.ProcessState, err, e.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually waits for cond to return "" (a generous deadline: never a
// timing assertion), failing with its last message.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// viewer records the views Follow hands over.
type viewer struct {
	mu   sync.Mutex
	last *View
	errs []error
}

func (v *viewer) onView(view *View) {
	v.mu.Lock()
	v.last = view
	v.mu.Unlock()
}

func (v *viewer) onError(err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err)
	v.mu.Unlock()
}

func (v *viewer) view() *View {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

func (v *viewer) String() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("errors %v", v.errs)
}
