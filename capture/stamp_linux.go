package capture

import (
	"fmt"
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

// openRegular opens path for reading if it is a regular file. The open
// does not wait (O_NONBLOCK: a named pipe's would wait for a writer, the
// folder source with it), and the open file itself is checked, so nothing
// renamed over the name between a check and the open gets through.
func openRegular(path string) (*os.File, error) {
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

// isRegular returns an error wrapping errNotRegular unless f is a regular
// file.
func isRegular(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (%s)", f.Name(), errNotRegular, info.Mode().Type())
	}
	return nil
}
