package optimize

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/inspectd/inspectd/model/graph"
)

func (r *rewriter) float32() error {
	m := r.m
	n := 0
	for i := range m.Tensors {
		t := &m.Tensors[i]
		ro := r.roles[int32(i)]
		isBias := ro != nil && ro.bias && t.Type == graph.Int32
		switch t.Type {
		case graph.Uint8, graph.Int8:
		case graph.Int32:
			if !isBias {
				continue // shapes, axes, paddings stay int32
			}
		case graph.Int16:
			return fmt.Errorf("tensor %d (%q) is int16: 16-bit quantized models are not rewritten", i, t.Name)
		default:
			continue
		}
		if t.Quant == nil || len(t.Quant.Scale) == 0 {
			return fmt.Errorf("tensor %d (%q) is %s without quantization: its real values are unknown", i, t.Name, t.Type)
		}
		if err := r.toFloat(t, isBias); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("model has no quantized tensor (already float): %w", ErrNothingToDo)
	}
	for _, op := range m.Operators {
		if err := r.clamp(op); err != nil {
			return err
		}
	}
	return nil
}

func (r *rewriter) toFloat(t *graph.Tensor, bias bool) error {
	f, err := r.fields(t.Index)
	if err != nil {
		return err
	}
	if t.Constant {
		d, bf, real, err := r.values(t)
		if err != nil {
			return err
		}
		enc := floatBytes(real)
		if len(enc) == len(d) {
			copy(d, enc)
		} else {
			if bf.Data == 0 {
				return fmt.Errorf("tensor %d (%q): buffer %d has no data field to repoint", t.Index, t.Name, t.Buffer)
			}
			if err := r.w.point(bf.Data, r.w.bytes(enc)); err != nil {
				return fmt.Errorf("tensor %d (%q): %w", t.Index, t.Name, err)
			}
		}
		if bias {
			r.res.Biases++
		} else {
			r.res.Weights++
		}
	} else {
		r.res.Activations++
	}
	if err := r.setType(t, f, graph.Float32); err != nil {
		return err
	}
	return r.setQuant(t, f, nil, nil, 0)
}

// Fused activation functions of the TFLite schema.
const (
	actNone   = 0
	actRelu   = 1
	actReluN1 = 2
	actRelu6  = 3
)

// fusedField is the index of fused_activation_function in each operator's
// options table (Conv2DOptions, DepthwiseConv2DOptions, Pool2DOptions, …).
// All these options tables hold scalars only, so they can be copied
// byte for byte.
var fusedField = map[int32]int{
	3:  3, // CONV_2D
	4:  4, // DEPTHWISE_CONV_2D
	9:  0, // FULLY_CONNECTED
	1:  5, // AVERAGE_POOL_2D
	17: 5, // MAX_POOL_2D
	0:  0, // ADD
	41: 0, // SUB
	18: 0, // MUL
	2:  1, // CONCATENATION
}

// implied is the activation that an output's quantization range applies
// by saturation: TOCO's uint8 models leave fused_activation_function NONE
// and clamp ReLU6 through the output range 0…6, which a float kernel would
// not do.
func implied(t *graph.Tensor) int {
	q := t.Quant
	if q == nil || len(q.Scale) != 1 || len(q.ZeroPoint) != 1 {
		return actNone
	}
	qmin, qmax := 0.0, 255.0
	if t.Type == graph.Int8 {
		qmin, qmax = -128, 127
	}
	s, z := float64(q.Scale[0]), float64(q.ZeroPoint[0])
	lo, hi := s*(qmin-z), s*(qmax-z)
	switch {
	case math.Abs(lo) <= s/2 && math.Abs(hi-6) <= s:
		return actRelu6
	case math.Abs(lo+1) <= s && math.Abs(hi-1) <= s:
		return actReluN1
	case math.Abs(lo) <= s/2:
		return actRelu
	}
	return actNone
}

// clamp makes an operator's fused activation express the clamp its
// quantized output range applied.
func (r *rewriter) clamp(op graph.Operator) error {
	k, ok := fusedField[op.Code.Builtin]
	if !ok || len(op.Outputs) != 1 {
		return nil
	}
	want := implied(&r.m.Tensors[op.Outputs[0]])
	if want == actNone {
		return nil
	}
	f, err := r.m.OperatorOptions(op.Index)
	if err != nil {
		return err
	}
	if f.Field == 0 {
		return fmt.Errorf("operator %d (%s) has no options table to set its activation in", op.Index, op.Code.Name())
	}
	out := r.w.out
	slot := 0
	if e := 4 + 2*k; e+2 <= f.VTableSize {
		slot = int(binary.LittleEndian.Uint16(out[f.VTable+e:]))
	}
	have := actNone
	if slot != 0 {
		have = int(out[f.Table+slot])
	}
	switch {
	case have == actNone, have == actRelu && want == actRelu6:
	default:
		return nil // the operator already clamps at least as tightly
	}
	r.res.Clamps++
	if slot != 0 {
		out[f.Table+slot] = byte(want)
		return nil
	}
	// The field is absent: append a copy of the table with the field
	// added and repoint the operator at it.
	n := max((f.VTableSize-4)/2, k+1)
	size := f.TableSize + 1
	r.w.pad(2, 0)
	vt := len(r.w.out)
	r.w.out = binary.LittleEndian.AppendUint16(r.w.out, uint16(4+2*n))
	r.w.out = binary.LittleEndian.AppendUint16(r.w.out, uint16((size+3)&^3))
	for i := 0; i < n; i++ {
		var v uint16
		if e := 4 + 2*i; e+2 <= f.VTableSize {
			v = binary.LittleEndian.Uint16(r.w.out[f.VTable+e:])
		}
		if i == k {
			v = uint16(f.TableSize)
		}
		r.w.out = binary.LittleEndian.AppendUint16(r.w.out, v)
	}
	r.w.pad(4, 0)
	tab := len(r.w.out)
	r.w.out = binary.LittleEndian.AppendUint32(r.w.out, uint32(int32(tab-vt)))
	r.w.out = append(r.w.out, r.w.out[f.Table+4:f.Table+f.TableSize]...)
	r.w.out = append(r.w.out, byte(want))
	r.w.pad(4, 0)
	return r.w.point(f.Field, tab)
}
