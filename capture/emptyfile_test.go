package capture

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A 0-byte image file (a copy that failed, a refit folder's placeholder)
// was refused as "image: unknown format", which sends one looking for a
// codec. It is now said to be empty.
func TestEmptyImageFileIsSaidToBeEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.png")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "image " + path + ": empty file (0 bytes)"
	if _, _, err := CheckImageFile(path, 0); err == nil || err.Error() != want {
		t.Errorf("CheckImageFile: %v, want %q", err, want)
	}
	if _, _, err := DecodeImageFile(path, 0); err == nil || err.Error() != want {
		t.Errorf("DecodeImageFile: %v, want %q", err, want)
	}
	// A file with a byte in it is no image, as before.
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeImageFile(path, 0); err == nil || strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("DecodeImageFile of one byte: %v, want unknown format", err)
	}
}
