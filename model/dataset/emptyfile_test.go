package dataset

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A 0-byte image of a data set (or mask) was refused as "image: unknown
// format". It is now said to be empty.
func TestLoadSaysAnEmptyFileIsEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a_mask.png")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "decode " + path + ": empty file (0 bytes)"
	if _, err := Load(path); err == nil || err.Error() != want {
		t.Errorf("Load: %v, want %q", err, want)
	}
	if _, err := LoadMask(path, 4, 4, nil); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadMask: %v, want %q", err, want)
	}
	// One byte is no image, as before; a real image still loads through
	// the peeked reader.
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || strings.Contains(err.Error(), "empty") {
		t.Errorf("Load of one byte: %v", err)
	}
	writePNG(t, path, image.NewGray(image.Rect(0, 0, 5, 3)))
	if img, err := Load(path); err != nil || img.Bounds().Dx() != 5 {
		t.Errorf("Load of a PNG: %v", err)
	}
}
