package dataset

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/inspectd/inspectd/model/padim"
)

// NotImageFileError refuses a path that is there and leads to something
// other than a regular file: a folder, a device, a named pipe or a socket
// (itself, or through a symbolic link). Such a path is never read as an
// image: opening a named pipe waits for a writer, and a device such as
// /dev/zero reads without end.
type NotImageFileError struct {
	Path string
	Mode fs.FileMode
}

// Error names the path and what it is: "/x/a.png is a named pipe, not an
// image file".
func (e *NotImageFileError) Error() string {
	return fmt.Sprintf("%s is %s, not an image file", e.Path, fileKind(e.Mode))
}

// fileKind words what a file that is not regular is: a folder, or what
// padim.FileKind calls it, so that an image file and a model file are
// refused in the same words.
func fileKind(m fs.FileMode) string {
	if m.IsDir() {
		return "a folder"
	}
	return padim.FileKind(m)
}

// OpenImageFile opens path for reading if it leads to a regular file, and
// refuses anything else with a *NotImageFileError. What it leads to is
// checked before the open, so that a named pipe or a device is not opened
// at all; the open does not wait (O_NONBLOCK where there is one), so that
// a pipe put in the file's place after that check cannot block it; and
// the open file is checked again.
func OpenImageFile(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &NotImageFileError{Path: path, Mode: st.Mode()}
	}
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return nil, err
	}
	if st, err = f.Stat(); err == nil && !st.Mode().IsRegular() {
		err = &NotImageFileError{Path: path, Mode: st.Mode()}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
