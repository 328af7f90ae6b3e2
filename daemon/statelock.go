package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon/internal/dirs"
)

// stateLockFile is held locked by the daemon that uses a state folder.
const stateLockFile = ".inspectd.lock"

// stateLock is an exclusive lock on a state folder: two daemons on one
// folder would share the model, the MQTT outbox (and send each other's
// messages) and the request tables. The lock ends with the process, so a
// killed daemon never leaves a stale one.
type stateLock struct {
	f   *os.File
	dir string
}

// lockStateDir takes the lock of dir or says which process holds it.
func lockStateDir(dir string) (*stateLock, error) {
	path := filepath.Join(dir, stateLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another process"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who = "process " + pid
			}
			return nil, fmt.Errorf("state_dir %s is in use by another inspectd (%s): give every daemon a state_dir of its own", dir, who)
		}
		return nil, fmt.Errorf("state_dir %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &stateLock{f: f, dir: dir}, nil
}

// claimStateDir creates dir if it is missing and takes its lock, for a
// change to state_dir dir, and returns what gives the folder back as it
// was found if the change is refused: the lock released, and the folders
// it created, or else the lock file it created, removed. A refused change
// left an empty folder or a lock file behind, which read as a state
// folder in use.
func claimStateDir(dir string) (*stateLock, func(), error) {
	top := dirs.FirstMissing(dir)
	if err := atomicfile.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("state_dir %s: %w", dir, err)
	}
	lockFile := filepath.Join(dir, stateLockFile)
	_, err := os.Lstat(lockFile)
	newLockFile := errors.Is(err, fs.ErrNotExist)
	l, err := lockStateDir(dir)
	giveBack := func() {
		l.release()
		switch {
		case top != "":
			_ = os.RemoveAll(top) // made for this change: nobody else knew it
		case newLockFile:
			_ = os.Remove(lockFile)
		}
	}
	if err != nil {
		giveBack()
		return nil, nil, err
	}
	return l, giveBack, nil
}

// release lets another daemon use the folder.
func (l *stateLock) release() {
	if l != nil && l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		_ = l.f.Close()
		l.f = nil
	}
}
