package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `fit --out SET/train/good/x.png` saved the model among the images it
// was fitted on, and the next fit read it as one (skipped it as
// unreadable); a folder of images fitted directly, likewise. Such a model
// file is refused before the fit; one named otherwise there, or an image
// name elsewhere, is not.
func TestFitRefusesAModelNamedAsAnImageAmongItsImages(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	good := filepath.Join(set, "train", "good")
	flat := filepath.Join(dir, "flat")
	for _, d := range []string{good, flat} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := evalConfig(t, dir)
	for _, c := range []struct{ data, out string }{
		{set, filepath.Join(good, "x.png")},
		{set, filepath.Join(good, "x.JPG")},
		{flat, filepath.Join(flat, "m.png")},
	} {
		code, _, stderr := runCaptureCmd(t, "fit", "--data", c.data, "--config", cfg, "--out", c.out)
		if code == 0 || !strings.Contains(stderr, "--out "+c.out+" lies in ") || !strings.Contains(stderr, "the folder fit reads its images from, named as an image") {
			t.Errorf("fit --data %s --out %s: exit %d, %q; want it refused before the fit", c.data, c.out, code, stderr)
		}
		if _, err := os.Lstat(c.out); err == nil {
			t.Errorf("%s written", c.out)
		}
	}
	// Not an image name, or not where the images are read: not this
	// refusal (the fit then fails for want of images).
	for _, c := range []struct{ data, out string }{
		{set, filepath.Join(good, "m.safetensors")},
		{set, filepath.Join(set, "x.png")},
	} {
		_, _, stderr := runCaptureCmd(t, "fit", "--data", c.data, "--config", cfg, "--out", c.out)
		if strings.Contains(stderr, "the folder fit reads its images from") {
			t.Errorf("fit --data %s --out %s refused as an image among the images: %q", c.data, c.out, stderr)
		}
	}
}
