package cli

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"

	"github.com/inspectd/inspectd/capture"
)

// exportOptions are the settings of `inspectd capture export`.
type exportOptions struct {
	Out           string
	Train, Test   int
	Seed          uint64
	Width, Height int
	DefectRate    float64
	Gray          bool
}

// cmdCaptureExport writes the synthetic source's frames as a data set in
// MVTec AD layout, so that `inspectd eval` can measure a model on a scene
// whose ground truth is known exactly.
func cmdCaptureExport() *Command {
	return &Command{
		Name:    "capture export",
		Summary: "write synthetic frames with ground-truth masks as an MVTec AD style data set",
		Usage:   "--out DIR [--train N] [--test N] [--seed S] [--width W] [--height H] [--defect-rate R] [--gray]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "capture export")
			var o exportOptions
			fs.StringVar(&o.Out, "out", "", "data set folder to create (must not exist or be empty)")
			fs.IntVar(&o.Train, "train", 200, "normal training frames (train/good)")
			fs.IntVar(&o.Test, "test", 200, "test frames (test/good and test/<defect>)")
			fs.Uint64Var(&o.Seed, "seed", 1, "seed of the training frames; the test frames use seed+1")
			fs.IntVar(&o.Width, "width", 320, "frame width")
			fs.IntVar(&o.Height, "height", 240, "frame height")
			fs.Float64Var(&o.DefectRate, "defect-rate", 0.5, "fraction of test frames with a defect, 0..1")
			fs.BoolVar(&o.Gray, "gray", false, "write grayscale frames instead of RGB")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return usagef("unexpected argument %q", fs.Arg(0))
			}
			switch {
			case o.Out == "":
				return usagef("--out is required")
			case o.Train < 3:
				return usagef("--train %d: want at least 3 (a fit needs them)", o.Train)
			case o.Test < 0:
				return usagef("--test %d: want 0 or more", o.Test)
			case !(o.DefectRate >= 0 && o.DefectRate <= 1):
				return usagef("--defect-rate %v: want 0..1", o.DefectRate)
			}
			counts, err := exportSynthetic(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "wrote %d training and %d test frames to %s\n", o.Train, o.Test, o.Out)
			for _, l := range sortedKeys(counts) {
				fmt.Fprintf(env.Stdout, "  test/%s\t%d\n", l, counts[l])
			}
			return nil
		},
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// exportSynthetic renders the frames and writes them; it returns the number
// of test frames per label.
func exportSynthetic(ctx context.Context, o exportOptions) (map[string]int, error) {
	if ents, err := os.ReadDir(o.Out); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("export: %s exists and is not empty", o.Out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("export: %w", err)
	}
	color := capture.ColorRGB
	if o.Gray {
		color = capture.ColorGray
	}
	counts := map[string]int{}
	for _, part := range []struct {
		n          int
		seed       uint64
		train      bool
		defectRate float64
	}{{o.Train, o.Seed, true, 0}, {o.Test, o.Seed + 1, false, o.DefectRate}} {
		src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: o.Width, Height: o.Height, Seed: part.seed,
			DefectRate: part.defectRate, NormalOnly: part.train, Color: color})
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		var f capture.Frame
		for i := range part.n {
			if err := src.Next(ctx, &f); err != nil {
				src.Close()
				return nil, fmt.Errorf("export: frame %d: %w", i+1, err)
			}
			name := fmt.Sprintf("%04d", i)
			label := f.Label
			if label == "" {
				label = "good"
			}
			dir := filepath.Join(o.Out, "test", label)
			if part.train {
				dir = filepath.Join(o.Out, "train", "good")
			} else {
				counts[label]++
			}
			if err := writePNG(filepath.Join(dir, name+".png"), f.Image); err != nil {
				src.Close()
				return nil, err
			}
			if !part.train && label != "good" {
				if f.Mask == nil {
					src.Close()
					return nil, fmt.Errorf("export: frame %d has label %q but no mask", i+1, label)
				}
				if err := writePNG(filepath.Join(o.Out, "ground_truth", label, name+"_mask.png"), f.Mask); err != nil {
					src.Close()
					return nil, err
				}
			}
		}
		src.Close()
	}
	return counts, nil
}

// writePNG creates the file's folder and writes img to it.
func writePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("export: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export: write %s: %w", path, err)
	}
	return nil
}
