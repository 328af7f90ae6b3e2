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

// A test/<label> that is a link leading nowhere was left out of Set.Test
// without a word. Scan names it in BrokenTest (an evaluation refuses it)
// and still lists the set (fitting needs only train/good).
func TestScanNamesATestLabelLinkedToNothing(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"train/good", "test/good"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "0.png"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "gone", "crack")
	for _, l := range [][2]string{{missing, "test/crack"}, {"la", "test/loop"}, {"lb", "test/la"}, {"la", "test/lb"}, {"0.png", "test/good/1.png"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Scan(dir)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	var got []string
	for _, e := range s.BrokenTest {
		got = append(got, e.Error())
	}
	// la, lb and loop all lead round in the loop: each is named.
	want := []string{
		filepath.Join(dir, "test", "crack") + " is a link to " + missing + ", which does not exist",
		filepath.Join(dir, "test", "la") + " is a link that leads round in a loop (la → lb → la)",
		filepath.Join(dir, "test", "lb") + " is a link that leads round in a loop (lb → la → lb)",
		filepath.Join(dir, "test", "loop") + " is a link that leads round in a loop (la → lb → la)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("BrokenTest:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(s.Train) != 1 || len(s.Test) != 2 {
		t.Errorf("%d train and %d test images, want 1 and 2 (a link to an image is followed)", len(s.Train), len(s.Test))
	}
}
