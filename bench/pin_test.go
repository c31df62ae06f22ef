package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// spawnerEnv makes the test binary a thread spawner (see TestMain): a
// process that keeps starting threads until it reads a line, then idles.
const spawnerEnv = "VXBENCH_TEST_THREAD_SPAWNER"

// startCPUs is the CPU list of the test process's main thread before any
// test ran: what every thread must have again after a test pinned some.
var startCPUs string

func TestMain(m *testing.M) {
	if os.Getenv(spawnerEnv) == "1" {
		spawnThreads()
		return
	}
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		startCPUs = cpusAllowed(string(b))
	}
	os.Exit(m.Run())
}

// cpusAllowed returns the Cpus_allowed_list of a /proc status file.
func cpusAllowed(status string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// spawnThreads starts an OS thread every 2 ms (a goroutine locked to its
// thread and blocked for good) until a line arrives on stdin, says
// "stopped", and exits when stdin closes (its test ended).
func spawnThreads() {
	stop := make(chan struct{})
	go func() {
		r := bufio.NewReader(os.Stdin)
		r.ReadString('\n')
		close(stop)
		io.Copy(io.Discard, r)
		os.Exit(0)
	}()
	fmt.Println("ready")
	for i := 0; i < 500; i++ {
		select {
		case <-stop:
			fmt.Println("stopped")
			select {}
		case <-time.After(2 * time.Millisecond):
		}
		go func() {
			runtime.LockOSThread()
			select {}
		}()
	}
	select {}
}

// spawner is a thread spawner process (see spawnThreads).
type spawner struct {
	pid   int
	stdin io.Writer
	out   *bufio.Reader
}

// stop stops its spawning and waits until it has.
func (s *spawner) stop(t *testing.T) {
	t.Helper()
	fmt.Fprintln(s.stdin)
	if line, err := s.out.ReadString('\n'); err != nil || line != "stopped\n" {
		t.Fatalf("thread spawner said %q, %v", line, err)
	}
}

// startSpawner starts the test binary as a thread spawner. It is killed
// (by PID) and reaped at cleanup, and dies with the test binary.
func startSpawner(t *testing.T) *spawner {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), spawnerEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("thread spawner said %q, %v", line, err)
	}
	return &spawner{pid: cmd.Process.Pid, stdin: stdin, out: out}
}

// taskCPUs maps every thread of process pid to its Cpus_allowed_list.
func taskCPUs(t *testing.T, pid int) map[string]string {
	t.Helper()
	tids, err := threads(pid)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, tid := range tids {
		list, err := threadCPUs(pid, tid)
		if err != nil {
			continue // the thread ended meanwhile
		}
		out[fmt.Sprint(tid)] = list
	}
	return out
}

// threadCPUs is the Cpus_allowed_list of thread tid of process pid.
func threadCPUs(pid, tid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
	if err != nil {
		return "", err
	}
	return cpusAllowed(string(b)), nil
}

// TestPinThreads pins a process that keeps starting threads and
// restores it, while it goes on starting threads: right after pinning
// first lists the threads (new ones then have the old mask, and only a
// second pass pins them), after pinning (new ones inherit the pinned
// mask), and right after the restore first lists them (new ones are
// pinned, and only a second pass restores them). Every thread, old or
// new, must be pinned in between and have the process's mask after.
func TestPinThreads(t *testing.T) {
	sp, origList, cpu := spawnerToPin(t)
	pid := sp.pid
	pinned := fmt.Sprint(cpu)

	pinPassHook = func(op string, pass int) {
		if pass == 0 {
			waitThreads(t, pid, len(taskCPUs(t, pid))+3)
		}
	}
	defer func() { pinPassHook = nil }()
	restore, err := pinThreads(pid, cpu)
	if err != nil {
		t.Fatal(err)
	}
	waitThreads(t, pid, len(taskCPUs(t, pid))+10) // and more after it
	allOn(t, taskCPUs(t, pid), pinned, "while pinned")
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	sp.stop(t)
	allOn(t, taskCPUs(t, pid), origList, "after restore")
}

// TestPinThreadsRestoresEachMask: a thread with a mask of its own gets
// that mask back, not the process's.
func TestPinThreadsRestoresEachMask(t *testing.T) {
	sp, origList, cpu := spawnerToPin(t)
	sp.stop(t) // no thread starts from the one with its own mask
	pid := sp.pid
	cpus, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	own := fmt.Sprint(cpus[0])
	if own == origList {
		t.Fatalf("the process runs on CPU %s only", own)
	}
	var tid int
	for s := range taskCPUs(t, pid) {
		if s != fmt.Sprint(pid) {
			tid, _ = strconv.Atoi(s)
			break
		}
	}
	var set unix.CPUSet
	set.Set(cpus[0])
	if err := unix.SchedSetaffinity(tid, &set); err != nil {
		t.Fatal(err)
	}
	restore, err := pinThreads(pid, cpu)
	if err != nil {
		t.Fatal(err)
	}
	allOn(t, taskCPUs(t, pid), fmt.Sprint(cpu), "while pinned")
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	for s, list := range taskCPUs(t, pid) {
		want := origList
		if s == fmt.Sprint(tid) {
			want = own
		}
		if list != want {
			t.Errorf("thread %s on CPUs %s after restore, want %s", s, list, want)
		}
	}
}

// TestPinProcessesErrors: a process that cannot be pinned undoes the
// pinning of those before it, and a restore that cannot reach a process
// says so.
func TestPinProcessesErrors(t *testing.T) {
	sp, origList, cpu := spawnerToPin(t)
	sp.stop(t) // a restore racing new threads is TestPinThreads' business
	pid := sp.pid

	// A PID above pid_max exists nowhere.
	if _, err := pinProcesses([]int{pid, 1 << 30}, cpu); err == nil {
		t.Fatal("pinning a process that does not exist succeeded")
	}
	allOn(t, taskCPUs(t, pid), origList, "after a failed pin")

	victim := exec.Command("sleep", "60")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	reap := sync.OnceFunc(func() {
		victim.Process.Kill() // by PID; this test started it
		victim.Wait()
	})
	t.Cleanup(reap)
	restore, err := pinProcesses([]int{pid, victim.Process.Pid}, cpu)
	if err != nil {
		t.Fatal(err)
	}
	reap()
	if err := restore(); err == nil {
		t.Error("restore reported nothing for a process that is gone")
	}
	allOn(t, taskCPUs(t, pid), origList, "after restore")
}

// spawnerToPin starts a thread spawner (see startSpawner) and returns its
// PID, the writer that stops it, its threads' CPU list and a CPU to pin
// it to that is not all of that list.
func spawnerToPin(t *testing.T) (sp *spawner, orig string, cpu int) {
	t.Helper()
	cpus, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	sp = startSpawner(t)
	orig = taskCPUs(t, sp.pid)[fmt.Sprint(sp.pid)]
	if orig == fmt.Sprint(cpus[1]) {
		t.Fatalf("the process already runs on CPU %d only", cpus[1])
	}
	return sp, orig, cpus[1]
}

// waitThreads waits until process pid has at least n threads.
func waitThreads(t *testing.T, pid, n int) {
	t.Helper()
	waitFor(t, func() string {
		if k := len(taskCPUs(t, pid)); k < n {
			return fmt.Sprintf("process %d has %d threads, want at least %d", pid, k, n)
		}
		return ""
	})
}

// waitFor polls wrong until it returns "", and fails the test with what
// it last said if that takes a minute (a guard against a hang, not a
// measurement).
func waitFor(t *testing.T, wrong func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		msg := wrong()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(time.Millisecond)
	}
}

// allOn checks that every thread in tasks (from taskCPUs) may run on
// exactly the CPU list want.
func allOn(t *testing.T, tasks map[string]string, want, when string) {
	t.Helper()
	for tid, list := range tasks {
		if list != want {
			t.Errorf("thread %s on CPUs %s %s, want %s", tid, list, when, want)
		}
	}
}
