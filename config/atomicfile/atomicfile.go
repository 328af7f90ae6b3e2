// Package atomicfile writes files so that a crash or power cut leaves
// either the old content or the new, never a torn file: a temporary file in
// the same directory, fsynced, renamed over the target, and the directory
// fsynced so that the rename itself is on disk. Configurations, model files,
// the MQTT outbox and caches all persist through it.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempMark is in the name of every temporary file Write creates, so that a
// directory's owner can remove the ones a crash left behind (IsTemp).
const tempMark = ".tmp-"

// Write creates or replaces path with what write produces, with permissions
// perm. On any error the target is untouched and the temporary file removed.
func Write(path string, perm os.FileMode, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempMark+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
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
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteBytes is Write for content already in memory.
func WriteBytes(path string, perm os.FileMode, data []byte) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// IsTemp reports whether a file name is one of Write's temporary files.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMark)
}
