package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"strings"

	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/backbone"
)

// cmdModelInfo describes a fitted model file: what `status` and the info
// topic say of a running model, without starting the daemon.
func cmdModelInfo() *Command {
	return &Command{
		Name:    "model info",
		Summary: "describe a fitted model file: recipe, backbone, thresholds, images, grid, state size, members",
		Usage:   "[--config FILE] [--json] MODEL",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "model info")
			cfgPath := fs.String("config", "", "configuration file whose backbone settings load it (default: built-in defaults)")
			asJSON := fs.Bool("json", false, "print the description as JSON (the fields of status's model)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if err := oneFile(fs); err != nil {
				return err
			}
			cfg, err := daemon.LoadConfig(*cfgPath)
			if err != nil {
				return err
			}
			path := fs.Arg(0)
			if err := daemon.ModelLinkLoopError(path); err != nil {
				return err
			}
			opts, err := daemon.LoadOptions(cfg, env.Log) // no recipe search runs
			if fe := (*daemon.FieldError)(nil); errors.As(err, &fe) && fe.Field == "model.backbone" {
				// The backbone is not on this machine (a binary run
				// outside its install without INSPECTD_SHARE): the file
				// still describes itself, and only the check that the
				// backbone is the one it was fitted on is left undone.
				// It scores as a load would (model.precision), and a file
				// over the memory budget is said to be, as with the
				// backbone: those come from the configuration alone.
				dopts, derr := daemon.DescribeOptions(cfg, env.Log)
				if derr != nil {
					return derr
				}
				info, derr := model.DescribeFile(path, dopts)
				if derr != nil {
					return derr
				}
				warnOverBudget(env, info, dopts.MemoryBudget)
				if err := printModelInfo(env, info, *asJSON); err != nil {
					return err
				}
				fmt.Fprintf(env.Stderr, "NOTE: not checked that the backbone it was fitted on (%s, sha256 %s) is on this machine, unchanged: %v\n", info.Backbone, info.BackboneSHA256, err)
				return nil
			}
			if err != nil {
				return err
			}
			// The file is described, not run: the backbone loads as it is,
			// and a model over the memory budget is described all the same
			// (a trial: refused), with a warning, as a start would refuse it.
			opts.Backbone.Optimize = backbone.OptimizeOff
			budget := opts.MemoryBudget
			opts.MemoryBudget = 0
			det, err := model.Load(path, opts)
			if err != nil {
				// A file that is sound by itself but that this
				// configuration's backbone cannot run (a bundled backbone
				// not installed, another backbone's file) is described
				// all the same, with why, as over the memory budget.
				info, derr := model.DescribeFile(path, opts)
				if derr != nil {
					return err
				}
				warnOverBudget(env, info, budget)
				if err := printModelInfo(env, info, *asJSON); err != nil {
					return err
				}
				fmt.Fprintf(env.Stderr, "WARNING: inspectd would not load it under this configuration: %v\n", err)
				return nil
			}
			defer det.Close()
			info := det.Info()
			warnOverBudget(env, info, budget)
			return printModelInfo(env, info, *asJSON)
		},
	}
}

// warnOverBudget warns when the described model's scoring state is over
// model.memory_budget (budget bytes, 0: none), which a start would refuse:
// however the file was described, with its backbone or without.
func warnOverBudget(env *Env, info model.Info, budget int64) {
	if budget > 0 && info.StateBytes > budget {
		fmt.Fprintf(env.Stderr, "WARNING: its scoring state, %d bytes, is over model.memory_budget (%d bytes): inspectd would not load it under this configuration\n",
			info.StateBytes, budget)
	}
}

// printModelInfo writes model info's description: as JSON, or one line
// per field and a block per ensemble member.
func printModelInfo(env *Env, info model.Info, asJSON bool) error {
	if asJSON {
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, string(b))
		return nil
	}
	writeModelInfo(env, info, "")
	for k, m := range info.Members {
		fmt.Fprintf(env.Stdout, "member %d:\n", k+1)
		writeModelInfo(env, m, "  ")
	}
	return nil
}

func writeModelInfo(env *Env, i model.Info, indent string) {
	w := env.Stdout
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%s%-16s %s\n", indent, k, fmt.Sprintf(format, a...)) }
	choice := ""
	if i.RecipeChoice != "" {
		choice = " (" + i.RecipeChoice + ")"
	}
	line("recipe", "%s%s", i.Recipe, choice)
	if f := i.RecipeFigures; f != nil {
		line("chosen by", "image AUROC %.4f, pixel AUROC %.4f, PRO %.4f, false alarms %.1f%%, misses %.1f%% on %d held-out good images and %d with synthetic defects",
			f.ImageAUROC, f.PixelAUROC, f.PRO, 100*f.FalseAlarms, 100*f.Misses, f.Good, f.Defects)
		if f.PixelRatio > 0 && f.RegionImages > 0 {
			// The share in force is the thresholds' own: a threshold
			// command's explicit pixel threshold moves it from the search's.
			inForce := f.PixelRatio
			if i.ImageThreshold > 0 && i.PixelThreshold > 0 {
				inForce = i.PixelThreshold / i.ImageThreshold
			}
			if math.Abs(inForce-f.PixelRatio) < 1e-6 {
				line("alarm regions", "grown to %.2g × the image threshold: region IoU %.4f on %d flagged synthetic defects", f.PixelRatio, f.RegionIoU, f.RegionImages)
			} else {
				line("alarm regions", "grown to %.3g × the image threshold (set since the fit; the recipe search chose %.2g: region IoU %.4f on %d flagged synthetic defects)",
					inForce, f.PixelRatio, f.RegionIoU, f.RegionImages)
			}
		}
	}
	if len(i.Members) == 0 {
		resize := i.Resize
		if i.Tiles > 1 {
			resize += fmt.Sprintf(", %d tiles along %s", i.Tiles, i.TileAxis)
		}
		if i.Denoise {
			// Said in words, as bench --camera-replay does: "-med" inside
			// the recipe's name was the only trace of it.
			resize += ", every frame filtered by a 3×3 median first"
		}
		line("backbone", "%s (sha256 %s), taps %s, resize %s", i.Backbone, i.BackboneSHA256, strings.Join(i.Taps, ", "), resize)
		line("grid", "%dx%d, d=%d, context pool %d, align %s", i.GridH, i.GridW, i.Features, i.ContextPool, i.Align)
	}
	if i.TrainInput != "" {
		shape := ""
		if a := i.TrainAspect; len(a) == 2 {
			shape = fmt.Sprintf(" of width/height %.2f", a[0])
			if a[1] > a[0]*1.01 {
				shape += fmt.Sprintf("–%.2f", a[1])
			}
		}
		line("trained on", "%s images%s", i.TrainInput, shape)
	}
	if i.LineNoise != nil {
		line("line noise", "%s", lineNoiseText(*i.LineNoise))
	}
	// A threshold model.threshold.value gave at the fit rests on no good
	// image: "(from 0 good images)" read as a fit that saw none.
	from := "from " + plural(i.ThresholdImages, "good image")
	if i.ThresholdImages == 0 && i.HeldOut == 0 {
		from = "model.threshold.value at the fit"
	}
	line("thresholds", "image %.6g, pixel %.6g (%s)", i.ImageThreshold, i.PixelThreshold, from)
	line("fitted", "%s on %d images", i.Fitted, i.Images)
	line("state", "%.1f MiB", float64(i.StateBytes)/(1<<20))
	if i.Precision != "" && indent == "" {
		// How a load under the configuration scores (model.precision),
		// as --json and status say: an ensemble's members score alike.
		line("precision", "%s", i.Precision)
	}
	if i.ID != "" {
		line("id", "%s", i.ID)
	}
}

// oneFile checks that the command was given one file, and names a flag
// written after it (Go's flags stop at the first argument: "model info
// m.safetensors --json" read --json as a second file).
func oneFile(fs *flag.FlagSet) error {
	if fs.NArg() == 1 {
		return nil
	}
	for _, a := range fs.Args()[min(1, fs.NArg()):] {
		if strings.HasPrefix(a, "-") {
			return usagef("%s after the file: flags go before it (%s %s ... FILE)", a, fs.Name(), a)
		}
	}
	return usagef("want exactly one model file, got %d", fs.NArg())
}
