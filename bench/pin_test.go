package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// spawnerEnv makes the test binary a thread spawner (see TestMain): a
// process that keeps starting threads until it reads a line, then idles.
const spawnerEnv = "VXBENCH_TEST_THREAD_SPAWNER"

func TestMain(m *testing.M) {
	if os.Getenv(spawnerEnv) == "1" {
		spawnThreads()
		return
	}
	os.Exit(m.Run())
}

// spawnThreads starts an OS thread every 2 ms (a goroutine locked to its
// thread and blocked for good) until a line arrives on stdin, then
// waits to be killed.
func spawnThreads() {
	stop := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(stop)
	}()
	fmt.Println("ready")
	for i := 0; i < 500; i++ {
		select {
		case <-stop:
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

// startSpawner starts the test binary as a thread spawner; the returned
// writer stops its spawning. It is killed (by PID) and reaped at cleanup.
func startSpawner(t *testing.T) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), spawnerEnv+"=1")
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
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("thread spawner said %q, %v", line, err)
	}
	return cmd, stdin
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
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				out[fmt.Sprint(tid)] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// TestPinThreads pins a process that keeps starting threads, lets it
// start more while pinned, during pinThreads and after (they inherit the
// pinned mask), and restores: every thread, old or new, must end with
// the mask the process had.
func TestPinThreads(t *testing.T) {
	pid, stop, origList, cpu := spawnerToPin(t)
	pinned := fmt.Sprint(cpu)

	before := len(taskCPUs(t, pid))
	// Between the first pass and the second, pinned threads start new
	// ones, which the second pass finds already pinned.
	pinPassHook = func(pass int) {
		if pass == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer func() { pinPassHook = nil }()
	restore, err := pinThreads(pid, cpu)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // about 50 threads more
	fmt.Fprintln(stop)
	time.Sleep(20 * time.Millisecond)
	during := taskCPUs(t, pid)
	if len(during) <= before {
		t.Fatalf("the spawner started no thread while pinned (%d before, %d after)", before, len(during))
	}
	allOn(t, during, pinned, "while pinned")
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	allOn(t, taskCPUs(t, pid), origList, "after restore")
}

// TestPinProcessesErrors: a process that cannot be pinned undoes the
// pinning of those before it, and a restore that cannot reach a process
// says so.
func TestPinProcessesErrors(t *testing.T) {
	pid, _, origList, cpu := spawnerToPin(t)

	// A PID above pid_max exists nowhere.
	if _, err := pinProcesses([]int{pid, 1 << 30}, cpu); err == nil {
		t.Fatal("pinning a process that does not exist succeeded")
	}
	allOn(t, taskCPUs(t, pid), origList, "after a failed pin")

	victim := exec.Command("sleep", "60")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	restore, err := pinProcesses([]int{pid, victim.Process.Pid}, cpu)
	if err != nil {
		victim.Process.Kill()
		victim.Wait()
		t.Fatal(err)
	}
	victim.Process.Kill()
	victim.Wait()
	if err := restore(); err == nil {
		t.Error("restore reported nothing for a process that is gone")
	}
	allOn(t, taskCPUs(t, pid), origList, "after restore")
}

// spawnerToPin starts a thread spawner (see startSpawner) and returns its
// PID, the writer that stops it, its threads' CPU list and a CPU to pin
// it to that is not all of that list.
func spawnerToPin(t *testing.T) (pid int, stop io.Writer, orig string, cpu int) {
	t.Helper()
	cpus, err := wakeupCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cmd, stop := startSpawner(t)
	pid = cmd.Process.Pid
	orig = taskCPUs(t, pid)[fmt.Sprint(pid)]
	if orig == fmt.Sprint(cpus[1]) {
		t.Fatalf("the process already runs on CPU %d only", cpus[1])
	}
	return pid, stop, orig, cpus[1]
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
