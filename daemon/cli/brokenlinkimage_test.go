package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fit (and eval, which loads its images alike) skipped an image file that
// is a link to nothing, or round in a loop, logging the raw "stat …: no
// such file or directory" or "… too many levels of symbolic links"; a
// train/good that is such a link is named with where it leads. The file
// is now named so too: which link, where it leads, and that it leads to
// nothing or round in a loop.
func TestFitNamesABrokenLinkImageFileItSkips(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "line2", "a.png")
	dangling := filepath.Join(dir, "a.png")
	loop := filepath.Join(dir, "b.png")
	for _, l := range [][2]string{{gone, dangling}, {"c.png", loop}, {"b.png", filepath.Join(dir, "c.png")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	sk := newSkipped(0)
	if kept := admitImages([]string{dangling, loop}, 0, log, sk); len(kept) != 0 || sk.count() != 2 {
		t.Fatalf("kept %v, skipped %d; want none kept, 2 skipped", kept, sk.count())
	}
	t.Logf("%s", logs.String())
	for _, want := range []string{
		dangling + " is a link to " + gone + ", which does not exist",
		loop + " is a link that leads round in a loop (b.png → c.png → b.png)",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q does not say %q", logs.String(), want)
		}
	}
	if s := logs.String(); strings.Contains(s, "no such file") || strings.Contains(s, "too many levels") {
		t.Errorf("log %q speaks the raw stat words", s)
	}
}

// fit's and eval's summary line counted image files that are links
// leading nowhere as "unreadable or not an image", and so did each one's
// log line (reason=), although the log named each as a link: the summary
// sent one looking for corrupt files. They are counted, and their log
// lines worded, as broken links.
func TestSkippedCountsBrokenLinksAsSuch(t *testing.T) {
	dir := t.TempDir()
	dangling, loop, garbage := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png"), filepath.Join(dir, "g.png")
	for _, l := range [][2]string{{filepath.Join(dir, "gone", "a.png"), dangling}, {"c.png", loop}, {"b.png", filepath.Join(dir, "c.png")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(garbage, []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	sk := newSkipped(0)
	if kept := admitImages([]string{dangling, loop, garbage}, 0, log, sk); len(kept) != 0 {
		t.Fatalf("kept %v", kept)
	}
	want := "skipped 3 files: 1 unreadable or not an image, 2 broken links (to nothing or round in a loop) (the log names each)"
	if got := sk.String(); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		broken := !strings.Contains(l, garbage)
		if says := strings.Contains(l, `reason="broken link"`); says != broken {
			t.Errorf("log line %q: want reason=\"broken link\" for a link and only for one", l)
		}
	}
}
