package cli

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A draw of the training images is n of them without repeats, in the
// list's order, the same for the same seed and another for another seed.
func TestDrawTraining(t *testing.T) {
	p := make([]string, 50)
	for i := range p {
		p[i] = string(rune('A'+i/26)) + string(rune('a'+i%26))
	}
	a, b, c := drawTraining(p, 20, 1), drawTraining(p, 20, 1), drawTraining(p, 20, 2)
	if len(a) != 20 || !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("seed 1 %v, again %v, seed 2 %v", a, b, c)
	}
	if !slices.IsSorted(a) || len(slices.Compact(slices.Clone(a))) != 20 {
		t.Errorf("draw %v: want 20 distinct names in the list's order", a)
	}
	if got := drawTraining(p, 50, 3); !slices.Equal(got, p) {
		t.Errorf("a draw of all 50: %v", got)
	}
}

// eval --train-draws fits every recipe of the run on the same random draws
// of the training images, shows each draw, their mean, the spread between
// the draws and the recipes' differences draw by draw; the draws repeat
// from their seeds. Flags that make the draws meaningless are refused
// before any fit.
func TestEvalTrainDraws(t *testing.T) {
	if testing.Short() {
		t.Skip("six fits on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "a")
	exportSet(t, set, 20, 10, 9)
	cfg := evalConfig(t, dir)
	run := func(draws string) (EvalReport, string) {
		js := filepath.Join(dir, "eval"+draws+".json")
		code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--compare", "v1-squash-raw",
			"--features", "16", "--max-train", "8", "--train-draws", draws, "--json", js)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		return readEvalReport(t, js), stdout
	}
	rep, stdout := run("3")
	for _, want := range []string{"a@train-draw1", "a@train-draw3", "a@train-draw mean of 3", "a over 3 draws of 8 training images: standard deviation between draws",
		"plain − v1-squash-raw"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if len(rep.Sets) != 1 || len(rep.Sets[0].Draws) != 3 || len(rep.Sets[0].Results) != 2 {
		t.Fatalf("report %+v", rep)
	}
	s := rep.Sets[0]
	if s.TrainDrawImages != 8 || s.Misalign != "" {
		t.Errorf("train_draw_images %d (want 8), misalign %q (want none)", s.TrainDrawImages, s.Misalign)
	}
	differ := false
	for i, d := range s.Draws {
		if r := d.Results[0]; r.TrainImages != 8 || !strings.HasSuffix(r.Data, "@train-draw"+string(rune('1'+i))) {
			t.Errorf("draw %d: %d training images (want 8), labelled %q", i+1, r.TrainImages, r.Data)
		}
		differ = differ || d.Results[0].ImageAUROC != s.Draws[0].Results[0].ImageAUROC || d.Results[0].PixelAUROC != s.Draws[0].Results[0].PixelAUROC
	}
	if !differ {
		t.Errorf("three draws gave plain the same figures: the draws are not drawn")
	}
	// The spread and the paired differences are the draws' own.
	sp := s.DrawSpread
	if sp == nil || sp.Draws != 3 || len(sp.SD) != 2 || len(sp.Paired) != 1 {
		t.Fatalf("draw spread %+v", sp)
	}
	var px []float64
	var diffs []float64
	at := 0
	for _, d := range s.Draws {
		px = append(px, d.Results[0].PixelAUROC)
		diffs = append(diffs, d.Results[0].RegionIoU-d.Results[1].RegionIoU)
		if d.Results[0].RegionIoU >= d.Results[1].RegionIoU {
			at++
		}
	}
	mean := func(v []float64) float64 { return (v[0] + v[1] + v[2]) / 3 }
	sd := func(v []float64) float64 {
		m := mean(v)
		return math.Sqrt(((v[0]-m)*(v[0]-m) + (v[1]-m)*(v[1]-m) + (v[2]-m)*(v[2]-m)) / 2)
	}
	p := sp.Paired[0]
	if math.Abs(sp.SD[0].PixelAUROC-sd(px)) > 1e-12 || math.Abs(p.MeanDifference.RegionIoU-mean(diffs)) > 1e-12 ||
		math.Abs(p.SD.RegionIoU-sd(diffs)) > 1e-12 || p.AtLeast.RegionIoU != at || p.Recipe != "plain" || p.Against != "v1-squash-raw" {
		t.Errorf("spread %+v, paired %+v; from the draws: pixel AUROC sd %v, region IoU differences %v (mean %v, sd %v, %d at least)",
			sp.SD[0], p, sd(px), diffs, mean(diffs), sd(diffs), at)
	}
	// One draw's defects and skipped files in the set's mean, as in
	// each draw (the draws' total counted a set's defects twice).
	if m, d := s.Results[0], s.Draws[0].Results[0]; m.RegionIoUDefects != d.RegionIoUDefects || m.RegionIoUDefects == 0 {
		t.Errorf("the mean's defects with a mask %d, a draw's %d", m.RegionIoUDefects, d.RegionIoUDefects)
	}
	again, _ := run("2")
	if a, b := again.Sets[0].Draws[1].Results[1], s.Draws[1].Results[1]; a.ImageAUROC != b.ImageAUROC || a.PixelAUROC != b.PixelAUROC {
		t.Errorf("draw 2 again: %v / %v, first %v / %v", a.ImageAUROC, a.PixelAUROC, b.ImageAUROC, b.PixelAUROC)
	}
	// Each draw's report in a folder of its own (they wrote over each
	// other); unreadable training files counted in every row.
	for i := 0; i < 6; i++ {
		bad := filepath.Join(set, "train", "good", fmt.Sprintf("zz%d.png", i))
		if err := os.WriteFile(bad, []byte("not an image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rdir, js := filepath.Join(dir, "rep"), filepath.Join(dir, "skipped.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--features", "16",
		"--max-train", "8", "--train-draws", "2", "--report", rdir, "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, d := range []string{"train-draw1", "train-draw2"} {
		if _, err := os.Stat(filepath.Join(rdir, d, "roc.png")); err != nil {
			t.Errorf("draw %s's report: %v\n%s", d, err, stdout)
		}
	}
	if sk := readEvalReport(t, js).Sets[0]; sk.Results[0].SkippedFiles != 6 || sk.Draws[1].Results[0].SkippedFiles != 6 {
		t.Errorf("skipped files: mean %d, draw 2 %d, want 6 and 6", sk.Results[0].SkippedFiles, sk.Draws[1].Results[0].SkippedFiles)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--train-draws", "3"}, "--train-draws 3 without --max-train"},
		{[]string{"--train-draws", "2", "--max-train", "21"}, "only 20 of its 26 training images can be read"},
		{[]string{"--train-draws", "8", "--max-train", "19"}, "are the same 19 images of its 20"},
		{[]string{"--train-draws", "1", "--max-train", "8"}, "--train-draws 1: want 2 to 100"},
		{[]string{"--train-draws", "3", "--max-train", "26"}, "it has 26 training images, so every draw would fit on all of them"},
		{[]string{"--train-draws", "2", "--max-train", "8", "--misalign"}, "--train-draws with --misalign"},
		{[]string{"--train-draws", "2", "--max-train", "8", "--save-model", filepath.Join(dir, "m.safetensors")}, "each of the 2 --train-draws fits one"},
		{[]string{"--train-draws", "2", "--model", filepath.Join(dir, "m.safetensors")}, "--train-draws"},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg, "--data", set}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "fit done") {
			t.Errorf("eval %v: exit %d, %s\nwant exit 2 and %q before any fit", c.args, code, stderr, c.want)
		}
	}
}
