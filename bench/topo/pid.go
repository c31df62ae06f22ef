package topo

// PID is the process ID of a process started by Start, or 0 if it never
// started. The process was exec'd by nsenter in place (no fork), so this is
// the command itself, not nsenter; signal it only while Done is open.
func (p *Proc) PID() int {
	if p == nil || p.Cmd == nil || p.Cmd.Process == nil {
		return 0
	}
	return p.Cmd.Process.Pid
}

// PID is the process ID of a binary-mode daemon that is running, for
// reading its /proc entries (CPU time, peak RSS); 0 for an in-process
// daemon or one that is stopped.
func (d *Daemon) PID() int {
	if d.proc == nil {
		return 0
	}
	return d.proc.PID()
}
