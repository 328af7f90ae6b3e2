package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/padim"
)

// stripes are modeltest.Stripes frames of 200×160 with noise sd.
type stripes struct {
	n  int
	sd float64
}

func (s stripes) Len() int { return s.n }

func (s stripes) Image(i int) (image.Image, error) {
	return modeltest.Stripes(uint64(i), 200, 160, s.sd), nil
}

// A fit measures the line's noise against its contrast on its training
// images: a line whose noise is a large share of its contrast is warned
// of, a quiet one is not, and the model file keeps the figures.
func TestFitLineNoise(t *testing.T) {
	sameFitPath(t)
	for _, c := range []struct {
		name  string
		sd    float64
		noisy bool
	}{{"quiet", 1, false}, {"noisy", 12, true}} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			opts := testOptions(t)
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			det, rep, err := Fit(context.Background(), opts, stripes{24, c.sd}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer det.Close()
			n := rep.Noise
			if n.Images != LineNoiseImages || math.Abs(n.Noise-c.sd) > 0.15*c.sd || n.Contrast < 20 {
				t.Fatalf("line noise %+v: want %d images, noise about %g, contrast the stripes' and noise's (over 20)", n, LineNoiseImages, c.sd)
			}
			if n.Low() != c.noisy {
				t.Errorf("%v: Low() %v, want %v", n, n.Low(), c.noisy)
			}
			warned := strings.Contains(logs.String(), "the line is noisy")
			if warned != c.noisy {
				t.Errorf("warned %v, want %v: %s", warned, c.noisy, logs.String())
			}
			// The warning names the remedy the model offers for such a line.
			if warned && !strings.Contains(logs.String(), "a recipe named with -med (model.recipe, such as v1-fit-med-std-z-ctx2)") {
				t.Errorf("the warning does not name the median filter: %s", logs.String())
			}
			if got := det.Info().LineNoise; got == nil || *got != n {
				t.Fatalf("info's line noise %v, the report's %+v", got, n)
			}
			_, ld := saveLoad(t, det, opts)
			if got := ld.Info().LineNoise; got == nil || *got != n {
				t.Errorf("loaded model's line noise %v, want %+v", got, n)
			}
		})
	}
}

// badLineNoise are line_noise figures no fit writes, refused alike in a
// single model's metadata and an ensemble's: want is what the error must
// say besides the key and the file.
var badLineNoise = []struct{ name, value, want string }{
	{"not json", "quiet", metaLineNoise},
	{"no noise", `{"images":3,"contrast":40}`, "no noise"},
	{"no contrast", `{"images":3,"noise":2.5}`, "no contrast"},
	{"no image", `{"images":0,"noise":2.5,"contrast":40}`, "images 0"},
	{"more images than a fit measures", `{"images":10,"noise":2.5,"contrast":40}`, "images 10"},
	{"10^15 images", `{"images":1000000000000000,"noise":2.5,"contrast":40}`, "images 1000000000000000"},
	{"negative noise", `{"images":3,"noise":-1,"contrast":40}`, "noise -1"},
	{"contrast beyond 255", `{"images":3,"noise":1,"contrast":300}`, "contrast 300"},
	{"a key in other case", `{"Images":3,"noise":1,"contrast":40}`, "no images"},
	{"images not whole", `{"images":9.5,"noise":1,"contrast":40}`, "images 9.5: want a whole number"},
	{"noise not a number", `{"images":3,"noise":"1","contrast":40}`, `noise "1": want a number`},
}

// A model file's line_noise is read as written, absent in files from
// before it was recorded, and refused naming the key when no measurement
// could give it.
func TestLineNoiseInFile(t *testing.T) {
	sameFitPath(t)
	opts := testOptions(t)
	det, _, err := Fit(context.Background(), opts, stripes{24, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	pm, err := padim.Load(path, padim.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if _, ok := pm.Meta.Extra[metaLineNoise]; !ok {
		t.Fatalf("metadata %s not written: %v", metaLineNoise, pm.Meta.Extra)
	}
	for _, c := range append([]struct {
		name, value string // "": the key removed
		want        string // "": loads
	}{
		{"absent", "", ""},
		{"written", `{"images":3,"noise":2.5,"contrast":40}`, ""},
		{"null", "null", "no images"}, // an ensemble's null is absent (JSON's null field)
	}, badLineNoise...) {
		t.Run(c.name, func(t *testing.T) {
			m := *pm
			m.Meta.Extra = map[string]string{}
			for k, v := range pm.Meta.Extra {
				m.Meta.Extra[k] = v
			}
			delete(m.Meta.Extra, metaLineNoise)
			if c.value != "" {
				m.Meta.Extra[metaLineNoise] = c.value
			}
			f := filepath.Join(t.TempDir(), "f.safetensors")
			if err := padim.Save(f, &m); err != nil {
				t.Fatal(err)
			}
			ld, err := Load(f, opts)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), metaLineNoise) || !strings.Contains(err.Error(), f) {
					t.Fatalf("want an error naming %s, %q and the file, got %v", metaLineNoise, c.want, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ld.Close()
			got := ld.Info().LineNoise
			switch {
			case c.value == "" && got != nil:
				t.Errorf("a file without %s loads with %+v, want none", metaLineNoise, got)
			case c.value != "" && (got == nil || *got != LineNoise{Images: 3, Noise: 2.5, Contrast: 40}):
				t.Errorf("loaded %+v from %s", got, c.value)
			}
		})
	}
}

func TestLineNoiseRatio(t *testing.T) {
	for _, c := range []struct {
		n     LineNoise
		ratio float64
		low   bool
	}{
		{LineNoise{}, 0, false},
		{LineNoise{Images: 9, Noise: 0, Contrast: 30}, math.Inf(1), false},
		{LineNoise{Images: 9, Noise: 2, Contrast: 30}, 15, false},
		{LineNoise{Images: 9, Noise: 2.5, Contrast: 4.4}, 1.76, true},
		{LineNoise{Images: 9, Noise: 1, Contrast: LowSignalToNoise}, LowSignalToNoise, false},
	} {
		if r := c.n.Ratio(); math.Abs(r-c.ratio) > 1e-9 && !(math.IsInf(r, 1) && math.IsInf(c.ratio, 1)) {
			t.Errorf("%+v: ratio %g, want %g", c.n, r, c.ratio)
		}
		if c.n.Low() != c.low {
			t.Errorf("%+v: Low %v, want %v", c.n, c.n.Low(), c.low)
		}
	}
}

// The figures are written with their ratio and whether the line is noisy,
// and read back from that (the extra keys ignored).
func TestLineNoiseJSON(t *testing.T) {
	for _, c := range []struct {
		n    LineNoise
		want string
	}{
		{LineNoise{Images: 9, Noise: 2.5, Contrast: 5}, `{"images":9,"noise":2.5,"contrast":5,"ratio":2,"noisy":true}`},
		{LineNoise{Images: 9, Noise: 0.5, Contrast: 40}, `{"images":9,"noise":0.5,"contrast":40,"ratio":80,"noisy":false}`},
		{LineNoise{Images: 3, Noise: 0, Contrast: 40}, `{"images":3,"noise":0,"contrast":40,"noisy":false}`},
	} {
		b, err := json.Marshal(c.n)
		if err != nil || string(b) != c.want {
			t.Errorf("%+v: %s, %v; want %s", c.n, b, err, c.want)
			continue
		}
		back, err := parseLineNoise(b)
		if err != nil || *back != c.n {
			t.Errorf("%s read back as %+v, %v", b, back, err)
		}
	}
}

// A line whose frames are perfectly flat in their flattest areas without
// being clipped (rendered, or heavily denoised) measures noise 0: it is
// not noisy, its JSON has no ratio (which would be infinite) and its words
// print none, so no "+Inf" or "NaN" reaches fit's, eval's or model info's
// output or a consumer of the JSON.
func TestLineNoiseNoiseless(t *testing.T) {
	n, err := measureLineNoise(context.Background(), rendered{12}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	if err != nil {
		t.Fatal(err)
	}
	if n.Images != LineNoiseImages || n.Noise != 0 || !(n.Contrast > 20) {
		t.Fatalf("rendered frames measure %+v: want %d images, noise 0 and their stripes' contrast", n, LineNoiseImages)
	}
	for _, c := range []LineNoise{n, {Images: 3, Noise: 0, Contrast: 0}} {
		if c.Low() {
			t.Errorf("%#v: called noisy", c)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%#v: %v", c, err)
		}
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil || back["noisy"] != false || back["ratio"] != nil {
			t.Errorf("%#v as JSON: %s (%v), want noisy false and no ratio", c, b, err)
		}
		s := c.String()
		for _, bad := range []string{"Inf", "NaN", "ratio"} {
			if strings.Contains(s, bad) {
				t.Errorf("%#v in words: %q says %q", c, s, bad)
			}
		}
		if !strings.Contains(s, "no sensor noise") || !strings.Contains(s, fmt.Sprintf("over %d good images", c.Images)) {
			t.Errorf("%#v in words: %q, want it to say there is no sensor noise, over how many images", c, s)
		}
	}
}

// rendered are n frames of 200×160 as a renderer draws them: flat stripes
// of levels 60 and 160, without noise and never clipped.
type rendered struct{ n int }

func (s rendered) Len() int { return s.n }

func (s rendered) Image(i int) (image.Image, error) {
	g := image.NewGray(image.Rect(0, 0, 200, 160))
	for y := range 160 {
		for x := range 200 {
			g.Pix[y*g.Stride+x] = uint8(60 + 100*((x/(40+i))%2))
		}
	}
	return g, nil
}

// Rendered shading (a grey ramp of one level per pixel, in RGB) measured
// the luma's float32 rounding as noise, about 1e-6 levels, and fit said
// "sensor noise 0.00 levels of 255 against a contrast of 46.4 (ratio
// 44554605.9)"; a file's noise of 1e-320 printed "ratio +Inf". Both are
// no sensor noise now.
func TestLineNoiseRenderedShading(t *testing.T) {
	n, err := measureLineNoise(context.Background(), shaded{12}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	if err != nil {
		t.Fatal(err)
	}
	if n.Images != LineNoiseImages || n.Noise != 0 || !(n.Contrast > 20) {
		t.Errorf("rendered shading measures %+v: want %d images, noise 0 and the ramp's contrast", n, LineNoiseImages)
	}
	for _, c := range []LineNoise{n, {Images: 9, Noise: 1e-320, Contrast: 255}, {Images: 9, Noise: 1e-6, Contrast: 46.4}} {
		s := c.String()
		if !strings.Contains(s, "no sensor noise") || strings.Contains(s, "ratio") || strings.Contains(s, "Inf") {
			t.Errorf("%#v in words: %q, want no sensor noise and no ratio", c, s)
		}
		if b, err := json.Marshal(c); err != nil || strings.Contains(string(b), "ratio") || c.Low() {
			t.Errorf("%#v as JSON: %s, %v, noisy %v; want no ratio, not noisy", c, b, err, c.Low())
		}
	}
	// The least noise real levels give is resolved.
	if c := (LineNoise{Images: 9, Noise: 0.0005, Contrast: 40}); strings.Contains(c.String(), "no sensor noise") {
		t.Errorf("%#v in words: %q, want its ratio", c, c.String())
	}
}

// shaded are n frames of 128×96 as a renderer shades them: a grey ramp
// of one level per pixel across and half a level down, with a darker
// ramp in a box, in RGB, without noise and never clipped.
type shaded struct{ n int }

func (s shaded) Len() int { return s.n }

func (s shaded) Image(i int) (image.Image, error) {
	m := image.NewRGBA(image.Rect(0, 0, 128, 96))
	for y := range 96 {
		for x := range 128 {
			v := uint8(40 + x + y/2)
			if x > 30+i%7 && x < 80 && y > 30 && y < 60 {
				v = uint8(20 + x/2)
			}
			o := m.PixOffset(x, y)
			m.Pix[o], m.Pix[o+1], m.Pix[o+2], m.Pix[o+3] = v, v, v, 255
		}
	}
	return m, nil
}

// FuzzParseLineNoise: a model file's line_noise, whatever its bytes, is
// refused naming the key or read as figures a measurement could give
// (never a panic, never a NaN, an infinity or an image count out of
// range let through).
func FuzzParseLineNoise(f *testing.F) {
	f.Add([]byte(`{"images":9,"noise":0.44,"contrast":33.1,"ratio":75.2,"noisy":false}`))
	f.Add([]byte(`{"images":1e300,"noise":1,"contrast":1}`))
	f.Add([]byte(`{"images":3,"noise":"NaN","contrast":40}`))
	f.Add([]byte(`null`))
	for _, c := range badLineNoise {
		f.Add([]byte(c.value))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ln, err := parseLineNoise(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), metaLineNoise+": ") {
				t.Fatalf("%q: error %q does not name the key", b, err)
			}
			return
		}
		if ln.check() != nil || ln.Images < 1 || ln.Images > LineNoiseImages || math.IsNaN(ln.Noise) || math.IsInf(ln.Contrast, 0) {
			t.Fatalf("%q read as %+v", b, *ln)
		}
	})
}

// A file's line_noise may hold -0, which check lets through (it is no
// less than 0): its words said "a contrast of -0.0" (and "ratio -0.0"),
// as fit, eval and model info print them, and its JSON "-0". Zero is
// said 0, read from a file or not.
func TestLineNoiseNegativeZero(t *testing.T) {
	neg := math.Copysign(0, -1)
	read, err := parseLineNoise([]byte(`{"images":3,"noise":2.5,"contrast":-0}`))
	if err != nil {
		t.Fatal(err)
	}
	if math.Signbit(read.Contrast) {
		t.Errorf("contrast -0 read as %+v, want 0", *read)
	}
	for _, c := range []LineNoise{*read, {Images: 3, Noise: 2.5, Contrast: neg}, {Images: 3, Noise: neg, Contrast: neg}, {Images: 3, Noise: neg, Contrast: 40}} {
		s := c.String()
		if strings.Contains(s, "-0") {
			t.Errorf("%#v in words: %q, want 0.0", c, s)
		}
		if b, err := json.Marshal(c); err != nil || strings.Contains(string(b), "-0") {
			t.Errorf("%#v as JSON: %s, %v; want 0", c, b, err)
		}
	}
}
