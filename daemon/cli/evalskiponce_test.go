package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --train-draws K` logged a test image it skips once per
// draw (and per --compare column), K warnings naming the same file, and
// printed the skipped files' summary line as often: each draw scores the
// same test images. A file is named once per set and run now, and the
// summary printed once while it stays the same; each draw's
// skipped_files still counts it.
func TestEvalNamesASkippedTestFileOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("two fits on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 12, 6, 3)
	bad := filepath.Join(set, "test", "good", "zz-cut.png")
	if err := os.WriteFile(bad, []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := evalConfig(t, dir)
	js := filepath.Join(dir, "eval.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--features", "16",
		"--max-train", "8", "--train-draws", "2", "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	named := 0
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "file skipped") && strings.Contains(l, "file="+bad) {
			named++
		}
	}
	if named != 1 {
		t.Errorf("%s named %d times in the log, want once:\n%s", bad, named, stderr)
	}
	if n := strings.Count(stdout, "skipped 1 file: 1 unreadable or not an image"); n != 1 {
		t.Errorf("the summary line printed %d times, want once:\n%s", n, stdout)
	}
	for _, d := range readEvalReport(t, js).Sets[0].Draws {
		if r := d.Results[0]; r.SkippedFiles != 1 {
			t.Errorf("%s: skipped_files %d, want 1", r.Data, r.SkippedFiles)
		}
	}
}

// `inspectd eval --train-draws 2 --compare R` logged a test file that
// every draw and column skipped with `draws=train-draw1 recipes=plain`, as
// if the other draws and columns had read it: only the first named it to
// the set's warnings. It is logged once, naming no draw or recipe.
func TestEvalSkippedTestFileNamesNoDraw(t *testing.T) {
	if testing.Short() {
		t.Skip("four fits on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 12, 6, 3)
	bad := filepath.Join(set, "test", "good", "zz-cut.png")
	if err := os.WriteFile(bad, []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--config", evalConfig(t, dir), "--data", set, "--recipe", "plain", "--compare", "v1-squash-raw",
		"--features", "16", "--max-train", "8", "--train-draws", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "file skipped") && strings.Contains(l, "file="+bad) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%s named %d times, want once:\n%s", bad, len(lines), stderr)
	}
	if strings.Contains(lines[0], "draws=") || strings.Contains(lines[0], "recipes=") {
		t.Errorf("a file every draw and column skipped is named as some's: %s", lines[0])
	}
}
