package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A refit from a folder skipped an image file that is a link to nothing,
// or round in a loop, for "stat /srv/good/a.png: no such file or
// directory" or "… too many levels of symbolic links", where a train/good
// that is such a link is named with where it leads. The file is named so
// too: where it leads, and that it leads to nothing or round in a loop.
func TestRefitNamesABrokenLinkImageFileItSkips(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "train", "good")
	writeFrames(t, good, 1)
	gone := filepath.Join(dir, "line2", "a.png")
	for _, l := range [][2]string{{gone, filepath.Join(good, "a.png")}, {"c.png", filepath.Join(good, "b.png")}, {"b.png", filepath.Join(good, "c.png")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	f, err := listFolder(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	reasons := strings.Join(f.reasons, "; ")
	t.Logf("skipped %d: %s", f.skipped, reasons)
	for _, want := range []string{
		"a.png: a link to " + gone + ", which does not exist",
		"b.png: a link that leads round in a loop (b.png → c.png → b.png)",
		"c.png: a link that leads round in a loop (c.png → b.png → c.png)",
	} {
		if !strings.Contains(reasons, want) {
			t.Errorf("skipped_reasons %q, want one saying %q", reasons, want)
		}
	}
	if f.skipped != 3 || strings.Contains(reasons, "no such file") || strings.Contains(reasons, "too many levels") {
		t.Errorf("skipped %d: %q; want 3, none in the raw stat words", f.skipped, reasons)
	}
}
