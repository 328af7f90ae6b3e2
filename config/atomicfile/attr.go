package atomicfile

import (
	"fmt"
	"path/filepath"
	"syscall"
)

// AttrError is Write's refusal of a folder, or of a file to be replaced,
// whose inode carries an attribute that no mode, owner or root bypasses:
// append-only (chattr +a) or immutable (chattr +i). It wraps
// syscall.EPERM, what the OS says for either, so that callers word it as
// they word the OS's refusal.
type AttrError struct {
	Path   string // the folder, or the file to be replaced
	Folder bool   // Path is the folder the file is written in
	Attr   string // "append-only" or "immutable"
	Flag   string // the chattr letter that sets it: "a" or "i"
}

// Error names the path, the attribute and what clears it.
func (e *AttrError) Error() string {
	what, why := e.Path, "it cannot be replaced"
	if e.Folder {
		what = "folder " + e.Path
		why = "a file cannot be renamed into it"
		if e.Flag == "a" {
			why += " nor removed from it, so nothing is written there"
		}
	}
	return fmt.Sprintf("%s is %s (chattr +%s): %s: %v (chattr -%s %s clears it)", what, e.Attr, e.Flag, why, syscall.EPERM, e.Flag, e.Path)
}

// Unwrap is syscall.EPERM, what the OS would have said.
func (e *AttrError) Unwrap() error { return syscall.EPERM }

// CheckTarget returns the *AttrError that Write refuses path with (its
// folder, or the regular file at path, append-only or immutable), or nil.
// A caller that renames its own temporary file over path, or that writes
// path only after minutes of work (a fit), checks it first: the rename
// says only "operation not permitted", and after the work.
func CheckTarget(path string) error { return checkAttrs(filepath.Dir(path), path) }

// CheckFolder returns the *AttrError that Write refuses a file in dir
// with (dir append-only or immutable), or nil. A write check that makes
// and removes a file of its own in dir checks it first: an append-only
// folder takes the file but refuses its removal, leaving it there.
func CheckFolder(dir string) error { return checkAttrs(dir, "") }
