//go:build !unix

package raftjournal

import (
	"fmt"
	"os"
	"path/filepath"
)

// dirLock, where flock is not available, is a LOCK file created exclusively. A
// process that dies leaves it behind; remove it by hand after checking.
type dirLock struct{ path string }

func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if os.IsExist(err) {
			return nil, fmt.Errorf("%w: %s exists", ErrDataDirLocked, path)
		}
		return nil, fmt.Errorf("raftjournal: create lock file: %w", err)
	}
	fmt.Fprintln(f, os.Getpid())
	f.Close()
	return &dirLock{path: path}, nil
}

func (l *dirLock) release() error {
	if l == nil {
		return nil
	}
	return os.Remove(l.path)
}
