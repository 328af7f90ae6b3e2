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
