package capture

import (
	"io/fs"
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
