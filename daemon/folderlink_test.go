package daemon

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// A symbolic link among a frame folder's files that leads to nothing was
// answered "file gone.png skipped (unreadable or corrupt): stat
// DIR/gone.png: no such file or directory" of a file that `ls` shows, and
// one that leads round in a loop "too many levels of symbolic links": the
// error result and the log line now say where the link leads, in the
// words fit, eval and a refit use for such a file.
func TestFolderSourceNamesWhereABrokenLinkLeads(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.png"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "line2", "part.png")
	if err := os.Symlink(missing, filepath.Join(dir, "gone.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop2.png", filepath.Join(dir, "loop1.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop1.png", filepath.Join(dir, "loop2.png")); err != nil {
		t.Fatal(err)
	}
	cfg := testDefaults(t)
	cfg.Capture.Source = config.SourceFolder
	cfg.Capture.Folder.Path = dir
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	src, _, err := openCapture(cfg, log, sourceOpen{reportSkips: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []mqttpub.Result
	sink := &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: httpapi.NewMetrics(), FreeRun: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil && !errors.Is(err, capture.ErrEOF) {
		t.Fatal(err)
	}
	want := map[string]string{
		"gone.png":  "gone.png is a link to " + missing + ", which does not exist",
		"loop1.png": "loop1.png is a link that leads round in a loop (loop1.png → loop2.png → loop1.png)",
		"loop2.png": "loop2.png is a link that leads round in a loop (loop2.png → loop1.png → loop2.png)",
	}
	seen := 0
	for _, r := range got {
		w, ok := want[r.File]
		if !ok {
			continue
		}
		seen++
		if r.Verdict != VerdictError || !strings.Contains(r.Error, w) {
			t.Errorf("%s: %s %q, want an error saying %q", r.File, r.Verdict, r.Error, w)
		}
		if !strings.Contains(logs.String(), w) {
			t.Errorf("the log does not say %q:\n%s", w, logs.String())
		}
	}
	if seen != len(want) {
		t.Errorf("%d results for the %d broken links: %+v", seen, len(want), got)
	}
}

// TestFileSourceNamesWhereABrokenLinkLeads: a start (or reload) with
// capture.file.path a symbolic link that leads to nothing was refused as
// "stat DIR/part.png: no such file or directory" of a file ls shows, and
// one round in a loop as "too many levels of symbolic links"; the refusal
// says where the link leads, as the folder source's skipped file does.
func TestFileSourceNamesWhereABrokenLinkLeads(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "line2", "part.png")
	for link, to := range map[string]string{"part.png": missing, "loop1.png": "loop2.png", "loop2.png": "loop1.png"} {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		"part.png":  "capture.file.path: " + filepath.Join(dir, "part.png") + " is a link to " + missing + ", which does not exist",
		"loop1.png": "capture.file.path: " + filepath.Join(dir, "loop1.png") + " is a link that leads round in a loop (loop1.png → loop2.png → loop1.png)",
	}
	for name, w := range want {
		cfg := testDefaults(t)
		cfg.Capture.Source = config.SourceFile
		cfg.Capture.File.Path = filepath.Join(dir, name)
		src, _, err := openCapture(cfg, slog.New(slog.DiscardHandler), sourceOpen{})
		if err == nil {
			src.Close()
		}
		if err == nil || err.Error() != w {
			t.Errorf("capture.file.path %s: %v, want %q", name, err, w)
		}
	}
}
