package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestConfigCheckRefusesANamedPipeAndADevice: `config check` of a named
// pipe with no writer hung for good (SIGTERM too: the open waited), one
// with a writer was read as a file, and /dev/zero was called "1048577
// bytes is more than a configuration file may hold". Each is refused
// unopened now, naming what it is; run and a reload load through the same
// daemon.LoadConfig.
func TestConfigCheckRefusesANamedPipeAndADevice(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "inspectd.yaml")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	// A writer, so that the old open returned and read a good file from
	// the pipe instead of waiting.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if w, err := os.OpenFile(pipe, os.O_WRONLY, 0); err == nil {
			w.WriteString("log_level: debug\n")
			w.Close()
		}
	}()
	code, out, errs := runConfigCLI("config", "check", pipe)
	// Releases the writer's open, as the check did not open the pipe.
	if r, err := os.OpenFile(pipe, os.O_RDWR, 0); err == nil {
		<-wrote
		r.Close()
	}
	if want := "config " + pipe + ": is a named pipe, not a configuration file"; code != 1 || !strings.Contains(errs, want) || strings.Contains(out, ": ok") {
		t.Errorf("config check of a named pipe: exit %d, want 1 and %q; stdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}
	code, out, errs = runConfigCLI("config", "check", "/dev/zero")
	if want := "config /dev/zero: is a device, not a configuration file"; code != 1 || !strings.Contains(errs, want) || strings.Contains(errs, "bytes is more than") {
		t.Errorf("config check of /dev/zero: exit %d, want 1 and %q; stdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}
}
