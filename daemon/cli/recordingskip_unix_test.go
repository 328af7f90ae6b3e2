//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// A recording folder holding a recording and a named pipe named like one
// replayed the recording alone, saying nothing of the pipe it passed
// over. The files not read are now named in one warning line.
func TestBenchReplayNamesWhatItSkips(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := runCaptureCmd(t, "capture", "encode", "--out", filepath.Join(dir, "a.mjpeg"), "--size", "64x48", "--frames", "2"); code != 0 {
		t.Fatalf("capture encode: exit %d: %s", code, errs)
	}
	testfs.Mkfifo(t, filepath.Join(dir, "b.mjpeg"))
	if err := os.Symlink("a.mjpeg", filepath.Join(dir, "c.mjpeg")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not named like a recording"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A --model that is not there ends the bench soon after the
	// recording is read, before any fit.
	var code int
	var stdout, stderr string
	testfs.Within(t, 30*time.Second, "bench --camera-replay of a folder holding a named pipe", func() {
		code, stdout, stderr = runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", evalConfig(t, t.TempDir()),
			"--camera-replay", dir, "--model", filepath.Join(dir, "none.safetensors"))
	})
	if !strings.Contains(stdout, "2 MJPG frames") {
		t.Errorf("exit %d: the recording was not read: stdout %q, stderr %q", code, stdout, stderr)
	}
	var warn string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "files of the recording folder skipped") {
			warn = l
		}
	}
	for _, w := range []string{"only regular files are read", "b.mjpeg (a named pipe)", "c.mjpeg (a symbolic link)", dir} {
		if !strings.Contains(warn, w) {
			t.Errorf("no warning naming %q: stderr %q", w, stderr)
		}
	}
	if strings.Contains(warn, "notes.txt") {
		t.Errorf("a file not named like a recording was named: %q", warn)
	}

	// Only a pipe: refused, naming it.
	only := t.TempDir()
	testfs.Mkfifo(t, filepath.Join(only, "b.mjpeg"))
	testfs.Within(t, 30*time.Second, "bench --camera-replay of a folder holding only a named pipe", func() {
		code, _, stderr = runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", evalConfig(t, t.TempDir()), "--camera-replay", only)
	})
	if want := "no recorded frames: only regular files are read (not read: b.mjpeg (a named pipe))"; code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("only a pipe: exit %d, stderr %q: want %q", code, stderr, want)
	}
}
