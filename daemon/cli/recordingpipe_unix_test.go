//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `inspectd bench --camera-replay` read the recording it was given with
// os.ReadFile: a named pipe (or a link to one) named there waited in its
// open for a writer, and the command with it, for good; /dev/zero read
// without end. They are now refused unopened, saying what the path is.
func TestBenchReplayRefusesANamedPipe(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	pipe := filepath.Join(dir, "line.mjpeg")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	t.Cleanup(func() { // a reader left waiting gets a writer and the end
		if f, err := os.OpenFile(pipe, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	link := filepath.Join(elsewhere, "link.mjpeg")
	if err := os.Symlink(pipe, link); err != nil {
		t.Fatal(err)
	}
	cases := [][2]string{
		{pipe, pipe + " is a named pipe, not a recording"},
		{link, link + " is a named pipe, not a recording"},
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		// Last: where a pipe is waited on, the test ends before this one
		// reads without end.
		cases = append(cases, [2]string{"/dev/zero", "/dev/zero is a device, not a recording"})
	}
	cfg := evalConfig(t, t.TempDir())
	for _, c := range cases {
		path, want := c[0], c[1]
		type result struct {
			code   int
			stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, _, stderr := runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", cfg, "--camera-replay", path, "--size", "64x48")
			done <- result{code, stderr}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("bench --camera-replay %s: still running after 5s", path)
		}
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("bench --camera-replay %s: exit %d, stderr %q: want %q", path, r.code, r.stderr, want)
		}
	}
}

// A file of a recording folder that became a named pipe after the folder
// was listed is refused, not waited on.
func TestRecordingFileSwappedForAPipe(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "b.mjpeg")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(pipe, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := readRecordingFile(pipe)
		done <- err
	}()
	select {
	case err := <-done:
		if want := pipe + " is a named pipe, not a recording"; err == nil || err.Error() != want {
			t.Errorf("readRecordingFile(pipe): %v, want %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readRecordingFile(pipe): still waiting after 5s")
	}
}
