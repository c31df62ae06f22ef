package daemon

import "os"

// replaceFile writes data to path whole or not at all: into path+".tmp",
// then renamed over path. It does not fsync: it is for files a power cut
// may lose but must never leave torn (the state file, which must not be
// lost, has saveState). A crash between write and rename leaves the
// ".tmp" file, which the next replaceFile overwrites.
func replaceFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
