package cli

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/graph"
	"github.com/inspectd/inspectd/model/optimize"
)

func cmdModelOptimize() *Command {
	return &Command{
		Name:    "model optimize",
		Summary: "rewrite a uint8 TFLite model for XNNPACK (int8 or float32) and check its taps against the original",
		Usage:   "[--int8 | --float] IN OUT",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "model optimize")
			i8 := fs.Bool("int8", false, "signed int8 activations, symmetric per-channel int8 weights (XNNPACK QS8; the default)")
			fl := fs.Bool("float", false, "float32 weights and activations (XNNPACK's float path)")
			threads := fs.Int("threads", 2, "threads for the check run")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if *i8 && *fl {
				return usagef("--int8 and --float exclude each other")
			}
			if fs.NArg() != 2 {
				return usagef("want two arguments, the input and the output model file (flags before them), got %d: %q", fs.NArg(), fs.Args())
			}
			in, out := fs.Arg(0), fs.Arg(1)
			if abs(in) == abs(out) {
				return usagef("output %s would overwrite the input: keep the original as the reference", out)
			}
			// Before the rewrite and its check run: an OUT that is a
			// named pipe was written into only at the end, and waited
			// there for a reader for good (SIGTERM too).
			if why := atomicfile.ReplaceRefusal(out); why != "" {
				return fmt.Errorf("output %s %s: the model, written to a new file and renamed into place, would put a regular file in its place; name a .tflite file", out, why)
			}
			// A folder, or a folder that is not there, failed only after
			// the rewrite and its check, in the temporary file's words
			// ("open x/.o.tflite.tmp-…: no such file or directory",
			// "rename ./.out.tmp-… out: file exists").
			if err := checkOutputFolder(out); err != nil {
				return err
			}
			form := optimize.Int8
			if *fl {
				form = optimize.Float32
			}
			m, err := graph.ReadFile(in)
			if err != nil {
				return err
			}
			res, err := optimize.Rewrite(m, form)
			if err != nil {
				return fmt.Errorf("optimize %s: %w", in, err)
			}
			w := env.Stdout
			fmt.Fprintf(w, "%s → %s (%s, %d → %d bytes)\n", in, out, form, len(m.Bytes()), len(res.Model))
			fmt.Fprintf(w, "rewritten: %d activations, %d weights, %d biases", res.Activations, res.Weights, res.Biases)
			if form == optimize.Int8 {
				fmt.Fprintf(w, "; %d of %d weight channels kept exactly, largest re-quantization error %.2f%% of a channel's range",
					res.ExactChannels, res.Channels, 100*res.MaxWeightError)
			} else {
				fmt.Fprintf(w, "; %d operators given the ReLU clamp their quantized output range applied", res.Clamps)
			}
			fmt.Fprintln(w)
			if err := checkOptimized(env, in, res.Model, form, *threads); err != nil {
				return err
			}
			// Renamed into place whole: a power cut while it was written
			// left a torn model where a backbone was expected.
			if err := atomicfile.WriteBytes(out, 0o644, res.Model); err != nil {
				return fmt.Errorf("write optimized model: %w", err)
			}
			return nil
		},
	}
}

// checkOptimized runs the original and the rewrite on TFLite's builtin
// kernels (no delegate: this process must not crash) and prints how well
// their taps agree.
func checkOptimized(env *Env, in string, model []byte, form optimize.Form, threads int) error {
	ref, err := backbone.Open(backbone.Options{Path: in, Threads: threads, Logger: env.Log})
	if err != nil {
		return err
	}
	defer ref.Close()
	o := backbone.Options{Path: in + " (optimized)", Bytes: model, Threads: threads, Logger: env.Log}
	if q := ref.Graph().Tensors[ref.Graph().Inputs[0]].Quant; form == optimize.Float32 && q != nil && len(q.Scale) == 1 && q.Scale[0] > 0 {
		// The dequantized model takes the real values scale×(pixel−zero
		// point) that the quantized input held (uint8 inputs).
		z, s := float32(q.ZeroPoint[0]), 1/q.Scale[0]
		o.Preprocess = backbone.Preprocess{Mean: [3]float32{z, z, z}, Std: [3]float32{s, s, s}}
	}
	cand, err := backbone.Open(o)
	if err != nil {
		return fmt.Errorf("TensorFlow Lite cannot run the optimized model: %w", err)
	}
	defer cand.Close()
	cos, err := backbone.Agreement(ref, cand)
	if err != nil {
		return err
	}
	var worst float64 = 1
	var parts []string
	for i, t := range ref.Taps() {
		parts = append(parts, fmt.Sprintf("%s %.5f", t.Name, cos[i]))
		worst = min(worst, cos[i])
	}
	fmt.Fprintf(env.Stdout, "tap agreement with the original (cosine, worst of %d synthetic frames):\n  %s\n", 3, strings.Join(parts, "\n  "))
	if worst < backbone.MinCosine {
		return fmt.Errorf("optimized taps disagree with the original (cosine %.4f < %.2f)", worst, backbone.MinCosine)
	}
	return nil
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// cmdModelProbe is the hidden command that backbone's "auto" optimization
// runs in a child process (backbone.SelfProbeCommand): it tries one
// XNNPACK candidate, so that a delegate crash only ends the child.
func cmdModelProbe() *Command {
	return &Command{
		Name:   "model probe",
		Hidden: true,
		Usage:  "(internal: reads a probe request on stdin)",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 0 {
				return usagef("takes no arguments")
			}
			return backbone.ServeProbe(env.Stdin, env.Stdout, env.Log)
		},
	}
}

// checkOutputFolder refuses an OUT model file that is a folder, lies in a
// folder that is not there, or under a plain file: the model is written
// to a new file beside it and renamed over it.
func checkOutputFolder(out string) error {
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("output %s is a folder: name a .tflite file in it, such as %s", out, filepath.Join(out, "backbone_int8.tflite"))
	}
	dir := filepath.Dir(out)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("output %s: folder %s does not exist; create it first (mkdir -p %s)", out, dir, dir)
	case err != nil:
		return fmt.Errorf("output %s: %w", out, err)
	case !st.IsDir():
		return fmt.Errorf("output %s: %s is a file, not a folder", out, dir)
	}
	return nil
}
