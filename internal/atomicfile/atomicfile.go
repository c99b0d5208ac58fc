// Package atomicfile writes a file whole or not at all: readers (ls, top,
// the daemon, runc) see the old contents or the new, never a part.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path's contents by data, with mode perm whatever the
// umask: it writes a new file beside path (in the same directory, so on
// the same file system) and renames it over path. On an error path is
// unchanged and nothing is left beside it.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
