package cli

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"text/tabwriter"
)

// maxTrainDraws bounds --train-draws as maxMisalignSeeds bounds the
// misalignment's draws: each draw is a fit of every recipe of the run.
const maxTrainDraws = maxMisalignSeeds

// trainDrawTag names a --train-draws run's draws in their data labels
// ("screw@train-draw3").
const trainDrawTag = "train-draw"

// checkTrainDraws refuses a --train-draws that cannot draw anything new:
// without --max-train every draw is the whole set; with --misalign the
// draws are the transform's; one model cannot keep several draws' fits.
func checkTrainDraws(n, maxTrain int, misalign bool, saveModel string) error {
	switch {
	case n < 2 || n > maxTrainDraws:
		return usagef("--train-draws %d: want 2 to %d (each draw is a fit of every recipe of the run)", n, maxTrainDraws)
	case maxTrain == 0:
		return usagef("--train-draws %d without --max-train: every draw would fit on all the training images; give --max-train N below the set's count", n)
	case misalign:
		return usagef("--train-draws with --misalign: the misalignment's draws (--misalign-seeds) are the run's draws; leave one out")
	case saveModel != "":
		return usagef("--save-model keeps one fitted model, and each of the %d --train-draws fits one: leave --save-model out", n)
	}
	return nil
}

// trainingDraws returns the n draws of maxTrain of train, the training
// images of the set at dir that can be read (of all listed), or why they
// cannot be told apart: every draw would be all of them, or two draws are
// the same images (a set with few images more than maxTrain has few draws
// to give).
func trainingDraws(dir string, train []string, listed, maxTrain, n int) ([][]string, error) {
	if maxTrain >= len(train) {
		return nil, usagef("--train-draws %d with --max-train %d on %s: only %d of its %s can be read (the others are skipped), so every draw would fit on all of them; give --max-train below %d",
			n, maxTrain, dir, len(train), plural(listed, "training image"), len(train))
	}
	draws := make([][]string, n)
	for k := range draws {
		draws[k] = drawTraining(train, maxTrain, uint64(k+1))
		for j := range k {
			if slices.Equal(draws[j], draws[k]) {
				return nil, usagef("--train-draws %d with --max-train %d on %s: draws %d and %d are the same %s of its %d: few images beyond --max-train give few different draws; give a smaller --max-train or fewer draws",
					n, maxTrain, dir, j+1, k+1, plural(maxTrain, "image"), len(train))
			}
		}
	}
	return draws, nil
}

// drawTraining returns n of the training images drawn at random, without
// repeats, fixed by seed (a PCG stream), in the list's order: the draw is
// the same on every run and machine, and every recipe of the run fits on
// the same images.
func drawTraining(p []string, n int, seed uint64) []string {
	if n >= len(p) {
		return slices.Clone(p)
	}
	r := rand.New(rand.NewPCG(seed, 0x696e7370656374)) // "inspect": a stream of its own
	idx := r.Perm(len(p))[:n]
	slices.Sort(idx)
	out := make([]string, n)
	for i, k := range idx {
		out[i] = p[k]
	}
	return out
}

// drawTag names the set's draws: the misalignment's transform, or
// trainDrawTag.
func (s *EvalSet) drawTag() string {
	if s.Misalign != "" {
		return s.Misalign
	}
	return trainDrawTag
}

// DrawFigures are the figures a spread between draws is given for.
type DrawFigures struct {
	ImageAUROC float64 `json:"image_auroc"`
	PixelAUROC float64 `json:"pixel_auroc"`
	PRO        float64 `json:"pro"`
	RegionIoU  float64 `json:"region_iou"`
}

func drawFigures(r *EvalResult) DrawFigures {
	return DrawFigures{r.ImageAUROC, r.PixelAUROC, r.PRO, r.RegionIoU}
}

func (f DrawFigures) list() []float64 {
	return []float64{f.ImageAUROC, f.PixelAUROC, f.PRO, f.RegionIoU}
}

// DrawCounts counts draws per figure.
type DrawCounts struct {
	ImageAUROC int `json:"image_auroc"`
	PixelAUROC int `json:"pixel_auroc"`
	PRO        int `json:"pro"`
	RegionIoU  int `json:"region_iou"`
}

// DrawSpread says how much a set's figures move between draws of the same
// run: what a difference between two recipes (or two runs of one) has to
// exceed before it says more than the luck of the draw.
type DrawSpread struct {
	Draws int `json:"draws"`
	// SD is, per recipe column, each figure's sample standard deviation
	// over the draws (n − 1 in the denominator).
	SD []RecipeSD `json:"sd"`
	// Paired compares the run's recipe with each --compare recipe, draw
	// by draw (both fitted on the same images).
	Paired []PairedDraws `json:"paired,omitempty"`
}

// RecipeSD is one recipe column's standard deviations between draws.
type RecipeSD struct {
	Recipe string `json:"recipe"`
	DrawFigures
}

// PairedDraws is the run's recipe against another over the same draws.
type PairedDraws struct {
	Recipe  string `json:"recipe"`
	Against string `json:"against"`
	// MeanDifference is the mean over the draws of Recipe's figure minus
	// Against's, SD the differences' standard deviation.
	MeanDifference DrawFigures `json:"mean_difference"`
	SD             DrawFigures `json:"sd"`
	// AtLeast counts the draws where Recipe's figure is at least Against's.
	AtLeast DrawCounts `json:"at_least"`
}

// spreadOverDraws fills DrawSpread from two or more draws.
func (s *EvalSet) spreadOverDraws() {
	if len(s.Draws) < 2 {
		return
	}
	sp := &DrawSpread{Draws: len(s.Draws)}
	for k := range s.Draws[0].Results {
		sp.SD = append(sp.SD, RecipeSD{s.Results[k].Recipe, sdOver(s.Draws, func(d *EvalSet) DrawFigures { return drawFigures(&d.Results[k]) })})
	}
	for k := 1; k < len(s.Draws[0].Results); k++ {
		diff := func(d *EvalSet) DrawFigures {
			a, b := drawFigures(&d.Results[0]).list(), drawFigures(&d.Results[k]).list()
			return DrawFigures{a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]}
		}
		p := PairedDraws{Recipe: s.Results[0].Recipe, Against: s.Results[k].Recipe, SD: sdOver(s.Draws, diff)}
		var sum [4]float64
		var at [4]int
		for i := range s.Draws {
			for j, v := range diff(&s.Draws[i]).list() {
				sum[j] += v
				if v >= 0 {
					at[j]++
				}
			}
		}
		n := float64(len(s.Draws))
		p.MeanDifference = DrawFigures{sum[0] / n, sum[1] / n, sum[2] / n, sum[3] / n}
		p.AtLeast = DrawCounts{at[0], at[1], at[2], at[3]}
		sp.Paired = append(sp.Paired, p)
	}
	s.DrawSpread = sp
}

// sdOver is the sample standard deviation over the draws of each figure f
// gives.
func sdOver(draws []EvalSet, f func(*EvalSet) DrawFigures) DrawFigures {
	var sum, sq [4]float64
	for i := range draws {
		for j, v := range f(&draws[i]).list() {
			sum[j] += v
		}
	}
	n := float64(len(draws))
	for i := range draws {
		for j, v := range f(&draws[i]).list() {
			d := v - sum[j]/n
			sq[j] += d * d
		}
	}
	sd := func(j int) float64 { return math.Sqrt(sq[j] / (n - 1)) }
	return DrawFigures{sd(0), sd(1), sd(2), sd(3)}
}

// printDrawSpread prints, under the table, each drawn set's spread between
// its draws and the paired differences of its recipes.
func printDrawSpread(w io.Writer, rep *EvalReport, setName func(string) string) {
	for _, s := range rep.Sets {
		sp := s.DrawSpread
		if sp == nil {
			continue
		}
		what := "misalignment draws"
		if s.TrainDrawImages > 0 {
			what = fmt.Sprintf("draws of %d training images", s.TrainDrawImages)
		}
		fmt.Fprintf(w, "\n%s over %d %s: standard deviation between draws\n", setName(s.Data)+s.Dim.suffix(), sp.Draws, what)
		noPixel := s.Results[0].NoPixelFigures != ""
		pix := func(v float64) string {
			if noPixel {
				return "n/a"
			}
			return fmt.Sprintf("%.4f", v)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "recipe\timage AUROC\tpixel AUROC\tPRO\tregion IoU\t")
		for _, f := range sp.SD {
			fmt.Fprintf(tw, "%s\t%.4f\t%s\t%s\t%s\t\n", f.Recipe, f.ImageAUROC, pix(f.PixelAUROC), pix(f.PRO), pix(f.RegionIoU))
		}
		tw.Flush()
		if len(sp.Paired) == 0 {
			continue
		}
		fmt.Fprintf(w, "draw by draw (the same training images): mean difference ± its standard deviation, and the draws where the first is at least the second\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "recipes\timage AUROC\tpixel AUROC\tPRO\tregion IoU\t")
		for _, p := range sp.Paired {
			cell := func(m, sd float64, at int, pixel bool) string {
				if pixel && noPixel {
					return "n/a"
				}
				return fmt.Sprintf("%+.4f ± %.4f (%d of %d)", m, sd, at, sp.Draws)
			}
			d, e, a := p.MeanDifference, p.SD, p.AtLeast
			fmt.Fprintf(tw, "%s − %s\t%s\t%s\t%s\t%s\t\n", p.Recipe, p.Against, cell(d.ImageAUROC, e.ImageAUROC, a.ImageAUROC, false),
				cell(d.PixelAUROC, e.PixelAUROC, a.PixelAUROC, true), cell(d.PRO, e.PRO, a.PRO, true), cell(d.RegionIoU, e.RegionIoU, a.RegionIoU, true))
		}
		tw.Flush()
	}
}
