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

// A set assembled from symbolic links (train/good, test/<label> and
// ground_truth/<label> linked to the folders of another copy, an image
// linked to a file) is read as the folders themselves: eval said "has no
// test images" (a trial). A link to a folder inside a label's folder is
// not an image, and a link that leads nowhere is not a label.
func TestScanFollowsLinks(t *testing.T) {
	real, dir := t.TempDir(), t.TempDir()
	img := image.NewGray(image.Rect(0, 0, 8, 4))
	writePNG(t, filepath.Join(real, "train/good/a.png"), img)
	writePNG(t, filepath.Join(real, "test/good/c.png"), img)
	writePNG(t, filepath.Join(real, "test/scratch/d.png"), img)
	writePNG(t, filepath.Join(real, "ground_truth/scratch/d_mask.png"), img)
	writePNG(t, filepath.Join(real, "elsewhere/e.png"), img)
	if err := os.Mkdir(filepath.Join(real, "sub.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"train", "test", "ground_truth"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"train/good":           "train/good",
		"test/good":            "test/good",
		"test/scratch":         "test/scratch",
		"test/gone":            "nowhere",
		"ground_truth/scratch": "ground_truth/scratch",
	} {
		if err := os.Symlink(filepath.Join(real, target), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	// A linked image file and a linked folder named like an image, both
	// inside the linked test/scratch's real folder.
	if err := os.Symlink(filepath.Join(real, "elsewhere/e.png"), filepath.Join(real, "test/scratch/e.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "sub.png"), filepath.Join(real, "test/scratch/sub.png")); err != nil {
		t.Fatal(err)
	}
	s, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Train) != 1 || s.Train[0].Path != filepath.Join(dir, "train/good/a.png") {
		t.Errorf("train %+v, want train/good/a.png through the link", s.Train)
	}
	var got []string
	for _, it := range s.Test {
		got = append(got, it.Label+":"+filepath.Base(it.Path)+":"+filepath.Base(it.MaskPath))
	}
	want := []string{"good:c.png:.", "scratch:d.png:d_mask.png", "scratch:e.png:."}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("test %v, want %v", got, want)
	}
}
