package model

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/padim"
)

func TestEnsembleRecipeNames(t *testing.T) {
	r, err := ParseRecipe("v1-fit-std-z-ctx2+v2-fit-std-z-ctx2+plain", nil)
	if err != nil || len(r.Members) != 3 || r.Members[2].Name() != RecipePlain || r.Name() != "v1-fit-std-z-ctx2+v2-fit-std-z-ctx2+plain" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, c := range []struct{ name, want string }{
		{"v1-squash-rigid-z+plain", "registers frames"},
		{"v1-fit-z-ctx2-fine+plain", "-fine"},
		{"plain+plain+plain+plain+plain", "5 members, want 2 to 4"},
		{"v1-fit-z+plain+plain", "member plain twice"},
		{"v1-fit-z+", "at least three parts"},
		{"v1-fit-z+v1-fit-zz", `unknown part "zz"`},
	} {
		if _, err := ParseRecipe(c.name, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// An ensemble's map is the mean of its members' maps, each in units of its
// member's threshold, and its score that map's maximum; the model file
// holds every member, loads to the same scores, and shows a reader that
// knows no ensembles the first member with its own threshold.
func TestEnsembleFitSaveLoad(t *testing.T) {
	opts := testOptions(t)
	opts.Bundled = []BundledPath{{backbone.MobileNetV1, modeltest.BackbonePath(t)}}
	opts.Recipe = "v1-fit-z+plain"
	det, rep, err := Fit(context.Background(), opts, textures(30), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	info := det.Info()
	if rep.Images != 30 || rep.ThresholdImages != 30 || info.Recipe != "v1-fit-z+plain" || len(info.Members) != 2 ||
		info.Members[0].Recipe != "v1-fit-z" || info.Members[1].Recipe != RecipePlain || info.StateBytes != info.Members[0].StateBytes+info.Members[1].StateBytes {
		t.Fatalf("report %+v, info %+v", rep, info)
	}
	checkHighest(t, rep, info.ImageThreshold, 30)
	good, bad := texture(1000, false), texture(1001, true)
	want := map[image.Image]float64{}
	for _, img := range []image.Image{good, bad} {
		// The members alone, first: their results are their own buffers.
		var mean []float32
		for _, m := range det.members {
			r, err := m.Inspect(img)
			if err != nil {
				t.Fatal(err)
			}
			if mean == nil {
				mean = make([]float32, len(r.Map))
			}
			for i, v := range r.Map {
				mean[i] += v / float32(m.th.Image*2)
			}
		}
		r, err := det.Inspect(img)
		if err != nil {
			t.Fatal(err)
		}
		top := float32(math.Inf(-1))
		for i, v := range r.Map {
			top = max(top, v)
			if math.Abs(float64(v-mean[i])) > 1e-5 {
				t.Fatalf("pixel %d: %v, the members' mean %v", i, v, mean[i])
			}
		}
		if r.Score != float64(top) {
			t.Errorf("score %v, the map's maximum %v", r.Score, top)
		}
		if r.Anomalous != (img == bad) {
			t.Errorf("defective %v: anomalous %v (score %.3f, threshold %.3f)", img == bad, r.Anomalous, r.Score, r.Threshold)
		}
		want[img] = r.Score
	}
	if n := testing.AllocsPerRun(3, func() { det.Inspect(good) }); n != 0 {
		t.Errorf("Inspect allocates %v times per frame", n)
	}
	if runtime.GOMAXPROCS(0) > 1 && det.runs == nil {
		t.Error("the members ran one after another on a machine with more than one core")
	}
	if det.runs == nil { // one core: the side-by-side path all the same
		det.runs = startMemberRuns(det.members)
	}
	// Members side by side draw the map they draw one after another, to
	// the bit (the ensemble adds them up in member order either way), and
	// their overlapping stage times add up to no more than the frame's.
	det.serial = true
	r, err := det.Inspect(bad)
	if err != nil {
		t.Fatal(err)
	}
	serial := slices.Clone(r.Map)
	det.serial = false
	start := time.Now()
	r, err = det.Inspect(bad)
	took := time.Since(start)
	if err != nil || !slices.Equal(r.Map, serial) || r.Score != want[bad] {
		t.Errorf("members side by side: score %v (one after another %v), error %v, maps equal %v", r.Score, want[bad], err, slices.Equal(r.Map, serial))
	}
	if tm := r.Timing; tm.Align+tm.Preprocess+tm.Backbone+tm.PaDiM+tm.Map > took {
		t.Errorf("stage times %+v add up to more than the frame's %v", tm, took)
	}
	// A member's error is the ensemble's, naming the member, also from a
	// member on a goroutine of its own; the goroutines serve the next frame.
	if _, err := det.Inspect(image.NewGray(image.Rect(0, 0, 0, 0))); err == nil || !strings.Contains(err.Error(), "ensemble member v1-fit-z") {
		t.Errorf("an empty frame: %v", err)
	}
	second := det.members[1]
	scales := second.scales
	second.scales = nil // not fitted: its Inspect fails, the first's does not
	if _, err := det.Inspect(bad); err == nil || !strings.Contains(err.Error(), "ensemble member plain") {
		t.Errorf("the second member failing: %v", err)
	}
	second.scales = scales
	if r, err := det.Inspect(bad); err != nil || r.Score != want[bad] {
		t.Errorf("after a member's error: score %v, want %v (%v)", r.Score, want[bad], err)
	}

	path, ld := saveLoad(t, det, opts)
	for img, w := range want {
		r, err := ld.Inspect(img)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r.Score-w) > 1e-5*math.Abs(w) {
			t.Errorf("loaded ensemble scores %.6f, fitted one %.6f", r.Score, w)
		}
	}
	li := ld.Info()
	if li.ID != info.ID || li.ImageThreshold != info.ImageThreshold || li.Recipe != info.Recipe || len(li.Members) != 2 || li.ThresholdImages != 30 {
		t.Errorf("info after load %+v, fitted %+v", li, info)
	}
	if info.LineNoise == nil || *info.LineNoise != rep.Noise || li.LineNoise == nil || *li.LineNoise != rep.Noise {
		t.Errorf("line noise: fitted %v, loaded %v, the report's %+v", info.LineNoise, li.LineNoise, rep.Noise)
	}
	pm, err := padim.Load(path, padim.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Members) != 1 || pm.Meta.ImageThreshold != det.members[0].th.Image {
		t.Errorf("file: %d members, main threshold %g, want the first member's %g", len(pm.Members), pm.Meta.ImageThreshold, det.members[0].th.Image)
	}
	// The ensemble's line noise is refused as a single model's is, naming
	// the file, the key it sits in, its own key and the figure.
	var em map[string]json.RawMessage
	if err := json.Unmarshal([]byte(pm.Meta.Extra[metaEnsemble]), &em); err != nil {
		t.Fatal(err)
	}
	for _, c := range badLineNoise {
		v := json.RawMessage(c.value)
		if !json.Valid(v) { // what is not JSON in a metadata value is a JSON string here
			v, _ = json.Marshal(c.value)
		}
		em[metaLineNoise] = v
		js, err := json.Marshal(em)
		if err != nil {
			t.Fatal(err)
		}
		pm.Meta.Extra[metaEnsemble] = string(js)
		f := filepath.Join(t.TempDir(), "bad.safetensors")
		if err := padim.Save(f, pm); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(f, opts); err == nil || !strings.Contains(err.Error(), metaEnsemble+": "+metaLineNoise+": ") ||
			!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), f) {
			t.Errorf("an ensemble's line_noise %s (%s): %v, want refused naming the file, %s: %s: and %q", c.name, v, err, metaEnsemble, metaLineNoise, c.want)
		}
	}
	// Left out or null: not measured.
	for _, v := range []string{"", "null"} {
		delete(em, metaLineNoise)
		if v != "" {
			em[metaLineNoise] = json.RawMessage(v)
		}
		js, err := json.Marshal(em)
		if err != nil {
			t.Fatal(err)
		}
		pm.Meta.Extra[metaEnsemble] = string(js)
		f := filepath.Join(t.TempDir(), "unmeasured.safetensors")
		if err := padim.Save(f, pm); err != nil {
			t.Fatal(err)
		}
		ld, err := Load(f, opts)
		if err != nil {
			t.Fatalf("an ensemble's line_noise %q: %v", v, err)
		}
		if ln := ld.Info().LineNoise; ln != nil {
			t.Errorf("an ensemble's line_noise %q loads as %+v, want none", v, ln)
		}
		ld.Close()
	}
	pm.Close()

	// An operator's threshold is the ensemble's; the members keep theirs.
	if err := ld.SetThresholds(2*li.ImageThreshold, li.ImageThreshold); err != nil {
		t.Fatal(err)
	}
	_, again := saveLoad(t, ld, opts)
	if ai := again.Info(); ai.ImageThreshold != 2*li.ImageThreshold || again.members[0].th.Image != det.members[0].th.Image {
		t.Errorf("after set-threshold: %g (want %g), first member %g (want %g)", ai.ImageThreshold, 2*li.ImageThreshold, again.members[0].th.Image, det.members[0].th.Image)
	}

	// The members' states together count against the memory budget.
	small := opts
	small.MemoryBudget = info.StateBytes - 1
	if _, err := Load(path, small); !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "memory budget") {
		t.Errorf("ensemble over the budget loaded: %v", err)
	}
	// Each member's, and the members' together, refused from the header
	// as Load refuses them.
	m1, m2 := li.Members[0].StateBytes, li.Members[1].StateBytes
	budgetAsLoad(t, path, opts, min(m1, m2)-1, max(m1, m2)-1, max(m1, m2), info.StateBytes-1, info.StateBytes)
}

// The search's ensemble is the chosen recipe, the same on the other bundled
// backbone and plain PaDiM, and only where each member can run on its own.
func TestEnsembleOf(t *testing.T) {
	both := Options{Bundled: []BundledPath{{backbone.MobileNetV1, "v1.tflite"}, {backbone.MobileNetV2, "v2.tflite"}}}
	onlyV1 := Options{Bundled: both.Bundled[:1]}
	for _, c := range []struct {
		opts   Options
		chosen string
		want   string
	}{
		{both, "v1-fit-std-z-ctx2", "v1-fit-std-z-ctx2+v2-fit-std-z-ctx2+plain"},
		{both, "v2-squash-z", "v2-squash-z+v1-squash-z+plain"},
		{both, "plain", ""},
		{both, "v1-squash-rigid-z", ""},
		{both, "v1-tiles3-std-z-ctx2", ""},
		{both, "v1p-fit-z", ""}, // plain's taps: no counterpart on the other backbone
		{onlyV1, "v1-fit-std-z-ctx2", ""},
	} {
		r, err := ParseRecipe(c.chosen, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := c.opts.ensembleOf(r)
		if got := e.Name(); ok != (c.want != "") || (ok && got != c.want) {
			t.Errorf("%s: %q (%v), want %q", c.chosen, got, ok, c.want)
		}
	}
}

// The search fits the chosen recipe's ensemble, scores it on the held-out
// images with synthetic defects like any candidate, and keeps it when it
// scores at least as high as the single recipe: within the margin above
// it too (the ensemble carries plain PaDiM's fine evidence, which the
// synthetic score does not value), not when the single one scores higher.
func TestTryEnsemble(t *testing.T) {
	if testing.Short() {
		t.Skip("fits a three-member ensemble")
	}
	opts := searchOptions(t)
	opts.Bundled = append(opts.Bundled, BundledPath{backbone.MobileNetV2, filepath.Join(modeltest.ShareDir(t), "mobilenet_v2_1.0_224_quant.tflite")})
	opts.defaults()
	single, err := ParseRecipe("v1-fit-z", nil)
	if err != nil {
		t.Fatal(err)
	}
	src := textures(30)
	fit, hold := firstIndices(22), []int{22, 23, 24, 25, 26, 27, 28, 29}
	v := &validation{hold: hold, perImage: 2, seed: 1}
	try := func(singleScore float64) (Candidate, bool) {
		t.Helper()
		rep := &SearchReport{Candidates: []Candidate{{Recipe: single, Name: single.Name(), Figures: RecipeFigures{Score: singleScore}}}}
		loo := firstIndices(12)
		steps := 3*(len(fit)+len(loo)) + len(hold)*3 // what search reserves for it
		pc := &progressCounter{total: steps}
		best, err := opts.tryEnsemble(context.Background(), rep, 0, src, fit, loo, v, pc, steps)
		if err != nil {
			t.Fatal(err)
		}
		if pc.done != steps {
			t.Errorf("progress: %d steps done of the %d reserved", pc.done, steps)
		}
		if len(rep.Candidates) != 2 {
			t.Fatalf("%d candidates, want the single one and its ensemble", len(rep.Candidates))
		}
		e := rep.Candidates[1]
		if e.Err != "" || e.Name != "v1-fit-z+v2-fit-z+plain" || !(e.Figures.Score > 0.3) || e.Figures.Good != 8 || e.Figures.Defects != 16 || !(e.Threshold > 0) || e.Figures.FalseAlarms > opts.Search.FalseAlarms {
			t.Fatalf("ensemble candidate %+v", e)
		}
		return e, best == 1
	}
	// One fit (three members on 30 images is most of the model package's
	// time); the rule that keeps or drops the ensemble is checked on its
	// figures below.
	e, kept := try(0)
	if !kept {
		t.Errorf("single recipe scoring 0 against the ensemble's %.4f: the single one kept", e.Figures.Score)
	}
	so := opts.Search
	for _, c := range []struct {
		name   string
		single float64
		err    string
		fa     float64
		wins   bool
	}{
		{"scoring a little higher than the single one", e.Figures.Score - so.Margin/2, "", e.Figures.FalseAlarms, true},
		{"tied", e.Figures.Score, "", e.Figures.FalseAlarms, true},
		{"scoring lower", e.Figures.Score + 1e-6, "", e.Figures.FalseAlarms, false},
		{"with more false alarms than the search allows", 0, "", so.FalseAlarms + 0.01, false},
		{"not fitted", 0, "fit failed", 0, false},
	} {
		en := e
		en.Err, en.Figures.FalseAlarms = c.err, c.fa
		single := Candidate{Name: single.Name(), Figures: RecipeFigures{Score: c.single}}
		if got := ensembleWins(en, single, so); got != c.wins {
			t.Errorf("ensemble %s (%.6f against %.6f, false alarms %.3f, err %q): wins %v, want %v", c.name, en.Figures.Score, c.single, c.fa, c.err, got, c.wins)
		}
	}
}

// checkHighest: a fit's report names its highest leave-one-out scores,
// highest first, each of a distinct training image, none below the
// median, and the threshold is above the median (it is a high quantile
// of the same scores × a margin).
func checkHighest(t *testing.T, rep FitReport, threshold float64, n int) {
	t.Helper()
	if len(rep.Highest) != min(HighestImages, n) || !(rep.MedianScore > 0) || !(threshold > rep.MedianScore) {
		t.Fatalf("highest %+v, median %g, threshold %g: want %d images and 0 < median < threshold", rep.Highest, rep.MedianScore, threshold, min(HighestImages, n))
	}
	seen := map[int]bool{}
	for i, h := range rep.Highest {
		if seen[h.Index] || h.Index < 0 || h.Index >= n || h.Score < rep.MedianScore || i > 0 && h.Score > rep.Highest[i-1].Score {
			t.Errorf("highest %+v (median %g): want distinct images of 0..%d, highest first, none under the median", rep.Highest, rep.MedianScore, n-1)
		}
		seen[h.Index] = true
	}
}

// An ensemble file whose second member's line_noise (the key
// member1.line_noise) claims more images than a fit measures was refused
// as "ensemble member 2: …: metadata line_noise: images 12", a key the
// file does not have under that name; the refusal names the member's
// keys now.
func TestEnsembleMemberRefusalNamesItsKeys(t *testing.T) {
	opts := testOptions(t)
	opts.Bundled = []BundledPath{{backbone.MobileNetV1, modeltest.BackbonePath(t)}}
	opts.Recipe = "v1-fit-z+plain"
	det, _, err := Fit(context.Background(), opts, textures(24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	path := filepath.Join(t.TempDir(), "e.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	pm, err := padim.Load(path, padim.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if len(pm.Members) != 1 {
		t.Fatalf("%d members under the main model, want 1", len(pm.Members))
	}
	pm.Members[0].Meta.Extra[metaLineNoise] = `{"images":12,"noise":1,"contrast":50}`
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := padim.Save(bad, pm); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, opts)
	if err == nil || !strings.Contains(err.Error(), padim.MemberPrefix(1)) || !strings.Contains(err.Error(), "images 12") {
		t.Fatalf("load: %v; want it refused naming the keys %s… and images 12", err, padim.MemberPrefix(1))
	}
}
