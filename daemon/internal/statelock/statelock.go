// Package statelock holds the lock that gives one inspectd a state folder
// of its own: two daemons on one folder would share the model, the MQTT
// outbox (and send each other's messages) and the request tables. It is
// its own package so that the remote front end can ask whether a folder
// is taken before it writes anything there.
package statelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon/internal/dirs"
)

// File is held locked (flock) by the daemon that uses a state folder, and
// holds its process id. The lock ends with the process, so a killed daemon
// never leaves a stale one.
const File = ".inspectd.lock"

// Lock is an exclusive lock on a state folder.
type Lock struct {
	f   *os.File
	dir string
	// id is the lock file's identity, taken with the lock and never
	// changed: Holds compares against it without the file, which Release
	// closes.
	id os.FileInfo
}

// Take takes the lock of dir, which must exist, or says which process
// holds it.
func Take(dir string) (*Lock, error) {
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", dir, err)
	}
	if err := flock(f, dir, path); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	id, err := f.Stat()
	if err != nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		return nil, fmt.Errorf("state_dir %s: lock file: %w", dir, err)
	}
	return &Lock{f: f, dir: dir, id: id}, nil
}

// Holds says whether dir is the folder l locked, whatever the path now
// leading there: its lock file is the very file l holds. The path that
// took the lock may lead elsewhere since (a symlink re-pointed while the
// daemon runs), so that the daemon's own folder, named by its real path,
// no longer reads as the state_dir in force and its lock as another
// process's. A nil Lock holds nothing.
func (l *Lock) Holds(dir string) bool {
	if l == nil || l.id == nil {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, File))
	return err == nil && os.SameFile(l.id, st)
}

// Free returns nil when no other process holds dir's lock (the folder or
// its lock file missing included), else the error Take would return. It
// creates and changes nothing, so a change of state_dir can be refused
// before anything is written into a folder another inspectd uses. A
// process that takes the lock after Free returned is still refused by
// Take.
func Free(dir string) error {
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state_dir %s: %w", dir, err)
	}
	defer f.Close()
	if err := flock(f, dir, path); err != nil {
		return err
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

// flock locks f exclusively without waiting; the error names the holder.
func flock(f *os.File, dir, path string) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		who := "another process"
		holder, _ := os.ReadFile(path)
		if pid := strings.TrimSpace(string(holder)); pid != "" {
			who = "process " + pid
		}
		return &InUseError{Dir: dir, Holder: who}
	}
	return fmt.Errorf("state_dir %s: lock: %w", dir, err)
}

// InUseError says that another process holds a state folder's lock.
type InUseError struct {
	// Dir is the state folder; Holder names the process ("process 4711",
	// or "another process" when its lock file names none).
	Dir, Holder string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("state_dir: %s is in use by another inspectd (%s): give every daemon a state_dir of its own", e.Dir, e.Holder)
}

// Claim creates dir if it is missing and takes its lock, for a change to
// state_dir dir, and returns what gives the folder back as it was found
// if the change is refused: what was put under it since the claim
// removed (a model fitted for the change, a broker's or an outbox's
// store: a folder that was there is left as it was), the lock file it
// created removed, the lock released, and the folders it created removed
// while empty (an empty folder or a lock file left behind reads as a
// state folder in use). The give-back returns an error naming what could
// not be removed. Call it once whatever writes into the folder has
// stopped.
func Claim(dir string) (*Lock, func() error, error) {
	top := dirs.FirstMissing(dir)
	found := treeOf(dir)
	if err := atomicfile.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("state_dir %s: %w", dir, err)
	}
	lockFile := filepath.Join(dir, File)
	_, err := os.Lstat(lockFile)
	newLockFile := errors.Is(err, fs.ErrNotExist)
	l, err := Take(dir)
	giveBack := func() error {
		var left []string
		if l != nil {
			// The lock still held: nobody else writes there meanwhile.
			left = removeAdded(dir, found)
		}
		if l != nil && newLockFile {
			// Unlinked while still held: a daemon that opens the path from
			// now on makes a file of its own, never one about to vanish.
			_ = os.Remove(lockFile)
		}
		l.Release()
		if top != "" {
			dirs.RemoveEmpty(dir, top)
		}
		if len(left) > 0 {
			return fmt.Errorf("state_dir %s: could not remove what the refused change put there: %s", dir, strings.Join(left, " "))
		}
		return nil
	}
	if err != nil {
		_ = giveBack()
		return nil, nil, err
	}
	return l, giveBack, nil
}

// treeOf lists the paths under dir (dir itself excluded); empty when dir
// is missing or cannot be read.
func treeOf(dir string) map[string]bool {
	found := map[string]bool{}
	_ = filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err == nil && path != dir {
			found[path] = true
		}
		return nil
	})
	return found
}

// removeAdded removes what was put under dir since found (treeOf) was
// taken, files first, then the folders left empty; the lock file is left
// to Claim's give-back. It returns what could not be removed.
func removeAdded(dir string, found map[string]bool) (left []string) {
	var added []string
	for p := range treeOf(dir) {
		if !found[p] && filepath.Base(p) != File {
			added = append(added, p)
		}
	}
	// Deeper paths first: a folder after what it holds.
	sort.Slice(added, func(i, j int) bool { return len(added[i]) > len(added[j]) })
	for _, p := range added {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			left = append(left, p)
		}
	}
	return left
}

// Release lets another daemon use the folder. A nil Lock is allowed.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		_ = l.f.Close()
		l.f = nil
	}
}
