package capture

import (
	"io/fs"
	"os"
	"syscall"
)

// inodeAndChange are a file's inode number and status change time (ns),
// which no tool that keeps the modification time can keep.
func inodeAndChange(info fs.FileInfo) (uint64, int64) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ino, st.Ctim.Nano()
	}
	return 0, 0
}

// openRegular opens path for reading if it is a regular file. What it
// leads to is checked before the open (a named pipe is not opened: that
// would let a waiting writer write into nothing, and change the pipe), the
// open does not wait (O_NONBLOCK: a pipe renamed over the name since would
// block the folder source until a writer came), and the open file itself
// is checked again.
func openRegular(path string) (*os.File, error) {
	if info, err := os.Stat(path); err != nil {
		return nil, err
	} else if !info.Mode().IsRegular() {
		return nil, &notImageFileError{path: path, mode: info.Mode()}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := isRegular(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// isRegular returns a *notImageFileError unless f is a regular
// file.
func isRegular(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return &notImageFileError{path: f.Name(), mode: info.Mode()}
	}
	return nil
}
