package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A defective test image's ground_truth/<label>/<name>_mask.png that is a
// link to nothing (or round in a loop) was taken for no mask at all: eval
// left the image out of the pixel figures and warned of the "missing"
// mask by the link's name, a file `ls` shows there. Scan hands it on as
// the image's mask, so that loading it names the link and where it leads
// (a broken link, skipped with its image, as an unreadable mask is).
func TestScanHandsOnAMaskThatIsABrokenLink(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"train/good", "test/good", "test/crack", "ground_truth/crack"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"train/good/0.png", "test/good/0.png", "test/crack/a.png", "test/crack/b.png", "test/crack/c.png"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	truth := filepath.Join(dir, "ground_truth", "crack")
	gone := filepath.Join(dir, "gone", "a_mask.png")
	if err := os.Symlink(gone, filepath.Join(truth, "a_mask.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b_mask.png", filepath.Join(truth, "b_mask.png")); err != nil {
		t.Fatal(err)
	}
	s, err := Scan(dir)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	masks := map[string]Item{}
	for _, it := range s.Test {
		masks[filepath.Base(it.Path)] = it
	}
	for name, broken := range map[string]func(error) bool{
		"a.png": func(err error) bool { var e *DanglingLinkError; return errors.As(err, &e) },
		"b.png": func(err error) bool { var e *LinkLoopError; return errors.As(err, &e) },
	} {
		it := masks[name]
		if it.MaskPath == "" || it.MaskMissing != "" {
			t.Errorf("%s: mask %q, missing %q; want its broken link as its mask", name, it.MaskPath, it.MaskMissing)
			continue
		}
		_, err := LoadMask(it.MaskPath, 4, 4, nil)
		if !broken(err) {
			t.Errorf("%s: loading its mask: %v; want it named as a broken link", name, err)
		}
	}
	if it := masks["c.png"]; it.MaskPath != "" || it.MaskMissing != filepath.Join(truth, "c_mask.png") {
		t.Errorf("c.png, with no mask file: mask %q, missing %q", it.MaskPath, it.MaskMissing)
	}
}
