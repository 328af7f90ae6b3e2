package padim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadErrorSaysTheFileWasRefused: Load's refusal of a regular file
// that is no model is a *LoadError naming the path, its words the ones it
// always gave ("load model PATH: why"), so that a caller can word it
// without reading the file again.
func TestLoadErrorSaysTheFileWasRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := os.WriteFile(path, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, LoadOptions{})
	var le *LoadError
	if !errors.As(err, &le) || le.Path != path {
		t.Fatalf("Load of a 3-byte file: %v (%T), want a *LoadError naming %s", err, err, path)
	}
	if want := "load model " + path + ": file is 3 bytes, too short for a safetensors header"; err.Error() != want {
		t.Errorf("Load of a 3-byte file says %q, want %q", err, want)
	}
	if nm := (*NotModelFileError)(nil); errors.As(err, &nm) {
		t.Errorf("Load of a regular file: %v is a *NotModelFileError", err)
	}
}
