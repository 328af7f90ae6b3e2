package dataset

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/inspectd/inspectd/config/atomicfile"
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
// the open file is checked again. A path that is a link leading nowhere is
// refused in BrokenLink's words (ImageFileError).
func OpenImageFile(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, ImageFileError(path, err)
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

// ImageFileError is err, the error of looking at or opening the image file
// at path (a stat's, an open's, a decode's of it), in BrokenLink's words
// where path is a symbolic link that leads nowhere: a *DanglingLinkError
// or a *LinkLoopError, which name the link, where it leads, and that it
// leads to nothing or round in a loop, as a train/good or a test/<label>
// that is such a link is named. A dangling link among a folder's images
// was skipped as "stat …: no such file or directory", and one in a loop
// as "… too many levels of symbolic links". err otherwise, nil included.
func ImageFileError(path string, err error) error {
	if err == nil {
		return nil
	}
	if bl := BrokenLink(path); bl != nil {
		return bl
	}
	return err
}

// DanglingLinkError is a path that is a symbolic link to something that
// does not exist (atomicfile.DanglingLinkError: a configuration file that
// is such a link is named in the same words).
type DanglingLinkError = atomicfile.DanglingLinkError

// LinkLoopError is a path that is a symbolic link that leads round in a
// loop (atomicfile.LinkLoopError).
type LinkLoopError = atomicfile.LinkLoopError

// MaxLinks is how many symbolic links in a row the system follows
// (atomicfile.MaxLinks).
const MaxLinks = atomicfile.MaxLinks

// DanglingLink returns a *DanglingLinkError when path is a symbolic link
// that leads to nothing, and nil otherwise (atomicfile.DanglingLink).
func DanglingLink(path string) error { return atomicfile.DanglingLink(path) }

// BrokenLink returns an error naming path when it is a symbolic link that
// leads nowhere, to nothing or round in a loop, and nil otherwise
// (atomicfile.BrokenLink).
func BrokenLink(path string) error { return atomicfile.BrokenLink(path) }
