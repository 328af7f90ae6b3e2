//go:build unix

package testfs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Mkfifo makes a named pipe, and a reader left waiting in its open when the
// test ends is let go by the cleanup, reading the end at once.
func TestMkfifoLetsAWaitingReaderGo(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "pipe")
	opened := make(chan error, 1)
	t.Run("make", func(t *testing.T) {
		Mkfifo(t, pipe)
		st, err := os.Lstat(pipe)
		if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			t.Fatalf("after Mkfifo, %s: %v, %v; want a named pipe", pipe, st, err)
		}
		go func() {
			f, err := os.Open(pipe) // waits for a writer
			if err == nil {
				_, err = f.Read(make([]byte, 1))
				f.Close()
			}
			opened <- err
		}()
		// Give the reader time to reach the open: one that came after
		// the cleanup would wait for a writer that never comes.
		time.Sleep(100 * time.Millisecond)
	})
	// The subtest's cleanups have run.
	select {
	case err := <-opened:
		if err == nil || err.Error() != "EOF" {
			t.Errorf("the reader let go read %v, want the end (EOF)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader waiting in the pipe's open is still waiting after the test that made it ended")
	}
}
