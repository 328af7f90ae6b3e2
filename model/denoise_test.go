package model

import (
	"context"
	"image"
	"image/color"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/backbone"
)

// A recipe with the median filter reads back from its name ("-med",
// after registration and before std), and the name's parts out of order
// are refused saying where "med" goes.
func TestRecipeNameMedian(t *testing.T) {
	for _, n := range []string{"v1-squash-med-std-z-ctx2", "v2-fit-med-raw", "v1p-squash-med-raw", "v1-squash-rigid-med-z"} {
		r, err := ParseRecipe(n, nil)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if !r.Denoise || r.Name() != n {
			t.Errorf("%s reads back as %s (denoise %v)", n, r.Name(), r.Denoise)
		}
	}
	if r, _ := ParseRecipe("v1-squash-std-z-ctx2", nil); r.Denoise {
		t.Error("a name without med reads as denoised")
	}
	if _, err := ParseRecipe("v1-squash-std-med-raw", nil); err == nil || !strings.Contains(err.Error(), `"med" out of place`) {
		t.Errorf("med after std: %v, want it refused as out of place", err)
	}
}

// blocks is a frame of 16×16 blocks, each of one colour drawn from seed:
// flat wherever a 3×3 window lies inside a block, where the median
// filter returns every level as it was.
func blocks(seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, 256, 192))
	for by := 0; by < 192; by += 16 {
		for bx := 0; bx < 256; bx += 16 {
			c := color.RGBA{uint8(40 + r.IntN(60)), uint8(40 + r.IntN(60)), uint8(40 + r.IntN(60)), 255}
			for y := by; y < by+16; y++ {
				for x := bx; x < bx+16; x++ {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	return img
}

type blockFrames int

func (n blockFrames) Len() int                         { return int(n) }
func (n blockFrames) Image(i int) (image.Image, error) { return blocks(uint64(i)), nil }

// withHotPixels is img with one channel of one pixel at full level in
// the middle of every other block: a sensor's hot pixels.
func withHotPixels(img *image.RGBA) *image.RGBA {
	out := image.NewRGBA(img.Rect)
	copy(out.Pix, img.Pix)
	k := 0
	for by := 0; by < 192; by += 32 {
		for bx := 0; bx < 256; bx += 32 {
			out.Pix[out.PixOffset(bx+8, by+8)+k%3] = 255
			k++
		}
	}
	return out
}

// A model fitted with the median filter applies it to every frame it
// inspects, as fitted and as loaded from its file: hot pixels inside flat
// areas change nothing of the map, to the bit, while the same model
// without the filter sees them. The file records the filter.
func TestMedianRecipeFiltersFramesFittedAndLoaded(t *testing.T) {
	sameFitPath(t)
	frame := blocks(1000)
	hot := withHotPixels(frame)
	mapOf := func(d *Detector, img image.Image) []float32 {
		t.Helper()
		r, err := d.Inspect(img)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(r.Map)
	}
	fit := func(recipe string) *Detector {
		t.Helper()
		o := searchOptions(t) // the bundled backbone installed
		o.Recipe = recipe
		d, _, err := Fit(context.Background(), o, blockFrames(24), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	plain := fit("v1p-squash-raw")
	if slices.Equal(mapOf(plain, frame), mapOf(plain, hot)) {
		t.Fatal("without the filter the hot pixels change nothing: the test cannot tell the filter")
	}
	med := fit("v1p-squash-med-raw")
	want := mapOf(med, frame)
	if got := mapOf(med, hot); !slices.Equal(got, want) {
		t.Error("fitted with the median filter: the hot pixels changed the map")
	}
	if i := med.Info(); !i.Denoise || i.Recipe != "v1p-squash-med-raw" {
		t.Errorf("info: denoise %v, recipe %s", i.Denoise, i.Recipe)
	}
	_, ld := saveLoad(t, med, searchOptions(t))
	if i := ld.Info(); !i.Denoise || i.Recipe != "v1p-squash-med-raw" || !ld.Recipe().Denoise {
		t.Errorf("loaded: denoise %v, recipe %s", i.Denoise, i.Recipe)
	}
	if got := mapOf(ld, hot); !slices.Equal(got, want) {
		t.Error("loaded from its file: the hot pixels changed the map (the filter was not applied as fitted)")
	}
	// A frame decoded reduced would have blended the hot pixels in.
	if w, h := ld.SourceNeed(2560, 1920); w != 2560 || h != 1920 {
		t.Errorf("SourceNeed(2560, 1920) = %d×%d, want the frame whole", w, h)
	}
}

// The search offers the median filter with every candidate on a noisy
// line only (the lists, measured on each line), and on the noisy line the
// fixed recipe it keeps within the margin is the filtered one (one search:
// two cost a minute of the suite, and the quiet line's search is every
// other search test's).
func TestSearchOffersMedianOnlyOnNoisyLine(t *testing.T) {
	o := searchOptions(t)
	o.Search.NoEnsemble = true
	bd, _ := backbone.BundleByName(backbone.MobileNetV1)
	o.DefaultTaps = bd.Taps // the fixed recipe v1-fit-raw, among the candidates
	o.defaults()
	for _, c := range []struct {
		name  string
		sd    float64
		noisy bool
	}{{"quiet", 1, false}, {"noisy", 12, true}} {
		t.Run(c.name, func(t *testing.T) {
			src := stripes{24, c.sd}
			idx := firstIndices(src.Len())
			noise, err := measureLineNoise(context.Background(), src, idx)
			if err != nil {
				t.Fatal(err)
			}
			if noise.Low() != c.noisy {
				t.Fatalf("line noise %+v: noisy %v, want %v", noise, noise.Low(), c.noisy)
			}
			aspect, axis, square, err := aspectOf(src, idx)
			if err != nil {
				t.Fatal(err)
			}
			rep := &SearchReport{}
			cands, err := o.candidateList(context.Background(), rep, src, idx, aspect, axis, square, noise)
			if err != nil {
				t.Fatal(err)
			}
			plainNames, medNames := twins(cands)
			if rep.Denoise != c.noisy {
				t.Errorf("report's Denoise %v, want %v", rep.Denoise, c.noisy)
			}
			switch {
			case len(plainNames) < 4:
				t.Fatalf("candidates %v: want the unfiltered list", plainNames)
			case !c.noisy && len(medNames) > 0:
				t.Errorf("a quiet line was offered the median filter: %v", medNames)
			case c.noisy && !slices.Equal(medNames, plainNames):
				t.Errorf("noisy line: filtered candidates %v, want one for each of %v", medNames, plainNames)
			}
			if !c.noisy || testing.Short() {
				return
			}
			// The whole search on the noisy line: the margin protects the
			// fixed recipe, filtered.
			det, frep, err := Fit(context.Background(), o, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer det.Close()
			if !frep.Noise.Low() || frep.Search == nil || !frep.Search.Denoise {
				t.Fatalf("fit: line noise %v, search %v: want a noisy line's search", frep.Noise, frep.Search != nil)
			}
			var tried []Recipe
			for _, cd := range frep.Search.Candidates {
				tried = append(tried, cd.Recipe)
			}
			if p, m := twins(tried); len(p) == 0 || !slices.Equal(m, p) {
				t.Errorf("the search tried %v unfiltered and %v filtered: want one of each", p, m)
			}
			if ref := frep.Search.Reference; ref != "v1-fit-med-raw" {
				t.Errorf("fixed recipe the margin protects: %q, want v1-fit-med-raw", ref)
			}
		})
	}
}

// twins returns the names of cands without the median filter (plain PaDiM
// under the name it has as a recipe) and those of the filtered ones with
// "-med" taken out, in their order: on a noisy line the two lists are
// equal.
func twins(cands []Recipe) (plain, med []string) {
	for _, r := range cands {
		if r.Denoise {
			med = append(med, strings.Replace(r.Name(), "-med", "", 1))
		} else {
			plain = append(plain, strings.Replace(r.Name(), "plain", "v1p-squash-raw", 1))
		}
	}
	return plain, med
}
