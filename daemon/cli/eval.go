package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/metrics"
	"github.com/inspectd/inspectd/model/render"
)

// EvalReport is what `inspectd eval --json` writes: per data set, the
// configured recipe's figures (and the --compare recipe's), the recipe
// search's candidates measured on the real test set when --candidates is
// given, and the means over the sets.
type EvalReport struct {
	Sets []EvalSet `json:"sets"`
	// Mean holds, per recipe column, the mean of each figure over the sets.
	Mean []EvalResult `json:"mean,omitempty"`
}

// EvalSet is one data set's evaluation.
type EvalSet struct {
	Data string `json:"data"`
	// Results are the configured recipe's figures and, with --compare,
	// each further recipe's.
	Results []EvalResult `json:"results"`
	// Candidates are every recipe-search candidate: its synthetic
	// validation figures beside its figures on the real test set (fitted
	// on the same images as in the search).
	Candidates []CandidateEval `json:"candidates,omitempty"`
	// Agreement is the Spearman rank correlation over the candidates of
	// the synthetic score with each real figure.
	Agreement *RankAgreement `json:"agreement,omitempty"`
	// Draws are, with --misalign, each random draw of the Rd-MVTec
	// transform (its seed in Data), with --train-draws each random draw of
	// the training images; Results are then their mean.
	Draws []EvalSet `json:"draws,omitempty"`
	// TrainDrawImages is, with --train-draws, the number of training
	// images each draw fits on, drawn at random from the set's.
	TrainDrawImages int `json:"train_draw_images,omitempty"`
	// DrawSpread is, over two or more draws, each recipe's standard
	// deviation between the draws and, with --compare, the run's recipe
	// against each other one draw by draw.
	DrawSpread *DrawSpread `json:"draw_spread,omitempty"`
	// Misalign names the draws' transform: "misalign" (the paper's
	// protocol) or the part applied alone ("crop", "shift", "turn"), with
	// "-edgefill" when a turn's corners repeat the image's edge.
	Misalign string `json:"misalign,omitempty"`
	// Dim is, with --dim, the dark-line protocol every image of the set
	// went through (its results' data then end in "@dim<mean>").
	Dim *DimProtocol `json:"dim,omitempty"`
}

// DimProtocol is the dark-line protocol (eval --dim, dataset.Dim) as a
// set's images went through it.
type DimProtocol struct {
	// Mean is the mean grey level asked, in levels of 255.
	Mean float64 `json:"mean"`
	// Noise is the green channel's noise standard deviation in levels,
	// NoiseRGB each channel's.
	Noise    float64    `json:"noise"`
	NoiseRGB [3]float64 `json:"noise_rgb"`
	// HotPixelsPer10000 is how many pixels in 10,000 are hot.
	HotPixelsPer10000 float64 `json:"hot_pixels_per_10000"`
	// Seed fixes the noise (with each image's path) and the hot pixels.
	Seed uint64 `json:"seed"`
	// SampleImages is how many training images, spread over the set's
	// readable ones, the exposure was measured on; SampleLuma their mean
	// luminance (levels); Scale the factor every level was multiplied by
	// (Mean over SampleLuma).
	SampleImages int     `json:"sample_images"`
	SampleLuma   float64 `json:"sample_luma"`
	Scale        float64 `json:"scale"`
}

// dimSeed is the dark-line protocol's one seed: only the noise differs
// between seeds, so one draw is run (--train-draws draws the training
// images under the same noise).
const dimSeed = 1

// suffix is what the protocol adds to a set's name in the results' labels:
// "@dim19", with the noise where it is not the default
// ("@dim19-noise2"); "" for no protocol (a nil d).
func (d *DimProtocol) suffix() string {
	if d == nil {
		return ""
	}
	t := fmt.Sprintf("@dim%g", d.Mean)
	if d.Noise != dataset.DimNoise {
		t += fmt.Sprintf("-noise%g", d.Noise)
	}
	return t
}

// newDim measures the exposure of a set's training images (those that
// can be read, dataset.DimSample of them at most, spread over them) and
// returns the dark-line protocol bringing them to mean grey level mean
// with noise of standard deviation noise (levels), and its description.
// It fails when no training image can be read or they are black; sk is
// the training files left out (admitImages), said when none is left.
func newDim(dir string, train []string, mean, noise float64, maxPixels int64, sk *skipped) (*dataset.Dim, *DimProtocol, error) {
	sample := train
	if len(sample) > dataset.DimSample {
		sample = spread(sample, dataset.DimSample)
	}
	lumas := make([]float64, 0, len(sample))
	for _, p := range sample {
		img, err := imageFiles{maxPixels: maxPixels}.loadRaw(p)
		if err != nil {
			return nil, nil, fmt.Errorf("--dim on %s: measuring the exposure: %w", dir, err)
		}
		lumas = append(lumas, dataset.MeanLuma(img))
	}
	if len(lumas) == 0 {
		why := "" // an empty train/good is refused by dataset.Scan before
		if sum := sk.String(); sum != "" {
			why = " (" + sum + ")"
		}
		return nil, nil, fmt.Errorf("--dim on %s: no training image is left to measure the line's exposure on%s", dir, why)
	}
	d, err := dataset.NewDim(mean, noise, dimSeed, lumas)
	if err != nil {
		return nil, nil, fmt.Errorf("--dim on %s: %w", dir, err)
	}
	// To a millionth of a level: 4.9, not 4.8999999999999995.
	round6 := func(v float64) float64 { return math.Round(v*1e6) / 1e6 }
	p := &DimProtocol{Mean: mean, Noise: noise, HotPixelsPer10000: round6(dataset.DimHotPixels * 10000), Seed: dimSeed,
		SampleImages: len(lumas), SampleLuma: mean / d.Scale, Scale: d.Scale}
	for c, k := range dataset.DimChannelNoise() {
		p.NoiseRGB[c] = round6(k * noise)
	}
	return &d, p, nil
}

// CandidateEval is one search candidate on synthetic and real defects.
type CandidateEval struct {
	Recipe    string              `json:"recipe"`
	Synthetic model.RecipeFigures `json:"synthetic"`
	Real      RealFigures         `json:"real"`
	Chosen    bool                `json:"chosen,omitempty"`
}

// RealFigures are a candidate's figures on the real test set. PixelAUROC
// and PRO are nil (null in the JSON, n/a in the table) where they could
// not be computed, as the set's own are (EvalResult.NoPixelFigures): a 0
// would read as a measured figure.
type RealFigures struct {
	ImageAUROC float64  `json:"image_auroc"`
	PixelAUROC *float64 `json:"pixel_auroc"`
	PRO        *float64 `json:"pro"`
	// FalseAlarmRate and MissRate are at the candidate's own threshold
	// (the search's fit of it: fewer training images than the final fit);
	// RegionIoU is EvalResult.RegionIoU at that threshold, nil where the
	// set has no pixel figures: which candidate would have published the
	// regions that sit on the defects.
	FalseAlarmRate float64  `json:"false_alarm_rate"`
	MissRate       float64  `json:"miss_rate"`
	RegionIoU      *float64 `json:"region_iou"`
}

// RankAgreement holds Spearman rank correlations of the candidates'
// synthetic score with their real image AUROC, pixel AUROC, PRO and the
// mean of those they have. PixelAUROC and PRO are nil (null, n/a) unless
// every candidate has that figure: there is nothing to rank otherwise, and
// the mean is then image AUROC's.
type RankAgreement struct {
	ImageAUROC float64  `json:"image_auroc"`
	PixelAUROC *float64 `json:"pixel_auroc"`
	PRO        *float64 `json:"pro"`
	Mean       float64  `json:"mean"`
	// ChosenRank is the chosen candidate's rank by the real mean (1: best)
	// among Candidates.
	ChosenRank int `json:"chosen_rank"`
	Candidates int `json:"candidates"`
}

// EvalResult is one recipe's figures on one data set (or their mean).
type EvalResult struct {
	Data string `json:"data"`
	// Recipe is the fitted recipe's name; RecipeChoice how it was chosen.
	Recipe       string  `json:"recipe"`
	RecipeChoice string  `json:"recipe_choice,omitempty"`
	ImageAUROC   float64 `json:"image_auroc"`
	PixelAUROC   float64 `json:"pixel_auroc"`
	PRO          float64 `json:"pro"`
	// RegionIoU is the overlap (IoU) of the regions the alarm publishes
	// (the boxes of the mask's regions, the largest 32) with the boxes of
	// the ground truth's regions, averaged over every defective test image
	// that has a mask (RegionIoUDefects of them): a missed defect publishes
	// no region and counts 0, so a recipe is not rewarded for flagging
	// only its easiest defects.
	RegionIoU        float64 `json:"region_iou"`
	RegionIoUDefects int     `json:"region_iou_defects"`
	// RegionIoUFlagged is the same overlap averaged over the defective
	// images the threshold flags (RegionIoUImages of them): how well an
	// alarm's regions sit on the defect when there is an alarm.
	RegionIoUFlagged float64 `json:"region_iou_flagged"`
	RegionIoUImages  int     `json:"region_iou_flagged_images"`
	// RegionIoUShared is the overlap averaged over the defective images
	// that every recipe of the run (the configured one and each --compare)
	// flags (RegionIoUSharedImages of them): the recipes' localization on
	// the same defects, free of which defects each one detects. With no
	// image to average over a figure is 0 and its count 0 (the table
	// prints n/a, the JSON null). In a mean over sets RegionIoUDefects is
	// their total, in a mean over draws (--misalign, --train-draws) one
	// draw's (their mean where a misalignment cut some defects out of
	// view); in either, RegionIoUImages and RegionIoUSharedImages are the
	// numbers of sets (draws) the flagged and shared figures are averaged
	// over.
	RegionIoUShared       float64 `json:"region_iou_shared"`
	RegionIoUSharedImages int     `json:"region_iou_shared_images"`
	// NoPixelFigures says why the set has no pixel figures (PixelAUROC,
	// PRO, RegionIoU: 0 here, null in the JSON, n/a in the tables) when no
	// test mask marks a defect pixel (no ground_truth/ masks, or only empty
	// ones); its image
	// figures stand. A mean's pixel figures are over the sets that have
	// them (PixelSets of them), and it says so here when none has.
	NoPixelFigures string `json:"no_pixel_figures,omitempty"`
	PixelSets      int    `json:"pixel_sets,omitempty"`
	// flaggedIoU is each flagged defective image's overlap, by path.
	flaggedIoU map[string]float64
	// sigmaVaries, contextPoolVaries and contextFeaturesVary are set on a
	// mean over sets whose recipes differ in that setting (auto chose per
	// set): the JSON has it null, not the 0 that reads as "no blur, no
	// context scale".
	sigmaVaries, contextPoolVaries, contextFeaturesVary bool
	// someRegistered is set on a mean over sets (or draws) some of whose
	// models register their frames: where they differ in how, Align is
	// left empty, and the refused count is shown all the same, not "-".
	someRegistered bool
	// MasksMissing is the number of defective test images without a
	// ground-truth mask: they count in the image figures and are left out
	// of the pixel ones (PixelAUROC, PRO, region IoU).
	MasksMissing int `json:"masks_missing,omitempty"`
	// DefectsOutOfView is, with --misalign, the number of defective test
	// images whose every defect pixel the transform moved out of the view
	// (the crop cut the defect away): their view shows no defect, so they
	// are left out of the image figures (image AUROC, F1-max, miss rate,
	// region IoU, TestImages) and their pixels count as normal ones in the
	// pixel figures. In a mean over draws it is their total.
	DefectsOutOfView int     `json:"defects_out_of_view,omitempty"`
	F1Max            float64 `json:"f1_max"`
	// F1MaxAt is where F1-max is reached, and AtFalseAlarms the lowest
	// thresholds whose false alarms on the good test images stay within
	// operatingFalseAlarms (1% and 5%): the operating points a line that
	// needs more of its defects caught than the fitted threshold's rare
	// false alarms allow can start from (the remote `threshold` command or
	// model.threshold.value). They are chosen on the test images
	// themselves, so new parts fare somewhat worse. On test sets with more
	// defective images than good ones F1-max is reached by flagging most
	// of them (magnetic tile: 40% false alarms).
	F1MaxAt       OperatingPoint   `json:"f1_max_at"`
	AtFalseAlarms []OperatingPoint `json:"at_false_alarms"`
	// FalseAlarmRate is the share of good test images above the threshold,
	// MissRate the share of defective ones at or below it.
	FalseAlarmRate float64 `json:"false_alarm_rate"`
	MissRate       float64 `json:"miss_rate"`
	MsPerImage     float64 `json:"ms_per_image"`
	FitSeconds     float64 `json:"fit_seconds"`
	// SearchSeconds is the part of the fit the recipe search took.
	SearchSeconds float64 `json:"search_seconds,omitempty"`
	// LineNoise is the training images' sensor noise against their
	// contrast, as the model records it (absent where it does not).
	LineNoise  *model.LineNoise `json:"line_noise,omitempty"`
	ModelBytes int64            `json:"model_bytes,omitempty"`
	Features   int              `json:"features,omitempty"`
	Grid       string           `json:"grid,omitempty"`
	Resize     string           `json:"resize,omitempty"`
	Sigma      float64          `json:"sigma"`
	// ContextPool is the context scale's cell in finest-tap positions (0:
	// none), ContextFeatures its d and ContextWeight its weight.
	ContextPool     int     `json:"context_pool"`
	ContextFeatures int     `json:"context_features"`
	ContextWeight   float64 `json:"context_weight,omitempty"`
	TrainImages     int     `json:"train_images,omitempty"`
	TestImages      int     `json:"test_images,omitempty"`
	// ThresholdImages is the number of good images the threshold rests on,
	// 0 (absent) where model.threshold.value gives it.
	ThresholdImages int                `json:"threshold_images,omitempty"`
	PerDefect       map[string]float64 `json:"image_auroc_per_defect,omitempty"`
	// PixelPerDefect is each type's defect pixels against all normal
	// pixels of the test set.
	PixelPerDefect map[string]float64 `json:"pixel_auroc_per_defect,omitempty"`
	// Threshold is the fitted image threshold (left out of means),
	// PixelThreshold the level the alarm regions grow to
	// (model.PixelRatios).
	Threshold      float64 `json:"threshold,omitempty"`
	PixelThreshold float64 `json:"pixel_threshold,omitempty"`
	// Accuracy of the fitted threshold: share of test images judged right.
	Accuracy  float64 `json:"threshold_accuracy"`
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	// SkippedFiles are training and test images (or their masks) left out
	// because they could not be read or were over capture.max_pixels.
	SkippedFiles int `json:"skipped_files"`
	// Align is the model's registration mode; RegistrationRefused the
	// test images the daemon would answer with verdict "error" for their
	// registration (scored at their estimated pose here).
	Align               string `json:"align,omitempty"`
	RegistrationRefused int    `json:"registration_refused,omitempty"`
	// RegistrationRefusedPerDraw is, in the mean of --misalign draws,
	// RegistrationRefused's mean per draw.
	RegistrationRefusedPerDraw float64 `json:"registration_refused_per_draw,omitempty"`
	// Search is the fit's recipe search, every candidate with its
	// validation figures (recipe auto).
	Search []model.Candidate `json:"search,omitempty"`
}

// MarshalJSON writes the pixel figures a result has none of as null, not
// 0, which a consumer reads as a measured figure (an AUROC of 0, an overlap
// of 0): pixel_auroc and pro when no_pixel_figures says why there are none,
// region_iou, region_iou_flagged and region_iou_shared also when no image
// was there to average over (their counts 0; n/a in the tables); sigma,
// context_pool and context_features in a mean whose sets differ in them.
// The other fields, and these when measured, are written as they are.
func (r EvalResult) MarshalJSON() ([]byte, error) {
	type plain EvalResult // its fields, without this method
	figure := func(v float64, ok bool) *float64 {
		if !ok {
			return nil
		}
		return &v
	}
	pixels := r.NoPixelFigures == ""
	return json.Marshal(struct {
		plain
		// Shallower than plain's fields of the same names: these win.
		PixelAUROC       *float64 `json:"pixel_auroc"`
		PRO              *float64 `json:"pro"`
		RegionIoU        *float64 `json:"region_iou"`
		RegionIoUFlagged *float64 `json:"region_iou_flagged"`
		RegionIoUShared  *float64 `json:"region_iou_shared"`
		Sigma            *float64 `json:"sigma"`
		ContextPool      *float64 `json:"context_pool"`
		ContextFeatures  *float64 `json:"context_features"`
	}{
		plain:            plain(r),
		Sigma:            figure(r.Sigma, !r.sigmaVaries),
		ContextPool:      figure(float64(r.ContextPool), !r.contextPoolVaries),
		ContextFeatures:  figure(float64(r.ContextFeatures), !r.contextFeaturesVary),
		PixelAUROC:       figure(r.PixelAUROC, pixels),
		PRO:              figure(r.PRO, pixels),
		RegionIoU:        figure(r.RegionIoU, pixels && r.RegionIoUDefects > 0),
		RegionIoUFlagged: figure(r.RegionIoUFlagged, pixels && r.RegionIoUImages > 0),
		RegionIoUShared:  figure(r.RegionIoUShared, pixels && r.RegionIoUSharedImages > 0),
	})
}

// OperatingPoint is an image threshold measured on the test images.
type OperatingPoint struct {
	// MaxFalseAlarmRate is the false-alarm rate the threshold was chosen
	// to stay within (absent for F1-max's).
	MaxFalseAlarmRate float64 `json:"max_false_alarm_rate,omitempty"`
	// Threshold flags a score above it, as the daemon does (left out of
	// means).
	Threshold float64 `json:"threshold,omitempty"`
	// FalseAlarmRate is the share of good test images it flags,
	// MissRate the share of defective ones it passes.
	FalseAlarmRate float64 `json:"false_alarm_rate"`
	MissRate       float64 `json:"miss_rate"`
	// RegionIoU is EvalResult.RegionIoU with the model set to this
	// threshold (its pixel threshold at the model's ratio): the alarm
	// regions of the defective images it flags against the defects'
	// boxes, a miss counting 0 (evalJob.pointRegions). Two recipes at
	// their own thresholds differ as much by how many images those flag
	// as by where the regions fall; at one false-alarm rate only the
	// regions differ. Absent for F1-max's point, where the set has no
	// pixel figures, and for a --candidates row; in a mean, over the sets
	// (draws) that have it.
	RegionIoU *float64 `json:"region_iou,omitempty"`
}

// operatingFalseAlarms are the false-alarm rates eval gives an operating
// point for (EvalResult.AtFalseAlarms).
func operatingFalseAlarms() [2]float64 { return [...]float64{0.01, 0.05} }

type evalItem struct {
	it    dataset.Item
	score float64
	// truth is a defective image's defect boxes (nil for a good image or
	// one without a mask), for its regions at other thresholds.
	truth []metrics.Box
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdEval() *Command {
	return &Command{
		Name:    "eval",
		Summary: "fit on train/good of MVTec AD style data sets and measure image/pixel AUROC, PRO, region IoU, F1-max, false alarms and misses at the threshold, and speed",
		Usage:   "--data DIR [--data DIR ...] [--compare RECIPE ...] [--candidates] [--json FILE] [--report DIR] [--config FILE] [--model FILE] [overrides]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "eval")
			var data stringList
			fs.Var(&data, "data", "data set folder (train/good, test/<label>, ground_truth/<label>/<name>_mask.png); repeat for several")
			jsonOut := fs.String("json", "", "write the results as JSON to this file")
			reportDir := fs.String("report", "", "write heatmap overlays of the worst-scored images and ROC curves (PNG) here")
			cfgPath := fs.String("config", "", "configuration file (default: built-in defaults)")
			modelPath := fs.String("model", "", "evaluate this fitted model instead of fitting one")
			saveModel := fs.String("save-model", "", "keep the fitted model in this file (one data set)")
			recipe := fs.String("recipe", "", "override model.recipe (auto, fixed or a recipe's name)")
			var compare stringList
			fs.Var(&compare, "compare", "also fit this recipe (a name such as plain, or fixed, or auto) in the same run and show its figures beside; repeat for several")
			candidates := fs.Bool("candidates", false, "with recipe auto: score the real test set with every search candidate and show how the synthetic score ranks them")
			features := fs.Int("features", 0, "override model.features")
			resize := fs.String("resize", "", "override model.input.resize (fit, squash, crop)")
			sigma := fs.Float64("sigma", -1, "override model.blur_sigma")
			taps := fs.String("taps", "", "override model.taps (comma-separated tensor names)")
			zscore := fs.String("zscore", "", "override model.position_zscore (on or off)")
			contextPool := fs.Int("context", -1, "override model.context_pool (0: off)")
			contextFeatures := fs.Int("context-features", 0, "override model.context_features")
			contextWeight := fs.Float64("context-weight", 0, "override model.context_weight")
			standardize := fs.String("standardize", "", "override model.input.standardize (on or off)")
			maxTrain := fs.Int("max-train", 0, "fit on at most this many training images (spread over the set)")
			maxTest := fs.Int("max-test", 0, "score at most this many test images (spread over the set)")
			trainDraws := fs.Int("train-draws", 0, "with --max-train: fit on this many random draws of the training images (seeds 1..N), each shown, their mean and spread reported, each --compare recipe on the same draws")
			misalign := fs.Bool("misalign", false, "the PaDiM paper's Rd-MVTec protocol: every training and test image (and mask) turned by a random angle in ±10° and cropped to 87.5% of each side at a random place, then resized back, fixed by the draw's seed")
			misalignSeeds := fs.Int("misalign-seeds", 5, "with --misalign: the number of random draws (seeds 1..N), each shown, their mean reported")
			misalignParts := fs.String("misalign-parts", "all", "with --misalign: the protocol's parts applied (all; crop: the centred window alone, one draw, nothing moved; shift: the window at a random place; turn: the turn alone), to tell what each costs")
			misalignFill := fs.String("misalign-fill", "black", "with --misalign: what fills the corners a turn uncovers (black, as the paper's torchvision does; edge: the image's edge repeated)")
			dim := fs.Float64("dim", 0, fmt.Sprintf("the dark-line protocol: every training and test image darkened by one factor for the set to this mean grey level (1 to %d of 255, measured on up to %d training images; 0: off), with coloured sensor noise and hot pixels", dataset.DimMaxMean, dataset.DimSample))
			dimNoise := fs.Float64("dim-noise", dataset.DimNoise, fmt.Sprintf("with --dim: the sensor noise's standard deviation in levels (0 to %d; green, red 1.2 and blue 1.4 times it)", dataset.DimMaxNoise))
			alignMode := fs.String("align", "", "override capture.align.mode (auto, off, translate, rigid, turn)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if err := checkModelFlags(fs, *modelPath); err != nil {
				return err
			}
			if err := noArgs(fs); err != nil {
				return err
			}
			if len(data) == 0 {
				return usagef("--data is required: an MVTec AD style data set folder (repeat for several)")
			}
			cfg, err := daemon.LoadConfig(*cfgPath)
			if err != nil {
				return err
			}
			// A flag given overrides its setting whatever its value: the
			// configuration's checks below refuse the values out of range
			// (--features 0 or --context -5 once ran on the defaults
			// without a word).
			given := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
			for _, f := range []string{"json", "report", "save-model"} {
				// A variable that expanded to nothing: the user expects a
				// file, and would get none without a word (a trial).
				if given[f] && strings.TrimSpace(fs.Lookup(f).Value.String()) == "" {
					return usagef("--%s is empty: give a path, or leave --%s out", f, f)
				}
			}
			if *recipe != "" {
				cfg.Model.Recipe = *recipe
			}
			if given["features"] {
				cfg.Model.Features = *features
				cfg.Model.MinFeatures = max(min(cfg.Model.MinFeatures, *features), 1)
			}
			if *resize != "" {
				cfg.Model.Input.Resize = config.Resize(*resize)
			}
			if given["sigma"] {
				cfg.Model.BlurSigma = *sigma
			}
			if *taps != "" {
				cfg.Model.Taps = strings.Split(*taps, ",")
			}
			if err := overrideBool("--standardize", *standardize, &cfg.Model.Input.Standardize); err != nil {
				return err
			}
			if err := overrideBool("--zscore", *zscore, &cfg.Model.PositionZScore); err != nil {
				return err
			}
			if given["context"] {
				cfg.Model.ContextPool = *contextPool
			}
			if given["context-features"] {
				cfg.Model.ContextFeatures = *contextFeatures
			}
			if given["context-weight"] {
				cfg.Model.ContextWeight = *contextWeight
			}
			if *alignMode != "" {
				cfg.Capture.Align.Mode = *alignMode
			}
			if err := nameDecides(cfg.Model.Recipe, given, cfg.Model.Taps); err != nil {
				return err
			}
			for _, f := range []struct {
				name string
				v    int
			}{{"--max-train", *maxTrain}, {"--max-test", *maxTest}} {
				if f.v < 0 {
					return usagef("%s %d: want a count ≥ 0 (0: all)", f.name, f.v)
				}
			}
			for _, f := range []string{"misalign-seeds", "misalign-parts", "misalign-fill"} {
				if given[f] && !*misalign {
					return usagef("--%s applies to --misalign draws: add --misalign (or leave --%s out)", f, f)
				}
			}
			if *misalignParts == "" {
				return usagef("--misalign-parts is empty: want all, crop, shift or turn")
			}
			parts, err := dataset.ParseMisalignParts(*misalignParts)
			if err != nil {
				return usagef("--misalign-parts: %v", err)
			}
			if *misalignFill != "black" && *misalignFill != "edge" {
				return usagef("--misalign-fill %q: want black or edge", *misalignFill)
			}
			if *misalignFill == "edge" && (parts == dataset.PartsCrop || parts == dataset.PartsShift) {
				return usagef("--misalign-fill edge with --misalign-parts %s: there is no turn, so no corners to fill; leave the fill out", parts)
			}
			if given["dim-noise"] && *dim == 0 {
				return usagef("--dim-noise applies to --dim: add --dim MEAN (or leave --dim-noise out)")
			}
			if *dim != 0 && !(*dim >= 1 && *dim <= dataset.DimMaxMean) {
				return usagef("--dim %g: want 0 (off) or a mean grey level from 1 to %d", *dim, dataset.DimMaxMean)
			}
			if !(*dimNoise >= 0 && *dimNoise <= dataset.DimMaxNoise) {
				return usagef("--dim-noise %g: want a standard deviation from 0 to %d levels", *dimNoise, dataset.DimMaxNoise)
			}
			if *dim != 0 && *misalign {
				return usagef("--dim with --misalign: one protocol at a time; leave one out")
			}
			draws := []uint64{0}
			if given["train-draws"] {
				if err := checkTrainDraws(*trainDraws, *maxTrain, *misalign, *saveModel); err != nil {
					return err
				}
				draws = draws[:0]
				for s := range *trainDraws {
					draws = append(draws, uint64(s+1))
				}
			}
			if *misalign {
				if *misalignSeeds < 1 || *misalignSeeds > maxMisalignSeeds {
					return usagef("--misalign-seeds %d: want 1 to %d (each draw is a fit of its own)", *misalignSeeds, maxMisalignSeeds)
				}
				n := *misalignSeeds
				if !parts.Random() {
					if given["misalign-seeds"] && n > 1 {
						return usagef("--misalign-seeds %d with --misalign-parts %s: the centred window is the same in every draw; leave the seeds out", n, parts)
					}
					n = 1
				}
				draws = draws[:0]
				for s := range n {
					draws = append(draws, uint64(s+1))
				}
			}
			tag := misalignTag(parts, *misalignFill)
			if err := cfg.Validate(); err != nil {
				return usagef("overrides: %v", err)
			}
			if *modelPath == "" {
				daemon.WarnIgnoredSettings(cfg, env.Log) // --zscore off leaves --context out
			}
			// Where the results go is checked before minutes of fitting,
			// and before any folder is made for them.
			if err := checkOutputsApart(*jsonOut, *saveModel, *reportDir); err != nil {
				return err
			}
			if err := checkOutputsOutsideSets(data, *jsonOut, *saveModel, *reportDir); err != nil {
				return err
			}
			if *jsonOut != "" {
				// As --report and --save-model: its missing folders made,
				// and removed again, if still empty, where the run writes
				// no results.
				made, err := makeFolderOf("--json file", *jsonOut)
				if err != nil {
					return err
				}
				defer removeEmptyFolders(made)
				if err := canWriteBeside("--json file", *jsonOut, "eval.json"); err != nil {
					return err
				}
				if err := checkResultsTarget(*jsonOut); err != nil {
					return err
				}
			}
			if *saveModel != "" && (len(data) > 1 || len(compare) > 0) {
				return usagef("--save-model keeps one fitted model: give one --data and no --compare")
			}
			if *saveModel != "" && len(draws) > 1 {
				return usagef("--save-model keeps one fitted model, and each of the %d --misalign draws fits one: give --misalign-seeds 1 (the draw then saved)", len(draws))
			}
			if *saveModel != "" {
				// As fit --out: its missing folders made, and removed
				// again, if still empty, where the run saves no model.
				made, err := prepareModelFile(cfg, "--save-model file", "--save-model", *saveModel)
				if err != nil {
					return err
				}
				defer removeEmptyFolders(made) // a saved model's folder is not empty
			}
			if *reportDir != "" {
				// Removed again, if still empty, where the run writes no
				// report (a refused set, a failed fit), as --json's and
				// --save-model's folders are. An append-only folder takes
				// it all the same (a report's files go in, nothing is
				// replaced): one left there empty is the lesser harm.
				made, err := makeFolder(*reportDir, false)
				if err != nil {
					return fmt.Errorf("--report folder %s cannot be created: %w", *reportDir, err)
				}
				defer removeEmptyFolders(made)
				if err := canWriteBeside("--report folder", filepath.Join(*reportDir, ".inspectd-report-check"), ""); err != nil {
					return err
				}
			}
			columns := append([]string{cfg.Model.Recipe}, compare...)
			// The same recipe or set twice is the same fit twice, and a
			// set given twice counts twice in the mean (a trial).
			for k, r := range columns {
				if i := slices.Index(columns, r); i < k {
					where := "an earlier --compare"
					if i == 0 {
						where = "the run's recipe"
					}
					return usagef("--compare %s: already in the run (%s)", r, where)
				}
			}
			for k, d := range data {
				abs, _ := filepath.Abs(d)
				if i := slices.IndexFunc(data[:k], func(e string) bool { a, _ := filepath.Abs(e); return a == abs }); i >= 0 {
					return usagef("--data %s: the same set as --data %s", d, data[i])
				}
			}
			for k, r := range columns {
				if r != model.RecipeAuto && r != model.RecipeFixed {
					if _, err := model.ParseRecipe(r, cfg.Model.Taps); err != nil {
						flagName := "--compare"
						if k == 0 {
							flagName = "--recipe (or model.recipe)"
						}
						return usagef("%s: %v", flagName, err)
					}
				}
			}
			// Only the run's own recipe, when it is auto, shows the search's
			// candidates (evalJob.candidates): any other recipe (or auto
			// only as a --compare column) left --candidates without a word
			// and without a table (a trial).
			if *candidates && cfg.Model.Recipe != model.RecipeAuto {
				from := "--recipe " + cfg.Model.Recipe
				if !given["recipe"] {
					from = "model.recipe " + cfg.Model.Recipe
					if *cfgPath != "" {
						from += " in " + *cfgPath
					}
				}
				also := ""
				if slices.Contains(compare, model.RecipeAuto) {
					also = " (a --compare auto column does not show them)"
				}
				return usagef("--candidates scores the recipe search's candidates, with recipe auto only, and the run's recipe is %s%s: give --recipe auto, or leave --candidates out", from, also)
			}
			// Every set's test images are checked before any fit: a set
			// without good or without defective ones failed after its fit.
			sets := make([]*dataset.Set, len(data))
			for i, dir := range data {
				set, err := dataset.Scan(dir)
				if err != nil {
					return err
				}
				if err := brokenTestLinks(set); err != nil {
					return err
				}
				if err := brokenTruthLinks(set); err != nil {
					return err
				}
				if *maxTest > 0 && *maxTest < len(set.Test) {
					set.Test = spreadItems(set.Test, *maxTest)
				}
				if err := bothKinds(set, *maxTest, int64(cfg.Capture.MaxPixels)); err != nil {
					return err
				}
				if *trainDraws > 0 && *maxTrain >= len(set.Train) {
					return usagef("--train-draws %d with --max-train %d on %s: it has %s, so every draw would fit on all of them; give --max-train below %d",
						*trainDraws, *maxTrain, dir, plural(len(set.Train), "training image"), len(set.Train))
				}
				sets[i] = set
			}
			// The training images each set's fits can read, and with
			// --train-draws each draw of them, before any fit: a draw
			// that cannot differ from another is refused first.
			trains := make([][]string, len(data))
			admits := make([]*skipped, len(data))
			var drawnTrains [][][]string
			for i, set := range sets {
				admits[i] = newSkipped(cfg.Capture.MaxPixels)
				trains[i] = admitImages(pathsOf(set.Train), int64(cfg.Capture.MaxPixels), env.Log, admits[i])
				if *trainDraws == 0 {
					continue
				}
				d, err := trainingDraws(data[i], trains[i], len(set.Train), *maxTrain, *trainDraws)
				if err != nil {
					return err
				}
				drawnTrains = append(drawnTrains, d)
			}
			// The dark line's exposure, once per set from its training
			// images (with --model too: only the test images are then
			// darkened), before any fit.
			dims := make([]*dataset.Dim, len(data))
			dimInfo := make([]*DimProtocol, len(data))
			if *dim != 0 {
				for i := range sets {
					if dims[i], dimInfo[i], err = newDim(data[i], trains[i], *dim, *dimNoise, int64(cfg.Capture.MaxPixels), admits[i]); err != nil {
						return err
					}
					env.Log.Info("dark line", "data", data[i], "mean", *dim, "sample_luma", dimInfo[i].SampleLuma,
						"sample_images", dimInfo[i].SampleImages, "scale", dimInfo[i].Scale, "noise", *dimNoise)
				}
			}
			var rep EvalReport
			memo := &backbone.VariantMemo{}
			for i, dir := range data {
				set := sets[i]
				raw := imageFiles{maxPixels: int64(cfg.Capture.MaxPixels)}
				admitted, train := admits[i], trains[i]
				if *maxTrain > 0 && *maxTrain < len(train) {
					train = spread(train, *maxTrain)
				}
				all := EvalSet{Data: dir}
				label := dir + dimInfo[i].suffix() // the results' data: the set, and the protocol applied
				said := ""                         // the skipped files' summary last printed for the set
				drawn := *misalign || *trainDraws > 0
				if *misalign {
					all.Misalign = tag
				}
				if *trainDraws > 0 {
					all.TrainDrawImages = *maxTrain
				}
				// A warning about the set came once per draw and recipe
				// column (K×C copies of one sentence): gathered, and each
				// logged once when the set is done (or the run fails).
				jobEnv := env
				var sw *setWarnings
				if len(draws) > 1 || len(columns) > 1 {
					names := make([]string, len(draws))
					for d, seed := range draws {
						names[d] = fmt.Sprintf("%s%d", all.drawTag(), seed)
					}
					sw = newSetWarnings(names, columns)
					defer sw.flush(ctx) // before the error Main prints
					e := *env
					e.Log = sw.logger(env.Log.Handler())
					jobEnv = &e
				}
				for d, seed := range draws {
					files := raw
					es := EvalSet{Data: dir}
					resData := label
					if *misalign {
						files.misalign, files.root = &dataset.Misalign{Seed: seed, Parts: parts, EdgeFill: *misalignFill == "edge"}, set.Dir
						es.Data = fmt.Sprintf("%s@%s%d", dir, tag, seed)
						resData = es.Data
					}
					if dims[i] != nil {
						// Every draw and recipe column sees the same images.
						files.dim, files.root = dims[i], set.Dir
					}
					if *trainDraws > 0 {
						train = drawnTrains[i][seed-1]
						es.Data = fmt.Sprintf("%s@%s%d", label, trainDrawTag, seed)
						resData = es.Data
					}
					for k, r := range columns {
						c := *cfg
						c.Model.Recipe = r
						if err := c.Validate(); err != nil {
							return usagef("--compare %s: %v", r, err)
						}
						report := ""
						if *reportDir != "" {
							// One folder per set (numbered where two sets
							// share a folder name: a trial's two screw sets
							// wrote into one) and recipe ("model" for --model).
							col := strings.ReplaceAll(r, "/", "_")
							if *modelPath != "" {
								col = "model"
							}
							report = filepath.Join(*reportDir, reportSetName(data, i), col)
							if len(data) == 1 && len(columns) == 1 {
								report = *reportDir
							}
							if drawn {
								// One folder per draw: the draws' overlays
								// and ROC curves wrote over each other.
								report = filepath.Join(report, fmt.Sprintf("%s%d", all.drawTag(), seed))
							}
						}
						job := evalJob{memo: memo, files: files, sk: newSkipped(cfg.Capture.MaxPixels), set: set, train: train, model: *modelPath, save: *saveModel, report: report,
							candidates: *candidates && k == 0 && r == model.RecipeAuto}
						*job.sk = *admitted // the training files skipped, then the test files (each named in the log once per run)
						if sw != nil {
							sw.at(d, k)
							// Each draw and column names the test files it
							// skips, to the set's warnings, which log each
							// once with the draws it came from: named only
							// by the first, a file every draw skipped was
							// logged as the first draw's and column's alone.
							job.sk.named = maps.Clone(admitted.named)
						}
						res, cands, err := job.run(ctx, jobEnv, &c)
						if err != nil {
							if job.sk.count() > 0 {
								err = fmt.Errorf("%w (%s)", err, job.sk)
							}
							if *modelPath != "" {
								return fmt.Errorf("eval %s, model %s: %w", dir, *modelPath, err)
							}
							return fmt.Errorf("eval %s, recipe %s: %w", dir, r, err)
						}
						if sum := job.sk.String(); sum != "" && sum != said {
							fmt.Fprintln(env.Stdout, sum) // once while the draws and columns skip the same files
							said = sum
						}
						res.Data = resData // a draw's figures say which draw, and the protocol
						es.Results = append(es.Results, *res)
						if cands != nil {
							es.Candidates = cands
							es.Agreement = agreement(cands)
						}
					}
					rs := make([]*EvalResult, len(es.Results))
					for k := range es.Results {
						rs[k] = &es.Results[k]
					}
					sharedIoU(rs)
					if !drawn {
						all = es
						break
					}
					all.Draws = append(all.Draws, es)
				}
				if sw != nil {
					sw.flush(ctx)
				}
				if drawn {
					all.Results = drawsMean(all.Draws, columns)
					for k := range all.Results {
						all.Results[k].Data = fmt.Sprintf("%s@%s (mean of %s)", label, all.drawTag(), plural(len(all.Draws), "draw"))
					}
					all.spreadOverDraws()
				}
				all.Dim = dimInfo[i]
				rep.Sets = append(rep.Sets, all)
			}
			rep.Mean = meanResults(rep.Sets, columns)
			printEval(env.Stdout, &rep)
			if *jsonOut != "" {
				b, _ := json.MarshalIndent(rep, "", "  ")
				// Whole or not at all: a run stopped while writing leaves
				// the file it replaces, never half of one.
				if err := atomicfile.WriteBytes(*jsonOut, 0o644, append(b, '\n')); err != nil {
					return fmt.Errorf("--json file %s: %w", *jsonOut, err)
				}
			}
			return nil
		},
	}
}

// evalJob evaluates one recipe on one data set.
type evalJob struct {
	memo        *backbone.VariantMemo
	files       imageFiles // decodes through capture's bounded decode
	sk          *skipped
	set         *dataset.Set
	train       []string
	model, save string
	report      string
	candidates  bool
}

// run fits (or loads) the detector and scores the test set with it; with
// candidates, the search's every candidate scores it too.
func (j *evalJob) run(ctx context.Context, env *Env, cfg *config.Config) (*EvalResult, []CandidateEval, error) {
	// A model file evaluated is loaded, not fitted: no recipe search runs
	// to leave a missing bundled backbone out of (benchOptions).
	opts, err := benchOptions(cfg, env, j.model)
	if err != nil {
		return nil, nil, err
	}
	// Every recipe of the run on the same backbone variant: figures then
	// differ by the recipe alone.
	opts.Backbone.Memo = j.memo
	res := EvalResult{Data: j.set.Dir, PerDefect: map[string]float64{}, PixelPerDefect: map[string]float64{}}
	real := map[string]*RealFigures{}
	if j.candidates {
		opts.Search.OnFamily = func(f *model.Family) error {
			accs := make([]*testScore, len(f.Variants))
			for i := range accs {
				accs[i] = newTestScore(false)
			}
			err := j.scoreTestSet(ctx, env, "candidates", func(img image.Image) ([]*model.Inspection, error) { return f.Inspect(img) }, accs)
			if err != nil {
				return err
			}
			for i, v := range f.Variants {
				a := accs[i]
				rf := &RealFigures{}
				s, l := scoresLabels(a.items, "")
				rf.ImageAUROC, _ = metrics.AUROC(s, l)
				// Not computed (no test mask marks a defect pixel): nil,
				// as the set's own figures are null then, not 0.
				if px, err := a.pix.AUROC(); err == nil {
					rf.PixelAUROC = &px
				}
				if pro, err := a.pix.PRO(0.3); err == nil {
					rf.PRO = &pro
				}
				rf.FalseAlarmRate = float64(a.fa) / float64(max(a.fan, 1))
				rf.MissRate = float64(a.miss) / float64(max(a.n, 1))
				if rf.PixelAUROC != nil && a.iouD > 0 {
					iou := a.iouSum() / float64(a.iouD)
					rf.RegionIoU = &iou
				}
				real[v.Info().Recipe] = rf
			}
			return nil
		}
	}
	var det *model.Detector
	if j.model != "" {
		if det, err = model.Load(j.model, opts); err != nil {
			return nil, nil, err
		}
		// Scored at the threshold the daemon would inspect with under
		// this configuration (a trial: eval --model reported the file's
		// threshold where model.threshold.value was set).
		if err := daemon.ConfigThreshold(cfg, det, j.model, nil); err != nil {
			det.Close()
			return nil, nil, err
		}
	} else {
		start := time.Now()
		var rep model.FitReport
		src := j.files
		src.paths = j.train
		det, rep, err = model.Fit(ctx, opts, src, progressBar(env.Stderr, "fit"))
		if err != nil {
			return nil, nil, err
		}
		res.FitSeconds = time.Since(start).Seconds()
		res.SearchSeconds = rep.SearchTime.Seconds()
		res.TrainImages = len(j.train)
		env.Log.Info("fit timing", "search", rep.SearchTime.Round(time.Millisecond), "extract", rep.Extract.Round(time.Millisecond),
			"accumulate", rep.Accumulate.Round(time.Millisecond), "finalize", rep.Finalize.Round(time.Millisecond),
			"threshold", rep.Threshold.Round(time.Millisecond), "wall", rep.Wall.Round(time.Millisecond))
		if rep.Search != nil && rep.Search.Fallback == "" {
			res.Search = rep.Search.Candidates
		}
		if j.save != "" {
			// As fit --out does: a replaced file keeps its permissions
			// (an operator's 0640 or 0444), a new one is written 0644.
			if err := daemon.SaveModelFile(det, j.save); err != nil {
				return nil, nil, err
			}
		}
	}
	defer det.Close()
	info := det.Info()
	res.Recipe, res.RecipeChoice = info.Recipe, info.RecipeChoice
	res.Features, res.Grid, res.Resize, res.Sigma = info.Features, fmt.Sprintf("%dx%d", info.GridH, info.GridW), info.Resize, info.Sigma
	res.ContextPool, res.ContextFeatures, res.ContextWeight = info.ContextPool, info.ContextFeatures, info.ContextWeight
	res.ModelBytes, res.Threshold, res.ThresholdImages = info.StateBytes, info.ImageThreshold, info.ThresholdImages
	if cfg.Model.Threshold.Value > 0 {
		res.ThresholdImages = 0 // the value's, not the good images' (text: "(model.threshold.value)")
	}
	res.PixelThreshold = info.PixelThreshold
	res.LineNoise = info.LineNoise

	acc := newTestScore(true)
	if err := j.scoreTestSet(ctx, env, "eval", func(img image.Image) ([]*model.Inspection, error) {
		// A frame the daemon refuses for its registration (verdict error)
		// is scored at its estimated pose here, so that every test image
		// counts in the figures; the refusals are counted beside them.
		r, refused, err := det.InspectUnbounded(img)
		if refused != nil {
			res.RegistrationRefused++
		}
		return []*model.Inspection{r}, err
	}, []*testScore{acc}); err != nil {
		return nil, nil, err
	}
	res.Align = info.Align
	if err := acc.fill(&res, j.set); err != nil {
		return nil, nil, err
	}
	res.SkippedFiles = j.sk.count()
	res.PeakRSSMB = peakRSSMB()
	if j.report != "" {
		scores, labels := scoresLabels(acc.items, "")
		if err := writeReport(j.report, det, j.files.load, acc.items, acc.pix, scores, labels); err != nil {
			return nil, nil, fmt.Errorf("report: %w", err)
		}
		fmt.Fprintf(env.Stdout, "report written to %s\n", j.report)
	}
	if res.NoPixelFigures == "" && acc.iouD > 0 {
		if err := j.pointRegions(ctx, det, acc, &res); err != nil {
			return nil, nil, err
		}
	}
	var cands []CandidateEval
	for _, c := range res.Search {
		rf, ok := real[c.Name]
		if !ok {
			continue
		}
		cands = append(cands, CandidateEval{Recipe: c.Name, Synthetic: c.Figures, Real: *rf, Chosen: c.Name == info.Recipe})
	}
	return &res, cands, nil
}

// reportSetName is the --report subfolder of data[i]: its folder's name,
// or, where two sets share it, its place in the run and the name
// (2-screw); every set numbered so when even that would clash.
func reportSetName(data []string, i int) string {
	base := func(d string) string { return filepath.Base(filepath.Clean(d)) }
	count := map[string]int{}
	for _, d := range data {
		count[base(d)]++
	}
	named := make([]string, len(data))
	seen := map[string]bool{}
	clash := false
	for k, d := range data {
		named[k] = base(d)
		if count[named[k]] > 1 {
			named[k] = fmt.Sprintf("%d-%s", k+1, named[k])
		}
		clash = clash || seen[named[k]]
		seen[named[k]] = true
	}
	if clash {
		return fmt.Sprintf("%d-%s", i+1, base(data[i]))
	}
	return named[i]
}

// brokenTestLinks refuses a set with entries of test/ that are links
// leading nowhere (dataset.Set.BrokenTest), naming each and where it
// leads: such a test/<label> was left out of the evaluation without a
// word, and the figures were over the other labels as if it had none.
func brokenTestLinks(set *dataset.Set) error {
	return brokenLinks(set.Dir, set.BrokenTest, "test/",
		"its test images would be left out of the evaluation: restore what it leads to, or remove the link to evaluate without it",
		"their test images would be left out of the evaluation: restore what they lead to, or remove the links to evaluate without them")
}

// brokenTruthLinks refuses a set whose ground_truth, or a
// ground_truth/<label> of a defect label with test images, is a link
// leading nowhere (dataset.Set.BrokenTruth), naming each and where it
// leads, as brokenTestLinks names test/<label>: its masks were counted as
// missing, the warning naming the first mask file, not the link, and the
// pixel figures were over the other labels.
func brokenTruthLinks(set *dataset.Set) error {
	return brokenLinks(set.Dir, set.BrokenTruth, "ground_truth",
		"its masks would be left out of the pixel figures: restore what it leads to, or remove the link to evaluate without them",
		"their masks would be left out of the pixel figures: restore what they lead to, or remove the links to evaluate without them")
}

// brokenLinks refuses the set in dir for links (of its folder where,
// "test/" or "ground_truth") leading nowhere, broken (each naming the link
// and where it leads), with what is lost and what to do, said of one link
// (mendOne) or of several (mendMany); nil when there is none.
func brokenLinks(dir string, broken []error, where, mendOne, mendMany string) error {
	switch n := len(broken); n {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("data set %s: %w: %s", dir, broken[0], mendOne)
	default:
		msgs := make([]string, n)
		for i, err := range broken {
			msgs[i] = err.Error()
		}
		return fmt.Errorf("data set %s: %d entries of %s lead nowhere (%s): %s", dir, n, where, strings.Join(msgs, "; "), mendMany)
	}
}

// bothKinds says why set's test images cannot be evaluated: none, or no
// good or no defective one among them (image AUROC and the false-alarm
// and miss rates need both), counting only the images whose header says
// they will be inspected (an image format, within maxPixels, at least
// model.MinFrameSide a side), before minutes of fitting: a set whose
// defective images were all thumbnails once ended the run after its fit,
// the other sets' results with it (a trial).
func bothKinds(set *dataset.Set, maxTest int, maxPixels int64) error {
	var good, bad, unusable int
	for _, it := range set.Test {
		c, _, err := capture.CheckImageFile(it.Path, maxPixels)
		if err == nil {
			err = model.CheckFrameSize(c.Width, c.Height)
		}
		switch {
		case err != nil:
			unusable++
		case it.Anomalous():
			bad++
		default:
			good++
		}
	}
	after := ""
	if maxTest > 0 {
		after = fmt.Sprintf(" (the %d that --max-test %d keeps)", len(set.Test), maxTest)
	}
	others := ""
	if unusable > 0 {
		verb := "are"
		if unusable == 1 {
			verb = "is"
		}
		others = fmt.Sprintf(" (the other %d %s not images, too large or under %d pixels a side)", unusable, verb, model.MinFrameSide)
	}
	switch {
	case good+bad == 0 && unusable > 0:
		return fmt.Errorf("data set %s: none of its %d test images can be inspected (not images, too large or under %d pixels a side)", set.Dir, unusable, model.MinFrameSide)
	case len(set.Test) == 0:
		return fmt.Errorf("data set %s has no test images (test/good/*, test/<defect>/*)", set.Dir)
	case bad == 0:
		return fmt.Errorf("data set %s: its %s%s %s good%s: eval needs defective ones too, in test/<defect>/", set.Dir, plural(good, "test image"), after, allOrIt(good), others)
	case good == 0:
		return fmt.Errorf("data set %s: its %s%s %s defective%s: eval needs good ones too, in test/good/", set.Dir, plural(bad, "test image"), after, allOrIt(bad), others)
	}
	return nil
}

// allOrIt is "are all" for several images, "is" for one.
func allOrIt(n int) string {
	if n == 1 {
		return "is"
	}
	return "are all"
}

// testScore accumulates one detector's results over a test set.
type testScore struct {
	pix     *metrics.Pixels
	items   []evalItem
	right   int
	fa, fan int // false alarms of good images, good images
	miss, n int // misses of defective images, defective images
	// iouBy is each flagged defective image's region IoU, by path; iouD
	// counts the defective images with a mask.
	iouBy map[string]float64
	iouD  int
	// noMask counts the defective images without a mask, firstNoMask is
	// where the first one's was looked for.
	noMask      int
	firstNoMask string
	// outOfView counts the defective images whose defect a --misalign
	// transform moved out of the view (left out of the image figures).
	outOfView int
	inspect   time.Duration
	regions   metrics.Regions
	labeled   bool
}

func newTestScore(labeled bool) *testScore {
	return &testScore{pix: metrics.NewPixels(), labeled: labeled}
}

// scoreTestSet runs every test image through inspect, which returns one
// inspection per accumulator. Images and masks that cannot be read, or are
// over capture.max_pixels, are skipped and counted (once, on the final
// detector's pass).
func (j *evalJob) scoreTestSet(ctx context.Context, env *Env, label string, inspect func(image.Image) ([]*model.Inspection, error), accs []*testScore) error {
	var mask []uint8
	var gtRegions metrics.Regions
	progress := progressBar(env.Stderr, label)
	count := label == "eval"
	scored := 0
	warned := make([]model.Mismatch, len(accs)) // kinds warned of, per recipe column
	for i, it := range j.set.Test {
		if err := ctx.Err(); err != nil {
			return err
		}
		if progress != nil {
			progress(i+1, len(j.set.Test))
		}
		img, err := j.files.load(it.Path)
		if err != nil {
			if count {
				j.sk.add(env.Log, it.Path, err)
			}
			continue
		}
		b := img.Bounds()
		if err := model.CheckFrameSize(b.Dx(), b.Dy()); err != nil {
			// Not judged by the daemon either (an error result): not a
			// figure, and not the end of the run.
			if count {
				j.sk.add(env.Log, it.Path, err)
			}
			continue
		}
		if mask, err = dataset.LoadMaskWith(j.files.loadRaw, it.MaskPath, b.Dx(), b.Dy(), mask); err != nil {
			if count {
				j.sk.add(env.Log, it.MaskPath, fmt.Errorf("mask of %s: %w", it.Path, err))
			}
			continue
		}
		outOfView := false
		if p, ok := j.files.params(it.Path); ok && it.MaskPath != "" {
			had := slices.ContainsFunc(mask, func(v uint8) bool { return v != 0 })
			mask = p.ApplyMask(mask, b.Dx(), b.Dy()) // moved exactly as its image
			outOfView = it.Anomalous() && had && !slices.ContainsFunc(mask, func(v uint8) bool { return v != 0 })
		}
		s := time.Now()
		rs, err := inspect(img)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", it.Path, err)
		}
		el := time.Since(s)
		var truth []metrics.Box
		if it.MaskPath != "" {
			truth = append(truth, gtRegions.Find(mask, b.Dx(), b.Dy(), 0)...)
		}
		for k, r := range rs {
			if r.Mismatch&^warned[k] != 0 && count {
				// The daemon warns of such frames; a model scored here as
				// it was fitted (--model) on another line's images met
				// them without a word (a trial: 100% false alarms).
				warned[k] |= r.Mismatch
				env.Log.Warn("test images unlike the model's training images: scores are not comparable, good parts may be flagged and defective ones passed",
					"data", j.set.Dir, "image", it.Path, "frame", r.InputMismatch)
			}
			if err := accs[k].add(it, r, mask, truth, el, outOfView); err != nil {
				return fmt.Errorf("%s: %w", it.Path, err)
			}
		}
		scored++
	}
	if scored == 0 {
		return fmt.Errorf("data set %s: no test image could be inspected (%s)", j.set.Dir, j.sk)
	}
	if a := accs[0]; count && a.noMask > 0 { // every accumulator saw the same images
		env.Log.Warn("defective test images without a ground-truth mask are left out of the pixel figures", "data", j.set.Dir,
			"images", a.noMask, "first_missing", a.firstNoMask)
	}
	return nil
}

// add counts one inspection of a test image. outOfView says that the
// image is defective but its view shows none of the defect (see
// EvalResult.DefectsOutOfView): only its pixels count.
func (a *testScore) add(it dataset.Item, r *model.Inspection, mask []uint8, truth []metrics.Box, el time.Duration, outOfView bool) error {
	a.inspect += el
	var err error
	if it.MaskMissing != "" {
		// Which pixels are the defect is unknown: no pixel figures.
		if a.noMask++; a.firstNoMask == "" {
			a.firstNoMask = it.MaskMissing
		}
	} else if a.labeled {
		err = a.pix.AddLabeled(it.Label, r.Map, mask, r.W, r.H)
	} else {
		err = a.pix.Add(r.Map, mask, r.W, r.H)
	}
	if err != nil {
		return err
	}
	if outOfView {
		a.outOfView++
		return nil
	}
	if r.Anomalous == it.Anomalous() {
		a.right++
	}
	if it.Anomalous() {
		a.n++
		if !r.Anomalous {
			a.miss++
		}
		if len(truth) > 0 {
			a.iouD++
		}
		if len(truth) > 0 && r.Anomalous {
			pred := a.regions.FindGray(r.Mask, daemon.MaxAlarmRegions)
			if a.iouBy == nil {
				a.iouBy = map[string]float64{}
			}
			a.iouBy[it.Path] = metrics.BoxIoU(pred, truth, r.W, r.H)
		}
	} else {
		a.fan++
		if r.Anomalous {
			a.fa++
		}
	}
	e := evalItem{it: it, score: r.Score}
	if it.Anomalous() && len(truth) > 0 {
		e.truth = truth
	}
	a.items = append(a.items, e)
	return nil
}

// iouSum is the sum of the flagged defective images' region IoU, taken
// in the images' order, not the map's: the same figure to the last bit
// from run to run, and as pointRegions sums its own.
func (a *testScore) iouSum() float64 {
	var sum float64
	for _, e := range a.items {
		sum += a.iouBy[e.it.Path]
	}
	return sum
}

// fill computes the figures into res.
func (a *testScore) fill(res *EvalResult, set *dataset.Set) error {
	n := len(a.items)
	res.TestImages = n
	res.MsPerImage = float64(a.inspect.Microseconds()) / 1e3 / float64(n+a.outOfView)
	res.Accuracy = float64(a.right) / float64(n)
	res.FalseAlarmRate = float64(a.fa) / float64(max(a.fan, 1))
	res.MissRate = float64(a.miss) / float64(max(a.n, 1))
	res.MasksMissing, res.DefectsOutOfView = a.noMask, a.outOfView
	iou := a.iouSum()
	res.RegionIoU, res.RegionIoUDefects = iou/float64(max(a.iouD, 1)), a.iouD
	res.RegionIoUFlagged, res.RegionIoUImages = iou/float64(max(len(a.iouBy), 1)), len(a.iouBy)
	res.flaggedIoU = a.iouBy // RegionIoUShared: sharedIoU, once the run's recipes are in
	scores, labels := scoresLabels(a.items, "")
	var err error
	if res.ImageAUROC, err = metrics.AUROC(scores, labels); err != nil {
		return fmt.Errorf("image AUROC: %w", err)
	}
	var f1At float64
	if res.F1Max, f1At, err = metrics.F1Max(scores, labels); err != nil {
		return err
	}
	res.F1MaxAt = f1Point(scores, labels, f1At)
	res.AtFalseAlarms = nil
	for _, fa := range operatingFalseAlarms() {
		res.AtFalseAlarms = append(res.AtFalseAlarms, faPoint(scores, labels, fa))
	}
	for _, l := range set.Labels() {
		if l == dataset.Good {
			continue
		}
		s, lb := scoresLabels(a.items, l)
		if v, err := metrics.AUROC(s, lb); err == nil {
			res.PerDefect[l] = v
		}
	}
	if res.PixelAUROC, err = a.pix.AUROC(); errors.Is(err, metrics.ErrNoDefectPixels) {
		// Image figures without pixel ones, not a run lost after its fits
		// (a trial: the other sets' results went with it).
		res.PixelAUROC = 0
		switch {
		case a.noMask > 0 && a.noMask == a.n && a.n == 1:
			res.NoPixelFigures = "the one defective test image has no ground-truth mask"
		case a.noMask > 0 && a.noMask == a.n:
			res.NoPixelFigures = fmt.Sprintf("none of the %d defective test images has a ground-truth mask", a.n)
		default:
			res.NoPixelFigures = "no ground-truth mask marks a defect pixel"
		}
		res.NoPixelFigures += " (want ground_truth/<label>/<name>_mask.png for test/<label>/<name>.*, white on the defect)"
		return nil
	} else if err != nil {
		return fmt.Errorf("pixel AUROC: %w", err)
	}
	for _, l := range a.pix.Classes() {
		if v, err := a.pix.ClassAUROC(l); err == nil {
			res.PixelPerDefect[l] = v
		}
	}
	res.PRO, _ = a.pix.PRO(0.3)
	return nil
}

// pointRegions sets the RegionIoU of each of res's false-alarm operating
// points: the model set to the point's threshold (the pixel threshold at
// its ratio, daemon.PixelThresholdFor), the defective test images with a
// mask that it flags inspected again (scores do not depend on the
// threshold; the alarm regions do), and their regions measured as at the
// model's own threshold (testScore.add). The model's thresholds are put
// back.
func (j *evalJob) pointRegions(ctx context.Context, det *model.Detector, a *testScore, res *EvalResult) (err error) {
	info := det.Info()
	defer func() {
		if rerr := det.SetThresholds(info.ImageThreshold, info.PixelThreshold); rerr != nil && err == nil {
			err = fmt.Errorf("thresholds put back: %w", rerr)
		}
	}()
	var regions metrics.Regions
	for i := range res.AtFalseAlarms {
		p := &res.AtFalseAlarms[i]
		if !(p.Threshold > 0) {
			continue // no good test image: no point
		}
		if err := det.SetThresholds(p.Threshold, daemon.PixelThresholdFor(info, p.Threshold)); err != nil {
			return fmt.Errorf("region IoU at threshold %g: %w", p.Threshold, err)
		}
		var sum float64
		for _, e := range a.items {
			if e.truth == nil || !(e.score > p.Threshold) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			img, err := j.files.load(e.it.Path)
			if err != nil {
				return fmt.Errorf("region IoU at threshold %g: %s: %w", p.Threshold, e.it.Path, err)
			}
			r, _, err := det.InspectUnbounded(img)
			if err != nil {
				return fmt.Errorf("region IoU at threshold %g: inspect %s: %w", p.Threshold, e.it.Path, err)
			}
			sum += metrics.BoxIoU(regions.FindGray(r.Mask, daemon.MaxAlarmRegions), e.truth, r.W, r.H)
		}
		v := sum / float64(a.iouD)
		p.RegionIoU = &v
	}
	return nil
}

// f1Point is the operating point of an F1Max threshold at (anomalous when
// score ≥ at) under the daemon's rule (anomalous when score > threshold):
// a threshold between at and the highest score below it, which flags the
// same images (shortestBetween).
func f1Point(scores []float64, labels []bool, at float64) OperatingPoint {
	below := math.Inf(-1)
	for _, s := range scores {
		if s < at {
			below = max(below, s)
		}
	}
	if math.IsInf(below, -1) {
		below = at - max(math.Abs(at)*2e-4, 1e-9) // every score flagged: a little under the lowest
	}
	return measurePoint(scores, labels, shortestBetween(below, at))
}

// faPoint is the lowest threshold that flags at most maxFA of the normal
// scores (labels false): above the ⌊maxFA·n⌋+1-th highest normal score g,
// so that only the ⌊maxFA·n⌋ above it are flagged (fewer where scores
// tie), and below the next higher score (shortestBetween).
func faPoint(scores []float64, labels []bool, maxFA float64) OperatingPoint {
	var good []float64
	for i, s := range scores {
		if !labels[i] {
			good = append(good, s)
		}
	}
	if len(good) == 0 {
		return OperatingPoint{MaxFalseAlarmRate: maxFA}
	}
	slices.SortFunc(good, func(a, b float64) int { return cmp.Compare(b, a) })
	g := good[min(int(math.Floor(maxFA*float64(len(good))+1e-9)), len(good)-1)]
	above := math.Inf(1)
	for _, s := range scores {
		if s > g {
			above = min(above, s)
		}
	}
	if math.IsInf(above, 1) {
		above = g + max(math.Abs(g)*2e-4, 1e-9) // nothing above: a little over it
	}
	p := measurePoint(scores, labels, shortestBetween(g, above))
	p.MaxFalseAlarmRate = maxFA
	return p
}

// shortestBetween is the number with the fewest significant digits in
// (lo, hi) (lo < hi), or lo when no decimal of up to 17 digits lies
// between them: a threshold that flags the scores above lo and none at or
// below it, and that reads the same when copied from the printout (a
// trial copied 14.24 for a threshold on a good image's 14.2411 and got
// twice the false alarms eval had printed).
func shortestBetween(lo, hi float64) float64 {
	mid := lo + (hi-lo)/2
	for prec := 1; prec <= 17; prec++ {
		if v, err := strconv.ParseFloat(strconv.FormatFloat(mid, 'g', prec, 64), 64); err == nil && v > lo && v < hi {
			return v
		}
	}
	return lo
}

// measurePoint measures threshold t on the scores: the share of normal
// ones above it and of anomalous ones at or below it.
func measurePoint(scores []float64, labels []bool, t float64) OperatingPoint {
	var fa, good, miss, bad int
	for i, s := range scores {
		flagged := s > t
		if labels[i] {
			bad++
			if !flagged {
				miss++
			}
		} else {
			good++
			if flagged {
				fa++
			}
		}
	}
	return OperatingPoint{Threshold: t, FalseAlarmRate: float64(fa) / float64(max(good, 1)), MissRate: float64(miss) / float64(max(bad, 1))}
}

// agreement computes how the synthetic score ranks the candidates against
// their real figures.
func agreement(c []CandidateEval) *RankAgreement {
	if len(c) < 3 {
		return nil
	}
	syn := make([]float64, len(c))
	var img, pix, pro, mean []float64
	for i, x := range c {
		syn[i] = x.Synthetic.Score
		img = append(img, x.Real.ImageAUROC)
		sum, n := x.Real.ImageAUROC, 1.0
		for _, f := range []struct {
			v   *float64
			all *[]float64
		}{{x.Real.PixelAUROC, &pix}, {x.Real.PRO, &pro}} {
			if f.v != nil {
				*f.all = append(*f.all, *f.v)
				sum, n = sum+*f.v, n+1
			}
		}
		mean = append(mean, sum/n)
	}
	// A figure some candidate lacks has no ranking: nil, not the 0 that
	// spearman gives a constant.
	ranked := func(v []float64) *float64 {
		if len(v) != len(c) {
			return nil
		}
		r := spearman(syn, v)
		return &r
	}
	a := &RankAgreement{ImageAUROC: spearman(syn, img), PixelAUROC: ranked(pix), PRO: ranked(pro), Mean: spearman(syn, mean), Candidates: len(c)}
	for i, x := range c {
		if !x.Chosen {
			continue
		}
		a.ChosenRank = 1
		for j := range c {
			if mean[j] > mean[i] {
				a.ChosenRank++
			}
		}
	}
	return a
}

// spearman is Spearman's rank correlation of x and y (ties get their mean
// rank): the Pearson correlation of the ranks.
func spearman(x, y []float64) float64 {
	rx, ry := ranks(x), ranks(y)
	n := float64(len(x))
	var mx, my float64
	for i := range rx {
		mx += rx[i] / n
		my += ry[i] / n
	}
	var sxy, sxx, syy float64
	for i := range rx {
		sxy += (rx[i] - mx) * (ry[i] - my)
		sxx += (rx[i] - mx) * (rx[i] - mx)
		syy += (ry[i] - my) * (ry[i] - my)
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		for k := i; k < j; k++ {
			r[idx[k]] = float64(i+j+1) / 2
		}
		i = j
	}
	return r
}

// sharedIoU sets each result's RegionIoUShared: its flagged defective
// images' overlap averaged over the images every result flags.
func sharedIoU(rs []*EvalResult) {
	if len(rs) == 0 {
		return
	}
	var common []string
	for p := range rs[0].flaggedIoU {
		if !slices.ContainsFunc(rs[1:], func(r *EvalResult) bool { _, ok := r.flaggedIoU[p]; return !ok }) {
			common = append(common, p)
		}
	}
	slices.Sort(common) // summed in one order from run to run, not the map's
	for _, r := range rs {
		r.RegionIoUShared, r.RegionIoUSharedImages = 0, len(common)
		for _, p := range common {
			r.RegionIoUShared += r.flaggedIoU[p] / float64(len(common))
		}
	}
}

// nameDecides refuses the flags given that a named recipe (not auto or
// fixed) spells out itself: a recipe's name is the whole recipe (plain is
// squashed, raw distances, no context scale), so --resize fit beside
// --recipe plain would be applied to nothing while the figures read as
// plain letterboxed (a trial). taps are the taps configured, which a
// name's "custom" or "v1*" backbone takes.
func nameDecides(recipe string, given map[string]bool, taps []string) error {
	if recipe == model.RecipeAuto || recipe == model.RecipeFixed || recipe == "" {
		return nil
	}
	withTaps, err := model.ParseRecipe(recipe, taps)
	if err != nil {
		return nil // refused with the configuration's own check
	}
	withoutTaps, _ := model.ParseRecipe(recipe, nil)
	takesTaps, context := false, false
	for i, m := range append([]model.Recipe{withTaps}, withTaps.Members...) {
		o := withoutTaps
		if i > 0 {
			o = withoutTaps.Members[i-1]
		}
		takesTaps = takesTaps || !slices.Equal(m.Taps, o.Taps)
		context = context || m.ContextPool > 1
	}
	var named []string
	for _, f := range []string{"resize", "standardize", "zscore", "context", "context-weight", "context-features", "taps"} {
		if given[f] && (f != "taps" || !takesTaps) && (f != "context-features" || !context) {
			named = append(named, "--"+f)
		}
	}
	if len(named) == 0 {
		return nil
	}
	return usagef("%s: recipe %s names this itself (a recipe's name is the whole recipe: backbone and taps, resize, std, scoring and context; "+
		"README: Choosing the recipe per line): name the recipe you mean instead (e.g. v1p-fit-raw is plain PaDiM letterboxed), or use --recipe fixed with the flags",
		strings.Join(named, ", "), recipe)
}

// meanResults averages each column's figures over the sets.
func meanResults(sets []EvalSet, columns []string) []EvalResult {
	if len(sets) < 2 {
		return nil
	}
	out := make([]EvalResult, len(columns))
	n := float64(len(sets))
	for k := range out {
		m := &out[k]
		m.Data, m.Recipe = "mean", columns[k]
		// The operating points' region IoU, summed over the sets that
		// have it, and how many do.
		var pointIoU []float64
		var pointSets []int
		for _, s := range sets {
			r := s.Results[k]
			m.ImageAUROC += r.ImageAUROC / n
			if r.NoPixelFigures == "" {
				m.PixelAUROC += r.PixelAUROC
				m.PRO += r.PRO
				m.RegionIoU += r.RegionIoU
				m.PixelSets++
			}
			m.RegionIoUDefects += r.RegionIoUDefects
			// The flagged and shared figures exist only where images
			// were flagged: their mean is over those sets.
			m.RegionIoUFlagged += r.RegionIoUFlagged * float64(min(r.RegionIoUImages, 1))
			m.RegionIoUImages += min(r.RegionIoUImages, 1)
			m.RegionIoUShared += r.RegionIoUShared * float64(min(r.RegionIoUSharedImages, 1))
			m.RegionIoUSharedImages += min(r.RegionIoUSharedImages, 1)
			m.F1Max += r.F1Max / n
			m.F1MaxAt.FalseAlarmRate += r.F1MaxAt.FalseAlarmRate / n
			m.F1MaxAt.MissRate += r.F1MaxAt.MissRate / n
			for len(m.AtFalseAlarms) < len(r.AtFalseAlarms) {
				m.AtFalseAlarms = append(m.AtFalseAlarms, OperatingPoint{})
			}
			for i, p := range r.AtFalseAlarms {
				m.AtFalseAlarms[i].MaxFalseAlarmRate = p.MaxFalseAlarmRate
				m.AtFalseAlarms[i].FalseAlarmRate += p.FalseAlarmRate / n
				m.AtFalseAlarms[i].MissRate += p.MissRate / n
				if p.RegionIoU != nil {
					for len(pointIoU) <= i {
						pointIoU = append(pointIoU, 0)
						pointSets = append(pointSets, 0)
					}
					pointIoU[i] += *p.RegionIoU
					pointSets[i]++
				}
			}
			m.Accuracy += r.Accuracy / n
			m.FalseAlarmRate += r.FalseAlarmRate / n
			m.MissRate += r.MissRate / n
			m.MsPerImage += r.MsPerImage / n
			m.FitSeconds += r.FitSeconds / n
			// A count, as region_iou_defects: the sets' total (per draw:
			// the sets' counts per draw, summed).
			m.RegistrationRefused += r.RegistrationRefused
			m.RegistrationRefusedPerDraw += r.RegistrationRefusedPerDraw
			// Skipped files are a count too: the sets' total (a set's
			// mean of draws counts one draw's), not a zero read as none.
			m.SkippedFiles += r.SkippedFiles
			m.someRegistered = m.someRegistered || r.registered()
		}
		if m.PixelSets == 0 {
			m.NoPixelFigures = "no set of the mean has pixel figures"
		}
		// The model's settings where every set has the same, else null
		// (sigma, context) or left out.
		r0 := sets[0].Results[k]
		same := func(f func(EvalResult) any) bool {
			return !slices.ContainsFunc(sets, func(s EvalSet) bool { return f(s.Results[k]) != f(r0) })
		}
		if same(func(r EvalResult) any { return r.Features }) {
			m.Features = r0.Features
		}
		if same(func(r EvalResult) any { return r.Grid }) {
			m.Grid = r0.Grid
		}
		if same(func(r EvalResult) any { return r.Resize }) {
			m.Resize = r0.Resize
		}
		if same(func(r EvalResult) any { return r.Sigma }) {
			m.Sigma = r0.Sigma
		} else {
			m.sigmaVaries = true
		}
		if same(func(r EvalResult) any { return r.ContextPool }) {
			m.ContextPool = r0.ContextPool
		} else {
			m.contextPoolVaries = true
		}
		if same(func(r EvalResult) any { return r.ContextFeatures }) {
			m.ContextFeatures = r0.ContextFeatures
		} else {
			m.contextFeaturesVary = true
		}
		if same(func(r EvalResult) any { return r.ContextWeight }) {
			m.ContextWeight = r0.ContextWeight
		}
		if same(func(r EvalResult) any { return r.Align }) {
			m.Align = r0.Align
		}
		// Named by the recipe every set fitted, where they agree (a model
		// scored as it was fitted, --model, is no "auto"); by the column's
		// rule where they differ (auto chose per set).
		if r0 := sets[0].Results[k].Recipe; r0 != "" && !slices.ContainsFunc(sets, func(s EvalSet) bool { return s.Results[k].Recipe != r0 }) {
			m.Recipe = r0
		}
		m.PixelAUROC /= float64(max(m.PixelSets, 1))
		m.PRO /= float64(max(m.PixelSets, 1))
		m.RegionIoU /= float64(max(m.PixelSets, 1))
		for i, v := range pointIoU {
			if pointSets[i] > 0 && i < len(m.AtFalseAlarms) {
				v /= float64(pointSets[i])
				m.AtFalseAlarms[i].RegionIoU = &v
			}
		}
		// In a mean, the image counts are the numbers of sets averaged.
		m.RegionIoUFlagged /= float64(max(m.RegionIoUImages, 1))
		m.RegionIoUShared /= float64(max(m.RegionIoUSharedImages, 1))
	}
	return out
}

// drawsMean is, per recipe column, the mean of --misalign draws: their
// figures' means (meanResults, which leaves each draw's own threshold,
// model size and memory out; one draw's own figures when there is one),
// the test images refused per draw, and the model's description where
// every draw agrees on it.
func drawsMean(draws []EvalSet, columns []string) []EvalResult {
	out := meanResults(draws, columns)
	if len(draws) == 1 {
		out = slices.Clone(draws[0].Results)
	}
	for k := range out {
		m, first := &out[k], draws[0].Results[k]
		if m.NoPixelFigures != "" {
			m.NoPixelFigures = first.NoPixelFigures // the set's own reason (no masks), not "no draw has them"
		}
		refused, outOfView, defects, same := 0, 0, 0, true
		// One draw's skipped files (every draw reads the same set), not
		// meanResults' sum over the draws, which a mean over sets totals.
		m.SkippedFiles = 0
		for _, d := range draws {
			r := d.Results[k]
			refused += r.RegistrationRefused
			outOfView += r.DefectsOutOfView
			defects += r.RegionIoUDefects
			m.SkippedFiles = max(m.SkippedFiles, r.SkippedFiles)
			same = same && r.RecipeChoice == first.RecipeChoice && r.Features == first.Features && r.Grid == first.Grid &&
				r.Resize == first.Resize && r.Sigma == first.Sigma && r.ContextPool == first.ContextPool &&
				r.ContextFeatures == first.ContextFeatures && r.ContextWeight == first.ContextWeight &&
				r.TrainImages == first.TrainImages && r.TestImages == first.TestImages
		}
		m.RegistrationRefused, m.RegistrationRefusedPerDraw = refused, float64(refused)/float64(len(draws))
		m.DefectsOutOfView = outOfView
		// One draw's defects (every draw scores the same test images), so
		// that a mean over sets counts each set's once: the draws' total
		// counted a set of 5 defects drawn twice as 10.
		m.RegionIoUDefects = int(math.Round(float64(defects) / float64(len(draws))))
		if same {
			m.RecipeChoice, m.Features, m.Grid, m.Resize, m.Sigma = first.RecipeChoice, first.Features, first.Grid, first.Resize, first.Sigma
			m.ContextPool, m.ContextFeatures, m.ContextWeight = first.ContextPool, first.ContextFeatures, first.ContextWeight
			m.TrainImages, m.TestImages = first.TrainImages, first.TestImages
		}
	}
	return out
}

// overrideBool applies an on/off flag to a setting; "" leaves it.
func overrideBool(flag, v string, dst *bool) error {
	switch v {
	case "on":
		*dst = true
	case "off":
		*dst = false
	case "":
	default:
		return usagef("%s %q: want on or off", flag, v)
	}
	return nil
}

func pathsOf(items []dataset.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Path
	}
	return out
}

// spread picks n items evenly over the list.
func spread(p []string, n int) []string {
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, p[i*len(p)/n])
	}
	return out
}

// spreadItems picks n test items evenly over the list (which is sorted by
// label, so every label keeps its share).
func spreadItems(p []dataset.Item, n int) []dataset.Item {
	out := make([]dataset.Item, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, p[i*len(p)/n])
	}
	return out
}

// scoresLabels returns image scores and labels: all test images, or good
// images plus one defect type.
func scoresLabels(items []evalItem, only string) ([]float64, []bool) {
	var s []float64
	var l []bool
	for _, e := range items {
		if only != "" && e.it.Label != dataset.Good && e.it.Label != only {
			continue
		}
		s = append(s, e.score)
		l = append(l, e.it.Anomalous())
	}
	return s, l
}

func printEval(w io.Writer, rep *EvalReport) {
	for _, s := range rep.Sets {
		if d := s.Dim; d != nil {
			fmt.Fprintf(w, "%s: dark line (--dim %g): levels times %.4f (mean luminance %.1f over %s), noise of SD %g/%g/%g levels (R/G/B), %g hot pixels per 10,000, seed %d\n",
				s.Data, d.Mean, d.Scale, d.SampleLuma, plural(d.SampleImages, "training image"), d.NoiseRGB[0], d.NoiseRGB[1], d.NoiseRGB[2], d.HotPixelsPer10000, d.Seed)
		}
		detail := []EvalSet{s}
		if len(s.Draws) > 0 {
			detail = s.Draws // each draw's model and figures; their mean is in the table
		}
		for _, d := range detail {
			for _, r := range d.Results {
				printResultDetail(w, &r, len(d.Results) > 1)
			}
		}
		if len(s.Candidates) > 0 {
			printCandidates(w, &s)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "set\trecipe\timage AUROC\tpixel AUROC\tPRO\tregion IoU\tIoU flagged\tIoU shared\tF1-max\tfalse alarms\tmisses\trefused\tms/image\tfit s\t"
	fmt.Fprintln(tw, head)
	// An overlap over no image does not exist: n/a, not 0.
	iou := func(v float64, images int) string {
		if images == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.4f", v)
	}
	// Test images registration refuses (scored at their pose here), as
	// README's tables give them: "-" without registration, else a count,
	// 0 included (it read 0, 0.0 or "-" by the row), per draw in a mean of
	// draws (whole, or to one decimal: 1.5), the sets' total in the mean
	// over sets.
	refused := func(r *EvalResult, mean bool) string {
		switch {
		case !r.registered():
			return "-"
		case mean:
			return perDrawCount(r.RegistrationRefusedPerDraw)
		}
		return fmt.Sprint(r.RegistrationRefused)
	}
	// A model evaluated as it was fitted (--model) had no fit here: "-",
	// not a fit of 0.0 s.
	fit := func(r *EvalResult) string {
		if r.FitSeconds == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", r.FitSeconds)
	}
	// A set without pixel figures (no defect pixel in its masks): n/a.
	pixel := func(r *EvalResult, v float64) string {
		if r.NoPixelFigures != "" {
			return "n/a"
		}
		return fmt.Sprintf("%.4f", v)
	}
	row := func(name string, r *EvalResult, mean bool) {
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%s\t%s\t%s\t%s\t%s\t%.4f\t%.1f%%\t%.1f%%\t%s\t%.1f\t%s\t\n", name, r.Recipe, r.ImageAUROC, pixel(r, r.PixelAUROC), pixel(r, r.PRO),
			iou(r.RegionIoU, r.RegionIoUDefects), iou(r.RegionIoUFlagged, r.RegionIoUImages), iou(r.RegionIoUShared, r.RegionIoUSharedImages), r.F1Max, 100*r.FalseAlarmRate, 100*r.MissRate,
			refused(r, mean), r.MsPerImage, fit(r))
	}
	// Sets are named by their folder's name, or by their path where two
	// share a name (a trial: two rows named "set").
	names := map[string]int{}
	for _, s := range rep.Sets {
		names[filepath.Base(filepath.Clean(s.Data))]++
	}
	setName := func(dir string) string {
		if base := filepath.Base(filepath.Clean(dir)); names[base] == 1 {
			return base
		}
		return filepath.Clean(dir)
	}
	for _, s := range rep.Sets {
		name, base := setName(s.Data)+s.Dim.suffix(), s.Data+s.Dim.suffix()
		for _, d := range s.Draws {
			for _, r := range d.Results {
				row(name+strings.TrimPrefix(d.Data, base), &r, false) // the set as the mean row names it, then the draw
			}
		}
		if len(s.Draws) > 0 {
			name += fmt.Sprintf("@%s mean of %d", s.drawTag(), len(s.Draws))
		}
		for _, r := range s.Results {
			row(name, &r, len(s.Draws) > 0)
		}
	}
	for _, m := range rep.Mean {
		row("mean", &m, len(rep.Sets) > 0 && len(rep.Sets[0].Draws) > 0) // the sets' means of draws, summed
	}
	tw.Flush()
	printDrawSpread(w, rep, setName)
	// The mean's pixel figures are over the sets that have them: said, as
	// the row alone would read as over every set.
	for _, m := range rep.Mean {
		if m.PixelSets > 0 && m.PixelSets < len(rep.Sets) {
			fmt.Fprintf(w, "mean of %s: pixel AUROC, PRO and region IoU over the %d of %d sets that have pixel ground truth\n", m.Recipe, m.PixelSets, len(rep.Sets))
		}
	}
}

// registered reports whether r's model registers its frames, or (a mean)
// some of those it is the mean of do: test images may then be refused.
func (r *EvalResult) registered() bool {
	return r.Align != "" && r.Align != "off" || r.someRegistered
}

// perDrawCount words a mean count per draw: whole as a count is ("0",
// "3"), else to one decimal ("1.5"), or two where one would read as none
// (1 image in 50 draws: "0.02", not "0.0").
func perDrawCount(v float64) string {
	switch {
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case v < 0.05:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// printResultDetail prints one recipe's figures on one set (or draw).
// compared says the run has more than one recipe column (--compare): every
// block then shows the overlap over the images all of them flag, as the
// table does, even where it is over the same images as the flagged one.
func printResultDetail(w io.Writer, r *EvalResult, compared bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "data\t%s\n", r.Data)
	ctx := "off"
	if r.ContextPool > 0 {
		ctx = fmt.Sprintf("cells of %d, d=%d, weight %g", r.ContextPool, r.ContextFeatures, r.ContextWeight)
	}
	choice := ""
	if r.RecipeChoice != "" {
		choice = " (" + r.RecipeChoice + ")"
	}
	fmt.Fprintf(tw, "recipe\t%s%s\n", r.Recipe, choice)
	fmt.Fprintf(tw, "model\td=%d grid %s resize %s sigma %g context %s\n", r.Features, r.Grid, r.Resize, r.Sigma, ctx)
	fmt.Fprintf(tw, "image AUROC\t%.4f\n", r.ImageAUROC)
	if r.NoPixelFigures != "" {
		fmt.Fprintf(tw, "pixel AUROC\tn/a: %s\n", r.NoPixelFigures)
		fmt.Fprintf(tw, "PRO (FPR ≤ 0.3)\tn/a\n")
		fmt.Fprintf(tw, "region IoU\tn/a\n")
	} else {
		fmt.Fprintf(tw, "pixel AUROC\t%.4f\n", r.PixelAUROC)
		fmt.Fprintf(tw, "PRO (FPR ≤ 0.3)\t%.4f\n", r.PRO)
		grown := ""
		if r.Threshold > 0 && r.PixelThreshold > 0 {
			grown = fmt.Sprintf(" grown to %.2g × the threshold", r.PixelThreshold/r.Threshold)
		}
		fmt.Fprintf(tw, "region IoU\t%.4f (alarm regions%s against the defects' boxes over %s with a mask, a miss counts 0)\n", r.RegionIoU, grown, plural(r.RegionIoUDefects, "defective image"))
	}
	switch {
	case r.NoPixelFigures != "":
	case r.RegionIoUImages > 0:
		fmt.Fprintf(tw, "  flagged\t%.4f (over the %s)\n", r.RegionIoUFlagged, plural(r.RegionIoUImages, "flagged one"))
	default:
		fmt.Fprintf(tw, "  flagged\tn/a (no defective image with a mask flagged)\n")
	}
	switch {
	case r.NoPixelFigures != "":
	case r.RegionIoUSharedImages > 0 && (compared || r.RegionIoUSharedImages != r.RegionIoUImages):
		fmt.Fprintf(tw, "  shared\t%.4f (over the %d that every recipe of the run flags)\n", r.RegionIoUShared, r.RegionIoUSharedImages)
	case compared:
		fmt.Fprintf(tw, "  shared\tn/a (no defective image with a mask that every recipe of the run flags)\n")
	}
	if r.MasksMissing > 0 {
		verb := "have"
		if r.MasksMissing == 1 {
			verb = "has"
		}
		fmt.Fprintf(tw, "masks missing\t%s %s no ground_truth/<label>/<name>_mask.png: left out of the pixel figures\n", plural(r.MasksMissing, "defective test image"), verb)
	}
	if r.DefectsOutOfView > 0 {
		fmt.Fprintf(tw, "defects out of view\t%s whose defect the transform cut out of the view: left out of the image figures, their pixels normal ones\n", plural(r.DefectsOutOfView, "defective test image"))
	}
	fmt.Fprintf(tw, "F1-max\t%.4f%s\n", r.F1Max, pointText(r.F1MaxAt, r))
	for _, p := range r.AtFalseAlarms {
		fmt.Fprintf(tw, "  ≤ %g%% false alarms\t%s\n", 100*p.MaxFalseAlarmRate, strings.TrimPrefix(pointText(p, r), " "))
	}
	if len(r.AtFalseAlarms) > 0 {
		fmt.Fprintf(tw, "  \t(these thresholds are chosen on the test images themselves: new parts will fare somewhat worse)\n")
	}
	labels := make([]string, 0, len(r.PerDefect))
	for l := range r.PerDefect {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	fmt.Fprintf(tw, "  per defect\timage   pixel\n")
	for _, l := range labels {
		px := "  -"
		if a, ok := r.PixelPerDefect[l]; ok {
			px = fmt.Sprintf("%.4f", a)
		}
		fmt.Fprintf(tw, "  %s\t%.4f  %s\n", l, r.PerDefect[l], px)
	}
	from := "from " + plural(r.ThresholdImages, "good image")
	if r.ThresholdImages == 0 {
		from = "(model.threshold.value)" // a trial: "from 0 good images"
	}
	fmt.Fprintf(tw, "threshold\t%.4g %s: false alarms %.1f%% of good test images, misses %.1f%% of defective ones (%.1f%% judged right)\n",
		r.Threshold, from, 100*r.FalseAlarmRate, 100*r.MissRate, 100*r.Accuracy)
	if r.TrainImages > 0 {
		s := ""
		if r.SearchSeconds > 0 {
			s = fmt.Sprintf(" (recipe search %.1f s)", r.SearchSeconds)
		}
		fmt.Fprintf(tw, "fit\t%s in %.1f s%s\n", plural(r.TrainImages, "image"), r.FitSeconds, s)
	}
	if r.LineNoise != nil {
		fmt.Fprintf(tw, "line noise\t%s\n", lineNoiseText(*r.LineNoise))
	}
	fmt.Fprintf(tw, "time per image\t%.1f ms (%s)\n", r.MsPerImage, plural(r.TestImages+r.DefectsOutOfView, "test image"))
	fmt.Fprintf(tw, "model bytes\t%d (%.1f MiB scoring state)\n", r.ModelBytes, float64(r.ModelBytes)/(1<<20))
	fmt.Fprintf(tw, "peak RSS\t%.0f MB\n", r.PeakRSSMB)
	if r.Align != "" && r.Align != "off" {
		fmt.Fprintf(tw, "registration\t%s; %s beyond its bounds (verdict error in the daemon), scored at their estimated pose\n", r.Align, plural(r.RegistrationRefused, "test image"))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// pointText describes an operating point: its threshold, as a share of
// the model's (r's: the fitted one, or model.threshold.value's, which
// ThresholdImages 0 says), and the false alarms, misses and, where
// measured, region IoU there. A share far from 1 is shown in 3
// significant digits, where two decimals said 0.00× (or 20000000.00×) of
// a value far from the scores.
func pointText(p OperatingPoint, r *EvalResult) string {
	rel := ""
	if r != nil && r.Threshold > 0 {
		which := "the fitted one"
		if r.ThresholdImages == 0 {
			which = "model.threshold.value"
		}
		x := p.Threshold / r.Threshold
		f := fmt.Sprintf("%.2f", x)
		if x < 0.01 || x >= 1000 {
			f = strconv.FormatFloat(x, 'g', 3, 64)
		}
		rel = fmt.Sprintf(" (%s× %s)", f, which)
	}
	iou := ""
	if p.RegionIoU != nil {
		iou = fmt.Sprintf(", region IoU %.4f", *p.RegionIoU)
	}
	return fmt.Sprintf(" at image threshold %s%s: false alarms %.1f%%, misses %.1f%%%s", strconv.FormatFloat(p.Threshold, 'g', -1, 64), rel, 100*p.FalseAlarmRate, 100*p.MissRate, iou)
}

// optFigure formats a figure that may not have been computed (nil): n/a.
func optFigure(v *float64, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

// printCandidates shows every search candidate's synthetic figures beside
// its real ones, and how well the first rank the second.
func printCandidates(w io.Writer, s *EvalSet) {
	// The real figures are on the darkened test images, where --dim is on.
	fmt.Fprintf(w, "recipe candidates on %s: synthetic defects (validation) against the real test set\n", s.Data+s.Dim.suffix())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "recipe\tsyn score\tsyn image\tsyn pixel\tsyn PRO\tsyn FA\treal image\treal pixel\treal PRO\treal FA\treal miss\treal region IoU\t")
	for _, c := range s.Candidates {
		mark := ""
		if c.Chosen {
			mark = " *"
		}
		fmt.Fprintf(tw, "%s%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f%%\t%.4f\t%s\t%s\t%.1f%%\t%.1f%%\t%s\t\n", c.Recipe, mark, c.Synthetic.Score, c.Synthetic.ImageAUROC, c.Synthetic.PixelAUROC,
			c.Synthetic.PRO, 100*c.Synthetic.FalseAlarms, c.Real.ImageAUROC, optFigure(c.Real.PixelAUROC, "%.4f"), optFigure(c.Real.PRO, "%.4f"),
			100*c.Real.FalseAlarmRate, 100*c.Real.MissRate, optFigure(c.Real.RegionIoU, "%.4f"))
	}
	tw.Flush()
	if a := s.Agreement; a != nil {
		fmt.Fprintf(w, "rank correlation (Spearman) of the synthetic score with real image AUROC %.3f, pixel AUROC %s, PRO %s, their mean %.3f; chosen ranks %d of %d by the real mean\n\n",
			a.ImageAUROC, optFigure(a.PixelAUROC, "%.3f"), optFigure(a.PRO, "%.3f"), a.Mean, a.ChosenRank, a.Candidates)
	}
}

// peakRSSMB reads VmHWM, the process's peak resident set.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.Sys) / (1 << 20)
}

// writeReport draws the worst-scored test images, the lowest-scored defects
// (misses first) and the highest-scored good images (false alarms first),
// each as image | heatmap overlay | ground-truth mask | predicted mask, and
// the image and pixel ROC curves.
func writeReport(dir string, det *model.Detector, load dataset.Loader, items []evalItem, pix *metrics.Pixels, scores []float64, labels []bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var defects, goods []evalItem
	for _, e := range items {
		if e.it.Anomalous() {
			defects = append(defects, e)
		} else {
			goods = append(goods, e)
		}
	}
	sort.Slice(defects, func(i, j int) bool { return defects[i].score < defects[j].score })
	sort.Slice(goods, func(i, j int) bool { return goods[i].score > goods[j].score })
	const n = 6
	write := func(prefix string, list []evalItem) error {
		for k := 0; k < n && k < len(list); k++ {
			e := list[k]
			img, err := load(e.it.Path)
			if err != nil {
				return err
			}
			// A frame the daemon would refuse for its registration is
			// shown at its estimated pose, as the figures score it, and
			// named so.
			r, refused, err := det.InspectUnbounded(img)
			if err != nil {
				return err
			}
			gt, err := dataset.LoadMaskWith(load, e.it.MaskPath, r.W, r.H, nil)
			if err != nil {
				return err
			}
			over := render.Overlay(nil, img, r.Map, r.W, r.H, r.Threshold)
			panel := render.Panel(img, over, render.Mask(gt, r.W, r.H), r.Mask)
			name := fmt.Sprintf("%s_%d_%s_%s_score%.3g", prefix, k+1, e.it.Label,
				strings.TrimSuffix(filepath.Base(e.it.Path), filepath.Ext(e.it.Path)), r.Normalized)
			if refused != nil {
				name += "_refused"
			}
			name += ".png"
			if err := savePNG(filepath.Join(dir, name), panel); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write("defect_lowest", defects); err != nil {
		return err
	}
	if err := write("good_highest", goods); err != nil {
		return err
	}
	imgROC, err := metrics.ROC(scores, labels)
	if err != nil {
		return err
	}
	pixROC, err := pix.ROC(2000)
	switch {
	case errors.Is(err, metrics.ErrNoDefectPixels):
		pixROC = nil // no pixel figures for this set: the image curve alone (a trial: the run ended)
	case err != nil:
		return err
	}
	p := plot.New()
	p.Title.Text = "ROC: image (solid), pixel (dashed)"
	if pixROC == nil {
		p.Title.Text = "ROC: image (no pixel ground truth)"
	}
	p.X.Label.Text = "false positive rate"
	p.Y.Label.Text = "true positive rate"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	for _, c := range []struct {
		name string
		pts  []metrics.ROCPoint
	}{{"image", imgROC}, {"pixel", pixROC}} {
		if len(c.pts) == 0 {
			continue
		}
		xy := make(plotter.XYs, len(c.pts))
		for i, q := range c.pts {
			xy[i].X, xy[i].Y = q.FPR, q.TPR
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		if c.name == "pixel" {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(c.name, l)
	}
	p.Legend.Top, p.Legend.Left = false, false
	c, err := p.WriterTo(5*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "roc.png"), 0o644, func(w io.Writer) error {
		_, err := c.WriteTo(w)
		return err
	})
}

// savePNG writes img to path as a new file renamed into place: a link
// there (a report folder's from before) is replaced, not written through
// (a trial's link roc.png → ../victim.txt had the file outside the folder
// overwritten with the ROC curve).
func savePNG(path string, img image.Image) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return png.Encode(w, img) })
}

// plural is "n thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// fitFlags are eval's flags that decide how a model is fitted.
var fitFlags = []string{"recipe", "compare", "candidates", "features", "resize", "sigma", "taps", "zscore", "context", "context-features",
	"context-weight", "standardize", "max-train", "train-draws", "align", "save-model"}

// checkModelFlags refuses flags that decide a fit beside --model, whose
// file's own settings apply (they were once ignored without a word), and
// an --align given empty.
func checkModelFlags(fs *flag.FlagSet, modelPath string) error {
	var set []string
	var err error
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "align" && f.Value.String() == "" {
			err = usagef("--align: want auto, off, translate, rigid or turn")
		}
		if modelPath != "" && slices.Contains(fitFlags, f.Name) {
			set = append(set, "--"+f.Name)
		}
	})
	if err != nil {
		return err
	}
	if len(set) > 0 {
		return usagef("%s: with --model %s (evaluated with the settings it was fitted with) a flag that decides how a model is fitted does not apply; leave it out, or leave --model out to fit one",
			strings.Join(set, ", "), modelPath)
	}
	return nil
}

// maxMisalignSeeds bounds --misalign-seeds: each draw fits a model (the
// paper averages 5); a mistyped count once allocated until the machine
// ran out of memory.
const maxMisalignSeeds = 100

// misalignTag names a --misalign run's draws in their data labels:
// "misalign" for the paper's protocol, else the parts applied, with
// "-edgefill" when the turn's corners repeat the image's edge.
func misalignTag(parts dataset.MisalignParts, fill string) string {
	tag := "misalign"
	if parts != dataset.PartsAll {
		tag = string(parts)
	}
	if fill == "edge" {
		tag += "-edgefill"
	}
	return tag
}
