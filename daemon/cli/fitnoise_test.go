package cli

import (
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/modeltest"
)

// TestFitSaysTheLineNoise: a fit says the training images' sensor noise
// against their contrast, and warns of a line whose noise is a large share
// of it (faint defects may drown in it, and the recipe search's synthetic
// defects cannot tell); a quiet line gets the figures and no warning.
func TestFitSaysTheLineNoise(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on the real backbone")
	}
	for _, c := range []struct {
		name  string
		sd    float64
		noisy bool
	}{{"quiet", 1, false}, {"noisy", 12, true}} {
		t.Run(c.name, func(t *testing.T) {
			cfg, m, stdout, stderr := fitFrames(t, func(i int) image.Image { return modeltest.Stripes(uint64(i), 128, 96, c.sd) })
			var noise, contrast float64
			_, after, ok := strings.Cut(stdout, "line noise: ")
			if ok {
				_, err := fmt.Sscanf(after, "sensor noise %g levels of 255 against a contrast of %g", &noise, &contrast)
				ok = err == nil && strings.Contains(after, "over 9 good images")
			}
			if !ok || math.Abs(noise-c.sd) > 0.15*c.sd || contrast < 20 {
				t.Fatalf("fit stdout %q: want \"line noise: sensor noise N levels of 255 against a contrast of C … over 9 good images\" with N about %g and C over 20", stdout, c.sd)
			}
			warned := strings.Contains(stdout, "WARNING: the line is noisy") && strings.Contains(stdout, "inspectd eval --data SET --compare plain") &&
				strings.Contains(stdout, "a noisy line (ratio under 8)")
			if warned != c.noisy {
				t.Errorf("warned %v, want %v:\n%s", warned, c.noisy, stdout)
			}
			// Said once: the model's log line of it (a remote refit's)
			// came on stderr beside stdout's.
			if strings.Contains(stderr, "the line is noisy") {
				t.Errorf("the noisy line said on stderr too:\n%s", stderr)
			}
			// model info reads the figures from the file, as fit said them.
			_, fitLine, _ := strings.Cut(stdout, "line noise: ")
			fitLine, _, _ = strings.Cut(fitLine, "\n")
			code, info, infoErr := runCaptureCmd(t, "model", "info", "--config", cfg, m)
			if code != 0 || !strings.Contains(info, "line noise       "+fitLine+"\n") {
				t.Errorf("model info: exit %d, %s\n%s\nwant the line %q", code, infoErr, info, "line noise       "+fitLine)
			}
		})
	}
}

// TestFitSaysTheLineNoiseUnmeasured: frames clipped black or white
// everywhere (a backlit silhouette) show no sensor noise to measure, and
// fit says so rather than leaving the line out.
func TestFitSaysTheLineNoiseUnmeasured(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on the real backbone")
	}
	_, _, stdout, _ := fitFrames(t, func(i int) image.Image {
		r := rand.New(rand.NewPCG(uint64(i), 9))
		img := image.NewGray(image.Rect(0, 0, 128, 96))
		cx, cy := 50+r.Float64()*28, 38+r.Float64()*20
		for y := range 96 {
			for x := range 128 {
				if math.Hypot(float64(x)-cx, float64(y)-cy) > 25 {
					img.Pix[y*img.Stride+x] = 255 // the backlight; the part is black
				}
			}
		}
		return img
	})
	if !strings.Contains(stdout, "line noise: not measured: ") || strings.Contains(stdout, "WARNING: the line is noisy") {
		t.Errorf("fit stdout %q: want \"line noise: not measured: …\" and no warning", stdout)
	}
}

// fitFrames writes 12 frames made by frame into a set's train/good as PNG
// files, fits a small fixed recipe on them and returns the config, the
// model file and fit's output and log.
func fitFrames(t *testing.T, frame func(i int) image.Image) (cfg, m, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	good := filepath.Join(dir, "train", "good")
	if err := os.MkdirAll(good, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		f, err := os.Create(filepath.Join(good, fmt.Sprintf("%03d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, frame(i)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cfg = filepath.Join(dir, "inspectd.yaml")
	y := "state_dir: " + t.TempDir() + "\nmodel: {recipe: fixed, features: 16, min_features: 8, context_pool: 0, position_zscore: false, optimize: off}\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	m = filepath.Join(dir, "m.safetensors")
	code, stdout, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", m)
	if code != 0 {
		t.Fatalf("fit: exit %d\n%s", code, stderr)
	}
	return cfg, m, stdout, stderr
}

// TestNoisyLineAdviceSaysTheMedianFilter: fit's warning of a noisy line
// said the search's choice on noisy screw "scored 0.01–0.04 under plain
// PaDiM", the figure from before the search tried the median filter (now
// 0.014 above), and did not name the filter a user fitting by name (or on
// fewer than 40 images, where there is no search) can ask for.
func TestNoisyLineAdviceSaysTheMedianFilter(t *testing.T) {
	for _, want := range []string{"3×3 median", "-med", "v1-fit-med-std-z-ctx2", "inspectd eval --data SET --compare plain", "0.014 above"} {
		if !strings.Contains(noisyLineAdvice, want) {
			t.Errorf("the noisy line's advice does not say %q:\n%s", want, noisyLineAdvice)
		}
	}
	if strings.Contains(noisyLineAdvice, "scored 0.01–0.04 under plain PaDiM") {
		t.Errorf("the advice still gives the figure from before the median filter:\n%s", noisyLineAdvice)
	}
	if _, err := model.ParseRecipe("v1-fit-med-std-z-ctx2", nil); err != nil {
		t.Errorf("the recipe the advice names does not parse: %v", err)
	}
}
