package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --data SET` with a test/<label> that is a link to nothing
// (the label's images on a drive not mounted) left that label out of the
// evaluation without a word: the figures were over the other labels as if
// the set had no such defect. It is now refused before any fit, naming the
// link and where it leads; one that leads round in a loop is named with
// its loop.
func TestEvalRefusesATestLabelLinkedToNothing(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 4, 6, 3)
	cfg := evalConfig(t, dir)
	test := filepath.Join(set, "test")
	missing := filepath.Join(dir, "unmounted", "crack")
	if err := os.Symlink(missing, filepath.Join(test, "crack")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain")
	want := filepath.Join(test, "crack") + " is a link to " + missing + ", which does not exist"
	if code != 1 || !strings.Contains(stderr, "data set "+set+": "+want) || !strings.Contains(stderr, "remove the link to evaluate without it") ||
		strings.Contains(stderr, "fit done") {
		t.Errorf("a dangling test/crack: exit %d, stderr:\n%s\nwant %q before any fit", code, stderr, want)
	}

	// With a loop beside it: both named.
	for _, l := range [][2]string{{"la", "missing-label"}, {"lb", "la"}, {"la", "lb"}} {
		if err := os.Symlink(l[0], filepath.Join(test, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr = runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain")
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, filepath.Join(test, "missing-label")+" is a link that leads round in a loop (la → lb → la)") ||
		strings.Contains(stderr, "fit done") {
		t.Errorf("a dangling test/crack and a looping test/missing-label: exit %d, stderr:\n%s", code, stderr)
	}
}
