package daemon

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// A reload that replaced the frame source under a running pipeline (a
// SIGHUP to another folder) left the capture health measuring the new
// source's failure counters against the old source's at its last good
// frame: a trial's /healthz and retained status said "capture: no good
// frame for 1m1s, 18446744073709551611 undecodable frames" for a folder
// that had failed on none. The new source's failures are counted from
// zero.
func TestCaptureHealthAfterSourceSwapCountsTheNewSource(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "frames")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Five corrupt files, then a good one: the counters at the good frame
	// hold five decode errors.
	for _, n := range []string{"a1.jpg", "a2.jpg", "a3.jpg", "a4.jpg", "a5.jpg"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("not a JPEG"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	grayPNG(t, filepath.Join(dir, "b.png"))
	log := slog.New(slog.DiscardHandler)
	first, err := capture.NewFolder(capture.FolderOptions{Dir: dir, Watch: true, PollInterval: 10 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	src := newSwapSource(first)
	p, inspected := runHealthPipeline(t, src)
	select {
	case <-inspected:
	case <-time.After(30 * time.Second):
		t.Fatal("the good file was never inspected")
	}
	if n := first.Counters().DecodeErrors.Load(); n != 5 {
		t.Fatalf("%d decode errors in the first folder, want 5", n)
	}
	// The reload: a watched folder that is not there (yet).
	second, err := capture.NewFolder(capture.FolderOptions{Dir: filepath.Join(parent, "later"), Watch: true, PollInterval: 10 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Swap(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	var why string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		if ok, why = p.CameraHealth(); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("camera health still good (%s) with the new folder not there", why)
		}
	}
	if !strings.Contains(why, "cannot be listed") {
		t.Errorf("camera health %q, want the new folder's trouble", why)
	}
	if regexp.MustCompile(`, \d+ (undecodable|frame|file)`).MatchString(why) {
		t.Errorf("camera health %q counts failures the new folder never had", why)
	}
}

// runHealthPipeline runs a free-run pipeline over src with a stall timeout
// of 100 ms until the test ends; the channel is signalled (without
// blocking) at each result.
func runHealthPipeline(t *testing.T, src capture.Source) (*Pipeline, <-chan struct{}) {
	t.Helper()
	inspected := make(chan struct{}, 1)
	sink := &memSink{onResult: func(*mqttpub.Result) {
		select {
		case inspected <- struct{}{}:
		default:
		}
	}}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: httpapi.NewMetrics(),
		FreeRun: true, StallTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, inspected
}

// TestCaptureHealthForgetsAReplacedSourcesError: a reload or
// restart-camera from a watched folder that could not be listed to one
// that can, and that is empty (an idle line), kept the old folder's error,
// which only a good frame cleared: /healthz went 503 a stall timeout
// later naming a folder no longer in use, and stayed so until a part came.
func TestCaptureHealthForgetsAReplacedSourcesError(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "frames")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	grayPNG(t, filepath.Join(dir, "b.png"))
	log := slog.New(slog.DiscardHandler)
	open := func(d string) capture.Source {
		s, err := capture.NewFolder(capture.FolderOptions{Dir: d, Watch: true, PollInterval: 10 * time.Millisecond, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	src := newSwapSource(open(dir))
	p, inspected := runHealthPipeline(t, src)
	select {
	case <-inspected:
	case <-time.After(30 * time.Second):
		t.Fatal("the good file was never inspected")
	}
	missing := filepath.Join(parent, "later")
	if err := src.Swap(context.Background(), open(missing)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, why := p.CameraHealth(); strings.Contains(why, "cannot be listed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the missing folder's trouble never showed")
		}
	}
	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := src.Swap(context.Background(), open(empty)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // past the stall timeout (100 ms)
	if ok, why := p.CameraHealth(); !ok || strings.Contains(why, missing) {
		t.Errorf("camera health %t %q after the swap to an empty folder, want healthy without the replaced folder's error", ok, why)
	}
}

// grayPNG writes a 64×64 black PNG, a good frame, at path.
func grayPNG(t *testing.T, path string) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
