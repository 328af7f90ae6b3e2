package capture

import (
	"bytes"
	"context"
	"errors"
	"image"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// offerYUYV makes the fake camera offer YUYV at w×h only, as a camera
// replugged into another port (or swapped) may.
func offerYUYV(w *FakeCamera, width, height int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sizes[FormatYUYV] = []FrameSize{{MinWidth: uint32(width), MaxWidth: uint32(width), MinHeight: uint32(height), MaxHeight: uint32(height)}}
}

// replug unplugs the camera and plugs it back offering YUYV at w×h, then
// reads frames until one comes (the reopen waits out its backoff).
func replug(t *testing.T, w *FakeCamera, src Source, width, height int, f *Frame) error {
	t.Helper()
	w.Unplug()
	ctx := context.Background()
	if err := src.Next(ctx, f); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unplug: err %v, want ErrUnavailable", err)
	}
	offerYUYV(w, width, height)
	w.SetPresent(true)
	w.Push(toYUYV(testImage(width, height), 0))
	for deadline := time.Now().Add(2 * time.Second); ; {
		err := src.Next(ctx, f)
		if err == nil || !Temporary(err) || time.Now().After(deadline) {
			return err
		}
	}
}

// A camera reopened after an unplug at another frame size says so in one
// warning with both sizes and what it means, and a region of interest
// given in pixels is not cut out of the new frame at the same numbers (it
// would be another part of the view, though it fits): the frame is refused
// with a FrameSizeError, and frames are cut again once the camera is back
// at the size the region was given for.
func TestCameraReopenedAtAnotherSize(t *testing.T) {
	w := NewFakeCamera()
	var logBuf bytes.Buffer
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 640, Height: 480,
		Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	roi := image.Rect(8, 8, 40, 40) // fits in 640×480 and in 64×48
	src, err := NewTransform(c, TransformOptions{ROI: roi})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	w.Push(toYUYV(testImage(640, 480), 0))
	if err := src.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if b := f.Image.Bounds(); b.Dx() != 32 || b.Dy() != 32 {
		t.Fatalf("cut %v, want 32×32", b)
	}

	err = replug(t, w, src, 64, 48, &f)
	var fse *FrameSizeError
	if !errors.As(err, &fse) || fse.Was != image.Pt(640, 480) || fse.Now != image.Pt(64, 48) || Temporary(err) {
		t.Fatalf("reopened at 64×48: err %v, want a FrameSizeError from 640×480 to 64×48", err)
	}
	for _, want := range []string{"640x480", "64x48", "roi"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if f.Time.IsZero() || f.Seq != 2 {
		t.Errorf("refused frame: time %v seq %d, want the frame's own (it was captured)", f.Time, f.Seq)
	}
	logs := logBuf.String()
	if n := strings.Count(logs, "camera: reopened at another frame size"); n != 1 {
		t.Errorf("%d warnings of the new size, want 1:\n%s", n, logs)
	}
	for _, want := range []string{"level=WARN", "old_size=640x480", "new_size=64x48", "roi", "model"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	// Every frame at the new size is refused, said once.
	w.Push(toYUYV(testImage(64, 48), 0))
	if err := src.Next(context.Background(), &f); !errors.As(err, &fse) {
		t.Errorf("second frame at 64×48: err %v, want a FrameSizeError", err)
	}
	if n := strings.Count(logBuf.String(), "camera: reopened at another frame size"); n != 1 {
		t.Errorf("%d warnings after a second frame, want 1 (one per reopen, not per frame)", n)
	}

	// Back at the size the region was given for: cut again, and said.
	if err := replug(t, w, src, 640, 480, &f); err != nil {
		t.Fatalf("back at 640×480: %v", err)
	}
	if b := f.Image.Bounds(); b.Dx() != 32 || b.Dy() != 32 {
		t.Errorf("cut %v after the camera came back at 640×480, want 32×32", b)
	}
	if n := strings.Count(logBuf.String(), "camera: reopened at another frame size"); n != 2 {
		t.Errorf("%d warnings, want 2 (the size changed back)", n)
	}
}

// Without a region of interest, or with a rotation only, frames of a new
// size pass: nothing is cut at pixel numbers.
func TestCameraReopenedAtAnotherSizeWithoutROI(t *testing.T) {
	w := NewFakeCamera()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 640, Height: 480})
	src, err := NewTransform(c, TransformOptions{Rotate: 90})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	w.Push(toYUYV(testImage(640, 480), 0))
	if err := src.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if err := replug(t, w, src, 64, 48, &f); err != nil {
		t.Fatalf("reopened at 64×48 without a region: %v", err)
	}
	if b := f.Image.Bounds(); b.Dx() != 48 || b.Dy() != 64 {
		t.Errorf("rotated frame %v, want 48×64", b)
	}
}

// A camera first opened at a size capture.roi does not fit in (the nearest
// size it offers is not the one the region was given for) refuses its
// frames with a FrameSizeError that names the region and the size, as a
// reopen at another size does, not an error that ends the source's
// consumer; no size is taken for the region from such frames, so frames
// are cut once the camera streams at a size the region fits in, and a
// later size is held to that one.
func TestCameraFirstOpenedAtASizeTheROIDoesNotFit(t *testing.T) {
	w := NewFakeCamera()
	offerYUYV(w, 64, 48)
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 640, Height: 480})
	roi := image.Rect(8, 8, 108, 108) // fits in 640×480, not in 64×48
	src, err := NewTransform(c, TransformOptions{ROI: roi})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	for range 2 { // every frame, not the first only
		w.Push(toYUYV(testImage(64, 48), 0))
		err = src.Next(context.Background(), &f)
		var fse *FrameSizeError
		if !errors.As(err, &fse) || fse.Now != image.Pt(64, 48) || fse.Was != (image.Point{}) || Temporary(err) {
			t.Fatalf("first opened at 64×48: err %v, want a FrameSizeError at 64×48 with no size cut before", err)
		}
		for _, want := range []string{"roi x=8 y=8 100x100", "64x48", "capture.camera.width"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if f.Time.IsZero() {
			t.Error("refused frame has no time: it was captured")
		}
	}

	if err := replug(t, w, src, 640, 480, &f); err != nil {
		t.Fatalf("at 640×480: %v", err)
	}
	if b := f.Image.Bounds(); b.Dx() != 100 || b.Dy() != 100 {
		t.Errorf("cut %v at 640×480, want 100×100", b)
	}
	err = replug(t, w, src, 64, 48, &f)
	var fse *FrameSizeError
	if !errors.As(err, &fse) || fse.Was != image.Pt(640, 480) || fse.Now != image.Pt(64, 48) {
		t.Errorf("back at 64×48: err %v, want a FrameSizeError from 640×480", err)
	}
}
