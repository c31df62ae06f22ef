package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestWakeupFloor(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cpus, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	// 50 samples: the p99 (nearest rank) is the largest, never below the
	// mean.
	w, err := measureWakeups(context.Background(), cpus, 50, 200*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CPUs %v: %s", cpus, w)
	if !(w.SameAvgUs > 0) {
		t.Errorf("same-CPU average %v, want > 0", w.SameAvgUs)
	}
	if cpus[0] != cpus[1] {
		if !(w.CrossAvgUs > 0) || w.CrossP99Us < w.CrossAvgUs {
			t.Errorf("cross-CPU avg %v, p99 %v: want avg > 0 and p99 >= avg", w.CrossAvgUs, w.CrossP99Us)
		}
	} else if w.CrossAvgUs != 0 || w.CrossP99Us != 0 {
		t.Errorf("one CPU, yet cross-CPU figures %v", w)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d file descriptors open after the measurement, %d before", after, before)
	}
	if w.String() == "" || !strings.Contains(w.String(), "one CPU") {
		t.Errorf("String() = %q", w.String())
	}
}

// TestPipeRoundTripsCount: one positive sample per round trip, after a
// pause before each.
func TestPipeRoundTripsCount(t *testing.T) {
	cpus, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	const gap = 50 * time.Millisecond
	rtts, err := pipeRoundTrips(context.Background(), cpus[0], cpus[1], 7, gap)
	if err != nil {
		t.Fatal(err)
	}
	if len(rtts) != 7 {
		t.Fatalf("%d round trips, want 7", len(rtts))
	}
	for i, v := range rtts {
		if !(v > 0) {
			t.Errorf("round trip %d: %v µs", i, v)
		}
	}
}

// TestPipeRoundTripsLeavesNoPinnedThread: the pinned threads end with the
// measurement; no thread the runtime reuses keeps their affinity.
func TestPipeRoundTripsLeavesNoPinnedThread(t *testing.T) {
	cpus, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if startCPUs == "" {
		t.Fatal("TestMain did not read the process's CPU list")
	}
	if _, err := pipeRoundTrips(context.Background(), cpus[1], cpus[1], 5, 0); err != nil {
		t.Fatal(err)
	}
	// A locked thread exits just after its goroutine ends; give it time.
	waitFor(t, func() string {
		for tid, list := range taskCPUs(t, os.Getpid()) {
			if list != startCPUs {
				return fmt.Sprintf("thread %s on CPUs %s after the measurement; the process started on CPUs %s", tid, list, startCPUs)
			}
		}
		return ""
	})
}

func TestWakeupSummarize(t *testing.T) {
	w := &WakeupFloor{Rounds: []WakeupRound{
		{CrossAvgUs: 50, CrossP99Us: 90, SameAvgUs: 6},
		{CrossAvgUs: 40, CrossP99Us: 70, SameAvgUs: 9},
		{CrossAvgUs: 60, CrossP99Us: 80, SameAvgUs: 5},
	}}
	w.summarize()
	if want := (WakeupRound{CrossAvgUs: 50, CrossP99Us: 80, SameAvgUs: 6}); w.Median != want {
		t.Errorf("medians %+v, want %+v", w.Median, want)
	}
	one := &WakeupFloor{Rounds: []WakeupRound{{SameAvgUs: 7}, {SameAvgUs: 3}, {SameAvgUs: 5}}}
	one.summarize()
	if want := (WakeupRound{SameAvgUs: 5}); one.Median != want {
		t.Errorf("one CPU: medians %+v, want %+v", one.Median, want)
	}
	if s := one.describe(); strings.Contains(s, "CPUs") || !strings.Contains(s, "5.0 µs") {
		t.Errorf("one CPU: %q", s)
	}
	w.CPUs = [2]int{0, 1}
	if s := w.describe(); !strings.Contains(s, "CPUs 0 and 1") || !strings.Contains(s, "avg 50.0 µs, p99 80.0 µs") || !strings.Contains(s, "avg 6.0 µs") {
		t.Errorf("describe() = %q", s)
	}
}

// TestPipeRoundTripsErrors: a thread that cannot be pinned, on either
// side, or a cancelled context end the measurement with an error, and
// neither thread is left blocked or a descriptor open.
func TestPipeRoundTripsErrors(t *testing.T) {
	const noCPU = 1023 // in the CPU set's range, but no machine here has it
	if runtime.NumCPU() > noCPU {
		t.Fatalf("the test needs CPU %d not to exist", noCPU)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		cpuA, cpuB int
		want       string
	}{
		{"measuring thread", context.Background(), noCPU, 0, "CPU 1023"},
		{"echo thread", context.Background(), 0, noCPU, "CPU 1023"},
		{"cancelled", cancelled, 0, 0, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			before := openFDs(t)
			done := make(chan error, 1)
			go func() {
				_, err := pipeRoundTrips(tc.ctx, tc.cpuA, tc.cpuB, 1000, time.Millisecond)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("pipeRoundTrips hangs")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d file descriptors open after the measurement, %d before", after, before)
			}
		})
	}
}

// TestPinThread: the thread really runs on the CPU it is pinned to only.
func TestPinThread(t *testing.T) {
	cpus, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cpusOf := func() string {
		list, err := threadCPUs(os.Getpid(), unix.Gettid())
		if err != nil {
			t.Error(err)
		}
		return list
	}
	type lists struct{ during, after string }
	got := make(chan lists, 1)
	go func() {
		unpin, err := pinThread(cpus[1])
		if err != nil {
			t.Error(err)
			got <- lists{}
			return
		}
		var l lists
		l.during = cpusOf()
		runtime.LockOSThread() // keep the thread to look at it once unpinned
		defer runtime.UnlockOSThread()
		unpin()
		l.after = cpusOf()
		got <- l
	}()
	l := <-got
	if want := fmt.Sprint(cpus[1]); l.during != want {
		t.Errorf("thread's CPUs %q while pinned, want %q", l.during, want)
	}
	if l.after != startCPUs {
		t.Errorf("thread's CPUs %q once unpinned, want %q as the process started", l.after, startCPUs)
	}
}

// TestPipeRoundTripsWithGC: collections during the measurement do not
// deadlock it. With the reads made raw, a thread blocked in one holds its
// P, the stop-the-world waits for it while it waits for its stopped peer,
// and the whole test binary hangs (seen: the timeout below cannot fire
// either, as the runtime is stopped).
func TestPipeRoundTripsWithGC(t *testing.T) {
	cpus, err := firstCPUs()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	gcs := make(chan int, 1)
	var once sync.Once
	stopGC := func() { once.Do(func() { close(stop) }) }
	defer stopGC() // also when the test fails below
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				gcs <- n
				return
			default:
				runtime.GC()
				n++
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := pipeRoundTrips(context.Background(), cpus[0], cpus[1], 300, 100*time.Microsecond)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("pipeRoundTrips deadlocks with the garbage collector")
	}
	stopGC()
	if n := <-gcs; n == 0 {
		t.Error("no collection ran during the measurement")
	}
	if err != nil {
		t.Fatal(err)
	}
}
