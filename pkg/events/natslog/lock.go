package natslog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file inside the data directory that the embedded
// server's process holds locked for its whole life; it also records that
// process's ID.
const lockFileName = "revocast.lock"

// ErrDataDirInUse means another process holds the data directory: two
// embedded servers on one file store overwrite each other's messages and
// lose acknowledged writes.
var ErrDataDirInUse = errors.New("data directory in use")

// inUseError names the directory and the process that holds it.
type inUseError struct{ dir, holder string }

func (e *inUseError) Error() string {
	return e.dir + " is in use by " + e.holder + " (another broadcaster runs on it: stop it, or give this one its own data directory)"
}

func (e *inUseError) Is(target error) bool { return target == ErrDataDirInUse }

// dirLock is a held lock on a data directory.
type dirLock struct {
	f *os.File
}

// lockDataDir takes an exclusive lock on the data directory (an flock on
// lockFileName inside it, where the platform has one), without waiting, and
// writes this process's ID into the file. The lock lives as long as the
// process holds the file open: a process that crashes or is killed releases
// it. name is the directory as the user gave it, for messages.
func lockDataDir(dir, name string) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", name, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data directory %s: %w", name, err)
	}
	if !held {
		holder := "another process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				holder = "pid " + strconv.Itoa(pid)
			}
		}
		f.Close()
		return nil, &inUseError{dir: name, holder: holder}
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			unlock(f)
			f.Close()
			return nil, fmt.Errorf("lock data directory %s: write pid: %w", name, err)
		}
	}
	return &dirLock{f: f}, nil
}

// release gives the directory up. The file stays: removing it would let a
// process that opened it just before lock a file no longer in the directory.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	unlock(l.f)
	l.f.Close()
	l.f = nil
}
