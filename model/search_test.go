package model

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/padim"
)

// Every candidate's name reads back as the same recipe, names are unique,
// and bad names are refused with what is expected.
func TestRecipeNames(t *testing.T) {
	o := testOptions(t)
	o.Bundled = []BundledPath{{backbone.MobileNetV1, "v1.tflite"}, {backbone.MobileNetV2, "v2.tflite"}}
	o.Backbone.Path = "v1.tflite"
	cands := o.Candidates(3.2, axisX, false)
	seen := map[string]bool{}
	for _, r := range cands {
		n := r.Name()
		if seen[n] {
			t.Errorf("name %s twice", n)
		}
		seen[n] = true
		back, err := ParseRecipe(n, nil)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		back.TileAxis = r.TileAxis // not part of the name
		if back.Name() != n || !slices.Equal(back.Taps, r.Taps) || back.Resize != r.resize() || back.Tiles != r.Tiles || back.Standardize != r.Standardize ||
			back.ZScore != r.ZScore || back.hasContext() != r.hasContext() || back.ContextWeight != r.ContextWeight {
			t.Errorf("%s reads back as %+v, want %+v", n, back, r)
		}
	}
	// Both backbones, both resize modes, tiles for a long part, plain.
	for _, want := range []string{"plain", "v1-fit-std-z-ctx2", "v2-squash-raw", "v1-tiles3-std-z-ctx1", "v2-tiles3-z"} {
		if !seen[want] {
			t.Errorf("candidates lack %s: %v", want, slices.Sorted(func(yield func(string) bool) {
				for k := range seen {
					if !yield(k) {
						return
					}
				}
			}))
		}
	}
	if cs := o.Candidates(1.3, axisX, false); slices.ContainsFunc(cs, func(r Recipe) bool { return r.Tiles > 1 }) {
		t.Error("tiles offered for a part that is not long")
	}
	if cs := o.Candidates(1.3, axisX, false); slices.ContainsFunc(cs, func(r Recipe) bool { return r.resize() == backbone.ResizeSquash && r.Name() != "plain" }) {
		t.Error("squashing offered for a part neither square nor long (synthetic defects misjudge it: squashMisjudged)")
	}
	if cs := o.Candidates(1, axisX, true); slices.ContainsFunc(cs, func(r Recipe) bool { return r.resize() == backbone.ResizeFit }) {
		t.Error("letterboxing offered for square frames on square inputs (the same as squashing)")
	}
	for _, c := range []struct{ name, want string }{
		{"v3-fit-raw", `unknown backbone "v3"`},
		{"v1-wide-raw", `unknown resize "wide"`},
		{"v1-med-squash-std-z", `"med" out of place: the resize (fit, squash, crop or tilesN) comes second, right after the backbone, and med after it`},
		{"v1-std-fit-z", `"std" out of place: the resize`},
		{"v1-squash-med-med-std-z", `"med" twice: the filter is named once`},
		{"v1-tiles9-raw", "tiles2 to tiles8"},
		{"v1-fit-zz", `unknown part "zz"`},
		{"v1-squash-spin-z", `unknown part "spin" after the resize: `},
		{"v1-squash-mde-std-z", `unknown part "mde" after the resize (did you mean "med"?)`},
		{"v1-squash-sdt-z", `(did you mean "std"?)`},
		{"v1-squash-rigd-z", `(did you mean "rigid"?)`},
		{"v1-squash-std-rigid-z", `registration "rigid" out of place`},
		{"v1-squash-rigid-std-std-z", `"std" out of place`},
		{"v1-fit-z-wide", `unknown scoring "z-wide"`},
		{"v1-fit-z-ctx0", `context weight "0"`},
		{"v1-fit", "at least three parts"},
	} {
		if _, err := ParseRecipe(c.name, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	r, err := ParseRecipe("v1-fit-std-z-ctx8x1.5", nil)
	if err != nil || r.ContextPool != 8 || r.ContextWeight != 1.5 || r.Name() != "v1-fit-std-z-ctx8x1.5" {
		t.Errorf("cells of 8 at weight 1.5: %+v %v", r, err)
	}
}

// wide renders a wide strip of the test texture; with defect, a bright
// blob near its right end, where a centre crop cannot see it.
func wide(seed uint64, defect bool) *image.Gray {
	var blob image.Rectangle
	if defect {
		blob = image.Rect(320, 40, 345, 60)
	}
	return grain(seed, 360, 100, blob)
}

type wides int

func (n wides) Len() int                         { return int(n) }
func (n wides) Image(i int) (image.Image, error) { return wide(uint64(i), false), nil }

func searchOptions(t *testing.T) Options {
	o := testOptions(t)
	o.Bundled = []BundledPath{{backbone.MobileNetV1, modeltest.BackbonePath(t)}}
	o.Recipe = RecipeAuto
	o.Search = SearchOptions{MinImages: 20, FitImages: 24, Holdout: 0.25, MinValidation: 6, MaxValidation: 8, DefectsPerImage: 2, Seed: 1}
	return o
}

// The search scores each candidate on synthetic defects pasted into
// held-out images: a recipe that crops most of a wide part away ranks
// below one that sees all of it. Candidates sharing a preprocessing share
// one fit; the chosen recipe and its figures are recorded in the model and
// its file.
func TestSearchRanksAndRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("three candidates in two families and a final fit")
	}
	o := searchOptions(t)
	bd, _ := backbone.BundleByName(backbone.MobileNetV1)
	squashRaw := Recipe{Backbone: backbone.MobileNetV1, Taps: bd.Taps, Resize: backbone.ResizeSquash}
	squashZ := squashRaw
	squashZ.ZScore = true
	crop := squashRaw
	crop.Resize = backbone.ResizeCrop
	o.Search.Candidates = []Recipe{crop, squashRaw, squashZ}
	families := 0
	o.Search.OnFamily = func(f *Family) error {
		families++
		res, err := f.Inspect(wide(999, true))
		if err != nil {
			return err
		}
		if len(res) != len(f.Variants) || res[0] == res[len(res)-1] && len(res) > 1 {
			t.Errorf("family of %d variants gave %d inspections", len(f.Variants), len(res))
		}
		return nil
	}
	det, rep, err := Fit(context.Background(), o, wides(32), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	s := rep.Search
	if s == nil || len(s.Candidates) != 3 || families != 2 || s.Good != 8 || s.Defects != 16 || s.FitImages != 24 {
		t.Fatalf("search %+v, %d families", s, families)
	}
	fig := map[string]RecipeFigures{}
	for _, c := range s.Candidates {
		if c.Err != "" || c.Figures.Good != 8 || c.Figures.Defects != 16 || !(c.Threshold > 0) {
			t.Fatalf("candidate %+v", c)
		}
		fig[c.Name] = c.Figures
		if f := c.Figures; !slices.Contains(PixelRatios[:], f.PixelRatio) || f.RegionImages > f.Defects || f.RegionIoU < 0 || f.RegionIoU > 1 {
			t.Errorf("%s: pixel ratio %g, region IoU %g over %d of %d synthetic defects", c.Name, f.PixelRatio, f.RegionIoU, f.RegionImages, f.Defects)
		}
		t.Logf("%-16s score %.4f image %.4f pixel %.4f PRO %.4f false alarms %.2f misses %.2f", c.Name, c.Figures.Score, c.Figures.ImageAUROC,
			c.Figures.PixelAUROC, c.Figures.PRO, c.Figures.FalseAlarms, c.Figures.Misses)
	}
	if fig["v1-crop-raw"].PixelAUROC >= fig["v1-squash-raw"].PixelAUROC || s.Chosen.Name == "v1-crop-raw" {
		t.Errorf("the crop that cannot see the ends ranks too high: %+v", fig)
	}
	if err := rep.Separates(); err != nil {
		t.Errorf("a recipe that tells the pasted defects apart: %v", err)
	}
	info := det.Info()
	if got := info.PixelThreshold / info.ImageThreshold; math.Abs(got-s.Chosen.Figures.PixelRatio) > 1e-9 {
		t.Errorf("pixel threshold %g of image threshold %g (%g), want the pixel ratio the search chose, %g", info.PixelThreshold, info.ImageThreshold, got, s.Chosen.Figures.PixelRatio)
	}
	if info.Recipe != s.Chosen.Name || info.RecipeChoice != RecipeAuto || info.RecipeFigures == nil || *info.RecipeFigures != s.Chosen.Figures ||
		info.Images != 32 || info.ThresholdImages != 32 {
		t.Fatalf("info %+v, chosen %+v", info, s.Chosen)
	}
	path := filepath.Join(t.TempDir(), "auto.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	ld, err := Load(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	li := ld.Info()
	if li.Recipe != info.Recipe || li.RecipeChoice != RecipeAuto || li.RecipeFigures == nil || *li.RecipeFigures != *info.RecipeFigures || li.ThresholdImages != 32 {
		t.Fatalf("loaded info %+v", li)
	}
}

// With too few images for held-out validation the fixed recipe is fitted,
// and the report says why.
func TestSearchFallsBackOnFewImages(t *testing.T) {
	o := searchOptions(t)
	o.Search.MinImages = 40
	det, rep, err := Fit(context.Background(), o, textures(12), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if rep.Search == nil || !strings.Contains(rep.Search.Fallback, "12 normal images") || det.Info().RecipeChoice != RecipeFixed || det.Info().RecipeFigures != nil {
		t.Fatalf("report %+v, info %+v", rep.Search, det.Info())
	}
}

// Tiles cut a long part into views with Gaussians of their own: the map
// follows the frame (a defect at the right end lights the right end), and
// a saved model scores the same.
func TestTilesLongPart(t *testing.T) {
	if testing.Short() {
		t.Skip("three backbone passes per image")
	}
	o := testOptions(t)
	o.Tiles = 3
	o.Backbone.Preprocess.Resize = backbone.ResizeSquash
	det, rep, err := Fit(context.Background(), o, wides(12), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	info := det.Info()
	if info.Tiles != 3 || info.TileAxis != axisX || info.Recipe != "custom-tiles3-raw" || rep.StateBytes != 3*padim.StateBytes(56*56, 32) {
		t.Fatalf("info %+v, report %+v", info, rep)
	}
	// Each third of a 1500×100 frame is squashed onto the 224² input on
	// its own: a camera may reduce the frame to 3×224 wide, not 224.
	if w, h := det.SourceNeed(1500, 100); w != 3*224 || h != 100 {
		t.Errorf("SourceNeed(1500, 100) = %d×%d, want 672×100", w, h)
	}
	r, err := det.Inspect(wide(500, true))
	if err != nil {
		t.Fatal(err)
	}
	want := r.Score
	peak, at := float32(0), 0
	for i, v := range r.Map {
		if v > peak {
			peak, at = v, i
		}
	}
	if x, y := at%r.W, at/r.W; x < 300 || y < 25 || y > 75 || !r.Anomalous {
		t.Errorf("map peaks at (%d, %d), anomalous %v; want near the defect at x 320..345, y 40..60", x, y, r.Anomalous)
	}
	path := filepath.Join(t.TempDir(), "tiles.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	o.Tiles = 0
	ld, err := Load(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if ld.Info().Tiles != 3 {
		t.Fatalf("loaded info %+v", ld.Info())
	}
	r, err = ld.Inspect(wide(500, true))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Score-want) > 1e-5*want {
		t.Errorf("loaded model scores %.6f, fitted %.6f", r.Score, want)
	}
}

// A model fitted on a bundled backbone other than the configured bundled
// one (the search chose it) loads with its own; a backbone of the user's
// must be the one the file was fitted for.
func TestLoadFindsBundledBackbone(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on the second backbone")
	}
	o := testOptions(t)
	v2 := filepath.Join(modeltest.ShareDir(t), "mobilenet_v2_1.0_224_quant.tflite")
	o.Bundled = []BundledPath{{backbone.MobileNetV1, modeltest.BackbonePath(t)}, {backbone.MobileNetV2, v2}}
	o.Recipe = "v2-squash-raw"
	det, _, err := Fit(context.Background(), o, textures(8), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	r, _ := det.Inspect(texture(1001, true))
	want := r.Score
	if det.Info().Recipe != "v2-squash-raw" || det.Info().RecipeChoice != "named" || det.Info().Backbone != v2 {
		t.Fatalf("info %+v", det.Info())
	}
	path := filepath.Join(t.TempDir(), "v2.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	o.Recipe = RecipeAuto // configured: the bundled v1
	ld, err := Load(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if r, _ := ld.Inspect(texture(1001, true)); ld.Info().Backbone != v2 || ld.Info().Recipe != "v2-squash-raw" || math.Abs(r.Score-want) > 1e-5*want {
		t.Fatalf("loaded info %+v, score %v want %v", ld.Info(), r.Score, want)
	}
	// A configuration naming v1 restricts the search to it (Bundled), not
	// the loading: the file runs on the installed v2.
	named := o
	named.Bundled, named.Installed = o.Bundled[:1], o.Bundled
	if ld, err := Load(path, named); err != nil || ld.Info().Backbone != v2 {
		t.Fatalf("configured mobilenet_v1, both installed: %v", err)
	} else {
		ld.Close()
	}
	named.Installed = nil // v2 not installed here
	if _, err := Load(path, named); err == nil || !strings.Contains(err.Error(), "fitted on the bundled backbone mobilenet_v2, which is not installed on this machine") {
		t.Fatalf("v2 not installed: %v", err)
	}
	o.Backbone.Path = filepath.Join(modeltest.GoTFLiteDir(t), "_example", "segment", "deeplabv3_257_mv_gpu.tflite")
	if _, err := Load(path, o); err == nil || !strings.Contains(err.Error(), "refit") ||
		!strings.Contains(err.Error(), "fitted on the bundled backbone mobilenet_v2, but model.backbone is "+o.Backbone.Path+": set model.backbone to mobilenet_v2") {
		t.Fatalf("a backbone of the user's that is not the file's: %v", err)
	}
}

// Letterboxing a part far longer than wide leaves most of the input
// without image: fit says so.
func TestFitWarnsOnLowCoverage(t *testing.T) {
	var log strings.Builder
	o := testOptions(t)
	o.Logger = slog.New(slog.NewTextHandler(&log, nil))
	det, rep, err := Fit(context.Background(), o, wides(6), nil)
	if err != nil {
		t.Fatal(err)
	}
	det.Close()
	if rep.InputCoverage > 0.3 || !strings.Contains(log.String(), "little of the network input carries image") {
		t.Fatalf("coverage %.2f, log:\n%s", rep.InputCoverage, log.String())
	}
}

// With a -fine recipe the context scale raises the score, but the map,
// the mask and so the alarm's regions follow the patch scale: a small
// defect's mask stays near it instead of filling the coarse cells around
// it. The fine threshold is saved with the model.
func TestFineMapFollowsPatchScale(t *testing.T) {
	if testing.Short() {
		t.Skip("two fits with context scales")
	}
	area := func(d *Detector) (int, *Inspection) {
		r, err := d.Inspect(texture(5000, true))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range r.Mask.Pix {
			if v != 0 {
				n++
			}
		}
		return n, r
	}
	fit := func(recipe string) *Detector {
		o := testOptions(t)
		o.Recipe = recipe
		d, _, err := Fit(context.Background(), o, textures(MinZScoreImages), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	sum, fine := fit("custom-fit-z-ctx2"), fit("custom-fit-z-ctx2-fine")
	if !fine.localizesFine() || sum.localizesFine() || fine.Info().Recipe != "custom-fit-z-ctx2-fine" {
		t.Fatalf("fine map: %v / %v, recipe %s", fine.localizesFine(), sum.localizesFine(), fine.Info().Recipe)
	}
	aSum, rSum := area(sum)
	sumScore := rSum.Score
	aFine, rFine := area(fine)
	t.Logf("mask of a 30x25 blob: %d pixels with the summed map, %d following the patch scale", aSum, aFine)
	if !rFine.Anomalous || rFine.Score != sumScore {
		t.Fatalf("fine map changes the verdict: score %v (summed %v), anomalous %v", rFine.Score, sumScore, rFine.Anomalous)
	}
	if aFine == 0 || aFine >= aSum {
		t.Errorf("mask %d pixels following the patch scale, %d with the summed map: want a smaller, non-empty one", aFine, aSum)
	}
	path := filepath.Join(t.TempDir(), "fine.safetensors")
	if err := fine.Save(path); err != nil {
		t.Fatal(err)
	}
	ld, err := Load(path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if a, r := area(ld); a != aFine || r.Score != rFine.Score || ld.fineTh != fine.fineTh || ld.Info().Recipe != "custom-fit-z-ctx2-fine" {
		t.Errorf("loaded: mask %d (want %d), score %v (want %v), fine threshold %v (want %v), recipe %s", a, aFine, r.Score, rFine.Score, ld.fineTh, fine.fineTh, ld.Info().Recipe)
	}
}

// The fixed recipe stays unless a candidate beats it by the margin; one
// whose threshold flags too many held-out good images ranks below all that
// do not, the fixed recipe included.
func TestChoose(t *testing.T) {
	so := SearchOptions{}
	so.defaults()
	c := func(name string, score, fa float64) Candidate {
		return Candidate{Name: name, Figures: RecipeFigures{Score: score, FalseAlarms: fa}}
	}
	cases := []struct {
		cs   []Candidate
		ref  string
		want string
	}{
		{[]Candidate{c("a", 0.90, 0), c("ref", 0.895, 0)}, "ref", "ref"},
		// A lead of 0.025 is inside the draw-to-draw noise (DefaultMargin).
		{[]Candidate{c("a", 0.92, 0), c("ref", 0.895, 0)}, "ref", "ref"},
		{[]Candidate{c("a", 0.93, 0), c("ref", 0.895, 0)}, "ref", "a"},
		{[]Candidate{c("a", 0.92, 0.2), c("ref", 0.895, 0), c("b", 0.90, 0)}, "ref", "ref"},
		{[]Candidate{c("a", 0.92, 0), c("ref", 0.95, 0.3)}, "ref", "a"},
		{[]Candidate{c("a", 0.92, 0), c("b", 0.93, 0)}, "", "b"},
		{[]Candidate{c("a", 0.92, 0.2), c("b", 0.90, 0.15)}, "", "b"},
		{[]Candidate{{Name: "ref", Err: "failed"}, c("a", 0.5, 0)}, "ref", "a"},
	}
	for i, tc := range cases {
		got := choose(tc.cs, tc.ref, so)
		if got < 0 || tc.cs[got].Name != tc.want {
			t.Errorf("case %d: chose %d, want %s", i, got, tc.want)
		}
	}
	if choose([]Candidate{{Name: "x", Err: "failed"}}, "", so) != -1 {
		t.Error("chose a candidate that failed")
	}
}

// Families fitted at once (SearchOptions.Parallel) give every candidate
// exactly the figures and threshold it gets when the families run one
// after the other, in the same order, so the choice cannot depend on the
// machine's cores. (TestMemGate: a budget too small for two families at
// once runs them one at a time.)
func TestSearchInParallelAsAlone(t *testing.T) {
	bd, _ := backbone.BundleByName(backbone.MobileNetV1)
	squash := Recipe{Backbone: backbone.MobileNetV1, Taps: bd.Taps, Resize: backbone.ResizeSquash}
	crop, std := squash, squash
	crop.Resize, std.Standardize = backbone.ResizeCrop, true
	run := func(parallel int) *SearchReport {
		o := searchOptions(t)
		o.Search = SearchOptions{MinImages: 12, FitImages: 8, Holdout: 0.2, MinValidation: 3, MaxValidation: 3, DefectsPerImage: 1, Seed: 1,
			Parallel: parallel, Candidates: []Recipe{squash, crop, std}}
		o.defaults()
		pc := &progressCounter{}
		rep, err := search(context.Background(), o, wides(12), pc, LineNoise{})
		if err != nil {
			t.Fatal(err)
		}
		if pc.done != pc.total {
			t.Errorf("parallel %d: progress %d of %d", parallel, pc.done, pc.total)
		}
		return rep
	}
	alone, at := run(1), run(2)
	if len(at.Candidates) != 3 || len(alone.Candidates) != 3 || at.Chosen.Name != alone.Chosen.Name {
		t.Fatalf("in parallel: %d candidates, chose %s; alone %d, chose %s", len(at.Candidates), at.Chosen.Name, len(alone.Candidates), alone.Chosen.Name)
	}
	for i, a := range alone.Candidates {
		if b := at.Candidates[i]; a.Name != b.Name || a.Err != "" || b.Err != "" || a.Figures != b.Figures || a.Threshold != b.Threshold {
			t.Errorf("candidate %d in parallel: %+v, alone %+v", i, b, a)
		}
	}
}

func TestMemGate(t *testing.T) {
	if newMemGate(0) != nil {
		t.Fatal("no budget: no gate")
	}
	g := newMemGate(200)
	ctx := context.Background()
	r1, err := g.acquire(ctx, 150)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(short, 100); err == nil {
		t.Fatal("150 + 100 bytes passed a 200-byte gate")
	}
	r1()
	r2, err := g.acquire(ctx, 1<<40) // more than the gate: the whole gate
	if err != nil {
		t.Fatal(err)
	}
	r2()
}

// A fit whose chosen recipe tells synthetic defects no better than chance
// is not to be installed: Separates says so with the figures; a fit the
// search did not measure (a fixed recipe, too few images) passes.
func TestFitReportSeparates(t *testing.T) {
	at := func(auroc float64) FitReport {
		return FitReport{Search: &SearchReport{Chosen: Candidate{Name: "v2-tiles4-std-z-ctx1",
			Figures: RecipeFigures{ImageAUROC: auroc, Good: 40, Defects: 80, Misses: 1}}}}
	}
	err := at(0.5).Separates()
	if !errors.Is(err, ErrNoSeparation) {
		t.Fatalf("at chance: %v", err)
	}
	for _, w := range []string{"v2-tiles4-std-z-ctx1", "image AUROC 0.500 on 40 held-out good images and 80 with synthetic defects", "at least 0.60", "100% of the defects"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if err := at(MinSeparation).Separates(); err != nil {
		t.Errorf("at the bound: %v", err)
	}
	fallback := at(0.5)
	fallback.Search.Fallback = "12 normal images"
	for _, r := range []FitReport{{}, fallback} {
		if err := r.Separates(); err != nil {
			t.Errorf("nothing measured: %v", err)
		}
	}
}
