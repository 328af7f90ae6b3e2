// Package optimize rewrites quantized TensorFlow Lite models into the forms
// that the XNNPACK delegate of TensorFlow Lite 2.9 runs fast.
//
// Legacy uint8 models (TOCO's asymmetric per-tensor quantization, like the
// default MobileNet v1) run only on TFLite's slow builtin kernels: XNNPACK
// 2.9's QU8 path refuses some of their convolutions. Two rewrites fix that:
//
//   - Int8: every activation moves from uint8 to int8 by subtracting 128
//     from the values and the zero point, which is exact; the weights of
//     CONV_2D and DEPTHWISE_CONV_2D are re-quantized to symmetric
//     per-channel int8 (FULLY_CONNECTED: per tensor) and their biases
//     re-scaled to input scale × weight scale per channel. This is the form
//     XNNPACK's QS8 path takes.
//   - Float32: weights and biases are dequantized to float32, every
//     activation becomes float32 and quantization is removed, for XNNPACK's
//     float path.
//
// The rewrites patch the original flatbuffer: types and same-sized data are
// edited in place, new quantization tables and larger data are appended at
// the end of the file and the fields repointed at them (FlatBuffers offsets
// only point forward). Tensor and operator indices do not change, so tap
// indices found on the original model stay valid.
package optimize

import (
	"errors"
	"fmt"
	"strings"

	"github.com/inspectd/inspectd/model/graph"
)

// Revision changes whenever the rewrites' output changes, so that
// measurements cached for an older rewrite are not reused.
const Revision = 1

// Form is the numeric form a model is rewritten into.
type Form string

// Forms a model can be rewritten into.
const (
	// Int8 is signed int8 activations and symmetric per-channel int8
	// weights, for XNNPACK's QS8 path.
	Int8 Form = "int8"
	// Float32 is a dequantized float model, for XNNPACK's float path.
	Float32 Form = "float32"
)

// Result is a rewritten model and what the rewrite did.
type Result struct {
	// Model is the rewritten TFLite flatbuffer.
	Model []byte
	Form  Form
	// Weights and Biases count the convolution and fully connected
	// weights and biases rewritten; Activations counts every other tensor
	// retyped (activations, and other constants shifted or dequantized).
	Activations, Weights, Biases int
	// MaxWeightError is the largest rounding error of the re-quantized int8
	// weights relative to the largest weight of the same channel (Int8 only).
	MaxWeightError float64
	// Channels counts the output channels of the int8 weights; ExactChannels
	// those whose original values fit symmetric int8 and were kept bit for
	// bit (Int8 only).
	Channels, ExactChannels int
	// Clamps counts operators whose fused activation was set to the clamp
	// their quantized output range applied (Float32 only).
	Clamps int
}

// ErrNothingToDo says the model holds no tensor the form would change.
var ErrNothingToDo = errors.New("nothing to rewrite")

// role is what a constant tensor is to the operator that reads it.
type role struct {
	weight   bool
	dim      int  // quantized dimension of the rewritten weights
	perCh    bool // per-channel (else per tensor)
	bias     bool
	input    int32 // for biases: the operator's input activation
	weightOf int32 // for biases: the operator's weight tensor
	op       int
}

// floatOps are the operators whose float kernels compute what their
// quantized kernels approximate, with the same options.
var floatOps = map[string]bool{
	"ADD": true, "AVERAGE_POOL_2D": true, "CONCATENATION": true, "CONV_2D": true, "DEPTHWISE_CONV_2D": true,
	"DEPTH_TO_SPACE": true, "FULLY_CONNECTED": true, "L2_NORMALIZATION": true, "LOGISTIC": true,
	"MAX_POOL_2D": true, "MUL": true, "RELU": true, "RELU6": true, "RESHAPE": true, "RESIZE_BILINEAR": true,
	"SOFTMAX": true, "SPACE_TO_DEPTH": true, "TANH": true, "PAD": true, "MEAN": true, "SUB": true,
	"SQUEEZE": true, "STRIDED_SLICE": true, "TRANSPOSE": true, "SLICE": true, "SPLIT": true, "SPLIT_V": true,
	"PACK": true, "UNPACK": true, "MAXIMUM": true, "MINIMUM": true, "LEAKY_RELU": true, "PRELU": true,
	"HARD_SWISH": true, "RESIZE_NEAREST_NEIGHBOR": true, "EXPAND_DIMS": true, "GATHER": true,
}

// int8Refused are operators whose uint8 form does not carry over to int8 by
// the exact shift (their weights need a layout this package does not
// re-quantize, or they hold hybrid/recurrent state).
var int8Refused = map[string]bool{
	"TRANSPOSE_CONV": true, "LSTM": true, "UNIDIRECTIONAL_SEQUENCE_LSTM": true, "BIDIRECTIONAL_SEQUENCE_LSTM": true,
	"RNN": true, "UNIDIRECTIONAL_SEQUENCE_RNN": true, "BIDIRECTIONAL_SEQUENCE_RNN": true, "SVDF": true,
	"CONV_3D": true, "CONV_3D_TRANSPOSE": true, "BATCH_MATMUL": true,
}

// Rewrite rewrites a parsed model into the given form.
func Rewrite(m *graph.Model, f Form) (*Result, error) {
	switch f {
	case Int8, Float32:
	default:
		return nil, fmt.Errorf("unknown form %q (want int8 or float32)", f)
	}
	if m.Subgraphs != 1 {
		return nil, fmt.Errorf("model has %d subgraphs: only single-subgraph models can be rewritten", m.Subgraphs)
	}
	roles, err := roles(m, f)
	if err != nil {
		return nil, err
	}
	r := &rewriter{m: m, w: newWriter(m.Bytes()), roles: roles, res: &Result{Form: f}}
	if err := r.checkBuffers(); err != nil {
		return nil, err
	}
	if f == Int8 {
		err = r.int8()
	} else {
		err = r.float32()
	}
	if err != nil {
		return nil, err
	}
	r.res.Model = r.w.out
	return r.res, nil
}

// roles finds the weights and biases of the convolutions and fully
// connected layers and refuses operators the form cannot carry.
func roles(m *graph.Model, f Form) (map[int32]*role, error) {
	out := map[int32]*role{}
	var refused []string
	for _, op := range m.Operators {
		name := op.Code.Name()
		if op.Code.Builtin == graph.OpCustom || (f == Int8 && int8Refused[name]) || (f == Float32 && !floatOps[name]) {
			refused = append(refused, fmt.Sprintf("%s (operator %d)", name, op.Index))
			continue
		}
		var r role
		switch op.Code.Builtin {
		case graph.OpConv2D:
			r = role{weight: true, dim: 0, perCh: true}
		case graph.OpDepthwiseConv2D:
			r = role{weight: true, dim: 3, perCh: true}
		case graph.OpFullyConnected:
			// TFLite 2.9's int8 FULLY_CONNECTED kernels and XNNPACK take
			// per-tensor weights only.
			r = role{weight: true, dim: 0}
		default:
			continue
		}
		if len(op.Inputs) < 2 || op.Inputs[1] < 0 || op.Inputs[0] < 0 {
			return nil, fmt.Errorf("operator %d (%s) has no weights input", op.Index, name)
		}
		w := op.Inputs[1]
		wt := &m.Tensors[w]
		if !wt.Constant {
			return nil, fmt.Errorf("operator %d (%s): weights %q are not constant", op.Index, name, wt.Name)
		}
		if len(wt.Shape) != 4 && !(op.Code.Builtin == graph.OpFullyConnected && len(wt.Shape) == 2) {
			return nil, fmt.Errorf("operator %d (%s): weights %q have shape %v", op.Index, name, wt.Name, wt.Shape)
		}
		r.op = op.Index
		if err := claim(out, m, w, r); err != nil {
			return nil, err
		}
		if len(op.Inputs) > 2 && op.Inputs[2] >= 0 {
			b := op.Inputs[2]
			if err := claim(out, m, b, role{bias: true, input: op.Inputs[0], weightOf: w, op: op.Index, perCh: r.perCh}); err != nil {
				return nil, err
			}
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("cannot rewrite to %s: unsupported operators %s", f, strings.Join(refused, ", "))
	}
	return out, nil
}

// claim records a tensor's role; a tensor read in two different ways (a
// shared weight with different layouts) cannot be rewritten one way.
func claim(roles map[int32]*role, m *graph.Model, t int32, r role) error {
	if old, ok := roles[t]; ok {
		if old.weight != r.weight || old.dim != r.dim || old.perCh != r.perCh || old.input != r.input || old.weightOf != r.weightOf {
			return fmt.Errorf("tensor %d (%q) is used differently by operators %d and %d", t, m.Tensors[t].Name, old.op, r.op)
		}
		return nil
	}
	roles[t] = &r
	return nil
}

type rewriter struct {
	m     *graph.Model
	w     *writer
	roles map[int32]*role
	res   *Result
	// scales of rewritten weights, for their biases.
	weightScales map[int32][]float32
}

// checkBuffers refuses constant tensors that share a buffer with another
// tensor: rewriting one would change the other.
func (r *rewriter) checkBuffers() error {
	users := map[uint32]int{}
	for _, t := range r.m.Tensors {
		if t.Constant {
			if u, ok := users[t.Buffer]; ok {
				return fmt.Errorf("tensors %d (%q) and %d (%q) share buffer %d: cannot rewrite one without the other",
					u, r.m.Tensors[u].Name, t.Index, t.Name, t.Buffer)
			}
			users[t.Buffer] = t.Index
		}
	}
	return nil
}

func (r *rewriter) fields(i int) (graph.TensorFields, error) {
	f, err := r.m.TensorFields(i)
	if err != nil {
		return f, err
	}
	t := &r.m.Tensors[i]
	if f.Sparsity != 0 {
		return f, fmt.Errorf("tensor %d (%q) is sparse: sparse weights cannot be rewritten", i, t.Name)
	}
	if f.Quantization == 0 {
		return f, fmt.Errorf("tensor %d (%q) has no quantization field to repoint", i, t.Name)
	}
	return f, nil
}

// data returns the tensor's constant bytes inside the output and the
// buffer's fields.
func (r *rewriter) data(t *graph.Tensor) ([]byte, graph.BufferFields, error) {
	bf, err := r.m.BufferFields(t.Buffer)
	if err != nil {
		return nil, bf, fmt.Errorf("tensor %d (%q): %w", t.Index, t.Name, err)
	}
	return r.w.out[bf.Start : bf.Start+bf.Len], bf, nil
}

// values returns a constant tensor's bytes inside the output, its buffer's
// fields and its values dequantized.
func (r *rewriter) values(t *graph.Tensor) ([]byte, graph.BufferFields, []float32, error) {
	d, bf, err := r.data(t)
	if err != nil {
		return nil, bf, nil, err
	}
	real, err := dequantize(t, d)
	return d, bf, real, err
}

// setType writes a tensor's type byte. A type field absent from the vtable
// means float32 (the schema default), which only a float32 target matches.
func (r *rewriter) setType(t *graph.Tensor, f graph.TensorFields, typ graph.TensorType) error {
	if f.Type == 0 {
		if typ == graph.Float32 {
			return nil
		}
		return fmt.Errorf("tensor %d (%q) has no type field to set", t.Index, t.Name)
	}
	r.w.out[f.Type] = byte(typ)
	return nil
}

func (r *rewriter) setQuant(t *graph.Tensor, f graph.TensorFields, scale []float32, zero []int64, dim int) error {
	tab := r.w.quantization(scale, zero, int32(dim))
	if err := r.w.point(f.Quantization, tab); err != nil {
		return fmt.Errorf("tensor %d (%q): %w", t.Index, t.Name, err)
	}
	return nil
}

func putI32(b []byte, v int32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
