package cli

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd fit --data DIR` where DIR/train/good was a link that leads
// round in a loop (train/good → la → lb → la) printed "fitted … on 6
// images" of DIR's own images, with no warning; eval said "open
// DIR/train/good: too many levels of symbolic links". Both now name the
// link and its loop, and fit does not fall back to DIR's own images.
func TestFitEvalDataLinkLoop(t *testing.T) {
	dir := t.TempDir()
	train := filepath.Join(dir, "train")
	if err := os.MkdirAll(train, 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(train, "good")
	for _, l := range [][2]string{{"la", good}, {"lb", filepath.Join(train, "la")}, {"la", filepath.Join(train, "lb")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	// Six images of DIR's own, which an old fit fitted instead.
	for i := range 6 {
		img := image.NewGray(image.Rect(0, 0, 64, 48))
		for p := range img.Pix {
			img.Pix[p] = uint8(p*7 + i*13)
		}
		img.Set(i, i, color.Gray{Y: 255})
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.jpg", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "cfg.yaml")
	body := "state_dir: " + filepath.Join(t.TempDir(), "state") + "\nmodel: {recipe: fixed, features: 32, min_features: 16, context_pool: 0, optimize: off}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	want := good + " is a link that leads round in a loop (la → lb → la)"
	out := filepath.Join(t.TempDir(), "m.safetensors")
	code, stdout, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", out)
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("fit: exit %d, stderr %q, stdout %q: want %q", code, stderr, stdout, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("fit: a model was written")
	}
	code, _, stderr = runCaptureCmd(t, "eval", "--data", dir, "--config", cfg)
	if code == 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "too many levels") {
		t.Errorf("eval: exit %d, stderr %q: want %q", code, stderr, want)
	}
}
