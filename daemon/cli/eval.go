package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/metrics"
	"github.com/inspectd/inspectd/model/render"
)

// EvalResult is what `inspectd eval --json` writes.
type EvalResult struct {
	Data       string  `json:"data"`
	ImageAUROC float64 `json:"image_auroc"`
	PixelAUROC float64 `json:"pixel_auroc"`
	PRO        float64 `json:"pro"`
	F1Max      float64 `json:"f1_max"`
	MsPerImage float64 `json:"ms_per_image"`
	FitSeconds float64 `json:"fit_seconds"`
	ModelBytes int64   `json:"model_bytes"`
	Features   int     `json:"features"`
	Grid       string  `json:"grid"`
	Resize     string  `json:"resize"`
	Sigma      float64 `json:"sigma"`
	// ContextPool is the context scale's cell in finest-tap positions (0:
	// none), ContextFeatures its d and ContextWeight its weight.
	ContextPool     int                `json:"context_pool"`
	ContextFeatures int                `json:"context_features"`
	ContextWeight   float64            `json:"context_weight,omitempty"`
	TrainImages     int                `json:"train_images"`
	TestImages      int                `json:"test_images"`
	PerDefect       map[string]float64 `json:"image_auroc_per_defect"`
	// PixelPerDefect is each type's defect pixels against all normal
	// pixels of the test set.
	PixelPerDefect map[string]float64 `json:"pixel_auroc_per_defect"`
	Threshold      float64            `json:"threshold"`
	// Accuracy of the fitted threshold: share of test images judged right.
	Accuracy  float64 `json:"threshold_accuracy"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// SkippedFiles are training and test images (or their masks) left out
	// because they could not be read or were over capture.max_pixels.
	SkippedFiles int `json:"skipped_files"`
}

type evalItem struct {
	it    dataset.Item
	score float64
}

func cmdEval() *Command {
	return &Command{
		Name:    "eval",
		Summary: "fit on train/good of an MVTec AD style data set and measure image/pixel AUROC, PRO, F1-max and speed",
		Usage:   "--data DIR [--json FILE] [--report DIR] [--config FILE] [--model FILE] [overrides]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "eval")
			data := fs.String("data", "", "data set folder (train/good, test/<label>, ground_truth/<label>/<name>_mask.png)")
			jsonOut := fs.String("json", "", "write the results as JSON to this file")
			reportDir := fs.String("report", "", "write heatmap overlays of the worst-scored images and ROC curves (PNG) here")
			cfgPath := fs.String("config", "", "configuration file (default: built-in defaults)")
			modelPath := fs.String("model", "", "evaluate this fitted model instead of fitting one")
			saveModel := fs.String("save-model", "", "keep the fitted model in this file")
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
			cfg, err := parseDataCommand(fs, args, data, cfgPath)
			if err != nil {
				return err
			}
			if *features > 0 {
				cfg.Model.Features = *features
				cfg.Model.MinFeatures = min(cfg.Model.MinFeatures, *features)
			}
			if *resize != "" {
				cfg.Model.Input.Resize = config.Resize(*resize)
			}
			if *sigma >= 0 {
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
			if *contextPool >= 0 {
				cfg.Model.ContextPool = *contextPool
			}
			if *contextFeatures > 0 {
				cfg.Model.ContextFeatures = *contextFeatures
			}
			if *contextWeight > 0 {
				cfg.Model.ContextWeight = *contextWeight
			}
			if err := cfg.Validate(); err != nil {
				return usagef("overrides: %v", err)
			}
			opts, err := daemon.ModelOptions(cfg, env.Log)
			if err != nil {
				return err
			}
			set, err := dataset.Scan(*data)
			if err != nil {
				return err
			}
			if len(set.Test) == 0 {
				return fmt.Errorf("data set %s has no test images", *data)
			}
			res := EvalResult{Data: *data, PerDefect: map[string]float64{}, PixelPerDefect: map[string]float64{}}
			files := imageFiles{maxPixels: int64(cfg.Capture.MaxPixels)}
			sk := newSkipped(cfg.Capture.MaxPixels)
			var det *model.Detector
			if *modelPath != "" {
				det, err = model.Load(*modelPath, opts)
				if err != nil {
					return err
				}
			} else {
				train := admitImages(pathsOf(set.Train), files.maxPixels, env.Log, sk)
				if *maxTrain > 0 && *maxTrain < len(train) {
					train = spread(train, *maxTrain)
				}
				start := time.Now()
				var rep model.FitReport
				fit := files
				fit.paths = train
				det, rep, err = model.Fit(ctx, opts, fit, progressBar(env.Stderr, "fit"))
				if err != nil {
					if sk.count() > 0 {
						return fmt.Errorf("%w (%s)", err, sk)
					}
					return err
				}
				res.FitSeconds = time.Since(start).Seconds()
				res.TrainImages = len(train)
				env.Log.Info("fit timing", "extract", rep.Extract.Round(time.Millisecond), "accumulate", rep.Accumulate.Round(time.Millisecond),
					"finalize", rep.Finalize.Round(time.Millisecond), "threshold", rep.Threshold.Round(time.Millisecond), "wall", rep.Wall.Round(time.Millisecond))
				if *saveModel != "" {
					if err := det.Save(*saveModel); err != nil {
						return err
					}
				}
			}
			defer det.Close()
			info := det.Info()
			res.Features, res.Grid, res.Resize, res.Sigma = info.Features, fmt.Sprintf("%dx%d", info.GridH, info.GridW), info.Resize, info.Sigma
			res.ContextPool, res.ContextFeatures, res.ContextWeight = info.ContextPool, info.ContextFeatures, info.ContextWeight
			res.ModelBytes, res.Threshold = info.StateBytes, info.ImageThreshold

			pix := metrics.NewPixels()
			items := make([]evalItem, 0, len(set.Test))
			var mask []uint8
			var inspect time.Duration
			progress := progressBar(env.Stderr, "eval")
			right := 0
			for i, it := range set.Test {
				if err := ctx.Err(); err != nil {
					return err
				}
				if progress != nil {
					progress(i+1, len(set.Test))
				}
				img, err := files.load(it.Path)
				if err != nil {
					sk.add(env.Log, it.Path, err)
					continue
				}
				s := time.Now()
				r, err := det.Inspect(img)
				if err != nil {
					return fmt.Errorf("inspect %s: %w", it.Path, err)
				}
				inspect += time.Since(s)
				if mask, err = dataset.LoadMaskWith(files.load, it.MaskPath, r.W, r.H, mask); err != nil {
					sk.add(env.Log, it.MaskPath, fmt.Errorf("mask of %s: %w", it.Path, err))
					continue
				}
				if err := pix.AddLabeled(it.Label, r.Map, mask, r.W, r.H); err != nil {
					return fmt.Errorf("%s: %w", it.Path, err)
				}
				if r.Anomalous == it.Anomalous() {
					right++
				}
				items = append(items, evalItem{it, r.Score})
			}
			if len(items) == 0 {
				return fmt.Errorf("data set %s: no test image could be inspected (%s)", *data, sk)
			}
			res.TestImages = len(items)
			res.SkippedFiles = sk.count()
			res.MsPerImage = float64(inspect.Microseconds()) / 1e3 / float64(len(items))
			res.Accuracy = float64(right) / float64(len(items))
			scores, labels := scoresLabels(items, "")
			if res.ImageAUROC, err = metrics.AUROC(scores, labels); err != nil {
				return fmt.Errorf("image AUROC: %w", err)
			}
			if res.F1Max, _, err = metrics.F1Max(scores, labels); err != nil {
				return err
			}
			for _, l := range set.Labels() {
				if l == dataset.Good {
					continue
				}
				s, lb := scoresLabels(items, l)
				if a, err := metrics.AUROC(s, lb); err == nil {
					res.PerDefect[l] = a
				}
			}
			if res.PixelAUROC, err = pix.AUROC(); err != nil {
				return fmt.Errorf("pixel AUROC: %w", err)
			}
			for _, l := range pix.Classes() {
				if a, err := pix.ClassAUROC(l); err == nil {
					res.PixelPerDefect[l] = a
				}
			}
			if res.PRO, err = pix.PRO(0.3); err != nil {
				env.Log.Warn("PRO not computed", "err", err)
			}
			res.PeakRSSMB = peakRSSMB()
			printEval(env.Stdout, &res)
			if sk.count() > 0 {
				fmt.Fprintln(env.Stdout, sk)
			}
			if *jsonOut != "" {
				b, _ := json.MarshalIndent(res, "", "  ")
				if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			if *reportDir != "" {
				if err := writeReport(*reportDir, det, files.load, items, pix, scores, labels); err != nil {
					return fmt.Errorf("report: %w", err)
				}
				fmt.Fprintf(env.Stdout, "report written to %s\n", *reportDir)
			}
			return nil
		},
	}
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

func printEval(w io.Writer, r *EvalResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "data\t%s\n", r.Data)
	ctx := "off"
	if r.ContextPool > 0 {
		ctx = fmt.Sprintf("cells of %d, d=%d, weight %g", r.ContextPool, r.ContextFeatures, r.ContextWeight)
	}
	fmt.Fprintf(tw, "model\td=%d grid %s resize %s sigma %g context %s\n", r.Features, r.Grid, r.Resize, r.Sigma, ctx)
	fmt.Fprintf(tw, "image AUROC\t%.4f\n", r.ImageAUROC)
	fmt.Fprintf(tw, "pixel AUROC\t%.4f\n", r.PixelAUROC)
	fmt.Fprintf(tw, "PRO (FPR ≤ 0.3)\t%.4f\n", r.PRO)
	fmt.Fprintf(tw, "F1-max\t%.4f\n", r.F1Max)
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
	fmt.Fprintf(tw, "threshold\t%.4g (%.1f%% of test images judged right)\n", r.Threshold, 100*r.Accuracy)
	if r.TrainImages > 0 {
		fmt.Fprintf(tw, "fit\t%d images in %.1f s\n", r.TrainImages, r.FitSeconds)
	}
	fmt.Fprintf(tw, "time per image\t%.1f ms (%d test images)\n", r.MsPerImage, r.TestImages)
	fmt.Fprintf(tw, "model bytes\t%d (%.1f MiB scoring state)\n", r.ModelBytes, float64(r.ModelBytes)/(1<<20))
	fmt.Fprintf(tw, "peak RSS\t%.0f MB\n", r.PeakRSSMB)
	tw.Flush()
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
			r, err := det.Inspect(img)
			if err != nil {
				return err
			}
			gt, err := dataset.LoadMaskWith(load, e.it.MaskPath, r.W, r.H, nil)
			if err != nil {
				return err
			}
			over := render.Overlay(nil, img, r.Map, r.W, r.H, r.Threshold)
			panel := render.Panel(img, over, render.Mask(gt, r.W, r.H), r.Mask)
			name := fmt.Sprintf("%s_%d_%s_%s_score%.3g.png", prefix, k+1, e.it.Label,
				strings.TrimSuffix(filepath.Base(e.it.Path), filepath.Ext(e.it.Path)), r.Normalized)
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
	if err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = "ROC: image (solid), pixel (dashed)"
	p.X.Label.Text = "false positive rate"
	p.Y.Label.Text = "true positive rate"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	for _, c := range []struct {
		name string
		pts  []metrics.ROCPoint
	}{{"image", imgROC}, {"pixel", pixROC}} {
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
	return p.Save(5*vg.Inch, 5*vg.Inch, filepath.Join(dir, "roc.png"))
}

func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
