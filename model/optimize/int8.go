package optimize

import (
	"fmt"
	"math"

	"github.com/inspectd/inspectd/model/graph"
)

func (r *rewriter) int8() error {
	m := r.m
	r.weightScales = map[int32][]float32{}
	uint8s := 0
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.Type == graph.Uint8 {
			uint8s++
			if t.Quant == nil || len(t.Quant.Scale) == 0 {
				return fmt.Errorf("tensor %d (%q) is uint8 without quantization: cannot shift it to int8", i, t.Name)
			}
		}
	}
	if uint8s == 0 {
		return fmt.Errorf("model has no uint8 tensor (already int8 or float): %w", ErrNothingToDo)
	}
	// Weights first: biases need their new scales.
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if ro := r.roles[int32(i)]; ro != nil && ro.weight {
			if err := r.int8Weight(t, ro); err != nil {
				return err
			}
		}
	}
	for i := range m.Tensors {
		t := &m.Tensors[i]
		ro := r.roles[int32(i)]
		switch {
		case ro != nil && ro.weight:
		case ro != nil && ro.bias:
			if err := r.int8Bias(t, ro); err != nil {
				return err
			}
		case t.Type == graph.Uint8:
			if err := r.shift(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// shift moves a uint8 tensor to int8: q−128 with zero point −128, exact.
func (r *rewriter) shift(t *graph.Tensor) error {
	f, err := r.fields(t.Index)
	if err != nil {
		return err
	}
	if t.Constant {
		d, _, err := r.data(t)
		if err != nil {
			return err
		}
		for i := range d {
			d[i] ^= 0x80 // uint8 v → int8 v−128
		}
	}
	zero := make([]int64, len(t.Quant.ZeroPoint))
	for i, z := range t.Quant.ZeroPoint {
		zero[i] = z - 128
		if zero[i] < -128 || zero[i] > 127 {
			return fmt.Errorf("tensor %d (%q): zero point %d outside uint8", t.Index, t.Name, z)
		}
	}
	if err := r.setType(t, f, graph.Int8); err != nil {
		return err
	}
	r.res.Activations++
	return r.setQuant(t, f, t.Quant.Scale, zero, int(t.Quant.Dim))
}

func (r *rewriter) int8Weight(t *graph.Tensor, ro *role) error {
	if t.Type != graph.Uint8 && t.Type != graph.Int8 {
		return fmt.Errorf("operator %d: weights %d (%q) are %s: want uint8 or int8", ro.op, t.Index, t.Name, t.Type)
	}
	f, err := r.fields(t.Index)
	if err != nil {
		return err
	}
	d, _, real, err := r.values(t)
	if err != nil {
		return err
	}
	ch := channels{n: 1, inner: max(len(real), 1)}
	if ro.perCh {
		if ch, err = channelsOf(t.Shape, ro.dim); err != nil {
			return fmt.Errorf("weights %d (%q): %w", t.Index, t.Name, err)
		}
	}
	q, scales, kept, worst := symmetric(real, ch, gridOf(t, d, ch, ro.dim))
	copy(d, q)
	r.res.Channels += len(scales)
	r.res.ExactChannels += kept
	if err := r.setType(t, f, graph.Int8); err != nil {
		return err
	}
	r.weightScales[int32(t.Index)] = scales
	r.res.Weights++
	r.res.MaxWeightError = math.Max(r.res.MaxWeightError, worst)
	return r.setQuant(t, f, scales, make([]int64, len(scales)), ro.dim)
}

func (r *rewriter) int8Bias(t *graph.Tensor, ro *role) error {
	if t.Type != graph.Int32 {
		return fmt.Errorf("operator %d: bias %d (%q) is %s: want int32", ro.op, t.Index, t.Name, t.Type)
	}
	in := &r.m.Tensors[ro.input]
	if in.Quant == nil || len(in.Quant.Scale) != 1 {
		return fmt.Errorf("operator %d: input %d (%q) is not quantized per tensor", ro.op, in.Index, in.Name)
	}
	ws := r.weightScales[ro.weightOf]
	f, err := r.fields(t.Index)
	if err != nil {
		return err
	}
	d, _, real, err := r.values(t)
	if err != nil {
		return err
	}
	if ro.perCh && len(real) != len(ws) {
		return fmt.Errorf("operator %d: bias %d (%q) has %d values for %d output channels", ro.op, t.Index, t.Name, len(real), len(ws))
	}
	scales := make([]float32, len(ws))
	for c, s := range ws {
		// TFLite checks bias scale = input scale × weight scale to 1e-6,
		// computed in double from the float32 scales.
		scales[c] = float32(float64(in.Quant.Scale[0]) * float64(s))
	}
	for i, v := range real {
		s := scales[min(i, len(scales)-1)]
		q := math.Round(float64(v) / float64(s))
		if q > math.MaxInt32 || q < math.MinInt32 {
			return fmt.Errorf("bias %d (%q): value %g does not fit int32 at scale %g", t.Index, t.Name, v, s)
		}
		putI32(d[4*i:], int32(q))
	}
	r.res.Biases++
	return r.setQuant(t, f, scales, make([]int64, len(scales)), 0)
}
