package remote

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/tiff"
)

// tiffStrips is a Deflate TIFF of 64×64 pixels whose strip declares
// RowsPerStrip 4294967295: the TIFF decoder lets a compressed strip
// inflate to its declared size, whatever the image's own size.
func tiffStrips(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 64)), &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	ifd := int(binary.LittleEndian.Uint32(b[4:]))
	found := false
	for i := range int(binary.LittleEndian.Uint16(b[ifd:])) {
		if e := b[ifd+2+12*i:]; binary.LittleEndian.Uint16(e) == 278 { // RowsPerStrip, as LONG
			binary.LittleEndian.PutUint16(e[2:], 4)
			binary.LittleEndian.PutUint32(e[8:], 0xffffffff)
			found = true
		}
	}
	if !found {
		t.Fatal("no RowsPerStrip tag")
	}
	return b
}

// A folder refit read its images' headers with image.DecodeConfig, which
// looks at a TIFF's image size only: a 64×64 Deflate TIFF whose strip
// declares 4294967295 rows passed, and its decode could inflate the strip
// to gigabytes. Refit now reads images as the folder source does
// (capture.CheckImageFile), which refuses such strips by the header, in
// refit's words; its own bounds keep theirs.
func TestRefitImageBounds(t *testing.T) {
	dir := t.TempDir()
	writeFrames(t, dir, 1)
	files := map[string][]byte{
		"strips.tiff": tiffStrips(t),
		"bomb.png":    pngBomb(200000, 200000),
		"thumb.png":   nil, // below
	}
	var thumb bytes.Buffer
	if err := png.Encode(&thumb, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	files["thumb.png"] = thumb.Bytes()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Over maxImageBytes, sparse: refused by its size, unread.
	huge := filepath.Join(dir, "huge.png")
	if err := os.WriteFile(huge, pngBomb(100, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, maxImageBytes+1); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"strips.tiff": "strips.tiff: compressed strips of 64x4294967295 pixels, over the limit of 40000000",
		"bomb.png":    "bomb.png: 200000x200000 pixels, over the limit of 40000000",
		"thumb.png":   "thumb.png: frame too small to inspect: 4x4",
		"huge.png":    "huge.png: 268435457 bytes, over 268435456",
	} {
		err := checkImage(filepath.Join(dir, name))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkImage(%s): %v, want %q", name, err, want)
		}
		if _, err := loadImage(filepath.Join(dir, name)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadImage(%s): %v, want %q", name, err, want)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "good_") {
			if _, err := loadImage(filepath.Join(dir, e.Name())); err != nil {
				t.Errorf("a good image: %v", err)
			}
		}
	}
}
