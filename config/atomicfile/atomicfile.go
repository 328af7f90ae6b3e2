// Package atomicfile writes files so that a crash or power cut leaves
// either the old content or the new, never a torn file: a temporary file in
// the same directory, fsynced, renamed over the target, and the directory
// fsynced so that the rename itself is on disk. Configurations, model files,
// the MQTT outbox and caches all persist through it.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tempMark is in the name of every temporary file Write creates, so that a
// directory's owner can remove the ones a crash left behind (IsTemp).
const tempMark = ".tmp-"

// StaleAfter is the age from which RemoveStale takes a temporary file for
// one a crash or power cut left behind. A write in progress touches its
// file far more often than this.
const StaleAfter = time.Hour

// Write creates or replaces path with what write produces, with permissions
// perm. On any failure, a panic in write included, the target is untouched
// and the temporary file removed. The directory must exist (see MkdirAll).
// Temporary files that a crash left behind are not looked for here: that
// costs a directory listing per write, and the MQTT outbox writes
// thousands of files into one directory (see RemoveStale).
//
// A folder that is append-only or immutable (chattr +a, +i), or such a
// file at path, is refused with an *AttrError (which wraps syscall.EPERM)
// before anything is created: an append-only folder takes the temporary
// file but neither the rename nor its removal, so each refused write left
// one there for good. The check is one open and ioctl of the folder (and
// of the file, where one is there) per write, nothing beside the fsyncs.
//
// The temporary file has perm before write is called, not only once it is
// complete (see WriteWith).
func Write(path string, perm os.FileMode, write func(w io.Writer) error) error {
	return WriteWith(path, Options{Perm: perm}, write)
}

// Options are WriteWith's: what the file is given before any byte is
// written to it.
type Options struct {
	// Perm is the file's permissions.
	Perm os.FileMode
	// Prepare, where not nil, is called with the temporary file, empty,
	// before its permissions are set (a chown may clear mode bits): to
	// give it the owner and group of the file it replaces, say. Its error
	// fails the write.
	Prepare func(f *os.File) error
}

// WriteWith is Write with opts: the temporary file takes its owner and
// group (Prepare) and its permissions (Perm) while it is empty, so that
// what is written is never readable more widely than the file will be. A
// caller that saved to a file of its own and changed its mode afterwards
// left a whole model readable by all for a moment, where it was to be
// 0600.
func WriteWith(path string, opts Options, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if err := checkAttrs(dir, path); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+base+tempMark+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if opts.Prepare != nil {
		if err = opts.Prepare(f); err != nil {
			return err
		}
	}
	// The open file takes its writes whatever its mode (0444 included).
	if err = f.Chmod(opts.Perm); err != nil {
		return err
	}
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	return syncDir(dir)
}

// WriteBytes is Write for content already in memory.
func WriteBytes(path string, perm os.FileMode, data []byte) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// IsTemp reports whether a file name is one of Write's temporary files,
// or one of TempPath's.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMark)
}

// TempPath is a new name for a temporary file of a caller's own beside
// path, kind saying what it holds ("new"): one that RemoveStale(path)
// takes for path's, and a Write to it leaves temporary files that
// RemoveStale(path) takes too. A model saved to ".NAME.new-…" and renamed
// over NAME once complete left, when a kill cut the save short, a file of
// tens of megabytes that nothing removed. A file that may be the only copy
// of something (the model a command replaces) must not be named so.
func TempPath(path, kind string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+tempMark+kind+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
}

// RemoveStale removes the temporary files of Write for path that are older
// than StaleAfter (left by a crash or power cut in the middle of a write)
// and returns how many it removed: those of a Write to path, the files
// named by TempPath(path, …), and those of a Write to such a file (a save
// to a temporary file of the caller's, cut short). Writers of large files
// that are saved now and then (models, configurations) call it before
// Write, and the daemon at its start for its model file: a device that
// loses power while saving a model must not fill its disk with
// tens-of-megabyte copies. Failures to list or remove are ignored.
func RemoveStale(path string) int {
	dir, base := filepath.Dir(path), filepath.Base(path)
	matches, _ := filepath.Glob(filepath.Join(dir, globEscape("."+base+tempMark)+"*"))
	nested, _ := filepath.Glob(filepath.Join(dir, globEscape(".."+base+tempMark)+"*"+tempMark+"*"))
	matches = append(matches, nested...)
	n := 0
	for _, m := range matches {
		if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > StaleAfter && os.Remove(m) == nil {
			n++
		}
	}
	return n
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// syncDir fsyncs a directory, so that entries created or renamed in it
// are on disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MkdirAll creates dir and any missing parents with permissions perm, like
// os.MkdirAll, and fsyncs the parent of each directory it creates, so that
// a file written into a new directory does not vanish with it after a
// power cut. An existing directory is not an error; an existing file is.
func MkdirAll(dir string, perm os.FileMode) error {
	return mkdirAll(dir, perm, syncDir)
}

func mkdirAll(dir string, perm os.FileMode, sync func(string) error) error {
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errors.New("exists and is not a directory")}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent, perm, sync); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
				return nil // made by someone else meanwhile
			}
		}
		return err
	}
	if err := sync(parent); err != nil {
		return fmt.Errorf("sync directory %s after creating %s: %w", parent, filepath.Base(dir), err)
	}
	return nil
}
