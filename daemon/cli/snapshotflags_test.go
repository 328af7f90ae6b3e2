package cli

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCaptureSnapshotRefusesFlagsItsSourceIgnores: `capture snapshot
// --file F --width 100` (or --folder with --height) wrote the image at its
// own size and said nothing, as did a camera's --fps with --synthetic or
// the synthetic --seed with --file. Each is a usage error naming the flag
// and the sources it acts on; the synthetic source still takes its size.
func TestCaptureSnapshotRefusesFlagsItsSourceIgnores(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.png")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 64, 32))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--file", src, "--width", "100"}, "--width applies to --device and --synthetic only, not to --file: --file gives the image at its own size"},
		{[]string{"--folder", dir, "--height", "50"}, "--height applies to --device and --synthetic only, not to --folder: --folder gives each image at its own size"},
		{[]string{"--synthetic", "--fps", "5"}, "--fps applies to --device only, not to --synthetic"},
		{[]string{"--file", src, "--seed", "3"}, "--seed applies to --synthetic only, not to --file"},
	} {
		code, _, errs := runCaptureCmd(t, append([]string{"capture", "snapshot", "--out", out}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want 2 (usage) and %q; stderr:\n%s", c.args, code, c.want, errs)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused snapshot wrote its --out")
	}
	code, _, errs := runCaptureCmd(t, "capture", "snapshot", "--out", out, "--synthetic", "--width", "100", "--height", "80")
	if code != 0 {
		t.Fatalf("--synthetic --width 100 --height 80: exit %d: %s", code, errs)
	}
	if b := decodeFile(t, out).Bounds(); b.Dx() != 100 || b.Dy() != 80 {
		t.Errorf("--synthetic --width 100 --height 80 wrote %v", b)
	}
}
