//go:build unix

package daemon

import (
	"os"
	"syscall"
)

// readNoWait opens a file to read without waiting: a named pipe's open
// returns at once, where a plain read-only open waits for a writer (it
// held a threshold command, and the command queue behind it, for good).
const readNoWait = os.O_RDONLY | syscall.O_NONBLOCK
