//go:build unix

package padim

import (
	"fmt"
	"os"
	"syscall"
)

// openFlags opens a model file without waiting: a named pipe's open
// returns at once, where a plain read-only open waits for a writer.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

// mapFile maps the whole file read-only and shared: the pages come from the
// page cache and are never copied into the heap.
func mapFile(f *os.File, size int64) ([]byte, func([]byte) error, error) {
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("file of %d bytes is too large to map", size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return b, syscall.Munmap, nil
}

// dontNeed drops b's pages (whole pages of a read-only shared file
// mapping) from the resident set; errors only mean they stay.
func dontNeed(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }
