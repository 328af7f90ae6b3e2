package cli

import (
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/metrics"
)

// eval takes several data sets and a second recipe, and prints and writes
// one table: every set with both recipes' figures, and their means.
func TestEvalSetsAndCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("four fits on exported synthetic sets")
	}
	dir := t.TempDir()
	var sets []string
	for i, name := range []string{"a", "b"} {
		out := filepath.Join(dir, name)
		exportSet(t, out, 24, 10, 3+i)
		sets = append(sets, out)
	}
	cfg := evalConfig(t, dir)
	js := filepath.Join(dir, "eval.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", sets[0], "--data", sets[1], "--recipe", "fixed",
		"--compare", "plain", "--features", "16", "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"image AUROC", "pixel AUROC", "PRO", "region IoU", "F1-max", "false alarms", "misses", "ms/image",
		"v1-fit-std-z-ctx2", "plain", "mean"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	rep := readEvalReport(t, js)
	if len(rep.Sets) != 2 || len(rep.Mean) != 2 || rep.Mean[1].Recipe != "plain" {
		t.Fatalf("report %+v", rep)
	}
	for _, s := range rep.Sets {
		if len(s.Results) != 2 || s.Results[0].Recipe != "v1-fit-std-z-ctx2" || s.Results[1].Recipe != "plain" {
			t.Fatalf("set %s: results %+v", s.Data, s.Results)
		}
		for _, r := range s.Results {
			if r.TestImages != 10 || r.TrainImages != 24 || r.ThresholdImages != 24 || !(r.ImageAUROC > 0) || !(r.PRO > 0) ||
				r.FalseAlarmRate < 0 || r.FalseAlarmRate > 1 || r.MissRate < 0 || r.MissRate > 1 || r.RegionIoU < 0 || r.RegionIoU > 1 ||
				r.F1MaxAt.Threshold == 0 || len(r.AtFalseAlarms) != len(operatingFalseAlarms()) || r.AtFalseAlarms[0].FalseAlarmRate > 0.01 || r.AtFalseAlarms[1].FalseAlarmRate > 0.05 {
				t.Errorf("set %s, recipe %s: %+v", s.Data, r.Recipe, r)
			}
			// Over every defective image a miss counts 0: the flagged
			// images' sum spread over all of them.
			if r.RegionIoUImages > r.RegionIoUDefects || math.Abs(r.RegionIoU*float64(r.RegionIoUDefects)-r.RegionIoUFlagged*float64(r.RegionIoUImages)) > 1e-9 ||
				r.RegionIoUSharedImages > r.RegionIoUImages {
				t.Errorf("set %s, recipe %s: region IoU %g over %d defects, %g over %d flagged, %g over %d shared", s.Data, r.Recipe,
					r.RegionIoU, r.RegionIoUDefects, r.RegionIoUFlagged, r.RegionIoUImages, r.RegionIoUShared, r.RegionIoUSharedImages)
			}
		}
		if a, b := s.Results[0].RegionIoUSharedImages, s.Results[1].RegionIoUSharedImages; a != b {
			t.Errorf("set %s: shared images %d and %d, want the same", s.Data, a, b)
		}
	}
	if code, _, stderr := runCaptureCmd(t, "eval", "--recipe", "fixed"); code != 2 || !strings.Contains(stderr, "--data is required") {
		t.Errorf("without --data: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCaptureCmd(t, "eval", "--data", sets[0], "--compare", "v9-fit-raw", "--config", cfg); code != 2 || !strings.Contains(stderr, `unknown backbone "v9"`) {
		t.Errorf("unknown compare recipe: exit %d, %s", code, stderr)
	}
	// Overrides out of range are refused, not replaced by the defaults; the
	// places results go are checked before any fit (a new user's trial: a
	// --report path that was a file failed after the whole run).
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--features", "0"}, "model.features"},
		{[]string{"--features", "-7"}, "model.features"},
		{[]string{"--context", "-5"}, "model.context_pool"},
		{[]string{"--context-weight", "-3"}, "model.context_weight"},
		{[]string{"--context-features", "-1"}, "model.context_features"},
		{[]string{"--sigma", "-2"}, "model.blur_sigma"},
		{[]string{"--report", notDir}, "--report folder"},
		{[]string{"--report", filepath.Join(notDir, "rep")}, "--report folder " + filepath.Join(notDir, "rep") + " cannot be created: " + notDir + " is a file, not a folder"},
		{[]string{"--json", filepath.Join(notDir, "x.json")}, "--json file"},
		{[]string{"--save-model", filepath.Join(notDir, "m.safetensors")}, "--save-model file"},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--data", sets[0], "--config", cfg}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "fit done") {
			t.Errorf("%v: exit %d, %s; want a refusal naming %s before any fit", c.args, code, stderr, c.want)
		}
	}
}

// The F1-max operating point is a threshold under the daemon's rule
// (flagged when score > threshold) that flags exactly what F1-max counts
// as flagged (score ≥ its threshold), with its false alarms and misses.
func TestF1Point(t *testing.T) {
	for _, c := range []struct {
		scores        []float64
		labels        []bool
		want, fa, mis float64
	}{
		// F1-max at 3: flags 3 to 6 (one good among them), passes 1 and 2.
		{[]float64{1, 2, 3, 4, 5, 6}, []bool{false, false, true, false, true, true}, 2.5, 1.0 / 3, 0},
		// Ties at the threshold are flagged; the point lies below them.
		{[]float64{2, 2, 3, 3, 1}, []bool{true, true, true, true, false}, 1.5, 0, 0},
		// Everything flagged: just under the lowest score.
		{[]float64{-2, 2, 3}, []bool{true, false, true}, -2.0002, 1, 0},
	} {
		f1, at, err := metrics.F1Max(c.scores, c.labels)
		if err != nil {
			t.Fatal(err)
		}
		p := f1Point(c.scores, c.labels, at)
		if p.Threshold != c.want || math.Abs(p.FalseAlarmRate-c.fa) > 1e-12 || math.Abs(p.MissRate-c.mis) > 1e-12 {
			t.Errorf("scores %v (F1-max %.3f at %g): %+v; want threshold %g, false alarms %g, misses %g", c.scores, f1, at, p, c.want, c.fa, c.mis)
		}
		for _, s := range c.scores {
			if (s > p.Threshold) != (s >= at) {
				t.Errorf("scores %v: %g flagged %v at %g, F1-max flags it %v", c.scores, s, s > p.Threshold, p.Threshold, s >= at)
			}
		}
	}
}

// The operating point at a false-alarm rate is the lowest threshold that
// flags no more good images than the rate allows, placed between scores:
// a trial user copied 14.24 for a point on a good image's 14.2411 and got
// twice the false alarms eval had printed.
func TestFalseAlarmPoint(t *testing.T) {
	// 20 good images scored 1..20, defects at 5, 15, 19.5, 25.
	var scores []float64
	var labels []bool
	for i := 1; i <= 20; i++ {
		scores, labels = append(scores, float64(i)), append(labels, false)
	}
	scores, labels = append(scores, 5, 15, 19.5, 25), append(labels, true, true, true, true)
	for _, c := range []struct {
		maxFA, want, fa, mis float64
	}{
		{0.01, 22, 0, 0.75},     // none of 20 may be flagged: above the highest, below the defect at 25
		{0.05, 19.2, 0.05, 0.5}, // one may: between the second highest and the defect at 19.5
		{0.10, 18.5, 0.10, 0.5},
		{1, 1.5, 0.95, 0}, // all but the lowest
	} {
		p := faPoint(scores, labels, c.maxFA)
		if p.Threshold != c.want || math.Abs(p.FalseAlarmRate-c.fa) > 1e-12 || math.Abs(p.MissRate-c.mis) > 1e-12 || p.MaxFalseAlarmRate != c.maxFA {
			t.Errorf("at ≤ %g false alarms: %+v, want threshold %g, false alarms %g, misses %g", c.maxFA, p, c.want, c.fa, c.mis)
		}
	}
	// As printed, the threshold flags what it says: with no score above
	// the highest good one, and with a defect two float32 steps above a
	// good image (a reviewer's case: "14.2411" printed for a threshold
	// between 14.2411013 and 14.2411032 flagged the good image).
	printed := func(p OperatingPoint) float64 {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(strings.TrimPrefix(pointText(p, nil), " at image threshold "))[0], ":"), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	g := 14.241052627563477
	if p := faPoint([]float64{g, 3, 2}, []bool{false, true, false}, 0.01); !(printed(p) > g) || p.FalseAlarmRate != 0 {
		t.Errorf("highest good score %v: %+v, printed %v; want above it", g, p, printed(p))
	}
	g, d := float64(float32(14.2411013)), float64(math.Nextafter32(math.Nextafter32(float32(14.2411013), 20), 20))
	for _, p := range []OperatingPoint{faPoint([]float64{g, d, 2}, []bool{false, true, false}, 0.01), f1Point([]float64{g, d, 2}, []bool{false, true, false}, d)} {
		if v := printed(p); !(v > g && v < d) {
			t.Errorf("good %v, defect %v: threshold %v printed %v, want between them", g, d, p.Threshold, v)
		}
	}
}

// A set whose test images are all good (or all defective) is refused
// before any fit, naming it (it failed after the fit, in image AUROC).
func TestEvalRefusesOneKindOfTestImages(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "s")
	exportSet(t, set, 12, 6, 3)
	entries, _ := os.ReadDir(filepath.Join(set, "test"))
	for _, e := range entries {
		if e.Name() != "good" {
			os.RemoveAll(filepath.Join(set, "test", e.Name()))
		}
	}
	cfg := evalConfig(t, dir)
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain")
	if code == 0 || !strings.Contains(stderr, "is good: eval needs defective ones too") || strings.Contains(stderr, "fit done") {
		t.Errorf("all-good test set: exit %d, stderr:\n%s\nwant a refusal before any fit", code, stderr)
	}
}

// eval --misalign runs the Rd-MVTec protocol: each draw's figures, their
// mean as the set's, composing with --compare; the draws differ from each
// other and repeat from their seed.
func TestEvalMisalign(t *testing.T) {
	if testing.Short() {
		t.Skip("six fits on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "a")
	exportSet(t, set, 20, 8, 5)
	cfg := evalConfig(t, dir)
	run := func(seeds string) EvalReport {
		js := filepath.Join(dir, "eval"+seeds+".json")
		code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--compare", "v1p-squash-rigid-raw",
			"--features", "16", "--misalign", "--misalign-seeds", seeds, "--json", js)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "a@misalign1") || !strings.Contains(stdout, "@misalign mean of "+seeds) {
			t.Errorf("output lacks the draws and their mean:\n%s", stdout)
		}
		// The summary's refused column: "-" for the unregistered recipe.
		for _, l := range strings.Split(stdout, "\n") {
			if f := strings.Fields(l); len(f) > 11 && f[1] == "plain" && f[11] != "-" {
				t.Errorf("plain PaDiM's refused column %q, want -: %q", f[11], l)
			}
		}
		return readEvalReport(t, js)
	}
	rep := run("2")
	if len(rep.Sets) != 1 || len(rep.Sets[0].Draws) != 2 || len(rep.Sets[0].Results) != 2 {
		t.Fatalf("report %+v", rep)
	}
	s := rep.Sets[0]
	d1, d2 := s.Draws[0].Results, s.Draws[1].Results
	for k := range 2 {
		if want := (d1[k].PixelAUROC + d2[k].PixelAUROC) / 2; math.Abs(s.Results[k].PixelAUROC-want) > 1e-12 {
			t.Errorf("recipe %s: mean pixel AUROC %v, draws %v and %v", s.Results[k].Recipe, s.Results[k].PixelAUROC, d1[k].PixelAUROC, d2[k].PixelAUROC)
		}
	}
	if d1[1].Recipe != "v1p-squash-rigid-raw" || d1[1].Align != "rigid" || d1[0].Align != "off" {
		t.Errorf("columns %+v", d1)
	}
	if !strings.HasSuffix(d1[0].Data, "@misalign1") || !strings.HasSuffix(d2[1].Data, "@misalign2") {
		t.Errorf("draws' figures labelled %q and %q, want the draw named", d1[0].Data, d2[1].Data)
	}
	if d1[0].PixelAUROC == d2[0].PixelAUROC && d1[0].ImageAUROC == d2[0].ImageAUROC {
		t.Errorf("draws 1 and 2 gave the same figures: %+v", d1[0])
	}
	// The mean keeps the registration's refusals (per draw) and what
	// every draw's model has in common; no threshold of its own.
	m := s.Results[1]
	if m.Align != "rigid" || m.RegistrationRefused != d1[1].RegistrationRefused+d2[1].RegistrationRefused ||
		m.RegistrationRefusedPerDraw != float64(m.RegistrationRefused)/2 || m.Features != d1[1].Features || m.Threshold != 0 {
		t.Errorf("mean of the registered column %+v, draws %+v and %+v", m, d1[1], d2[1])
	}
	again := run("1")
	if r := again.Sets[0].Draws[0].Results[0]; r.PixelAUROC != d1[0].PixelAUROC || r.ImageAUROC != d1[0].ImageAUROC {
		t.Errorf("seed 1 again: %v / %v, first %v / %v", r.ImageAUROC, r.PixelAUROC, d1[0].ImageAUROC, d1[0].PixelAUROC)
	}
	if got := again.Sets[0].Draws[0].Results[0].Data; !strings.HasSuffix(got, "@misalign1") {
		t.Errorf("the one draw's figures labelled %q: the mean's label must not overwrite them", got)
	}
	if got := again.Sets[0].Results[0].Data; !strings.HasSuffix(got, "@misalign (mean of 1 draw)") {
		t.Errorf("the mean of one draw labelled %q, want it to end in \"@misalign (mean of 1 draw)\"", got)
	}
	// A part alone says so in its labels (the fill too); the centred crop
	// is one draw whatever the default seeds. Neither is draw 1 of the
	// protocol.
	// A folder with an @ in its name keeps its name whole in the labels.
	at := filepath.Join(dir, "line@2")
	if err := os.Symlink(set, at); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		label string
		data  string
	}{
		{[]string{"--misalign-parts", "crop"}, "crop", set},
		{[]string{"--misalign-parts", "turn", "--misalign-fill", "edge", "--misalign-seeds", "1"}, "turn-edgefill", at},
	} {
		js := filepath.Join(dir, c.label+".json")
		code, stdout, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg, "--data", c.data, "--recipe", "plain", "--features", "16",
			"--misalign", "--json", js}, c.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, stderr)
		}
		got := readEvalReport(t, js).Sets[0]
		if got.Misalign != c.label || !strings.Contains(stdout, filepath.Base(c.data)+"@"+c.label+" mean of 1") {
			t.Errorf("%v: the set's transform %q, want %q; the mean row of %s:\n%s", c.args, got.Misalign, c.label, c.data, stdout)
		}
		if len(got.Draws) != 1 || !strings.HasSuffix(got.Draws[0].Data, "@"+c.label+"1") ||
			!strings.HasSuffix(got.Results[0].Data, "@"+c.label+" (mean of 1 draw)") || !strings.Contains(stdout, "@"+c.label+" mean of 1") {
			t.Errorf("%v: %d draws labelled %q, mean %q, output:\n%s", c.args, len(got.Draws), got.Draws[0].Data, got.Results[0].Data, stdout)
		}
		if r := got.Results[0]; r.ImageAUROC == d1[0].ImageAUROC && r.PixelAUROC == d1[0].PixelAUROC {
			t.Errorf("%v gave draw 1's figures %v / %v", c.args, r.ImageAUROC, r.PixelAUROC)
		}
	}
}

// The shared region IoU compares recipes on the defects all of them flag,
// each with its own overlap there.
func TestSharedIoU(t *testing.T) {
	a := &EvalResult{flaggedIoU: map[string]float64{"x": 0.8, "y": 0.4, "z": 0.1}}
	b := &EvalResult{flaggedIoU: map[string]float64{"y": 0.6, "z": 0.3}}
	c := &EvalResult{flaggedIoU: map[string]float64{"y": 0.2, "z": 0.0, "w": 1}}
	sharedIoU([]*EvalResult{a, b, c})
	for _, x := range []struct {
		r    *EvalResult
		want float64
	}{{a, 0.25}, {b, 0.45}, {c, 0.1}} {
		if x.r.RegionIoUSharedImages != 2 || math.Abs(x.r.RegionIoUShared-x.want) > 1e-12 {
			t.Errorf("shared %g over %d, want %g over 2", x.r.RegionIoUShared, x.r.RegionIoUSharedImages, x.want)
		}
	}
	none := &EvalResult{}
	sharedIoU([]*EvalResult{a, none})
	if a.RegionIoUSharedImages != 0 || a.RegionIoUShared != 0 {
		t.Errorf("nothing shared: %g over %d", a.RegionIoUShared, a.RegionIoUSharedImages)
	}
}

// A defective test image without its mask is left out of the pixel
// figures (counted, warned about), never scored as all-normal pixels; a
// mask of another shape than its image is refused naming both sizes and
// its image skipped; bad counts are usage errors.
func TestEvalMasksAndCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("fits on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 12, 12, 7)
	masks, _ := filepath.Glob(filepath.Join(set, "ground_truth", "*", "*_mask.png"))
	if len(masks) < 3 {
		t.Fatalf("%d masks exported, want at least 3", len(masks))
	}
	if err := os.Remove(masks[0]); err != nil {
		t.Fatal(err)
	}
	if err := writePNG(masks[1], image.NewGray(image.Rect(0, 0, 10, 7))); err != nil {
		t.Fatal(err)
	}
	cfg := evalConfig(t, dir)
	js := filepath.Join(dir, "eval.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--features", "16", "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "is 10x7, its image 96x72") || !strings.Contains(stderr, "without a ground-truth mask") ||
		!strings.Contains(stdout, "masks missing") || !strings.Contains(stdout, "1 with a mask of another shape") {
		t.Errorf("the missing and the misshapen mask are not reported:\nstdout %s\nstderr %s", stdout, stderr)
	}
	rep := readEvalReport(t, js)
	r := rep.Sets[0].Results[0]
	if r.MasksMissing != 1 || r.SkippedFiles != 1 || r.RegionIoUDefects != len(masks)-2 {
		t.Errorf("masks missing %d (want 1), skipped %d (want 1), defects with a mask %d (want %d)", r.MasksMissing, r.SkippedFiles, r.RegionIoUDefects, len(masks)-2)
	}
	for _, args := range [][]string{
		{"--max-train", "-5"}, {"--max-test", "-1"}, {"--misalign-seeds", "2"}, {"--align", ""},
		{"--align", "rigid", "--model", js}, {"--recipe", "plain", "--model", js}, {"--max-train", "5", "--model", js}, {"--sigma", "2", "--model", js},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg, "--data", set}, args...)...)
		if code != 2 || !strings.Contains(stderr, args[0]) {
			t.Errorf("eval %v: exit %d, %s", args, code, stderr)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--misalign-parts", "crop"}, "--misalign-parts applies to --misalign draws"},
		{[]string{"--misalign-fill", "edge"}, "--misalign-fill applies to --misalign draws"},
		{[]string{"--misalign", "--misalign-parts", "zoom"}, "want all, crop, shift or turn"},
		{[]string{"--misalign", "--misalign-fill", "grey"}, `--misalign-fill "grey": want black or edge`},
		{[]string{"--misalign", "--misalign-parts", "crop", "--misalign-seeds", "3"}, "the centred window is the same in every draw"},
		{[]string{"--misalign", "--misalign-parts", "shift", "--misalign-fill", "edge"}, "there is no turn, so no corners to fill"},
		{[]string{"--misalign", "--misalign-parts", ""}, "--misalign-parts is empty"},
		{[]string{"--misalign", "--misalign-seeds", "99999999999"}, "want 1 to 100"},
		{[]string{"--misalign", "--misalign-seeds", "2", "--save-model", filepath.Join(dir, "m.safetensors")}, "each of the 2 --misalign draws fits one"},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg, "--data", set}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("eval %v: exit %d, %s\nwant exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// A set whose test masks mark no defect pixel (no ground_truth/ folder, or
// only empty masks) gets its image figures and n/a for the pixel ones; the
// other sets' results are kept and the mean's pixel figures are over the
// sets that have them (a trial: the run ended after its fits, with no
// table and no JSON).
func TestEvalSetWithoutMasks(t *testing.T) {
	if testing.Short() {
		t.Skip("fits on exported synthetic sets")
	}
	dir := t.TempDir()
	full, none, blank := filepath.Join(dir, "full"), filepath.Join(dir, "none"), filepath.Join(dir, "blank")
	for _, set := range []string{full, none, blank} {
		exportSet(t, set, 12, 8, 7)
	}
	if err := os.RemoveAll(filepath.Join(none, "ground_truth")); err != nil {
		t.Fatal(err)
	}
	masks, _ := filepath.Glob(filepath.Join(blank, "ground_truth", "*", "*_mask.png"))
	if len(masks) == 0 {
		t.Fatal("no masks exported")
	}
	for _, m := range masks {
		if err := writePNG(m, image.NewGray(image.Rect(0, 0, 96, 72))); err != nil {
			t.Fatal(err)
		}
	}
	cfg := evalConfig(t, dir)
	js := filepath.Join(dir, "eval.json")
	// With --report too (a second trial: the report's pixel curve ended
	// the run): the image curve alone.
	report := filepath.Join(dir, "report")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", full, "--data", none, "--data", blank, "--recipe", "plain", "--features", "16",
		"--json", js, "--report", report)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, set := range []string{"full", "none", "blank"} {
		if _, err := os.Stat(filepath.Join(report, set, "plain", "roc.png")); err != nil {
			t.Errorf("report of %s: %v", set, err)
		}
	}
	rep := readEvalReport(t, js)
	if len(rep.Sets) != 3 || len(rep.Mean) != 1 {
		t.Fatalf("%d sets, %d means", len(rep.Sets), len(rep.Mean))
	}
	f, n, b, m := rep.Sets[0].Results[0], rep.Sets[1].Results[0], rep.Sets[2].Results[0], rep.Mean[0]
	if f.NoPixelFigures != "" || f.PixelAUROC <= 0.5 {
		t.Errorf("full set: %q, pixel AUROC %v", f.NoPixelFigures, f.PixelAUROC)
	}
	if !strings.Contains(n.NoPixelFigures, "none of the") || !strings.Contains(b.NoPixelFigures, "no ground-truth mask marks a defect pixel") ||
		n.ImageAUROC <= 0.5 || b.ImageAUROC <= 0.5 {
		t.Errorf("sets without defect pixels: %q (image AUROC %v), %q (%v)", n.NoPixelFigures, n.ImageAUROC, b.NoPixelFigures, b.ImageAUROC)
	}
	if m.PixelSets != 1 || m.PixelAUROC != f.PixelAUROC || m.PRO != f.PRO || m.NoPixelFigures != "" {
		t.Errorf("mean: pixel figures over %d sets, %v (want %v), %v (want %v), %q", m.PixelSets, m.PixelAUROC, f.PixelAUROC, m.PRO, f.PRO, m.NoPixelFigures)
	}
	// In the JSON the figures not computed are null beside
	// no_pixel_figures, not 0 (read as measured); measured ones are numbers.
	raw, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sets []struct {
			Results []map[string]any `json:"results"`
		} `json:"sets"`
		Mean []map[string]any `json:"mean"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	pixelKeys := []string{"pixel_auroc", "pro", "region_iou", "region_iou_flagged", "region_iou_shared"}
	for i, set := range []string{"full", "none", "blank"} {
		r := doc.Sets[i].Results[0]
		if _, ok := r["image_auroc"].(float64); !ok {
			t.Errorf("%s: image_auroc %v, want a number", set, r["image_auroc"])
		}
		for _, k := range pixelKeys {
			v, present := r[k]
			switch {
			case !present:
				t.Errorf("%s: no %s key (null when not computed, keeping the field's name)", set, k)
			case set == "full" && (k == "pixel_auroc" || k == "pro" || k == "region_iou") && v == nil:
				t.Errorf("full set: %s null, want its figure", k)
			case set != "full" && v != nil:
				t.Errorf("%s (no_pixel_figures %q): %s %v, want null", set, r["no_pixel_figures"], k, v)
			}
		}
	}
	if v := doc.Mean[0]["pixel_auroc"]; v == nil {
		t.Errorf("mean: pixel_auroc null, want the full set's")
	}
	// One recipe on every set: the mean carries its settings (they came
	// out as 0: no blur, no context scale).
	for _, k := range []string{"sigma", "context_pool", "features", "resize"} {
		if v, want := doc.Mean[0][k], doc.Sets[0].Results[0][k]; v != want || v == nil {
			t.Errorf("mean: %s %v, want the sets' %v", k, v, want)
		}
	}
	rows := 0
	for _, l := range strings.Split(stdout, "\n") {
		if fl := strings.Fields(l); len(fl) > 4 && (fl[0] == "none" || fl[0] == "blank") {
			rows++
			if fl[3] != "n/a" || fl[4] != "n/a" || fl[5] != "n/a" {
				t.Errorf("row %q: want n/a for pixel AUROC, PRO and region IoU", l)
			}
		}
	}
	if rows != 2 || !strings.Contains(stdout, "pixel AUROC          n/a: none of the") {
		t.Errorf("%d rows of sets without masks in the table:\n%s", rows, stdout)
	}
}

// Flags that a named recipe spells out itself are refused, before any fit,
// naming each (a trial: --recipe plain --resize fit measured plain squashed
// while the user read plain letterboxed); those it takes are not.
func TestEvalNamedRecipeRefusesWhatItNames(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	for _, tc := range []struct {
		args []string
		want string // "" : no refusal of this kind
	}{
		{[]string{"--recipe", "plain", "--resize", "fit"}, "--resize: recipe plain names this itself"},
		{[]string{"--recipe", "plain", "--zscore", "on", "--context", "6"}, "--zscore, --context: recipe plain"},
		{[]string{"--recipe", "v1-fit-std-z-ctx2", "--context-weight", "1", "--standardize", "off"}, "--standardize, --context-weight: recipe v1-fit-std-z-ctx2"},
		{[]string{"--recipe", "plain+v1-fit-z", "--taps", "a,b"}, "--taps: recipe plain+v1-fit-z"},
		{[]string{"--recipe", "v1*-fit-raw", "--taps", "a,b"}, ""},
		{[]string{"--recipe", "fixed", "--resize", "fit"}, ""},
		{[]string{"--recipe", "plain", "--features", "16", "--sigma", "2"}, ""},
		{[]string{"--recipe", "plain", "--context-features", "50"}, "--context-features: recipe plain"},
		{[]string{"--recipe", "v1-fit-z-ctx2", "--context-features", "50"}, ""},
	} {
		args := append([]string{"eval", "--config", cfg, "--data", filepath.Join(dir, "nowhere")}, tc.args...)
		code, _, stderr := runCaptureCmd(t, args...)
		refused := strings.Contains(stderr, "names this itself")
		switch {
		case tc.want == "" && refused:
			t.Errorf("%v refused: %s", tc.args, stderr)
		case tc.want != "" && (code != 2 || !strings.Contains(stderr, tc.want)):
			t.Errorf("%v: exit %d, %s; want %q", tc.args, code, stderr, tc.want)
		}
	}
}

// A set whose defective test images are all thumbnails (or not images) is
// refused before any fit, as one with no defective image is (a second
// trial: it ended the run after its fit, the other sets' results with it);
// empty output flags are refused; report folders of sets that share a
// folder name are numbered (the trial's two screw sets wrote into one).
func TestEvalRefusesBeforeTheFit(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 4, 6, 3)
	bad, _ := filepath.Glob(filepath.Join(set, "test", "*", "*.png"))
	n := 0
	for _, p := range bad {
		if filepath.Base(filepath.Dir(p)) != "good" {
			if err := writePNG(p, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no defective test image exported")
	}
	cfg := evalConfig(t, dir)
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain")
	want := fmt.Sprintf("its 1 test image is good (the other %d are not images, too large or under 16 pixels a side): eval needs defective ones too", n)
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "fit done") {
		t.Errorf("exit %d, %s; want %q before any fit", code, stderr, want)
	}
	for _, f := range []string{"--json", "--report", "--save-model"} {
		if code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, f, " "); code != 2 || !strings.Contains(stderr, f+" is empty") {
			t.Errorf("%s empty: exit %d, %s", f, code, stderr)
		}
	}
	for _, args := range [][]string{{"--data", set, "--data", set + "/"}, {"--data", set, "--recipe", "plain", "--compare", "plain"}, {"--data", set, "--compare", "fixed", "--compare", "fixed"}} {
		if code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg}, args...)...); code != 2 || !strings.Contains(stderr, "the same set as") && !strings.Contains(stderr, "already in the run") {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
	for _, tc := range []struct{ data, want []string }{
		{[]string{"a/screw", "b/screw/", "tile"}, []string{"1-screw", "2-screw", "tile"}},
		// A set named as another's number would be (a review): all numbered.
		{[]string{"a/screw", "b/screw", "c/2-screw"}, []string{"1-screw", "2-screw", "3-2-screw"}},
	} {
		for i, want := range tc.want {
			if got := reportSetName(tc.data, i); got != want {
				t.Errorf("report folder of %s among %v: %s, want %s", tc.data[i], tc.data, got, want)
			}
		}
	}
}

// A set where nothing was flagged has no flagged or shared region IoU: the
// table says n/a and the mean over sets averages only the sets that have
// the figure.
func TestEvalMeanIoUWithoutFlagged(t *testing.T) {
	sets := []EvalSet{
		{Data: "a", Results: []EvalResult{{Recipe: "plain", RegionIoU: 0, RegionIoUDefects: 10}}},
		{Data: "b", Results: []EvalResult{{Recipe: "plain", RegionIoU: 0.2, RegionIoUDefects: 8, RegionIoUFlagged: 0.4, RegionIoUImages: 4,
			RegionIoUShared: 0.4, RegionIoUSharedImages: 4}}},
	}
	m := meanResults(sets, []string{"plain"})[0]
	if math.Abs(m.RegionIoUFlagged-0.4) > 1e-12 || math.Abs(m.RegionIoUShared-0.4) > 1e-12 || math.Abs(m.RegionIoU-0.1) > 1e-12 ||
		m.RegionIoUImages != 1 || m.RegionIoUDefects != 18 {
		t.Errorf("mean %+v: want flagged and shared 0.4 over 1 set, all defects 0.1 over 18 images", m)
	}
	var b strings.Builder
	printEval(&b, &EvalReport{Sets: sets, Mean: []EvalResult{m}})
	var row string
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "a" {
			row = l
		}
	}
	if strings.Count(row, "n/a") != 2 {
		t.Errorf("set without flagged images: want n/a for flagged and shared IoU, row %q", row)
	}
}

// eval's text speaks of one image, draw or missing mask in the singular;
// a model scored as it was fitted (--model) shows no fit time ("-", not
// 0.0); with --compare every recipe's block shows the shared region IoU,
// as the table does, also the one whose flagged images are all shared
// (its block once left the line out).
func TestEvalTextWording(t *testing.T) {
	one := EvalResult{Data: "a", Recipe: "plain", RegionIoU: 0.1, RegionIoUDefects: 1, RegionIoUFlagged: 0.5, RegionIoUImages: 1,
		RegionIoUShared: 0.5, RegionIoUSharedImages: 1, MasksMissing: 1, TestImages: 1, ThresholdImages: 1,
		Threshold: 10, F1Max: 0.8, F1MaxAt: OperatingPoint{Threshold: 8.5, FalseAlarmRate: 0.05, MissRate: 0.25},
		AtFalseAlarms: []OperatingPoint{{MaxFalseAlarmRate: 0.01, Threshold: 12, MissRate: 0.5}, {MaxFalseAlarmRate: 0.05, Threshold: 9, FalseAlarmRate: 0.05, MissRate: 0.3}}}
	wider := one
	wider.Recipe, wider.RegionIoUDefects, wider.RegionIoUImages, wider.RegionIoUFlagged = "fixed", 3, 2, 0.4
	var b strings.Builder
	printEval(&b, &EvalReport{Sets: []EvalSet{{Data: "a", Results: []EvalResult{wider, one}}}})
	out := b.String()
	for _, want := range []string{
		"over 1 defective image with a mask", "over 3 defective images with a mask", "(over the 1 flagged one)", "(over the 2 flagged ones)",
		"1 defective test image has no ground_truth", "from 1 good image:", "(1 test image)",
		"0.8000 at image threshold 8.5 (0.85× the fitted one): false alarms 5.0%, misses 25.0%",
		"at image threshold 12 (1.20× the fitted one): false alarms 0.0%, misses 50.0%", "≤ 5% false alarms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"1 defective test images", "1 good images", "1 test images", "1 defective images"} {
		if strings.Contains(out, bad) {
			t.Errorf("output says %q:\n%s", bad, out)
		}
	}
	if n := strings.Count(out, "  shared"); n != 2 {
		t.Errorf("%d shared region IoU lines in the two recipes' blocks, want 2:\n%s", n, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "a" && f[len(f)-1] != "-" {
			t.Errorf("fit column %q of a model not fitted here, want -: %q", f[len(f)-1], l)
		}
	}
	// One recipe: the shared overlap is the flagged one, not repeated.
	b.Reset()
	printResultDetail(&b, &one, false)
	if strings.Contains(b.String(), "shared") {
		t.Errorf("a run of one recipe shows a shared region IoU:\n%s", b.String())
	}
	// With --compare and no image every recipe flags: n/a, as the table.
	none := one
	none.RegionIoUShared, none.RegionIoUSharedImages = 0, 0
	b.Reset()
	printResultDetail(&b, &none, true)
	if !strings.Contains(b.String(), "shared") || !strings.Contains(b.String(), "n/a (no defective image with a mask that every recipe of the run flags)") {
		t.Errorf("nothing shared under --compare:\n%s", b.String())
	}
}

// eval --json's recipe-search rows use the snake_case keys of the rest of
// the file (they came out as Go's Recipe, Name, Figures, Threshold, Err).
func TestEvalJSONSearchKeys(t *testing.T) {
	r := EvalResult{Recipe: "plain", Search: []model.Candidate{
		{Recipe: model.Recipe{Backbone: "v1"}, Name: "v1-fit-raw", Figures: model.RecipeFigures{ImageAUROC: 0.9}, Threshold: 17.5},
		{Name: "v2-fit-raw", Err: "out of memory"},
	}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Search []map[string]json.RawMessage `json:"search"`
	}
	if err := json.Unmarshal(b, &got); err != nil || len(got.Search) != 2 {
		t.Fatalf("search %s: %v", b, err)
	}
	for i, want := range [][]string{{"figures", "name", "recipe", "threshold"}, {"error", "figures", "name", "recipe", "threshold"}} {
		keys := slices.Sorted(maps.Keys(got.Search[i]))
		if !slices.Equal(keys, want) {
			t.Errorf("search[%d] keys %v, want %v", i, keys, want)
		}
	}
	if string(got.Search[1]["error"]) != `"out of memory"` || !strings.Contains(string(got.Search[0]["figures"]), `"image_auroc":0.9`) {
		t.Errorf("search %s", b)
	}
}

// evalConfig writes a configuration whose state folder is under dir and
// returns its path.
func evalConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(dir, "state")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// exportSet exports a synthetic 96×72 data set to out: train good
// images, test images half of them defective, fixed by seed.
func exportSet(t *testing.T, out string, train, test, seed int) {
	t.Helper()
	if code, _, stderr := runCaptureCmd(t, "capture", "export", "--out", out, "--train", strconv.Itoa(train), "--test", strconv.Itoa(test),
		"--width", "96", "--height", "72", "--defect-rate", "0.5", "--seed", strconv.Itoa(seed)); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
}

// savedPlainModel exports a small synthetic set into dir and fits plain
// PaDiM on it (d 16), saved: the set's folder, the configuration and the
// model file.
func savedPlainModel(t *testing.T, dir string) (set, cfg, m string) {
	t.Helper()
	set = filepath.Join(dir, "set")
	exportSet(t, set, 12, 6, 3)
	cfg = evalConfig(t, dir)
	m = filepath.Join(dir, "m.safetensors")
	if code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--features", "16", "--save-model", m); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	return set, cfg, m
}

// readEvalReport reads eval's --json file.
func readEvalReport(t *testing.T, path string) EvalReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep EvalReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestEvalReportShowsRefusedFrames: --report draws the worst images of a
// registered model even when the daemon would refuse them for their
// registration (shown at their estimated pose, named so); it failed the
// whole evaluation with the registration's error.
func TestEvalReportShowsRefusedFrames(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "a")
	exportSet(t, set, 12, 6, 7)
	// A confidence floor no frame reaches: every test image is refused.
	cfg := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(dir, "state")+"\ncapture:\n  align:\n    min_confidence: 0.9999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(dir, "report")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "v1p-squash-rigid-raw",
		"--features", "16", "--report", rep)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "6 test images beyond its bounds") {
		t.Errorf("output does not count the 6 refused test images:\n%s", stdout)
	}
	names, err := filepath.Glob(filepath.Join(rep, "*_refused.png"))
	if err != nil || len(names) != 6 {
		t.Errorf("report panels named refused: %v (err %v), want all 6 test images", names, err)
	}
}

// A defective test image whose defect --misalign cut out of the view shows
// no defect: it is left out of the image figures (a detector that scores
// it as good is right) and counted, and its pixels count as normal ones.
func TestDefectOutOfViewLeftOutOfImageFigures(t *testing.T) {
	const w, h = 4, 4
	insp := func(score float32, hot int) *model.Inspection {
		m := make([]float32, w*h)
		for i := range m {
			m[i] = score / 10
		}
		if hot >= 0 {
			m[hot] = score
		}
		r := &model.Inspection{Map: m, W: w, H: h}
		r.Score, r.Anomalous, r.Mask = float64(score), score > 4.5, image.NewGray(image.Rect(0, 0, w, h))
		return r
	}
	maskAt := func(i int) []uint8 {
		m := make([]uint8, w*h)
		if i >= 0 {
			m[i] = 1
		}
		return m
	}
	good := dataset.Item{Path: "test/good/x.png", Label: dataset.Good}
	crack := func(name string) dataset.Item {
		return dataset.Item{Path: "test/crack/" + name, Label: "crack", MaskPath: "ground_truth/crack/" + name}
	}
	set := &dataset.Set{Test: []dataset.Item{good, crack("a.png")}}
	fill := func(cut bool) EvalResult {
		a := newTestScore(true)
		for _, s := range []float32{1, 2, 3, 4} {
			if err := a.add(good, insp(s, -1), maskAt(-1), nil, time.Millisecond, false); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range []float32{5, 6} {
			if err := a.add(crack(fmt.Sprint(i)), insp(s, 5), maskAt(5), []metrics.Box{{Rectangle: image.Rect(1, 1, 2, 2), Area: 1}}, time.Millisecond, false); err != nil {
				t.Fatal(err)
			}
		}
		// Its view holds no defect pixel: its mask was cut away with it.
		if err := a.add(crack("cut.png"), insp(2.5, -1), maskAt(-1), nil, time.Millisecond, cut); err != nil {
			t.Fatal(err)
		}
		res := EvalResult{PerDefect: map[string]float64{}, PixelPerDefect: map[string]float64{}}
		if err := a.fill(&res, set); err != nil {
			t.Fatal(err)
		}
		return res
	}
	kept, left := fill(false), fill(true)
	if kept.ImageAUROC >= 1 || kept.TestImages != 7 || kept.DefectsOutOfView != 0 {
		t.Errorf("counted as defective: image AUROC %v over %d images, %d out of view; want below 1 over 7, 0", kept.ImageAUROC, kept.TestImages, kept.DefectsOutOfView)
	}
	if left.ImageAUROC != 1 || left.TestImages != 6 || left.DefectsOutOfView != 1 || left.MissRate != 0 || left.MsPerImage != 1 {
		t.Errorf("left out: image AUROC %v over %d images, %d out of view, miss rate %v, %v ms per image; want 1 over 6, 1, 0, 1",
			left.ImageAUROC, left.TestImages, left.DefectsOutOfView, left.MissRate, left.MsPerImage)
	}
	if left.PixelAUROC != kept.PixelAUROC {
		t.Errorf("pixel AUROC %v, %v counted as defective: its pixels are normal either way", left.PixelAUROC, kept.PixelAUROC)
	}
	var b strings.Builder
	printResultDetail(&b, &left, false)
	if !strings.Contains(b.String(), "1 defective test image whose defect the transform cut out of the view") {
		t.Errorf("detail does not say what was left out:\n%s", b.String())
	}
}

// A model scored as it was fitted (--model) on test images of another
// kind (grayscale on a colour model) is warned of once, as the daemon
// warns of such frames (a trial: 100% false alarms without a word).
func TestEvalModelWarnsOfOtherImages(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	dir := t.TempDir()
	set, cfg, m := savedPlainModel(t, dir)
	if _, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--model", m); strings.Contains(stderr, "unlike the model's training images") {
		t.Errorf("its own kind of images warned of: %s", stderr)
	}
	tests, _ := filepath.Glob(filepath.Join(set, "test", "*", "*.png"))
	for _, p := range tests {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		g := image.NewGray(img.Bounds())
		draw.Draw(g, g.Bounds(), img, img.Bounds().Min, draw.Src)
		if err := writePNG(p, g); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--model", m)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(stderr, "unlike the model's training images"); n != 1 {
		t.Errorf("%d warnings of grayscale test images on a colour model, want 1:\n%s", n, stderr)
	}
}

// With --candidates on a set without pixel ground truth, each candidate's
// real pixel AUROC and PRO, and their rank correlations, are null in the
// JSON and n/a in the table, as the set's own figures are (they came out
// as 0, read as measured); a set with masks has them as numbers. Each
// candidate's false-alarm and miss rates at its own threshold are there,
// and its region IoU where the set has masks.
func TestEvalCandidatesWithoutMasks(t *testing.T) {
	if testing.Short() {
		t.Skip("recipe searches on exported synthetic sets")
	}
	dir := t.TempDir()
	full, none := filepath.Join(dir, "full"), filepath.Join(dir, "none")
	for _, set := range []string{full, none} {
		exportSet(t, set, 40, 6, 5) // 40: the fewest images the search runs on
	}
	if err := os.RemoveAll(filepath.Join(none, "ground_truth")); err != nil {
		t.Fatal(err)
	}
	// One backbone and no ensemble: few candidates, a short search.
	cfg := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(dir, "state")+"\nmodel:\n  backbone: mobilenet_v1\n  ensemble: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "eval.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", full, "--data", none, "--recipe", "auto", "--candidates",
		"--features", "8", "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sets []struct {
			Candidates []struct {
				Recipe string         `json:"recipe"`
				Real   map[string]any `json:"real"`
			} `json:"candidates"`
			Agreement map[string]any `json:"agreement"`
		} `json:"sets"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Sets) != 2 {
		t.Fatalf("%d sets, want 2", len(doc.Sets))
	}
	for i, set := range []string{"full", "none"} {
		s := doc.Sets[i]
		if len(s.Candidates) < 3 || s.Agreement == nil {
			t.Fatalf("%s: %d candidates, agreement %v; want at least 3 and their agreement", set, len(s.Candidates), s.Agreement)
		}
		for _, c := range s.Candidates {
			if v, ok := c.Real["image_auroc"].(float64); !ok || v <= 0 {
				t.Errorf("%s, %s: real image_auroc %v, want a measured figure", set, c.Recipe, c.Real["image_auroc"])
			}
			for _, k := range []string{"false_alarm_rate", "miss_rate"} {
				if v, ok := c.Real[k].(float64); !ok || v < 0 || v > 1 {
					t.Errorf("%s, %s: real %s %v, want a share in [0, 1]", set, c.Recipe, k, c.Real[k])
				}
			}
			if v, ok := c.Real["region_iou"].(float64); set == "full" && (!ok || v < 0 || v > 1) {
				t.Errorf("full, %s: real region_iou %v, want a figure in [0, 1]", c.Recipe, c.Real["region_iou"])
			}
			for _, k := range []string{"pixel_auroc", "pro", "region_iou"} {
				v, present := c.Real[k]
				switch {
				case !present:
					t.Errorf("%s, %s: real has no %s key (null when not computed)", set, c.Recipe, k)
				case set == "full" && v == nil:
					t.Errorf("full, %s: real %s null, want its figure", c.Recipe, k)
				case set == "none" && v != nil:
					t.Errorf("none (no masks), %s: real %s %v, want null", c.Recipe, k, v)
				}
			}
		}
		for _, k := range []string{"pixel_auroc", "pro"} {
			v, present := s.Agreement[k]
			switch {
			case !present:
				t.Errorf("%s: agreement has no %s key", set, k)
			case set == "full" && v == nil:
				t.Errorf("full: agreement %s null, want its correlation", k)
			case set == "none" && v != nil:
				t.Errorf("none (no masks): agreement %s %v, want null (no pixel figure to rank)", k, v)
			}
		}
		if _, ok := s.Agreement["image_auroc"].(float64); !ok {
			t.Errorf("%s: agreement image_auroc %v, want a number", set, s.Agreement["image_auroc"])
		}
	}
	// The text: the set without masks has n/a in its candidates' real pixel
	// and PRO columns, and in the correlations with them.
	_, text, ok := strings.Cut(stdout, "recipe candidates on "+none)
	if !ok {
		t.Fatalf("no candidates table of %s:\n%s", none, stdout)
	}
	_, text, _ = strings.Cut(text, "\n") // the rest of the title line
	text, _, _ = strings.Cut(text, "\n\n")
	rows := 0
	for _, l := range strings.Split(text, "\n") {
		fl := strings.Fields(l)
		if len(fl) < 9 || fl[0] == "recipe" || strings.HasPrefix(l, "rank correlation") {
			continue
		}
		rows++
		// ... real pixel, real PRO, real FA, real miss, real region IoU
		if n := len(fl); fl[n-5] != "n/a" || fl[n-4] != "n/a" || !strings.HasSuffix(fl[n-3], "%") || !strings.HasSuffix(fl[n-2], "%") || fl[n-1] != "n/a" {
			t.Errorf("candidate row %q: want n/a for real pixel AUROC, PRO and region IoU, and the false-alarm and miss rates", l)
		}
	}
	if rows != len(doc.Sets[1].Candidates) || !strings.Contains(text, "pixel AUROC n/a, PRO n/a") {
		t.Errorf("%d candidate rows, want %d, and the correlations with pixel AUROC and PRO n/a:\n%s", rows, len(doc.Sets[1].Candidates), text)
	}
}

// A mean over sets whose recipes differ in blur or context scale has those
// settings null in the JSON (they came out as 0, read as "no blur, no
// context scale"); the figures are still averaged.
func TestEvalMeanSettingsThatDiffer(t *testing.T) {
	a := EvalResult{Data: "a", Recipe: "plain", ImageAUROC: 0.8, Sigma: 4, Features: 100, Resize: "squash"}
	b := EvalResult{Data: "b", Recipe: "v1-fit-std-z-ctx2", ImageAUROC: 0.9, Sigma: 4, ContextPool: 6, ContextFeatures: 300, ContextWeight: 2, Features: 100, Resize: "fit"}
	m := meanResults([]EvalSet{{Data: "a", Results: []EvalResult{a}}, {Data: "b", Results: []EvalResult{b}}}, []string{"auto"})
	raw, err := json.Marshal(m[0])
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"context_pool", "context_features"} {
		if v, present := got[k]; !present || v != nil {
			t.Errorf("mean over differing recipes: %s %v (present %v), want null", k, v, present)
		}
	}
	// A setting every set has the same is carried, whatever the others
	// do (a trial: sigma 4 on both sets came out null because their
	// context weights differed).
	if got["sigma"] != 4.0 {
		t.Errorf("mean: sigma %v, want 4 (the same on both sets)", got["sigma"])
	}
	if _, present := got["resize"]; present {
		t.Errorf("mean over squash and fit: resize %v, want it left out", got["resize"])
	}
	if got["features"] != 100.0 || math.Abs(got["image_auroc"].(float64)-0.85) > 1e-9 {
		t.Errorf("mean: features %v (want 100, the same on both), image_auroc %v (want 0.85)", got["features"], got["image_auroc"])
	}
	c := b
	c.Data, c.ContextWeight = "c", 1
	m = meanResults([]EvalSet{{Data: "b", Results: []EvalResult{b}}, {Data: "c", Results: []EvalResult{c}}}, []string{"auto"})
	if raw, err = json.Marshal(m[0]); err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got["context_pool"] != 6.0 || got["context_features"] != 300.0 || got["sigma"] != 4.0 {
		t.Errorf("mean over ctx2 and ctx1: context_pool %v, context_features %v, sigma %v; want 6, 300, 4 (the same on both)", got["context_pool"], got["context_features"], got["sigma"])
	}
}

// --candidates with a recipe other than auto (given by --recipe or by the
// configuration's model.recipe, and with auto only as a --compare column,
// which shows no candidates) is a usage error before any fit: it was
// ignored without a word, no table, exit 0 (a trial).
func TestEvalCandidatesNeedRecipeAuto(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	plainCfg := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(plainCfg, []byte("state_dir: "+filepath.Join(dir, "state")+"\nmodel:\n  recipe: plain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nowhere := filepath.Join(dir, "nowhere") // refused before the set is read
	for _, tc := range []struct {
		args []string
		want []string // nil: not refused for --candidates
	}{
		{[]string{"--config", cfg, "--recipe", "plain"}, []string{"--candidates", "--recipe plain", "--recipe auto"}},
		{[]string{"--config", cfg, "--recipe", "fixed"}, []string{"--candidates", "--recipe fixed"}},
		{[]string{"--config", plainCfg}, []string{"--candidates", "model.recipe plain in " + plainCfg}},
		{[]string{"--config", cfg, "--recipe", "plain", "--compare", "auto"}, []string{"--candidates", "--recipe plain", "--compare auto column"}},
		{[]string{"--config", cfg, "--recipe", "auto"}, nil},
		{[]string{"--config", cfg}, nil}, // the default recipe: auto
		{[]string{"--config", cfg, "--recipe", "auto", "--compare", "plain"}, nil},
		{[]string{"--config", plainCfg, "--recipe", "auto"}, nil},
	} {
		args := append([]string{"eval", "--data", nowhere, "--candidates"}, tc.args...)
		code, stdout, stderr := runCaptureCmd(t, args...)
		if tc.want == nil {
			if strings.Contains(stderr, "--candidates") {
				t.Errorf("%v: refused for --candidates: %s", tc.args, stderr)
			}
			continue
		}
		if code != 2 || strings.Contains(stdout, "recipe") {
			t.Errorf("%v: exit %d, stdout %q; want the usage error 2 and no table", tc.args, code, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %s; want %q named", tc.args, stderr, w)
			}
		}
	}
}

// A model file evaluated (--model) under a configuration that sets
// model.threshold.value is scored at that threshold, as the daemon
// inspects with it at every load; eval reported the file's own threshold
// and its false alarms.
func TestEvalModelAppliesTheConfiguredThreshold(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	dir := t.TempDir()
	set, _, m := savedPlainModel(t, dir)
	// A threshold far under every score: every good test image flagged.
	low := filepath.Join(dir, "low.yaml")
	if err := os.WriteFile(low, []byte("state_dir: "+filepath.Join(dir, "state")+"\nmodel:\n  threshold:\n    value: 0.001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "low.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", low, "--data", set, "--model", m, "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := readEvalReport(t, js).Sets[0].Results[0]
	if r.Threshold != 0.001 || r.ThresholdImages != 0 || r.FalseAlarmRate != 1 || r.MissRate != 0 {
		t.Errorf("threshold %g from %d images, false alarms %g, misses %g: want 0.001 (model.threshold.value), every good image flagged",
			r.Threshold, r.ThresholdImages, r.FalseAlarmRate, r.MissRate)
	}
	if !strings.Contains(stdout, "threshold            0.001 (model.threshold.value): false alarms 100.0%") || strings.Contains(stdout, "the fitted one") ||
		!strings.Contains(stdout, "× model.threshold.value):") {
		t.Errorf("text does not say the configured threshold:\n%s", stdout)
	}
}

// Each false-alarm operating point carries the region IoU the model's
// alarms would have at its threshold: the same figure an eval of the model
// set to that threshold (model.threshold.value) reports as its own, where
// recipes were compared only at their own thresholds, which differ in
// false alarms (screw: plain at 2.4%, auto at 0%).
func TestEvalRegionIoUAtOperatingPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	dir := t.TempDir()
	set, cfg, m := savedPlainModel(t, dir)
	js := filepath.Join(dir, "own.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--model", m, "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := readEvalReport(t, js).Sets[0].Results[0]
	if len(r.AtFalseAlarms) != 2 || r.F1MaxAt.RegionIoU != nil {
		t.Fatalf("operating points %+v, F1-max's %+v: want two with region IoU, F1-max's without", r.AtFalseAlarms, r.F1MaxAt)
	}
	for _, p := range r.AtFalseAlarms {
		if p.RegionIoU == nil {
			t.Fatalf("no region IoU at ≤ %g false alarms", p.MaxFalseAlarmRate)
		}
		if want := fmt.Sprintf("misses %.1f%%, region IoU %.4f", 100*p.MissRate, *p.RegionIoU); !strings.Contains(stdout, want) {
			t.Errorf("text lacks %q:\n%s", want, stdout)
		}
		at := filepath.Join(dir, fmt.Sprintf("at%g.yaml", p.MaxFalseAlarmRate))
		conf := fmt.Sprintf("state_dir: %s\nmodel:\n  threshold:\n    value: %s\n", filepath.Join(dir, "state"), strconv.FormatFloat(p.Threshold, 'g', -1, 64))
		if err := os.WriteFile(at, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		js2 := filepath.Join(dir, fmt.Sprintf("at%g.json", p.MaxFalseAlarmRate))
		if code, _, stderr := runCaptureCmd(t, "eval", "--config", at, "--data", set, "--model", m, "--json", js2); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		got := readEvalReport(t, js2).Sets[0].Results[0]
		// To the last bit: both sum the flagged images' overlaps in the
		// test images' order (a CI run: 0.45650503224869776 against
		// …979 while the model's own summed in a map's order).
		if got.Threshold != p.Threshold || got.RegionIoU != *p.RegionIoU || got.FalseAlarmRate != p.FalseAlarmRate || got.MissRate != p.MissRate {
			t.Errorf("≤ %g false alarms: point threshold %g, region IoU %g, false alarms %g, misses %g; the model at that threshold: %g, %g, %g, %g",
				p.MaxFalseAlarmRate, p.Threshold, *p.RegionIoU, p.FalseAlarmRate, p.MissRate, got.Threshold, got.RegionIoU, got.FalseAlarmRate, got.MissRate)
		}
	}
}

// `inspectd eval --model M` under model.threshold.value 1e-06 printed
// its operating points "(20000000.00× the fitted one)": a share of the
// value, not of the fitted threshold, and 0.00× under a huge value. They
// are shares of model.threshold.value, in significant digits, now.
func TestEvalPointsAgainstTheThresholdValue(t *testing.T) {
	for _, c := range []struct {
		value float64
		want  string
	}{
		{1e-06, "at image threshold 20 (2e+07× model.threshold.value)"},
		{1e+09, "at image threshold 20 (2e-08× model.threshold.value)"},
		{10, "at image threshold 20 (2.00× model.threshold.value)"},
	} {
		r := EvalResult{Data: "a", Recipe: "plain", TestImages: 10, Threshold: c.value, F1Max: 1,
			F1MaxAt:       OperatingPoint{Threshold: 20},
			AtFalseAlarms: []OperatingPoint{{MaxFalseAlarmRate: 0.01, Threshold: 20}}}
		var b strings.Builder
		printEval(&b, &EvalReport{Sets: []EvalSet{{Data: "a", Results: []EvalResult{r}}}})
		out := b.String()
		if n := strings.Count(out, c.want); n != 2 {
			t.Errorf("value %g: %q %d times, want 2 (F1-max and ≤ 1%%):\n%s", c.value, c.want, n, out)
		}
		if strings.Contains(out, "the fitted one") {
			t.Errorf("value %g: an operating point against the fitted threshold, which is not in force:\n%s", c.value, out)
		}
	}
}
