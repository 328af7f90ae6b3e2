package dataset

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data set whose train/good was a link to a folder that is not there
// (moved, or on a drive not mounted) was refused with "open
// DIR/train/good: no such file or directory", of a link that is there.
// It now says where the link leads.
func TestScanNamesALinkToNothing(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "gone", "good")
	for name, link := range map[string]func(dir string) (string, string){
		"absolute": func(dir string) (string, string) {
			return filepath.Join(dir, "train", "good"), missing
		},
		"relative": func(dir string) (string, string) {
			return filepath.Join(dir, "train", "good"), "../elsewhere"
		},
		"train": func(dir string) (string, string) {
			return filepath.Join(dir, "train"), missing
		},
	} {
		dir := filepath.Join(base, name)
		at, to := link(dir)
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(to, at); err != nil {
			t.Fatal(err)
		}
		want := missing
		if !filepath.IsAbs(to) {
			want = filepath.Join(filepath.Dir(at), to)
		}
		_, err := Scan(dir)
		msg := at + " is a link to " + want + ", which does not exist"
		if err == nil || !strings.Contains(err.Error(), msg) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: Scan: %v, want %q", name, err, msg)
		}
	}
	// Through a second link: where the chain ends.
	dir := filepath.Join(base, "chain")
	os.MkdirAll(filepath.Join(dir, "train"), 0o755)
	mid := filepath.Join(base, "mid")
	os.Symlink(missing, mid)
	os.Symlink(mid, filepath.Join(dir, "train", "good"))
	if _, err := Scan(dir); err == nil || !strings.Contains(err.Error(), "train/good is a link to "+missing+", which does not exist") {
		t.Errorf("chain: Scan: %v", err)
	}
	// Not there at all, or a link that leads somewhere: no such words.
	for _, p := range []string{filepath.Join(base, "none"), mid + "-x", base} {
		if err := DanglingLink(p); err != nil {
			t.Errorf("DanglingLink(%s): %v, want nil", p, err)
		}
	}
	if _, err := Scan(filepath.Join(base, "none")); err == nil || strings.Contains(err.Error(), "is a link") {
		t.Errorf("a data set that is not there: %v", err)
	}
}
