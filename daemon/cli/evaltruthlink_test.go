package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --data SET` with a ground_truth/<label> that is a link to
// nothing (its masks on a drive not mounted) counted the label's masks as
// missing and warned naming the first missing mask file, not the link: the
// pixel figures were over the other labels. It is refused before any fit,
// naming the link and where it leads, as a test/<label> link is.
func TestEvalRefusesAGroundTruthLinkedToNothing(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 4, 6, 3)
	cfg := evalConfig(t, dir)
	labels, err := os.ReadDir(filepath.Join(set, "ground_truth"))
	if err != nil || len(labels) == 0 {
		t.Fatalf("the exported set's ground_truth: %v %v", labels, err)
	}
	link := filepath.Join(set, "ground_truth", labels[0].Name())
	missing := filepath.Join(dir, "unmounted", labels[0].Name())
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(missing, link); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain")
	want := "data set " + set + ": " + link + " is a link to " + missing + ", which does not exist: its masks would be left out of the pixel figures"
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "fit done") || strings.Contains(stderr, "first_missing") {
		t.Errorf("a dangling ground_truth/%s: exit %d, stderr:\n%s\nwant %q before any fit", labels[0].Name(), code, stderr, want)
	}
}
