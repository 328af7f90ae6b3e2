//go:build !linux

package capture

import (
	"io/fs"
	"os"
)

// inodeAndChange is zero where the stamp is size and modification time
// alone.
func inodeAndChange(fs.FileInfo) (uint64, int64) { return 0, 0 }

// openRegular opens path for reading if it is a regular file (checked
// before the open, so that a named pipe is not opened, and after it).
func openRegular(path string) (*os.File, error) {
	if info, err := os.Stat(path); err != nil {
		return nil, err
	} else if !info.Mode().IsRegular() {
		return nil, &notImageFileError{path: path, mode: info.Mode()}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = &notImageFileError{path: path, mode: info.Mode()}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
