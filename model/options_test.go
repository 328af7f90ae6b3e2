package model

import (
	"context"
	"encoding/json"
	"image"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/padim"
)

// brushed renders one brushed-metal part (the same vertical streaks every
// time) with fresh grain per seed, the kind of surface Standardize is for.
func brushed(w, h int, seed uint64) *image.Gray {
	scene := rand.New(rand.NewPCG(0, 11))
	col := make([]float64, w)
	for x := range col {
		col[x] = 25 * scene.NormFloat64()
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			g.Pix[y*w+x] = uint8(min(max(120+col[x]+8*rng.NormFloat64(), 0), 255))
		}
	}
	return g
}

// exposed is img under other lighting: scaled and offset.
func exposed(img *image.Gray, gain, offset float64) *image.Gray {
	out := image.NewGray(img.Rect)
	for i, p := range img.Pix {
		out.Pix[i] = uint8(min(max(gain*float64(p)+offset+0.5, 0), 255))
	}
	return out
}

type grays []image.Image

func (g grays) Len() int                         { return len(g) }
func (g grays) Image(i int) (image.Image, error) { return g[i], nil }

func fitTest(t *testing.T, opts Options) *Detector {
	t.Helper()
	opts.Backbone.Path = modeltest.BackbonePath(t)
	opts.Backbone.Threads = 2
	opts.Features = 32
	var imgs grays
	for i := range 24 {
		imgs = append(imgs, brushed(96, 80, uint64(i)))
	}
	d, _, err := Fit(context.Background(), opts, imgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// With Standardize a darker exposure of a normal part scores like the part;
// without it the same frame scores far higher. Save and Load keep it.
func TestStandardizeOption(t *testing.T) {
	sameFitPath(t)
	part := brushed(96, 80, 100)
	dark := exposed(part, 0.4, 0)
	score := func(d *Detector, img image.Image) float64 {
		r, err := d.Inspect(img)
		if err != nil {
			t.Fatal(err)
		}
		return r.Score
	}
	plain := fitTest(t, Options{})
	std := fitTest(t, Options{Standardize: true})
	if !std.Info().Standardize || plain.Info().Standardize {
		t.Fatalf("Info().Standardize: %v with, %v without", std.Info().Standardize, plain.Info().Standardize)
	}
	p0, p1 := score(plain, part), score(plain, dark)
	s0, s1 := score(std, part), score(std, dark)
	t.Logf("plain: part %.2f dark %.2f; standardized: part %.2f dark %.2f", p0, p1, s0, s1)
	if p1 < 1.5*p0 {
		t.Fatalf("test setup: without standardizing, the dark exposure scores %.2f vs %.2f; want it clearly higher", p1, p0)
	}
	// Within 15%: the 0.4-gain exposure keeps only 40% of the grey levels,
	// which standardizing cannot give back.
	if math.Abs(s1-s0) > 0.15*s0 {
		t.Errorf("standardized: dark exposure scores %.2f vs %.2f for the part, want within 15%%", s1, s0)
	}

	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := std.Save(path); err != nil {
		t.Fatal(err)
	}
	opts := std.opts
	opts.Standardize = false // the file's preprocessing wins over the configuration
	l, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Info().Standardize {
		t.Error("loaded model lost Standardize")
	}
	if got := score(l, dark); math.Abs(got-s1) > 1e-3*s1 {
		t.Errorf("loaded model scores the dark exposure %.4f, fitted one %.4f", got, s1)
	}
}

func TestDefaultTaps(t *testing.T) {
	sameFitPath(t)
	c9 := []string{"MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6", "MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6",
		"MobilenetV1/MobilenetV1/Conv2d_9_pointwise/Relu6"}
	d := fitTest(t, Options{DefaultTaps: c9})
	if got := d.Info().Taps; !slices.Equal(got, c9) {
		t.Errorf("taps %v, want the default taps %v", got, c9)
	}
	explicit := []string{"MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6", "MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6"}
	var o Options
	o.Backbone.Taps = explicit
	o.DefaultTaps = c9
	d = fitTest(t, o)
	if got := d.Info().Taps; !slices.Equal(got, explicit) {
		t.Errorf("taps %v, want the configured taps %v", got, explicit)
	}
}

// TestRecipeBackbones: a named recipe needs its bundled backbones
// installed (config check said ok for "plain" without MobileNet v1, and
// the start's fit failed); auto and fixed run on what is there.
func TestRecipeBackbones(t *testing.T) {
	v1 := BundledPath{Name: backbone.MobileNetV1, Path: "/share/mobilenet_v1.tflite"}
	v2 := BundledPath{Name: backbone.MobileNetV2, Path: "/share/mobilenet_v2.tflite"}
	for _, tc := range []struct {
		recipe  string
		bundled []BundledPath
		missing string // "" for nil
	}{
		{"plain", []BundledPath{v1}, ""},
		{"plain", nil, backbone.MobileNetV1},
		{"plain", []BundledPath{v2}, backbone.MobileNetV1},
		{"v2-squash-std-z-ctx2", []BundledPath{v1}, backbone.MobileNetV2},
		{"v1-fit-std-z-ctx2+v2-fit-std-z-ctx2+plain", []BundledPath{v1}, backbone.MobileNetV2},
		{"v1-fit-std-z-ctx2+v2-fit-std-z-ctx2+plain", []BundledPath{v1, v2}, ""},
		{RecipeAuto, nil, ""},
		{RecipeFixed, nil, ""},
		{"", nil, ""},
	} {
		o := Options{Recipe: tc.recipe, Bundled: tc.bundled}
		err := o.RecipeBackbones()
		switch {
		case tc.missing == "" && err != nil:
			t.Errorf("%q with %v: %v, want nil", tc.recipe, tc.bundled, err)
		case tc.missing != "" && (err == nil || !strings.Contains(err.Error(), "bundled backbone "+tc.missing+" is not installed")):
			t.Errorf("%q with %v: %v, want %s named as not installed", tc.recipe, tc.bundled, err, tc.missing)
		}
	}
}

// A model file records the bound on the standardization's stretch it was
// fitted under; one from before the bound was lowered (no
// standardize_max_gain) stretches as it was fitted, up to
// backbone.LegacyMaxGain, and a bound out of range is refused.
func TestStandardizeMaxGainInFile(t *testing.T) {
	sameFitPath(t)
	std := fitTest(t, Options{Standardize: true})
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := std.Save(path); err != nil {
		t.Fatal(err)
	}
	load := func(path string) (*Detector, error) { return Load(path, std.opts) }
	l, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	if g := l.Standardizer().GainBound(); g != backbone.DefaultMaxGain {
		t.Errorf("new file: stretch bound %g, want %g", g, backbone.DefaultMaxGain)
	}
	l.Close()
	// rewrite saves the file again with its preprocessing's
	// standardize_max_gain replaced (nil: absent).
	rewrite := func(name string, gain any) string {
		m, err := padim.Load(path, padim.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var pre map[string]any
		if err := json.Unmarshal([]byte(m.Meta.Preprocessing), &pre); err != nil {
			t.Fatal(err)
		}
		if pre["standardize_max_gain"] == nil {
			t.Fatalf("the file's preprocessing has no standardize_max_gain: %s", m.Meta.Preprocessing)
		}
		delete(pre, "standardize_max_gain")
		if gain != nil {
			pre["standardize_max_gain"] = gain
		}
		b, err := json.Marshal(pre)
		if err != nil {
			t.Fatal(err)
		}
		m.Meta.Preprocessing = string(b)
		out := filepath.Join(dir, name)
		if err := padim.Save(out, m); err != nil {
			t.Fatal(err)
		}
		return out
	}
	l, err = load(rewrite("old.safetensors", nil))
	if err != nil {
		t.Fatal(err)
	}
	if g := l.Standardizer().GainBound(); g != backbone.LegacyMaxGain {
		t.Errorf("file without standardize_max_gain: stretch bound %g, want %g", g, backbone.LegacyMaxGain)
	}
	l.Close()
	for _, g := range []float64{0.5, 1000, -3} {
		if _, err := load(rewrite("bad.safetensors", g)); err == nil || !strings.Contains(err.Error(), "standardize_max_gain") {
			t.Errorf("standardize_max_gain %g: err %v, want a refusal naming standardize_max_gain", g, err)
		}
	}
}
