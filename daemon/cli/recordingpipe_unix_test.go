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

// `inspectd bench --camera-replay` read the recording it was given with
// os.ReadFile: a named pipe (or a link to one) named there waited in its
// open for a writer, and the command with it, for good; /dev/zero read
// without end. They are now refused unopened, saying what the path is.
func TestBenchReplayRefusesANamedPipe(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	pipe := filepath.Join(dir, "line.mjpeg")
	testfs.Mkfifo(t, pipe)
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
		var code int
		var stderr string
		testfs.Within(t, 5*time.Second, "bench --camera-replay "+path, func() {
			code, _, stderr = runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", cfg, "--camera-replay", path, "--size", "64x48")
		})
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("bench --camera-replay %s: exit %d, stderr %q: want %q", path, code, stderr, want)
		}
	}
}

// A file of a recording folder that became a named pipe after the folder
// was listed is refused, not waited on.
func TestRecordingFileSwappedForAPipe(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "b.mjpeg")
	testfs.Mkfifo(t, pipe)
	var err error
	testfs.Within(t, 5*time.Second, "readRecordingFile(pipe)", func() { _, err = readRecordingFile(pipe, maxRecordingBytes) })
	if want := pipe + " is a named pipe, not a recording"; err == nil || err.Error() != want {
		t.Errorf("readRecordingFile(pipe): %v, want %q", err, want)
	}
}
