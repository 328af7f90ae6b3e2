package capture

import (
	"context"
	"errors"
	"image"
	"path/filepath"
	"testing"
	"time"
)

// A looped folder whose files the region of interest fits in none of
// waits a poll interval between passes, as one of files that never decode
// does: each file was a frame, so every pass counted as one that gave a
// frame and the replays came as fast as the files could be read (every
// one a ROIMisfitError the daemon answers with an error result). The busy
// loop gives thousands in the time measured; passes 100 ms apart give a
// handful, far under the bound (a loaded machine only gives fewer).
func TestFolderLoopOfFilesTheROIDoesNotFitWaits(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.png", "b.png"} {
		if err := writeFile(filepath.Join(dir, name), encodePNG(t, testImage(64, 48))); err != nil {
			t.Fatal(err)
		}
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Loop: true, PollInterval: 100 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewTransform(fl, TransformOptions{ROI: image.Rect(8, 8, 136, 104)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var f Frame
	misfits := 0
	for {
		err := src.Next(ctx, &f)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if !errors.As(err, new(*ROIMisfitError)) {
			t.Fatalf("Next: %v, want a ROIMisfitError or the deadline", err)
		}
		misfits++
	}
	// 2 files a pass, passes at least 100 ms apart: at most 2×11 in 1 s.
	if misfits < 2 || misfits > 30 {
		t.Errorf("%d misfit files in 1 s from a looped folder of 2, passes 100 ms apart: want 2 to 30", misfits)
	}
}

// A looped folder with one file the region fits in among those it does
// not is a pass that gave a frame: replayed at once, without the wait.
func TestFolderLoopWithOneFileTheROIFitsDoesNotWait(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]image.Point{"a.png": {64, 48}, "b.png": {160, 120}} {
		if err := writeFile(filepath.Join(dir, name), encodePNG(t, testImage(size.X, size.Y))); err != nil {
			t.Fatal(err)
		}
	}
	// A poll interval no test waits out: a wait between passes would show
	// as the deadline.
	fl, err := NewFolder(FolderOptions{Dir: dir, Loop: true, PollInterval: time.Hour, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewTransform(fl, TransformOptions{ROI: image.Rect(8, 8, 136, 104)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var f Frame
	for i := range 6 { // three passes
		err := src.Next(ctx, &f)
		switch misfit := errors.As(err, new(*ROIMisfitError)); {
		case i%2 == 0 && (!misfit || f.Name != "a.png"):
			t.Fatalf("read %d: %q, %v; want a.png refused", i, f.Name, err)
		case i%2 == 1 && (err != nil || f.Name != "b.png"):
			t.Fatalf("read %d: %q, %v; want b.png", i, f.Name, err)
		}
	}
}
