package daemon

// undo is the reverse of a control operation's steps, run newest first
// when a later step fails, so that a failed operation leaves nothing
// behind: every operation pushes the reverse of each step it has done.
//
//	var u undo
//	defer u.onError(&err)
//	make the namespace; u.push(delete it)
//	change d.nets;      u.push(change it back)
//	return d.commit()  // saves the state; on error the deferred undo runs
type undo []func()

// push adds the reverse of a step just done.
func (u *undo) push(f func()) { *u = append(*u, f) }

// run undoes every step, newest first, once.
func (u *undo) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}

// onError runs the undo steps if *err is set when the operation returns.
func (u *undo) onError(err *error) {
	if *err != nil {
		u.run()
	}
}

// commit saves the state: the last step of every operation that changes
// the configuration, after which it is acknowledged.
func (d *Daemon) commit() error { return d.save() }
