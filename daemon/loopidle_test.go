package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
)

// A looped folder none of whose files can be inspected waits between
// passes and turns capture health bad, whether its files are too small for
// capture.roi or do not decode at all. Files too small for the roi were
// each a frame read, so every pass counted as one that gave a frame: the
// loop never waited, and the daemon published an error result and printed
// a line for every replay as fast as it could read the files (hundreds a
// second, a core at full load), while health said good frames kept coming.
// Undecodable files were already waited for, answered once each, and
// judged by the run rule; they are the reference the misfits now follow.
func TestLoopedFolderNothingToInspectWaits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		write  func(t *testing.T, path string)
		health string // what the health detail says of the files
		// maxAnswers bounds the error results in the time measured: the
		// busy loop gives hundreds; two files a pass, passes at least
		// 200 ms apart, give at most about 2×11.
		maxAnswers int
	}{
		{"too small for the roi", func(t *testing.T, path string) { writeGrayPNG(t, path, 64, 48) }, "files too small for capture.roi", 30},
		// Answered once each (the first pass), then replayed unanswered.
		{"undecodable", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a PNG"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "undecodable frames", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames := t.TempDir()
			for _, n := range []string{"a.png", "b.png"} {
				tc.write(t, filepath.Join(frames, n))
			}
			cfg := testDefaults(t)
			cfg.Capture.Source = config.SourceFolder
			cfg.Capture.Folder.Path, cfg.Capture.Folder.Loop = frames, true
			cfg.Capture.ROI = config.ROI{X: 8, Y: 8, Width: 128, Height: 96}
			log := testLogger(t)
			// As the daemon opens it: skipped files reported, for answers.
			src, _, err := openCapture(cfg, log, sourceOpen{reportSkips: true})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var results resultLog
			var lines syncBuffer
			const stall = 500 * time.Millisecond
			p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: results.sink(), Print: &lines,
				Queue: 2, StallTimeout: stall, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			// Health is read as /healthz would be, every 50 ms: the run
			// rule sees the failures as the reads find them.
			var ok bool
			var detail string
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				ok, detail = p.CameraHealth()
			}
			n := len(results.errors())
			if n == 0 || n > tc.maxAnswers {
				t.Errorf("%d error results in 2 s from a looped folder of 2 such files, want 1 to %d", n, tc.maxAnswers)
			}
			if printed := strings.Count(lines.String(), "\n"); printed > tc.maxAnswers {
				t.Errorf("%d printed lines in 2 s, want at most %d", printed, tc.maxAnswers)
			}
			// On a loaded machine (two suites at once, under the race
			// detector) the pipeline's start took most of the 2 s, and
			// health was still within its stall timeout: it is read on
			// until it turns, for at most 8 s more.
			for end := time.Now().Add(8 * time.Second); ok && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				ok, detail = p.CameraHealth()
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("pipeline: %v", err)
			}
			if ok || !strings.Contains(detail, "capture: no good frame") || !strings.Contains(detail, tc.health) {
				t.Errorf("capture health %v %q after 2 s of passes with nothing to inspect (stall timeout %s): want bad, naming %s",
					ok, detail, stall, tc.health)
			}
		})
	}
}

// A looped folder of two files too small for capture.roi logs each once,
// not at every pass: the log skipped a message the same as the last, and
// the two files' messages alternate, so every replay was logged (one file
// alone was logged once, TestStrayFileReplayedLoggedOnce).
func TestStrayFilesReplayedLoggedOnceEach(t *testing.T) {
	frames := t.TempDir()
	for _, n := range []string{"a.png", "b.png"} {
		writeGrayPNG(t, filepath.Join(frames, n), 64, 48)
	}
	cfg := testDefaults(t)
	cfg.Capture.Source = config.SourceFolder
	cfg.Capture.Folder.Path, cfg.Capture.Folder.Loop = frames, true
	cfg.Capture.ROI = config.ROI{X: 8, Y: 8, Width: 128, Height: 96}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	src, _, err := openCapture(cfg, log, sourceOpen{reportSkips: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var results resultLog
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: results.sink(), Queue: 2, MaxInspections: 6, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := results.errors(); len(e) != 6 {
		t.Errorf("%d error answers for 3 passes of 2 files, want 6", len(e))
	}
	l := logs.String()
	n := strings.Count(l, "file not inspected: capture.roi does not fit in its image")
	if n != 2 || !strings.Contains(l, "file=a.png") || !strings.Contains(l, "file=b.png") {
		t.Errorf("%d log lines for a.png and b.png replayed 3 times each, want one for each:\n%s", n, l)
	}
}
