package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A camera replay whose frames registration partly refuses (bounds tighter
// than the synthetic scene's poses) finishes and reports the frames
// answered with verdict error; it hung, once, waiting for a profile frame
// that an error never released. When every frame is refused, bench says
// why instead of "no inspection".
func TestBenchReplayRegistrationErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("fits a model and replays a camera")
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "r.yuyv")
	if code, _, errs := runCaptureCmd(t, "capture", "encode", "--out", rec, "--size", "160x120", "--frames", "30"); code != 0 {
		t.Fatalf("capture encode: exit %d: %s", code, errs)
	}
	for _, c := range []struct {
		angle string // capture.align.max_angle
		ok    bool
	}{{"0.7", true}, {"0.01", false}} {
		cfg := filepath.Join(dir, "c"+c.angle+".yaml")
		body := "state_dir: " + filepath.Join(dir, "state") + "\ncapture:\n  align:\n    mode: rigid\n    max_shift: 0.02\n    max_angle: " +
			c.angle + "\nmodel:\n  recipe: fixed\n  optimize: int8\n"
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var out, errb bytes.Buffer
		code := Main(ctx, []string{"bench", "--no-mqtt", "--count", "20", "--config", cfg, "--camera-replay", rec, "--size", "160x120"},
			strings.NewReader(""), &out, &errb)
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("max_angle %s: bench did not finish in 3 minutes (stdout %q)", c.angle, out.String())
		}
		if c.ok {
			if code != 0 || !strings.Contains(out.String(), "answered with verdict error (registration angle: ") ||
				!strings.Contains(out.String(), "stage CPU per frame") {
				t.Errorf("max_angle %s: exit %d, want 0 and the refused frames counted; stdout:\n%s\nstderr:\n%s", c.angle, code, out.String(), errb.String())
			}
			continue
		}
		if code == 0 || !strings.Contains(errb.String(), "every frame was answered with verdict error") ||
			!strings.Contains(errb.String(), "beyond the bound of 0.01°") {
			t.Errorf("max_angle %s: exit %d, want an error saying every frame was refused; stderr:\n%s", c.angle, code, errb.String())
		}
	}
}

// A raw YUYV recording of an odd width is refused for its width, not for
// its byte count.
func TestBenchReplayOddWidth(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "odd.yuyv")
	if err := os.WriteFile(rec, make([]byte, 3*2*641*481), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", evalConfig(t, t.TempDir()), "--camera-replay", rec, "--size", "641x481")
	if code == 0 || !strings.Contains(errs, "even width") || strings.Contains(errs, "whole number") {
		t.Errorf("exit %d, stderr %q: want the odd width named", code, errs)
	}
}

// An MJPEG recording replayed with a --size other than its frames' is
// refused naming both sizes (the flag is for raw YUYV; it was ignored).
func TestBenchReplayMJPEGSize(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "r.mjpeg")
	if code, _, errs := runCaptureCmd(t, "capture", "encode", "--out", rec, "--size", "64x48", "--frames", "2"); code != 0 {
		t.Fatalf("capture encode: exit %d: %s", code, errs)
	}
	code, _, errs := runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", evalConfig(t, t.TempDir()), "--camera-replay", rec, "--size", "640x480")
	if code == 0 || !strings.Contains(errs, "is 64x48, --size says 640x480") {
		t.Errorf("exit %d, stderr %q: want both sizes named", code, errs)
	}
}

// A camera replay of a model whose recipe filters frames by a 3×3 median
// (Recipe.Denoise, "-med") says so, and its frame-to-tensor figure times
// the filter in both paths: it left the filter out, timing less than the
// line runs.
func TestBenchReplayTimesTheMedianFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("fits a model and replays a camera")
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "r.yuyv")
	if code, _, errs := runCaptureCmd(t, "capture", "encode", "--out", rec, "--size", "160x120", "--frames", "10"); code != 0 {
		t.Fatalf("capture encode: exit %d: %s", code, errs)
	}
	cfg := filepath.Join(dir, "c.yaml")
	body := "state_dir: " + filepath.Join(dir, "state") + "\nmodel:\n  recipe: v1-squash-med-std-z\n  optimize: int8\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCaptureCmd(t, "bench", "--no-mqtt", "--count", "10", "--config", cfg, "--camera-replay", rec, "--size", "160x120")
	if code != 0 || !strings.Contains(out, "median filter true, standardize true") || !strings.Contains(out, "frame to tensor") {
		t.Fatalf("exit %d, want the model line to name the median filter; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}
