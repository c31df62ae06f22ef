package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// The wake-up floor: what it costs on this machine to wake a thread that
// sleeps and be woken back, measured in the same run as the cases.
//
// The kernel's vxlan runs a ping's whole round trip in softirq context
// inside ping's own system call: no other thread is woken. A userspace
// datapath adds at least two wake-ups to every round trip that the kernel
// does not have: ping's frame wakes the daemon, and the daemon's write of
// the reply wakes ping. When the daemon's thread runs on another CPU than
// ping (the scheduler prefers an idle CPU for a woken thread), those are
// cross-CPU wake-ups, and on a VM an idle vCPU must be woken by the host
// first. Two threads pinned to two CPUs that bounce a byte through two
// pipes, one round trip every pingInterval, take exactly those two
// wake-ups and nothing else; the same with both threads on one CPU takes
// two context switches.

// WakeupFloor is the wake-up floor of a run: medians over the rounds.
type WakeupFloor struct {
	// CPUs the two threads were pinned to for the cross-CPU figures.
	CPUs [2]int `json:"cpus"`
	// GapMS is the pause before every round trip, as between pings.
	GapMS float64 `json:"gap_ms"`
	// Samples is the number of round trips per round and placement.
	Samples int `json:"samples"`
	WakeupRound
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

// wakeupCPUs returns the first two CPUs this process may run on (the
// same one twice if it may use only one).
func wakeupCPUs() ([2]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return [2]int{}, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var got []int
	for cpu := 0; cpu < len(set)*64 && len(got) < 2; cpu++ {
		if set.IsSet(cpu) {
			got = append(got, cpu)
		}
	}
	switch len(got) {
	case 0:
		return [2]int{}, errors.New("sched_getaffinity: no CPU")
	case 1:
		return [2]int{got[0], got[0]}, nil
	}
	return [2]int{got[0], got[1]}, nil
}

// pipeRoundTrips bounces one byte n times between a thread pinned to
// cpuA, which waits gap before each round trip, and one pinned to cpuB,
// through two pipes, and returns the round trips in µs.
//
// Both threads are locked to their goroutines and never unlocked, so the
// runtime ends them with the goroutines instead of reusing them with the
// changed affinity. The reads block in the kernel through ordinary
// (not raw) system calls, so that the runtime can stop the world while a
// thread waits; a raw one would hold its P, and a garbage collection
// could then wait for the blocked thread while the thread waits for its
// peer, stopped by the collection. Each thread closes its write end when
// it ends, so the other one's read returns and neither can hang.
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
	echoErr := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer unix.Close(pong[1])
		defer unix.Close(ping[0])
		if err := pinThread(cpuB); err != nil {
			echoErr <- err
			return
		}
		var b [1]byte
		for {
			if k, err := readByte(ping[0], b[:]); k != 1 {
				echoErr <- err
				return
			}
			if _, err := unix.Write(pong[1], b[:]); err != nil {
				echoErr <- fmt.Errorf("pipe write: %w", err)
				return
			}
		}
	}()
	type result struct {
		rtts []float64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer unix.Close(pong[0])
		defer unix.Close(ping[1])
		if err := pinThread(cpuA); err != nil {
			done <- result{err: err}
			return
		}
		rtts := make([]float64, 0, n)
		var b [1]byte
		for range n {
			if err := ctx.Err(); err != nil {
				done <- result{err: err}
				return
			}
			time.Sleep(gap)
			start := time.Now()
			if _, err := unix.Write(ping[1], b[:]); err != nil {
				done <- result{err: fmt.Errorf("pipe write: %w", err)}
				return
			}
			if k, err := readByte(pong[0], b[:]); k != 1 {
				done <- result{err: err}
				return
			}
			rtts = append(rtts, float64(time.Since(start).Nanoseconds())/1e3)
		}
		done <- result{rtts: rtts}
	}()
	res := <-done
	// The first thread has closed its write end, so the echo thread's
	// read ends and it reports nil, unless it failed first: then its error
	// is the cause of the first thread's.
	if err := <-echoErr; err != nil {
		res.err = err
	}
	return res.rtts, res.err
}

// readByte reads b (one byte) from fd, retrying on EINTR. A result
// other than 1 with a nil error means the other thread closed its end.
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

// pinThread pins the calling thread to cpu.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin a thread to CPU %d: %w", cpu, err)
	}
	return nil
}

// String is a round's figures as the progress lines show them.
func (r WakeupRound) String() string {
	same := fmt.Sprintf("two wake-ups on one CPU: avg %.1f µs", r.SameAvgUs)
	if r.CrossAvgUs == 0 {
		return same
	}
	return fmt.Sprintf("two cross-CPU wake-ups: avg %.1f µs, p99 %.1f µs; %s", r.CrossAvgUs, r.CrossP99Us, same)
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
	w.CrossAvgUs = pick(func(r WakeupRound) float64 { return r.CrossAvgUs })
	w.CrossP99Us = pick(func(r WakeupRound) float64 { return r.CrossP99Us })
	w.SameAvgUs = pick(func(r WakeupRound) float64 { return r.SameAvgUs })
}

// describe says what the floor's figures are, for the table.
func (w *WakeupFloor) describe() string {
	same := fmt.Sprintf("both on CPU %d: avg %.1f µs", w.CPUs[0], w.SameAvgUs)
	if w.CrossAvgUs == 0 {
		return fmt.Sprintf("a pipe round trip between two threads every %g ms, %s", w.GapMS, same)
	}
	return fmt.Sprintf("a pipe round trip between threads on CPUs %d and %d every %g ms: avg %.1f µs, p99 %.1f µs; %s",
		w.CPUs[0], w.CPUs[1], w.GapMS, w.CrossAvgUs, w.CrossP99Us, same)
}
