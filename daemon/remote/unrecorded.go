package remote

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
)

// unrecordable is why the request table cannot be written into state_dir:
// the folder and the system's reason, not the temporary file the atomic
// write failed on (a name that changes with every attempt and sends one
// looking for a stray file).
type unrecordable struct {
	dir   string // state_dir, where the table lives
	why   string // "operation not permitted", "read-only file system", …
	errno syscall.Errno
}

// advice is what makes the folder take the table again.
func (u *unrecordable) advice() string {
	switch u.errno {
	case syscall.EROFS:
		return "remount its file system read-write, or set state_dir to a writable folder"
	case syscall.ENOSPC, syscall.EDQUOT:
		return "free space on its file system"
	case syscall.EPERM:
		// Not a matter of modes or owners: root meets it too.
		return "look for an immutable or append-only attribute on the folder (lsattr shows it, chattr -i or -a clears it)"
	default:
		return "make the folder writable for the user inspectd runs as"
	}
}

// String is the health detail: what cannot be written, and why.
func (u *unrecordable) String() string {
	return fmt.Sprintf("state_dir %s cannot be written: %s; remote commands that change the box are refused until it can (%s)", u.dir, u.why, u.advice())
}

// unrecordable returns why a failed record of a request failed when the
// state folder refused the write (nil for any other failure, such as too
// many nonces), and keeps it for StateError, logging it at the first
// failure only: every command would otherwise log it again.
func (d *Dispatcher) unrecordable(err error) *unrecordable {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return nil
	}
	u := &unrecordable{dir: d.store.dir(), why: errno.Error(), errno: errno}
	d.mu.Lock()
	was := d.unrecorded
	d.unrecorded = u
	d.mu.Unlock()
	if was == nil || *was != *u {
		d.log.Error("remote: requests cannot be recorded in state_dir; commands that change the box are refused, read-only ones (status, config-get, snapshot) still answered (logged again only when this changes)",
			"state_dir", u.dir, "error", err)
	}
	return u
}

// recorded notes a request recorded: state_dir takes the table again.
func (d *Dispatcher) recorded() {
	d.mu.Lock()
	was := d.unrecorded
	d.unrecorded = nil
	d.mu.Unlock()
	if was != nil {
		d.log.Info("remote: requests are recorded in state_dir again; commands that change the box run again", "state_dir", was.dir)
	}
}

// StateError says why remote requests cannot be recorded in state_dir
// ("" while they can, or before one was tried), for /healthz: a box that
// refuses every command that changes it is not healthy.
func (d *Dispatcher) StateError() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unrecorded == nil {
		return ""
	}
	return d.unrecorded.String()
}

// dir is the state folder the table is written into ("" in memory).
func (s *store) dir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		return ""
	}
	return filepath.Dir(s.path)
}
