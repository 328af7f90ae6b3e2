package cli

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFitNamesTheImagesTheThresholdRestsOn: the threshold is a high
// quantile of the training images' leave-one-out scores, so one "good"
// image with a hair, dirt or a defect on it lifts it for every part (on
// screw, two hairs on the background held the threshold above every good
// test image), and fit said only how many images it rested on. It now
// names the highest-scoring ones, highest first, with their scores in
// threshold units, and what to do: a training image with a dark square
// painted on it comes first.
func TestFitNamesTheImagesTheThresholdRestsOn(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on the real backbone")
	}
	dir := filepath.Join(t.TempDir(), "set")
	if code, _, stderr := runCaptureCmd(t, "capture", "export", "--out", dir, "--train", "24", "--test", "4",
		"--width", "96", "--height", "64", "--defect-rate", "0.5", "--seed", "5"); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	good := filepath.Join(dir, "train", "good")
	f, err := os.Open(filepath.Join(good, "0003.png"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	dirty := image.NewRGBA(src.Bounds())
	draw.Draw(dirty, dirty.Bounds(), src, src.Bounds().Min, draw.Src)
	draw.Draw(dirty, image.Rect(40, 20, 64, 44), image.NewUniform(color.Black), image.Point{}, draw.Src)
	dirtyPath := filepath.Join(good, "0012-dirty.png")
	out, err := os.Create(dirtyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(out, dirty); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "inspectd.yaml")
	y := "state_dir: " + t.TempDir() + "\nmodel: {recipe: fixed, features: 32, min_features: 16, context_pool: 0, position_zscore: false, optimize: off}\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", filepath.Join(t.TempDir(), "m.safetensors"))
	if code != 0 {
		t.Fatalf("fit: exit %d\n%s", code, stderr)
	}
	head := "the good images the threshold rests on most (leave-one-out score ÷ threshold; the median of the 25 is "
	_, list, ok := strings.Cut(stdout, head)
	if !ok {
		t.Fatalf("fit stdout %q, want a line %q", stdout, head)
	}
	lines := strings.Split(list, "\n")
	if len(lines) < 7 {
		t.Fatalf("fit stdout %q, want 5 images and the advice after %q", stdout, head)
	}
	if !strings.HasSuffix(lines[1], "  "+dirtyPath) {
		t.Errorf("first image listed %q, want the one with a dark square, %s", lines[1], dirtyPath)
	}
	prev := math.Inf(1)
	for _, l := range lines[1:6] {
		field, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		score, err := strconv.ParseFloat(field, 64)
		if err != nil || score > prev || !(score > 0) {
			t.Errorf("image line %q: want a positive score (in threshold units), highest first (%v)", l, err)
		}
		prev = score
	}
	if !strings.Contains(lines[6], "move any that is not a good part out of the training images and fit again") {
		t.Errorf("line after the images %q, want the advice", lines[6])
	}
}
