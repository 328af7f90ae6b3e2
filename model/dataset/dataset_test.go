package dataset

import (
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestScanLayout(t *testing.T) {
	dir := t.TempDir()
	img := image.NewGray(image.Rect(0, 0, 8, 4))
	writePNG(t, filepath.Join(dir, "train/good/a.png"), img)
	writePNG(t, filepath.Join(dir, "train/good/b.png"), img)
	// A copy tool's temporary file: hidden, as the folder source skips it.
	writePNG(t, filepath.Join(dir, "train/good/.~tmp003.png"), img)
	writePNG(t, filepath.Join(dir, "test/good/c.png"), img)
	writePNG(t, filepath.Join(dir, "test/scratch/d.png"), img)
	writePNG(t, filepath.Join(dir, "test/scratch/e.png"), img)
	mask := image.NewGray(image.Rect(0, 0, 4, 2))
	mask.Pix[1] = 255
	writePNG(t, filepath.Join(dir, "ground_truth/scratch/d_mask.png"), mask)
	s, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Train) != 2 || len(s.Test) != 3 {
		t.Fatalf("train %d test %d", len(s.Train), len(s.Test))
	}
	if l := s.Labels(); len(l) != 2 || l[0] != Good || l[1] != "scratch" {
		t.Fatalf("labels %v", l)
	}
	var d Item
	for _, it := range s.Test {
		if filepath.Base(it.Path) == "d.png" {
			d = it
		}
		if filepath.Base(it.Path) == "e.png" && (it.MaskPath != "" || it.MaskMissing != filepath.Join(dir, "ground_truth/scratch/e_mask.png")) {
			t.Errorf("e.png has no mask: %+v", it)
		}
		if !it.Anomalous() && it.MaskMissing != "" {
			t.Errorf("good image %s: a mask is missing (%s)", it.Path, it.MaskMissing)
		}
	}
	m, err := LoadMask(d.MaskPath, 8, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Mask pixel (1,0) scales to (2..3, 0..1) of the 8×4 image.
	want := map[int]bool{2: true, 3: true, 10: true, 11: true}
	for i, v := range m {
		if (v == 1) != want[i] {
			t.Fatalf("mask %v", m)
		}
	}
	// A mask of another shape is not the image's: refused, naming both
	// sizes.
	if _, err := LoadMask(d.MaskPath, 8, 8, nil); !errors.Is(err, ErrMaskShape) || !strings.Contains(err.Error(), "is 4x2, its image 8x8") {
		t.Errorf("mask of another shape: %v", err)
	}
}

func TestScanErrors(t *testing.T) {
	if _, err := Scan(t.TempDir()); err == nil {
		t.Fatal("empty folder accepted")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "train/good"), 0o755)
	if _, err := Scan(dir); err == nil {
		t.Fatal("train/good without images accepted")
	}
}
