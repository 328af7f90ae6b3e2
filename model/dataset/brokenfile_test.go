package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An image file in train/good or test/<label> that was a link to nothing,
// or one that leads round in a loop, failed its load in the raw stat
// words ("no such file or directory", "too many levels of symbolic
// links"), where a train/good or test/<label> that is such a link is named
// with where it leads (BrokenLink). The file is named the same way now.
func TestLoadNamesABrokenLinkImageFile(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "line2", "a.png")
	dangling := filepath.Join(dir, "a.png")
	loop := filepath.Join(dir, "b.png")
	for _, l := range [][2]string{{gone, dangling}, {"c.png", loop}, {"b.png", filepath.Join(dir, "c.png")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		path, want string
		as         func(error) bool
	}{
		{dangling, dangling + " is a link to " + gone + ", which does not exist", func(err error) bool { var e *DanglingLinkError; return errors.As(err, &e) }},
		{loop, loop + " is a link that leads round in a loop (b.png → c.png → b.png)", func(err error) bool { var e *LinkLoopError; return errors.As(err, &e) }},
	} {
		_, err := Load(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !c.as(err) {
			t.Errorf("Load(%s): %v, want it saying %q", filepath.Base(c.path), err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "no such file") || strings.Contains(err.Error(), "too many levels")) {
			t.Errorf("Load(%s): %v, in the raw stat words", filepath.Base(c.path), err)
		}
	}
}
