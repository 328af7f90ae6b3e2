package cli

import (
	"bytes"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/dataset"
)

// eval --dim runs the dark-line protocol: the set's exposure measured on
// its training images, every training and test image darkened by it with
// noise and hot pixels; the table and the JSON say so. A model saved from
// the run, evaluated with --model and --dim, meets the same test images
// (its figures repeat); without --dim, other ones.
func TestEvalDim(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "a")
	exportSet(t, set, 12, 8, 5)
	cfg := evalConfig(t, dir)
	js, saved := filepath.Join(dir, "dim.json"), filepath.Join(dir, "m.safetensors")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--features", "16", "--max-train", "8",
		"--dim", "19", "--save-model", saved, "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "dark line (--dim 19)") || !strings.Contains(stdout, "a@dim19 ") {
		t.Errorf("output does not say the protocol:\n%s", stdout)
	}
	s := readEvalReport(t, js).Sets[0]
	d := s.Dim
	if d == nil {
		t.Fatalf("the set's JSON has no dim: %+v", s)
	}
	// The exposure is the mean luminance of every training image (12,
	// under dataset.DimSample), not only the 8 fitted on.
	train, _ := filepath.Glob(filepath.Join(set, "train", "good", "*.png"))
	var luma float64
	for _, p := range train {
		luma += dataset.MeanLuma(decodeFile(t, p)) / float64(len(train))
	}
	if d.Mean != 19 || d.Noise != 3.5 || d.NoiseRGB != [3]float64{4.2, 3.5, 4.9} || d.HotPixelsPer10000 != 3 || d.Seed != 1 ||
		d.SampleImages != len(train) || math.Abs(d.SampleLuma-luma) > 1e-9 || math.Abs(d.Scale*d.SampleLuma-19) > 1e-9 {
		t.Errorf("dim %+v, want mean 19, noise 3.5 (4.2/3.5/4.9), 3 hot pixels per 10,000, seed 1, %d images of luma %.4f", *d, len(train), luma)
	}
	r := s.Results[0]
	if s.Data != set || r.Data != set+"@dim19" || r.TrainImages != 8 {
		t.Errorf("set %q, results' data %q (want %q), %d training images", s.Data, r.Data, set+"@dim19", r.TrainImages)
	}
	// The darkened line is a noisy one, and the set says so.
	if n := r.LineNoise; n == nil || n.Images != 8 || !n.Low() || !strings.Contains(stdout, "a noisy line (ratio under 8)") {
		t.Errorf("line noise %+v: want measured on the 8 training images and noisy, said in the output:\n%s", n, stdout)
	}
	// The saved model on the same darkened test images: the same figures.
	for _, c := range []struct {
		args []string
		same bool
	}{{[]string{"--dim", "19"}, true}, {nil, false}} {
		js2 := filepath.Join(dir, "model.json")
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg, "--data", set, "--model", saved, "--json", js2}, c.args...)...)
		if code != 0 {
			t.Fatalf("--model %v: exit %d: %s", c.args, code, stderr)
		}
		s2 := readEvalReport(t, js2).Sets[0]
		r2 := s2.Results[0]
		same := r2.ImageAUROC == r.ImageAUROC && r2.PixelAUROC == r.PixelAUROC
		if r2.LineNoise == nil || r.LineNoise == nil || *r2.LineNoise != *r.LineNoise {
			t.Errorf("--model %v: line noise %+v, the fitted model's %+v (recorded in the file)", c.args, r2.LineNoise, r.LineNoise)
		}
		if same != c.same || (s2.Dim != nil) != c.same {
			t.Errorf("--model %v: image/pixel AUROC %v/%v, the fit's run %v/%v, dim %+v: want the same figures and protocol %v",
				c.args, r2.ImageAUROC, r2.PixelAUROC, r.ImageAUROC, r.PixelAUROC, s2.Dim, c.same)
		}
	}
}

// --dim composes with --train-draws and --compare: every draw's rows and
// their mean say the protocol; a set of black training images has no
// exposure to scale and is refused before any fit.
func TestEvalDimTrainDraws(t *testing.T) {
	if testing.Short() {
		t.Skip("four fits on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "b")
	exportSet(t, set, 10, 6, 3)
	cfg := evalConfig(t, dir)
	js := filepath.Join(dir, "draws.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--compare", "v1p-fit-raw", "--features", "16",
		"--max-train", "5", "--train-draws", "2", "--dim", "40", "--dim-noise", "2", "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "b@dim40-noise2 over 2 draws of") {
		t.Errorf("the draws' spread does not name the protocol:\n%s", stdout)
	}
	if !strings.Contains(stdout, "b@dim40-noise2@train-draw1") || !strings.Contains(stdout, "b@dim40-noise2@train-draw mean of 2") {
		t.Errorf("the draws' rows do not say the protocol:\n%s", stdout)
	}
	s := readEvalReport(t, js).Sets[0]
	if s.Dim == nil || s.Dim.Mean != 40 || s.Dim.Noise != 2 || len(s.Draws) != 2 || len(s.Results) != 2 {
		t.Fatalf("set %+v", s)
	}
	if got := s.Draws[1].Results[1].Data; got != set+"@dim40-noise2@train-draw2" {
		t.Errorf("draw 2's compared column labelled %q", got)
	}
	if got := s.Results[0].Data; got != set+"@dim40-noise2@train-draw (mean of 2 draws)" {
		t.Errorf("the mean labelled %q", got)
	}

	black := filepath.Join(dir, "black")
	exportSet(t, black, 6, 4, 3)
	imgs, _ := filepath.Glob(filepath.Join(black, "train", "good", "*.png"))
	for _, p := range imgs {
		if err := writePNG(p, image.NewGray(image.Rect(0, 0, 96, 72))); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr = runCaptureCmd(t, "eval", "--config", cfg, "--data", black, "--recipe", "plain", "--dim", "19")
	if code == 0 || !strings.Contains(stderr, "--dim on "+black) || !strings.Contains(stderr, "black images") || strings.Contains(stderr, "fit done") {
		t.Errorf("black training images: exit %d, %s; want a refusal before any fit", code, stderr)
	}
}

// Out-of-range --dim and --dim-noise, --dim-noise alone and --dim with
// --misalign are refused before any fit, naming the flag and the range.
func TestEvalDimFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--dim", "300"}, "--dim 300: want 0 (off) or a mean grey level from 1 to 128"},
		{[]string{"--dim", "0.5"}, "--dim 0.5: want 0 (off) or a mean grey level from 1 to 128"},
		{[]string{"--dim", "-19"}, "--dim -19: want 0 (off) or a mean grey level from 1 to 128"},
		{[]string{"--dim", "19", "--dim-noise", "-1"}, "--dim-noise -1: want a standard deviation from 0 to 64 levels"},
		{[]string{"--dim", "19", "--dim-noise", "100"}, "--dim-noise 100: want a standard deviation from 0 to 64 levels"},
		{[]string{"--dim-noise", "2"}, "--dim-noise applies to --dim"},
		{[]string{"--dim", "19", "--misalign"}, "--dim with --misalign: one protocol at a time"},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg, "--data", dir}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("eval %v: exit %d, %s\nwant exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// An image is darkened by its path under the set's folder: the same
// wherever the set lies (every recipe and draw of a run, and a copy of
// the set, meet the same images), another image's noise differs.
func TestImageFilesDim(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	d, err := dataset.NewDim(19, dataset.DimNoise, 1, []float64{dataset.MeanLuma(img)})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, p := range []string{"one/test/good/000.png", "two/test/good/000.png", "two/test/good/001.png"} {
		root, _, _ := strings.Cut(p, "/")
		path := filepath.Join(t.TempDir(), p)
		root = filepath.Join(strings.TrimSuffix(path, p), root)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writePNG(path, img); err != nil {
			t.Fatal(err)
		}
		f := imageFiles{maxPixels: 1 << 20, dim: &d, root: root}
		out, err := f.load(path)
		if err != nil {
			t.Fatal(err)
		}
		rgba, ok := out.(*image.RGBA)
		if !ok {
			t.Fatalf("%s: %T, want *image.RGBA", p, out)
		}
		got = append(got, rgba.Pix)
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Error("the same image under two folders darkened differently")
	}
	if bytes.Equal(got[1], got[2]) {
		t.Error("two images of a set got the same noise")
	}
}
