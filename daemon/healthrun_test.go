package daemon

import (
	"bytes"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
)

// A file that failed just before a good one, but was first seen by a
// health check after it, began a run of failures at that check: one
// corrupt file dropped into the idle folder a stall timeout later then
// "lasted" the stall timeout, and a trial's retained status turned
// degraded (a named pipe, then a good file, then corrupt files answered
// after their 5 s wait). Failures from before the last good frame start no
// run: one corrupt file after it leaves the health as it was.
func TestFailureBeforeAGoodFrameStartsNoRun(t *testing.T) {
	dir := t.TempDir()
	writePNG := func(name string, side int) {
		t.Helper()
		var b bytes.Buffer
		if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, side, side))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePNG("a.png", 64) // over MaxPixels: refused at once, from its header
	writePNG("b.png", 24) // a good part
	src, err := capture.NewFolder(capture.FolderOptions{Dir: filepath.Join(dir), Watch: true, MaxPixels: 1000,
		PollInterval: 10 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	p, inspected := runHealthPipeline(t, src)
	select {
	case <-inspected:
	case <-time.After(30 * time.Second):
		t.Fatal("the good file was never inspected")
	}
	if n := src.Counters().TooLarge.Load(); n != 1 {
		t.Fatalf("%d files too large, want a.png", n)
	}
	// The first check comes after the good frame.
	if ok, why := p.CameraHealth(); !ok {
		t.Fatalf("camera health after the good file: %s", why)
	}
	// The line is idle for the stall timeout, and the good frame a
	// minute old (the health rounds its age to seconds).
	time.Sleep(150 * time.Millisecond)
	p.health.lastGood.Store(time.Now().Add(-time.Minute).UnixNano())
	if err := os.WriteFile(filepath.Join(dir, "c.jpg"), []byte("not a JPEG"), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); src.Counters().DecodeErrors.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("c.jpg never read")
		}
	}
	for range 5 {
		if ok, why := p.CameraHealth(); !ok {
			t.Fatalf("camera health after one corrupt file in the idle folder: %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
