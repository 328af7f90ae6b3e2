package capture

import (
	"context"
	"errors"
	"image"
	"testing"
)

// A camera opened again in place of another (restart-camera) keeps the
// frame size the region was given for (HoldSize): at another size its
// frames are refused, as after an unplug; back at it, they are cut. Held
// before the first camera cut a frame, the size is the one it cuts first.
// Without the same region, or without one, nothing is held.
func TestHoldSizeAcrossCameras(t *testing.T) {
	roi := image.Rect(8, 8, 40, 40) // fits in 640×480 and in 64×48
	open := func(w *FakeCamera) Source {
		t.Helper()
		src, err := NewTransform(newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 640, Height: 480}), TransformOptions{ROI: roi})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	next := func(w *FakeCamera, src Source, width, height int) (*Frame, error) {
		t.Helper()
		offerYUYV(w, width, height)
		var f Frame
		for {
			w.Push(toYUYV(testImage(width, height), 0))
			if err := src.Next(context.Background(), &f); err == nil || !Temporary(err) {
				return &f, err
			}
		}
	}
	w := NewFakeCamera()
	first := open(w)
	second := open(w)
	if !HoldSize(second, first) {
		t.Fatal("HoldSize: not held for the same region on a camera")
	}
	if f, err := next(w, first, 640, 480); err != nil || f.Image.Bounds().Dx() != 32 {
		t.Fatalf("first camera at 640x480: %v", err)
	}
	first.Close()
	_, err := next(w, second, 64, 48)
	var fse *FrameSizeError
	if !errors.As(err, &fse) || fse.Was != image.Pt(640, 480) || fse.Now != image.Pt(64, 48) {
		t.Fatalf("second camera at 64x48: %v, want a FrameSizeError from 640x480", err)
	}
	second.Close()
	third := open(w)
	if !HoldSize(throttled(t, third), second) {
		t.Fatal("HoldSize: not held through a Throttle")
	}
	if f, err := next(w, third, 640, 480); err != nil || f.Image.Bounds().Dx() != 32 {
		t.Errorf("third camera back at 640x480: %v", err)
	}
	third.Close()

	other, err := NewTransform(newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}}), TransformOptions{ROI: image.Rect(0, 0, 16, 16)})
	if err != nil {
		t.Fatal(err)
	}
	if HoldSize(other, first) {
		t.Error("HoldSize held a size for another region")
	}
	rotated, err := NewTransform(newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}}), TransformOptions{Rotate: 90})
	if err != nil {
		t.Fatal(err)
	}
	if HoldSize(rotated, first) {
		t.Error("HoldSize held a size without a region")
	}
}

// throttled wraps src in a Throttle (a free-run line's max_rate).
func throttled(t *testing.T, src Source) Source {
	t.Helper()
	th, err := NewThrottle(src, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return th
}
