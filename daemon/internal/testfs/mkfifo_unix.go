//go:build unix

package testfs

import (
	"os"
	"syscall"
	"testing"
)

// Mkfifo makes a named pipe at path, or skips the test where the file
// system has none. Its cleanup opens the pipe for reading and writing,
// which never waits, so that a reader left waiting in its open gets a
// writer, reads the end at once and returns instead of outliving the test.
// Cleanups run last first: a daemon stopped by a cleanup registered before
// Mkfifo is let go before the stop waits for it. If the test has put
// something else at path by then (a link to a device, say), the cleanup
// leaves it unopened.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	t.Cleanup(func() {
		if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			return
		}
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
}
