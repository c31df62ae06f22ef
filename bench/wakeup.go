package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// The wake-up floor: what it costs on this machine to wake a sleeping
// thread and be woken back, measured in the same run as the cases.
//
// The kernel's vxlan runs a ping's whole round trip in softirq context
// inside ping's own system call: no thread is woken. Through a userspace
// datapath ping's frame must wake the daemon and the daemon's write of
// the reply must wake ping: at least two wake-ups at ping's end that no
// design with a daemon avoids (in the benchmark, with a daemon on each
// host, the other daemon is woken on the way too: at least four wake-ups
// in all). When the daemon's thread runs on another CPU than ping (the
// scheduler puts a woken thread on an idle CPU), they are cross-CPU
// wake-ups, and on a VM the host has to deliver them to a halted vCPU.
//
// Two threads pinned to two CPUs that bounce a byte through two pipes,
// one round trip after each pause of pingInterval, take two such
// wake-ups, plus four system calls and the Go runtime's bookkeeping on
// each; with both threads on one CPU, two context switches.

// WakeupFloor is the wake-up floor of a run.
type WakeupFloor struct {
	// CPUs the two threads were pinned to for the cross-CPU figures: the
	// first two this process may use (on a machine with SMT these may be
	// two threads of one core).
	CPUs [2]int `json:"cpus"`
	// GapMS is the pause in the measuring thread before every round trip
	// (ping's interval is measured from one send to the next instead).
	GapMS float64 `json:"gap_ms"`
	// Samples is the number of round trips per round and placement.
	Samples int `json:"samples"`
	// Median holds the medians over the rounds.
	Median WakeupRound   `json:"median"`
	Rounds []WakeupRound `json:"rounds"`
}

// WakeupRound holds one round's figures, in µs. The cross-CPU ones are
// absent on a machine with one CPU.
type WakeupRound struct {
	CrossAvgUs float64 `json:"cross_cpu_avg_us,omitempty"`
	CrossP99Us float64 `json:"cross_cpu_p99_us,omitempty"`
	SameAvgUs  float64 `json:"same_cpu_avg_us"`
}

// Round trips per placement and round: in the full run 1000, 2 s each at
// pingInterval, enough for a p99 of 10 samples.
const (
	wakeupSamples      = 1000
	wakeupSmokeSamples = 100
)

// measureWakeups takes one round of the wake-up floor: samples round
// trips between two threads on cpus[0] and cpus[1] (unless they are the
// same CPU), then with both on cpus[0].
func measureWakeups(ctx context.Context, cpus [2]int, samples int, gap time.Duration) (WakeupRound, error) {
	var r WakeupRound
	if cpus[0] != cpus[1] {
		rtts, err := pipeRoundTrips(ctx, cpus[0], cpus[1], samples, gap)
		if err != nil {
			return r, err
		}
		r.CrossAvgUs, r.CrossP99Us = rttStats(rtts)
	}
	rtts, err := pipeRoundTrips(ctx, cpus[0], cpus[0], samples, gap)
	if err != nil {
		return r, err
	}
	r.SameAvgUs, _ = rttStats(rtts)
	return r, nil
}

// firstCPUs returns the first two CPUs this process may run on (the
// same one twice if it may use only one).
func firstCPUs() ([2]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return [2]int{}, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return firstTwo(&set)
}

// firstTwo returns the first two CPUs in set (the same one twice if it
// holds only one).
func firstTwo(set *unix.CPUSet) ([2]int, error) {
	var got []int
	for cpu := 0; cpu < len(set)*64 && len(got) < 2; cpu++ {
		if set.IsSet(cpu) {
			got = append(got, cpu)
		}
	}
	switch len(got) {
	case 0:
		return [2]int{}, errors.New("no CPU to run on")
	case 1:
		return [2]int{got[0], got[0]}, nil
	}
	return [2]int{got[0], got[1]}, nil
}

// errEchoEnded: the echo thread closed its end before a round trip was
// over, which it does only when it failed (and reports why).
var errEchoEnded = errors.New("the echo thread ended early")

// pipeRoundTrips bounces one byte n times between a thread pinned to
// cpuA, which sleeps gap before each round trip, and an echo thread
// pinned to cpuB, through two pipes, and returns the round trips in µs.
// The echo thread says when it is pinned, and one round trip goes
// unrecorded, so that no sample includes a thread's start or migration.
//
// Both threads are locked to their goroutines while pinned and given
// their affinity back before they are unlocked (see pinThread). The
// reads and the sleep block in the kernel through ordinary (not raw)
// system calls, so that the runtime can stop the world while a thread
// waits: a thread blocked in a raw one holds its P, and a garbage
// collection would wait for it while it waited for its peer, stopped by
// the collection. Each thread closes its write end before it reports, so
// the other's read returns and neither can hang; the read ends are
// closed once both have reported.
func pipeRoundTrips(ctx context.Context, cpuA, cpuB, n int, gap time.Duration) ([]float64, error) {
	var ping, pong [2]int
	if err := unix.Pipe2(ping[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if err := unix.Pipe2(pong[:], unix.O_CLOEXEC); err != nil {
		unix.Close(ping[0])
		unix.Close(ping[1])
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer unix.Close(ping[0])
	defer unix.Close(pong[0])
	echoErr := make(chan error, 1)
	go func() {
		echoErr <- echo(cpuB, ping[0], pong[1])
	}()
	type result struct {
		rtts []float64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		rtts, err := measure(ctx, cpuA, n, gap, ping[1], pong[0])
		done <- result{rtts, err}
	}()
	res := <-done
	// The measuring thread has closed its write end, so the echo thread's
	// read ends and it reports nil, unless it failed first: then its error
	// is the cause of the measuring thread's.
	if err := <-echoErr; err != nil {
		return nil, err
	}
	return res.rtts, res.err
}

// echo is the echo thread: pinned to cpu, it writes a byte to say so,
// then writes back every byte it reads until in is closed. It closes out.
func echo(cpu, in, out int) error {
	defer unix.Close(out)
	unpin, err := pinThread(cpu)
	if err != nil {
		return err
	}
	defer unpin()
	var b [1]byte
	if _, err := unix.Write(out, b[:]); err != nil {
		return fmt.Errorf("pipe write: %w", err)
	}
	for {
		k, err := readByte(in, b[:])
		if err != nil || k == 0 {
			return err
		}
		if _, err := unix.Write(out, b[:]); err != nil {
			return fmt.Errorf("pipe write: %w", err)
		}
	}
}

// measure is the measuring thread: pinned to cpu, it waits for the echo
// thread to be ready, makes one round trip unrecorded and then n timed
// ones, each after a pause of gap. It closes out.
func measure(ctx context.Context, cpu, n int, gap time.Duration, out, in int) ([]float64, error) {
	defer unix.Close(out)
	unpin, err := pinThread(cpu)
	if err != nil {
		return nil, err
	}
	defer unpin()
	var b [1]byte
	if k, err := readByte(in, b[:]); k != 1 {
		return nil, orErr(err, errEchoEnded)
	}
	rtts := make([]float64, 0, n)
	ts := unix.NsecToTimespec(gap.Nanoseconds())
	for i := -1; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := nanosleep(&ts); err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := unix.Write(out, b[:]); err != nil {
			return nil, fmt.Errorf("pipe write: %w", err)
		}
		if k, err := readByte(in, b[:]); k != 1 {
			return nil, orErr(err, errEchoEnded)
		}
		if i >= 0 {
			rtts = append(rtts, float64(time.Since(start).Nanoseconds())/1e3)
		}
	}
	return rtts, nil
}

// orErr returns err, or def if err is nil.
func orErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// nanosleep sleeps in the calling thread, as ping sleeps between pings (a
// runtime timer would be fired by another thread, which would then wake
// this one: a third thread, possibly on the echo thread's CPU).
func nanosleep(ts *unix.Timespec) error {
	if ts.Sec == 0 && ts.Nsec == 0 {
		return nil
	}
	left := *ts
	for {
		err := unix.Nanosleep(&left, &left)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return fmt.Errorf("nanosleep: %w", err)
			}
			return nil
		}
	}
}

// readByte reads b (one byte) from fd, retrying on EINTR. It returns 0
// and no error when the other end is closed.
func readByte(fd int, b []byte) (int, error) {
	for {
		k, err := unix.Read(fd, b)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, fmt.Errorf("pipe read: %w", err)
		}
		return k, nil
	}
}

// pinThread locks the calling goroutine to its thread and pins the
// thread to cpu; unpin gives the thread its affinity back and unlocks it.
// Leaving a pinned thread locked for the runtime to end with its
// goroutine is not enough: the goroutine may be running on the main
// thread, which the runtime cannot end and keeps (wedged, pinned) for the
// life of the process, where it pinned every thread started from it
// later. If the affinity cannot be restored the thread stays locked.
func pinThread(cpu int) (unpin func(), err error) {
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin a thread to CPU %d: %w", cpu, err)
	}
	return func() {
		if unix.SchedSetaffinity(0, &old) == nil {
			runtime.UnlockOSThread()
		}
	}, nil
}

// String is a round's figures as the progress lines show them.
func (r WakeupRound) String() string {
	same := fmt.Sprintf("on one CPU: avg %.1f µs", r.SameAvgUs)
	if r.CrossAvgUs == 0 {
		return "pipe round trip " + same
	}
	return fmt.Sprintf("pipe round trip across CPUs: avg %.1f µs, p99 %.1f µs; %s", r.CrossAvgUs, r.CrossP99Us, same)
}

// summarize sets the medians over the rounds.
func (w *WakeupFloor) summarize() {
	pick := func(f func(WakeupRound) float64) float64 {
		var v []float64
		for _, r := range w.Rounds {
			v = append(v, f(r))
		}
		if len(v) == 0 {
			return 0
		}
		return median(v)
	}
	w.Median = WakeupRound{
		CrossAvgUs: pick(func(r WakeupRound) float64 { return r.CrossAvgUs }),
		CrossP99Us: pick(func(r WakeupRound) float64 { return r.CrossP99Us }),
		SameAvgUs:  pick(func(r WakeupRound) float64 { return r.SameAvgUs }),
	}
}

// describe says what the floor's figures are, for the table.
func (w *WakeupFloor) describe() string {
	m := w.Median
	same := fmt.Sprintf("both on CPU %d: avg %.1f µs", w.CPUs[0], m.SameAvgUs)
	if m.CrossAvgUs == 0 {
		return fmt.Sprintf("a pipe round trip between two threads after a %g ms pause, %s", w.GapMS, same)
	}
	return fmt.Sprintf("a pipe round trip (two wake-ups) between threads on CPUs %d and %d after a %g ms pause: avg %.1f µs, p99 %.1f µs; %s",
		w.CPUs[0], w.CPUs[1], w.GapMS, m.CrossAvgUs, m.CrossP99Us, same)
}
