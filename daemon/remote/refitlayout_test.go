package remote

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// A folder refit whose train/good is a file, or whose train holds no good
// folder, fitted the folder's own images in its place (a new user's trial
// of fit found the same); one whose train/good (or folder) holds nothing
// named like an image said only "holds no usable images (JPEG, PNG…)".
// Each is refused naming what is there, as fit refuses it.
func TestRefitSaysWhatTheFolderHolds(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	dir := t.TempDir()
	for i := range 5 { // the set's own images: enough for a refit
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%03d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		img := image.NewGray(image.Rect(0, 0, 64, 64))
		img.Pix[i] = 200
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	train, good := filepath.Join(dir, "train"), filepath.Join(dir, "train", "good")
	if err := os.MkdirAll(good, 0o755); err != nil {
		t.Fatal(err)
	}
	flat := t.TempDir()
	if err := os.Mkdir(filepath.Join(flat, "day1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(flat, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name, folder string
		prep         func() error
		want         string
	}{
		{"train/good empty", dir, func() error { return nil }, good + " holds no images: it is empty"},
		{"train/good a file", dir, func() error {
			if err := os.Remove(good); err != nil {
				return err
			}
			return os.WriteFile(good, []byte("x"), 0o644)
		}, good + " is a file, not a folder: put the images in a folder train/good, or name the folder they are in"},
		{"train without good", dir, func() error { return os.Remove(good) },
			train + " has no folder good in it: put the images in " + good + ", or name the folder they are in"},
		{"a folder of other things", flat, func() error { return nil },
			flat + " holds no images: 1 file, none an image (.jpg .jpeg .png .bmp .tif .tiff .gif); 1 sub-folder (images go in the folder itself, not below it)"},
	} {
		if err := c.prep(); err != nil {
			t.Fatal(err)
		}
		rep := r.do("refit", fmt.Sprintf(`{"id":"l%d","folder":%q}`, i, c.folder))
		mustFail(t, rep, CodeInvalid, "folder: "+c.want)
		if field(rep) != "folder" {
			t.Errorf("%s: field %q, want folder", c.name, field(rep))
		}
	}
}
