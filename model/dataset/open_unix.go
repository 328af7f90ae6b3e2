//go:build unix

package dataset

import (
	"os"
	"syscall"
)

// openFlags opens an image file without waiting: a named pipe's open for
// reading would wait for a writer. A regular file's reads do not heed it.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK
