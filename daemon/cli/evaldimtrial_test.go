package cli

import (
	"bytes"
	"image"
	"path/filepath"
	"strings"
	"testing"
)

// The dark-line line gives the noise as asked: --dim-noise 10.5 is
// 12.6/10.5/14.7 levels (R/G/B), as the JSON's noise_rgb, not 13/10/15.
func TestPrintEvalDimNoise(t *testing.T) {
	for _, c := range []struct {
		d    DimProtocol
		want string
	}{
		{DimProtocol{Mean: 19, Noise: 10.5, NoiseRGB: [3]float64{12.6, 10.5, 14.7}, HotPixelsPer10000: 3, Seed: 1, SampleImages: 8, SampleLuma: 186.5, Scale: 19 / 186.5},
			"noise of SD 12.6/10.5/14.7 levels (R/G/B)"},
		{DimProtocol{Mean: 19, Noise: 2.25, NoiseRGB: [3]float64{2.7, 2.25, 3.15}, HotPixelsPer10000: 3, Seed: 1, SampleImages: 8, SampleLuma: 186.5, Scale: 19 / 186.5},
			"noise of SD 2.7/2.25/3.15 levels (R/G/B)"},
	} {
		var out bytes.Buffer
		printEval(&out, &EvalReport{Sets: []EvalSet{{Data: "a", Dim: &c.d}}})
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("--dim-noise %g: %q, want %q", c.d.Noise, out.String(), c.want)
		}
	}
}

// With --candidates the candidates' table names the set as the rows do,
// with the protocol: its real figures are on the darkened test images.
func TestPrintCandidatesDim(t *testing.T) {
	d := DimProtocol{Mean: 19, Noise: 3.5, NoiseRGB: [3]float64{4.2, 3.5, 4.9}, HotPixelsPer10000: 3, Seed: 1, SampleImages: 8, SampleLuma: 186.5, Scale: 19 / 186.5}
	var out bytes.Buffer
	printCandidates(&out, &EvalSet{Data: "sets/a", Dim: &d, Candidates: []CandidateEval{{Recipe: "plain", Chosen: true}}})
	if want := "recipe candidates on sets/a@dim19:"; !strings.Contains(out.String(), want) {
		t.Errorf("%q, want %q", out.String(), want)
	}
	out.Reset()
	printCandidates(&out, &EvalSet{Data: "sets/a", Candidates: []CandidateEval{{Recipe: "plain", Chosen: true}}})
	if want := "recipe candidates on sets/a:"; !strings.Contains(out.String(), want) {
		t.Errorf("without --dim: %q, want %q", out.String(), want)
	}
}

// Training images too small to inspect leave --dim nothing to measure the
// exposure on: the refusal says why they were left out, as the fit's
// does without --dim, not that none can be read.
func TestEvalDimNoTrainingImage(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "tiny")
	exportSet(t, set, 4, 4, 3)
	cfg := evalConfig(t, dir)
	imgs, _ := filepath.Glob(filepath.Join(set, "train", "good", "*.png"))
	for _, p := range imgs {
		if err := writePNG(p, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--dim", "19")
	for _, want := range []string{"--dim on " + set, "under 16 pixels a side"} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("8×8 training images: exit %d, %s; want %q", code, stderr, want)
		}
	}
	if strings.Contains(stderr, "can be read") {
		t.Errorf("8×8 training images: %s; they can be read", stderr)
	}
}
