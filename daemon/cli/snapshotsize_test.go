package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCaptureSnapshotTakesOneSideOfTheSize: `capture snapshot --synthetic
// --width 320` failed "synthetic source: size 320x0" (exit 1), though the
// help gives each side its default (256); the other side takes it. A size,
// frame rate or defect rate no source takes is a usage error naming the
// flag, not the source's words after it was built.
func TestCaptureSnapshotTakesOneSideOfTheSize(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "s.png")
	code, stdout, errs := runCaptureCmd(t, "capture", "snapshot", "--synthetic", "--width", "320", "--out", out)
	if code != 0 || !strings.Contains(stdout, "(320x256,") {
		t.Fatalf("--synthetic --width 320: exit %d, stdout %q, stderr:\n%s", code, stdout, errs)
	}
	if b := decodeFile(t, out).Bounds(); b.Dx() != 320 || b.Dy() != 256 {
		t.Errorf("--synthetic --width 320 wrote %v, want 320x256", b)
	}
	code, stdout, errs = runCaptureCmd(t, "capture", "snapshot", "--synthetic", "--height", "64", "--out", out)
	if code != 0 || !strings.Contains(stdout, "(256x64,") {
		t.Errorf("--synthetic --height 64: exit %d, stdout %q, stderr:\n%s", code, stdout, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--synthetic", "--width", "10"}, "--width 10: want 32..8192 for --synthetic"},
		{[]string{"--synthetic", "--height", "-5"}, "--height -5: want 32..8192 for --synthetic"},
		{[]string{"--synthetic", "--defect-rate", "2"}, "--defect-rate 2: want 0..1"},
		{[]string{"--device", "/dev/null", "--width", "-640"}, "--width -640: want a positive number of pixels"},
		{[]string{"--device", "/dev/null", "--fps", "-1"}, "--fps -1: want a positive frame rate"},
	} {
		code, _, errs := runCaptureCmd(t, append([]string{"capture", "snapshot", "--out", out}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want 2 (usage) and %q; stderr:\n%s", c.args, code, c.want, errs)
		}
	}
}
