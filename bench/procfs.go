package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat and
// /proc/stat: 100 on every Linux architecture (the kernel fixes it for
// userspace ABIs).
const clockTicks = 100

// cpuTicks is the CPU time (user + system, every thread) process pid has
// used so far, in clock ticks, from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

// parseStatTicks reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name (field 2) may hold spaces and
// parentheses, so counting starts after its last ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat line %q", stat)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	return utime + stime, nil
}

// busyTicks is the time the CPUs in cpus have spent busy so far (user,
// nice, system, irq and softirq: everything but idle, iowait and steal),
// summed, in clock ticks, from /proc/stat.
func busyTicks(cpus *unix.CPUSet) (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseBusyTicks(string(b), cpus)
}

// parseBusyTicks sums the busy fields of the per-CPU lines ("cpuN user
// nice system idle iowait irq softirq steal ...") of /proc/stat for the
// CPUs in cpus. Steal is time the hypervisor gave to someone else, and
// guest (guest_nice) time is already counted in user (nice).
func parseBusyTicks(stat string, cpus *unix.CPUSet) (int64, error) {
	var sum int64
	found := 0
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		if len(f) < 8 || len(f[0]) < 4 || !strings.HasPrefix(f[0], "cpu") {
			continue // the summary line "cpu", and every other line
		}
		cpu, err := strconv.Atoi(f[0][3:])
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: malformed line %q", strings.TrimSpace(line))
		}
		if !cpus.IsSet(cpu) {
			continue
		}
		for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: malformed line %q", strings.TrimSpace(line))
			}
			sum += v
		}
		found++
	}
	if found != cpus.Count() {
		return 0, fmt.Errorf("/proc/stat: %d of the %d CPUs wanted", found, cpus.Count())
	}
	return sum, nil
}

// peakRSS is the peak resident set size (VmHWM) of process pid in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(string(b))
}

func parseVmHWM(status string) (int64, error) {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc status")
}

// machineInfo describes this machine; what cannot be read is "unknown".
func machineInfo(ctx context.Context) Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Kernel: "unknown", Go: runtime.Version(),
		Iperf3: "unknown", Load: "unknown", Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.Load = f[0]
		}
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if v := firstLine(ctx, "iperf3", "--version"); v != "" {
		m.Iperf3 = v
	}
	return m
}

// String is the machine in one line, for headers.
func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, Linux %s, %s, %s; load %s at start", m.CPU, m.Cores, m.Kernel, m.Go, m.Iperf3, m.Load)
}

// binaryVersion is what `vxswitch --version` says, or "".
func binaryVersion(ctx context.Context, bin string) string {
	return firstLine(ctx, bin, "--version")
}

func firstLine(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// pinThreads pins every thread of process pid to cpu and returns a
// function that gives each thread its affinity back. A thread inherits
// the mask of the thread that starts it, so one that appears after the
// first listing (the Go runtime of a daemon starts threads at any time)
// may already be pinned: it gets the mask the main thread had before,
// as do threads started after pinThreads returns. Pinning and restoring
// both go through eachNewThread, since a thread may start another
// meanwhile.
func pinThreads(pid, cpu int) (restore func() error, err error) {
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &orig); err != nil {
		return nil, fmt.Errorf("sched_getaffinity %d: %w", pid, err)
	}
	saved := make(map[int]unix.CPUSet)
	restore = func() error {
		var errs []error
		err := eachNewThread(pid, func(tid, _ int) error {
			set, ok := saved[tid]
			if !ok {
				set = orig
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("sched_setaffinity %d: %w", tid, err))
			}
			return nil // go on past errors
		}, passHook("restore"))
		return errors.Join(append(errs, err)...)
	}
	var one unix.CPUSet
	one.Set(cpu)
	err = eachNewThread(pid, func(tid, pass int) error {
		set := orig
		if pass == 0 {
			// Listed before anything was pinned: its own mask.
			if err := unix.SchedGetaffinity(tid, &set); err != nil {
				if errors.Is(err, unix.ESRCH) {
					return nil // the thread ended
				}
				return fmt.Errorf("sched_getaffinity %d: %w", tid, err)
			}
		}
		saved[tid] = set
		if err := unix.SchedSetaffinity(tid, &one); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("sched_setaffinity %d: %w", tid, err)
		}
		return nil
	}, passHook("pin"))
	if err != nil {
		return nil, errors.Join(err, restore())
	}
	return restore, nil
}

// eachNewThread calls fn once for every thread of process pid, with the
// number of the pass that found it, listing the threads again until a
// pass finds none it has not seen; listed (if not nil) runs after every
// listing. It stops at fn's first error, and fails if the process is
// still starting threads after threadPasses passes.
func eachNewThread(pid int, fn func(tid, pass int) error, listed func(pass int)) error {
	seen := make(map[int]bool)
	for pass := range threadPasses {
		tids, err := threads(pid)
		if err != nil {
			return err
		}
		if listed != nil {
			listed(pass)
		}
		fresh := 0
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid], fresh = true, fresh+1
			if err := fn(tid, pass); err != nil {
				return err
			}
		}
		if fresh == 0 {
			return nil
		}
	}
	return fmt.Errorf("process %d keeps starting threads", pid)
}

// threadPasses bounds eachNewThread's listings.
const threadPasses = 11

// pinPassHook, if set (by tests), runs in pinThreads and its restore
// after every listing of the threads (op "pin" or "restore"), before
// the threads just listed are set.
var pinPassHook func(op string, pass int)

// passHook is pinPassHook for op, as eachNewThread's listed, or nil.
func passHook(op string) func(pass int) {
	if h := pinPassHook; h != nil {
		return func(pass int) { h(op, pass) }
	}
	return nil
}

// pinProcesses pins every thread of every process in pids to cpu (see
// pinThreads) and returns a function that restores them all, going on
// past errors. If pinning fails, what was pinned is restored.
func pinProcesses(pids []int, cpu int) (restore func() error, err error) {
	var restores []func() error
	restore = func() error {
		var errs []error
		for _, r := range restores {
			errs = append(errs, r())
		}
		return errors.Join(errs...)
	}
	for _, pid := range pids {
		r, perr := pinThreads(pid, cpu)
		if perr != nil {
			return nil, errors.Join(fmt.Errorf("pin process %d: %w", pid, perr), restore())
		}
		restores = append(restores, r)
	}
	return restore, nil
}

// threads lists the thread IDs of process pid.
func threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
