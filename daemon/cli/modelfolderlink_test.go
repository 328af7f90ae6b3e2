package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd fit --out D/l/new/m.safetensors` (and `eval --save-model`)
// where D/l is a link to nothing said "folder D cannot be written: it
// takes no new files (creating one fails: file exists)", blaming D, which
// takes files; where D/l leads round in a loop it said only "too many
// levels of symbolic links". Both now name the link and where it leads,
// as a data set's links are named, before the fit, and make nothing.
func TestModelFolderThroughABrokenLinkNamesTheLink(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "gone")
	if err := os.Symlink(gone, filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("lb", filepath.Join(dir, "la")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("la", filepath.Join(dir, "lb")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ link, says string }{
		{"dangling", filepath.Join(dir, "dangling") + " is a link to " + gone + ", which does not exist"},
		{"la", filepath.Join(dir, "la") + " is a link that leads round in a loop (la → lb → la)"},
	} {
		m := filepath.Join(dir, c.link, "new", "m.safetensors")
		for _, args := range [][]string{
			{"fit", "--data", empty, "--config", cfg, "--out", m},
			{"eval", "--data", empty, "--config", cfg, "--save-model", m},
		} {
			code, _, stderr := runCaptureCmd(t, args...)
			t.Logf("%s through %s: exit %d, %s", args[0], c.link, code, stderr)
			if code == 0 || !strings.Contains(stderr, c.says) || strings.Contains(stderr, "takes no new files") ||
				strings.Contains(stderr, "too many levels") {
				t.Errorf("%s with the model at %s: exit %d, %q; want it refused saying %q", args[0], m, code, stderr, c.says)
			}
		}
	}
	if _, err := os.Lstat(gone); !os.IsNotExist(err) {
		t.Errorf("the link's target %s was made (%v)", gone, err)
	}
}
