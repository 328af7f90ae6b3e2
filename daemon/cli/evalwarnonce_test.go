package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --train-draws 2 --compare R` logged a warning about the
// set (a defective test image without its mask) once per draw and recipe
// column: four copies of one sentence. It is logged once per set now.
func TestEvalWarnsOncePerSet(t *testing.T) {
	if testing.Short() {
		t.Skip("four fits on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 20, 10, 9)
	masks, err := filepath.Glob(filepath.Join(set, "ground_truth", "*", "*_mask.png"))
	if err != nil || len(masks) < 2 {
		t.Fatalf("masks %v: %v", masks, err)
	}
	if err := os.Remove(masks[0]); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--config", evalConfig(t, dir), "--data", set, "--recipe", "plain", "--compare", "v1-squash-raw",
		"--features", "16", "--max-train", "8", "--train-draws", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "without a ground-truth mask") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("the missing mask warned of %d times, want once:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	// Met in every draw and column: nothing says which.
	if strings.Contains(lines[0], "draws=") || strings.Contains(lines[0], "recipes=") {
		t.Errorf("a warning of every draw and column names some: %s", lines[0])
	}
}

// A warning met in some draws or columns only, or differing between
// them, names the draws (recipes) it came from; one met in all of them
// names none, and comes once.
func TestSetWarningsNameTheirDraws(t *testing.T) {
	var buf bytes.Buffer
	next := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	w := newSetWarnings([]string{"train-draw1", "train-draw2", "train-draw3"}, []string{"plain", "fixed"})
	log := w.logger(next)
	for d := range 3 {
		for c := range 2 {
			w.at(d, c)
			log.Info("fit done", "draw", d)
			log.Warn("the set warns", "data", "a")
			log.With("part", "x").Warn("noisy", "ratio", d%2) // draws 1 and 3 alike, draw 2 not
			if c == 1 && d == 2 {
				log.Warn("only here")
			}
		}
	}
	if strings.Contains(buf.String(), "WARN") {
		t.Fatalf("warnings logged before the set is done:\n%s", &buf)
	}
	if n := strings.Count(buf.String(), "fit done"); n != 6 {
		t.Errorf("info records: %d of 6 passed on:\n%s", n, &buf)
	}
	w.flush(context.Background())
	w.flush(context.Background()) // the deferred one after the set's own
	var warns []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.HasPrefix(l, "level=WARN") {
			warns = append(warns, l)
		}
	}
	want := []string{
		`level=WARN msg="the set warns" data=a`,
		`level=WARN msg=noisy part=x ratio=0 draws=train-draw1,train-draw3`,
		`level=WARN msg=noisy part=x ratio=1 draws=train-draw2`,
		`level=WARN msg="only here" draws=train-draw3 recipes=fixed`,
	}
	if strings.Join(warns, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
	}
	log.Warn("after the set")
	if !strings.Contains(buf.String(), `msg="after the set"`) {
		t.Errorf("a warning after the flush was held back:\n%s", &buf)
	}
}
