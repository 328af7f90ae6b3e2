package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/inspectd/inspectd/model/graph"
)

func cmdModelInspect() *Command {
	return &Command{
		Name:    "model inspect",
		Summary: "list a TFLite model's inputs, outputs and tensors (shapes, types, quantization, strides) to pick taps",
		Usage:   "[--all] FILE",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "model inspect")
			all := fs.Bool("all", false, "also list constant tensors (weights and biases)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if err := oneFile(fs); err != nil {
				return err
			}
			m, err := graph.ReadFile(fs.Arg(0))
			if err != nil {
				if strings.HasSuffix(fs.Arg(0), ".safetensors") {
					return fmt.Errorf("%w (a fitted inspectd model? 'inspectd model info %s' describes it)", err, fs.Arg(0))
				}
				return err
			}
			writeInspect(env, m, *all)
			return nil
		},
	}
}

func writeInspect(env *Env, m *graph.Model, all bool) {
	w := env.Stdout
	fmt.Fprintf(w, "schema version %d, %d subgraph(s), %d tensors, %d operators in subgraph 0\n", m.Version, m.Subgraphs, len(m.Tensors), len(m.Operators))
	if m.Description != "" {
		fmt.Fprintf(w, "description: %s\n", m.Description)
	}
	fmt.Fprintf(w, "multiply-adds: %.3f G\n", float64(m.Operations(nil))/1e9)
	list := func(title string, ids []int32) {
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, i := range ids {
			t := &m.Tensors[i]
			fmt.Fprintf(w, "  %d %s %s %v%s\n", i, t.Name, t.Type, t.Shape, quant(t))
		}
	}
	list("inputs", m.Inputs)
	list("outputs", m.Outputs)
	producer := map[int]string{}
	for _, op := range m.Operators {
		for _, o := range op.Outputs {
			producer[int(o)] = op.Code.Name()
		}
	}
	auto, _ := m.AutoTaps()
	isAuto := map[int]bool{}
	for _, a := range auto {
		isAuto[a] = true
	}
	fmt.Fprintf(w, "\ntensors (stride relative to the input; * = automatic tap):\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  index\tstride\tshape\ttype\tquantization\tproduced by\tname")
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.Constant && !all {
			continue
		}
		stride := "-"
		if s := m.Stride(t); s > 0 {
			stride = fmt.Sprint(s)
		}
		mark := " "
		if isAuto[i] {
			mark = "*"
		}
		prod := producer[i]
		if prod == "" {
			prod = map[bool]string{true: "(constant)", false: "(input)"}[t.Constant]
		}
		fmt.Fprintf(tw, " %s%d\t%s\t%v\t%s\t%s\t%s\t%s\n", mark, i, stride, t.Shape, t.Type, strings.TrimSpace(quant(t)), prod, t.Name)
	}
	tw.Flush()
	if len(auto) > 0 {
		fmt.Fprintf(w, "\nautomatic taps (model.taps: []):\n")
		for _, a := range auto {
			fmt.Fprintf(w, "  - %s\n", m.Tensors[a].Name)
		}
	}
}

func quant(t *graph.Tensor) string {
	if t.Quant == nil {
		return ""
	}
	if len(t.Quant.Scale) == 1 {
		zp := int64(0)
		if len(t.Quant.ZeroPoint) > 0 {
			zp = t.Quant.ZeroPoint[0]
		}
		return fmt.Sprintf(" scale=%.6g zero=%d", t.Quant.Scale[0], zp)
	}
	return fmt.Sprintf(" per-channel(dim %d, %d scales)", t.Quant.Dim, len(t.Quant.Scale))
}
