package nsutil

import "runtime"

// LockedDo is Do on the calling goroutine, which it locks to its thread
// as Do's goroutine does, for a test to run it on the main thread.
func LockedDo(path string, fn func() error) error {
	runtime.LockOSThread()
	errc := make(chan error, 1)
	lockedDo(path, fn, errc)
	return <-errc
}
