//go:build unix

package model

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/padim"
)

// TestLoadRefusesWhatIsNotARegularFile: Load opened the path before it
// looked at it, so that a named pipe there waited for a writer for good (a
// model rollback to a pipe at model.path's .prev held the daemon's command
// handler) and a device was opened before it was refused as "not a
// regular file". Each is now refused at once, unopened, naming the path
// and what it is. The nodes are made in a temporary folder; /dev/zero is
// reached through a link.
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	type target struct{ path, kind string }
	fifo := filepath.Join(dir, "pipe.safetensors")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// On the old code the load's open waits for a writer: one opened at
	// the test's end lets it go, so that the test fails, not hangs.
	t.Cleanup(func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	targets := []target{{fifo, "a named pipe"}}
	zero := filepath.Join(dir, "zero.safetensors")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	targets = append(targets, target{zero, "a device"})
	sock := filepath.Join(dir, "sock.safetensors")
	if l, err := net.Listen("unix", sock); err == nil {
		defer l.Close()
		targets = append(targets, target{sock, "a socket"})
	} else {
		t.Logf("no socket (%v): its case is left out", err)
	}
	folder := filepath.Join(dir, "folder.safetensors")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	targets = append(targets, target{folder, "a folder"})
	for _, tc := range targets {
		done := make(chan error, 1)
		go func() {
			det, err := Load(tc.path, Options{})
			if det != nil {
				det.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			want := tc.path + " is " + tc.kind + ", not a model file"
			var nm *padim.NotModelFileError
			if err == nil || err.Error() != want || !errors.As(err, &nm) {
				t.Errorf("Load(%s): %v, want %q", tc.path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Load(%s), %s: no answer after 5 s", tc.path, tc.kind)
			return // the cleanup lets the load go
		}
	}
}
