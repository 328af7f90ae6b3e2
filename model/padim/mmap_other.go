//go:build !unix

package padim

import (
	"io"
	"os"
)

// openFlags opens a model file read-only; the Stat before the open has
// refused what is not a regular file.
const openFlags = os.O_RDONLY

// mapFile reads the file into memory where mmap is unavailable.
func mapFile(f *os.File, size int64) ([]byte, func([]byte) error, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), b); err != nil {
		return nil, nil, err
	}
	return b, func([]byte) error { return nil }, nil
}

// dontNeed does nothing where the file is read into memory.
func dontNeed([]byte) {}
