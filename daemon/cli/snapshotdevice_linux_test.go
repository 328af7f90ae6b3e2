//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCaptureSnapshotFailsAtOnceForWhatIsNoCamera: `capture snapshot
// --device /dev/null` logged "retrying" and retried "not a V4L2 device"
// until --timeout (10 s by default), then said "no frame within 10s": no
// wait makes /dev/null, a regular file or a folder a camera. It fails at
// the first open now, in the open's words, exit 1. (A missing node failed
// at once before too; a busy camera is still retried: capture's
// TestCameraFailFast.)
func TestCaptureSnapshotFailsAtOnceForWhatIsNoCamera(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "video0")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "c.jpg")
	for dev, want := range map[string]string{
		"/dev/null": "open /dev/null: not a V4L2 device (VIDIOC_QUERYCAP: inappropriate ioctl for device)",
		file:        "open " + file + ": is a regular file, not a V4L2 device",
		dir:         "open " + dir + ": is a folder, not a V4L2 device",
	} {
		// A --timeout the old retries ran out of, so that the test ends
		// either way; the words say whether it waited.
		code, _, stderr := runCaptureCmd(t, "capture", "snapshot", "--device", dev, "--out", out, "--timeout", "2s")
		if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "no frame within") || strings.Contains(stderr, "retrying") {
			t.Errorf("--device %s: exit %d, stderr %q, want 1 and %q at once, no retry", dev, code, stderr, want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written", out)
	}
}
