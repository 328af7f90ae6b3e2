package backbone

import (
	"errors"
	"fmt"
	"os"

	"github.com/inspectd/inspectd/model/graph"
	"github.com/inspectd/inspectd/model/optimize"
)

// Options.Optimize values.
const (
	// OptimizeOff runs the model file as is.
	OptimizeOff = "off"
	// OptimizeAuto measures the candidates once per model, thread count
	// and CPU and keeps the fastest whose taps agree with the original.
	OptimizeAuto = "auto"
	// OptimizeInt8 runs the model as int8 on XNNPACK's QS8 path (uint8
	// models are rewritten by model/optimize).
	OptimizeInt8 = "int8"
	// OptimizeFloat runs the model as float32 on XNNPACK (quantized models
	// are dequantized by model/optimize).
	OptimizeFloat = "float"
)

// Variants, as Backbone.Variant names them.
const (
	// VariantBuiltin is the file as is on TFLite's builtin kernels (or on
	// the delegate Options configure).
	VariantBuiltin = "builtin"
	// VariantInt8 is the model as int8 on XNNPACK's QS8 path.
	VariantInt8 = "int8-xnnpack"
	// VariantFloat32 is the model as float32 on XNNPACK.
	VariantFloat32 = "float32-xnnpack"
)

// MinCosine is the least cosine similarity, per tap, between a candidate's
// features and the original model's for "auto" to accept the candidate.
const MinCosine = 0.99

// XNNPACK delegate flags of TFLite 2.9 (TFLITE_XNNPACK_DELEGATE_FLAG_*).
const (
	XNNPACKFlagQS8 uint32 = 1
	XNNPACKFlagQU8 uint32 = 2
)

// candidate is one way to run a model.
type candidate struct {
	name string
	mode string        // the Options.Optimize value that selects it
	form optimize.Form // rewrite into this form; "" runs the file as is
	// xnnpack and flags configure the delegate.
	xnnpack bool
	flags   uint32
}

// candidates lists the ways a model can run, by what its tensors hold.
// XNNPACK 2.9's QU8 path is not offered for uint8 models: it refuses the
// first and last convolution of MobileNet v1 and then fails to prepare.
func candidates(g *graph.Model) []candidate {
	var u8, i8 bool
	for _, t := range g.Tensors {
		u8 = u8 || t.Type == graph.Uint8
		i8 = i8 || t.Type == graph.Int8
	}
	out := []candidate{{name: VariantBuiltin, mode: OptimizeOff}}
	switch {
	case u8:
		out = append(out, candidate{VariantInt8, OptimizeInt8, optimize.Int8, true, XNNPACKFlagQS8},
			candidate{VariantFloat32, OptimizeFloat, optimize.Float32, true, 0})
	case i8:
		out = append(out, candidate{VariantInt8, OptimizeInt8, "", true, XNNPACKFlagQS8},
			candidate{VariantFloat32, OptimizeFloat, optimize.Float32, true, 0})
	default:
		out = append(out, candidate{VariantFloat32, OptimizeFloat, "", true, 0})
	}
	return out
}

func findCandidate(cs []candidate, pick func(candidate) bool) (candidate, bool) {
	for _, c := range cs {
		if pick(c) {
			return c, true
		}
	}
	return candidate{}, false
}

// Variant names how the model runs: VariantBuiltin, VariantInt8 or
// VariantFloat32. Accelerator says whether the delegate actually took it.
func (b *Backbone) Variant() string { return b.variant }

// chooseVariant decides which form of the model runs and sets b.run, the
// delegate options and, for a dequantized model, the input normalization.
func (b *Backbone) chooseVariant(data []byte, outputs []int) error {
	mode := b.opts.Optimize
	if b.opts.Delegate.Library != "" && mode != "" && mode != OptimizeOff {
		b.log().Info("backbone optimization skipped: a delegate plugin is configured", "optimize", mode, "library", b.opts.Delegate.Library)
		mode = OptimizeOff
	}
	cs := candidates(b.graph)
	switch mode {
	case "", OptimizeOff:
		return b.apply(cs[0])
	case OptimizeInt8, OptimizeFloat:
		c, ok := findCandidate(cs, func(c candidate) bool { return c.mode == mode })
		if !ok {
			return fmt.Errorf("optimize %q: the model holds no quantized tensors to run as int8", mode)
		}
		return b.apply(c)
	case OptimizeAuto:
		return b.auto(data, outputs, cs)
	default:
		return fmt.Errorf("optimize %q: want off, auto, int8 or float", mode)
	}
}

// apply selects a candidate: it rewrites the model if needed and sets the
// delegate options build uses.
func (b *Backbone) apply(c candidate) error {
	if c.name == VariantBuiltin {
		b.variant, b.run = c.name, b.graph
		return nil
	}
	run := b.graph
	if c.form != "" {
		res, err := optimize.Rewrite(b.graph, c.form)
		switch {
		case errors.Is(err, optimize.ErrNothingToDo):
		case err != nil:
			return fmt.Errorf("optimize to %s: %w", c.form, err)
		default:
			if run, err = graph.Parse(res.Model); err != nil {
				return fmt.Errorf("optimize to %s: rewritten model: %w", c.form, err)
			}
		}
	}
	// Nothing fails from here on: a failed apply leaves b as it was.
	b.variant, b.run = c.name, run
	b.opts.XNNPACK, b.opts.XNNPACKFlags = c.xnnpack, c.flags
	// Taps describe the tensors that run, as RawTap returns them (bind
	// fills in the quantization of int8 outputs).
	for i := range b.taps {
		t := &run.Tensors[b.taps[i].Index]
		b.taps[i].Type = t.Type.String()
		if t.Type == graph.Float32 {
			b.taps[i].Scale, b.taps[i].Zero = 1, 0
		}
	}
	if c.form == optimize.Float32 {
		b.prep.Mean, b.prep.Std = floatInput(&b.graph.Tensors[b.graph.Inputs[0]], b.prep.Mean, b.prep.Std)
	}
	return nil
}

// floatInput is the normalization that feeds a dequantized model the real
// values its quantized input held: the quantized path stores raw pixels p
// (uint8) or p−128 (int8), whose real value is scale×(q−zero point).
func floatInput(in *graph.Tensor, mean, std [3]float32) ([3]float32, [3]float32) {
	q := in.Quant
	if q == nil || len(q.Scale) != 1 || len(q.ZeroPoint) != 1 || q.Scale[0] <= 0 {
		return mean, std // a float input keeps the configured normalization
	}
	z := float32(q.ZeroPoint[0])
	switch in.Type {
	case graph.Int8:
		z += 128
	case graph.Uint8:
	default:
		return mean, std
	}
	s := 1 / q.Scale[0]
	return [3]float32{z, z, z}, [3]float32{s, s, s}
}

// inProbe is set in the environment of probe children so that a child can
// never start probes of its own.
const inProbe = "INSPECTD_BACKBONE_PROBE"

// SelfProbeCommand is the command line that makes the running inspectd
// binary serve one probe (daemon/cli's hidden "model probe" command calls
// ServeProbe). Set it as Options.ProbeCommand.
func SelfProbeCommand() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate the inspectd binary for the backbone probe: %w", err)
	}
	return []string{exe, "model", "probe"}, nil
}
