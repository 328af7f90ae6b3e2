package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --json D/new/x.json` refused a folder that does not
// exist, where --report and --save-model make theirs: it makes the
// missing folders now, writes the results there whole (a temporary file
// renamed into place), and a run refused before it writes any leaves none
// of the folders.
func TestEvalJSONMakesItsFolder(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 12, 6, 3)
	cfg := evalConfig(t, dir)
	js := filepath.Join(dir, "results", "new", "eval.json")

	// Refused after the folders are made (no such set): none left.
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", filepath.Join(dir, "nowhere"), "--recipe", "plain", "--json", js)
	if code == 0 || strings.Contains(stderr, "fit done") {
		t.Fatalf("eval of a set that is not there: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "results")); !os.IsNotExist(err) {
		t.Errorf("a refused eval left the folders it made for --json %s (%v)", js, err)
	}

	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--features", "16", "--json", js)
	if code != 0 {
		t.Fatalf("eval --json %s: exit %d, %s%s", js, code, stdout, stderr)
	}
	if rep := readEvalReport(t, js); len(rep.Sets) != 1 {
		t.Errorf("eval --json %s: %d sets, want 1", js, len(rep.Sets))
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(js), ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left beside the results: %v", left)
	}
}

// A --report folder made for a run that then writes no report (no such
// set) was left behind, empty: it is removed, with the folders made above
// it, as --json's and --save-model's are.
func TestEvalReportFolderRemovedWhenUnused(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	rep := filepath.Join(dir, "reports", "new")
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", filepath.Join(dir, "nowhere"), "--recipe", "plain", "--report", rep)
	if code == 0 || strings.Contains(stderr, "fit done") {
		t.Fatalf("eval of a set that is not there: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "reports")); !os.IsNotExist(err) {
		t.Errorf("a refused eval left the folders it made for --report %s (%v)", rep, err)
	}
}
