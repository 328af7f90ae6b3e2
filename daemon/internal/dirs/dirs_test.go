package dirs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFirstMissing(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{dir, ""},
		{filepath.Join(dir, "a"), filepath.Join(dir, "a")},
		{filepath.Join(dir, "a", "b", "c") + "/", filepath.Join(dir, "a")},
		{filepath.Join(file, "x"), ""}, // under a file: not a folder MkdirAll could make
	} {
		if got := FirstMissing(c.dir); got != c.want {
			t.Errorf("FirstMissing(%q) = %q, want %q", c.dir, got, c.want)
		}
	}
}

// TestRemoveEmpty: only empty folders go, from dir up to top and never
// above it; a folder with anything in it (another daemon's files) stops
// the removal there.
func TestRemoveEmpty(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "a", "theirs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	RemoveEmpty(dir, filepath.Join(base, "a"))
	if _, err := os.Stat(filepath.Join(base, "a", "b")); !os.IsNotExist(err) {
		t.Errorf("empty a/b left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "a", "theirs")); err != nil {
		t.Errorf("a folder with a file in it was removed: %v", err)
	}
	// Never above top, even when empty.
	dir = filepath.Join(base, "x", "y")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	RemoveEmpty(dir, dir)
	if _, err := os.Stat(filepath.Join(base, "x")); err != nil {
		t.Errorf("the empty folder above top was removed: %v", err)
	}
	// A top that is not above dir: dir alone.
	dir = filepath.Join(base, "p", "q")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	RemoveEmpty(dir, filepath.Join(base, "elsewhere"))
	if _, err := os.Stat(filepath.Join(base, "p")); err != nil {
		t.Errorf("a folder outside top was removed: %v", err)
	}
}
