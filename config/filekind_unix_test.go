//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadRefusesANamedPipeAndADevice: the refusal of a configuration
// path that is a named pipe or a device was the daemon's (LoadConfig), so
// that config.Load itself, which a rollback's previous file and a
// confirm's reload go through, read a pipe's writer as a file (and waited
// for one where none came) and /dev/zero up to the size limit. Load, its
// previous file and LoadWithWarnings refuse them unopened now, in the
// words config check, a start and a reload give.
func TestLoadRefusesANamedPipeAndADevice(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "inspectd.yaml")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	prev := PreviousPath(pipe)
	if err := syscall.Mkfifo(prev, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pipe, prev} {
		// A writer, so that the old open returned and read a good file
		// from the pipe instead of waiting.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
				w.WriteString("log_level: debug\n")
				w.Close()
			}
		}()
		var err error
		if p == prev {
			_, err = LoadPrevious(pipe)
		} else {
			_, _, err = LoadWithWarnings(p)
		}
		// Releases the writer's open, where the load did not open the pipe.
		if r, oerr := os.OpenFile(p, os.O_RDWR, 0); oerr == nil {
			<-wrote
			r.Close()
		}
		if want := "config " + p + ": is a named pipe, not a configuration file"; err == nil || err.Error() != want {
			t.Errorf("load of the named pipe %s: %v, want %q", p, err, want)
		}
	}
	_, err := Load("/dev/zero")
	if want := "config /dev/zero: is a device, not a configuration file"; err == nil || err.Error() != want {
		t.Errorf("Load(/dev/zero): %v, want %q", err, want)
	}
	// A folder is still named by the read, a regular file still loads.
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Load of a folder: %v", err)
	}
	file := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(file, []byte("log_level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(file); err != nil || c.LogLevel != "debug" {
		t.Errorf("Load of a regular file: %v", err)
	}
}
