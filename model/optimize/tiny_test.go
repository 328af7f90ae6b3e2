package optimize

import (
	"math/rand/v2"
)

// Schema numbers used by the tiny model.
const (
	tUint8 = uint8(3)
	tInt32 = uint8(2)

	optConv2D         = uint8(1) // BuiltinOptions union: Conv2DOptions
	optDepthwiseConv  = uint8(2) // DepthwiseConv2DOptions
	optFullyConnected = uint8(8) // FullyConnectedOptions
)

type tinyTensor struct {
	name   string
	shape  []int32
	typ    uint8
	data   []byte // constant data (nil: activation)
	scale  []float32
	zero   []int64
	dim    int32
	sparse bool
}

type tinyOp struct {
	code        int32
	inputs      []int32
	outputs     []int32
	optionsType uint8
	options     fbTable
}

// tinyModel serializes a single-subgraph TFLite model.
func tinyModel(tensors []tinyTensor, ops []tinyOp, inputs, outputs []int32, codes []int32) []byte {
	buffers := fbVec{fbTable{}} // buffer 0: the empty sentinel
	var ts fbVec
	for _, t := range tensors {
		var buf uint32
		if t.data != nil {
			d := make(fbVec, len(t.data))
			for i, v := range t.data {
				d[i] = v
			}
			buf = uint32(len(buffers))
			buffers = append(buffers, fbTable{d})
		}
		shape := make(fbVec, len(t.shape))
		for i, s := range t.shape {
			shape[i] = s
		}
		var q any
		if t.scale != nil {
			sc, zp := make(fbVec, len(t.scale)), make(fbVec, len(t.zero))
			for i := range t.scale {
				sc[i] = t.scale[i]
			}
			for i := range t.zero {
				zp[i] = t.zero[i]
			}
			q = fbTable{nil, nil, sc, zp, nil, nil, t.dim}
		}
		var sparsity any
		if t.sparse {
			sparsity = fbTable{}
		}
		ts = append(ts, fbTable{shape, t.typ, buf, t.name, q, nil, sparsity})
	}
	var os fbVec
	for _, o := range ops {
		idx := int32(-1)
		for i, c := range codes {
			if c == o.code {
				idx = int32(i)
			}
		}
		in, out := make(fbVec, len(o.inputs)), make(fbVec, len(o.outputs))
		for i, v := range o.inputs {
			in[i] = v
		}
		for i, v := range o.outputs {
			out[i] = v
		}
		var opts, optType any
		if o.options != nil {
			opts, optType = o.options, o.optionsType
		}
		os = append(os, fbTable{uint32(idx), in, out, optType, opts})
	}
	var cs fbVec
	for _, c := range codes {
		cs = append(cs, fbTable{uint8(c), nil, int32(1), c})
	}
	ins, outs := make(fbVec, len(inputs)), make(fbVec, len(outputs))
	for i, v := range inputs {
		ins[i] = v
	}
	for i, v := range outputs {
		outs[i] = v
	}
	sg := fbTable{ts, ins, outs, os, "main"}
	return fbFile(fbTable{uint32(3), cs, fbVec{sg}, "tiny test model", buffers})
}

// tinyUint8 is a small legacy-quantized network in the style of TOCO's
// MobileNet: CONV_2D → DEPTHWISE_CONV_2D → FULLY_CONNECTED, uint8 with
// asymmetric per-tensor weights, ReLU6 applied through the output ranges
// (fused activation NONE). One conv channel spans more than 127 steps
// from the zero point (re-quantized with loss), one is all zero point.
func tinyUint8() []byte {
	rng := rand.New(rand.NewPCG(7, 11))
	weights := func(n int, lo, hi int) []byte {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(lo + rng.IntN(hi-lo+1))
		}
		return d
	}
	bias := func(n int, span int32) []byte {
		d := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			v := rng.Int32N(2*span+1) - span
			d[4*i], d[4*i+1], d[4*i+2], d[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
		return d
	}
	const inS, wS, actS = float32(1.0 / 255), float32(0.02), float32(6.0 / 255)
	convW := weights(4*3*3*3, 60, 180) // channel 0..3, zero point 120
	for i := 0; i < 27; i++ {
		convW[27*1+i] = 120 // channel 1: all zero
	}
	convW[27*2] = 255 // channel 2: 135 steps above the zero point
	dwW := weights(3*3*4, 100, 160)
	fcW := weights(5*256, 90, 170)
	tensors := []tinyTensor{
		{name: "input", shape: []int32{1, 8, 8, 3}, typ: tUint8, scale: []float32{inS}, zero: []int64{0}},
		{name: "conv/weights", shape: []int32{4, 3, 3, 3}, typ: tUint8, data: convW, scale: []float32{wS}, zero: []int64{120}},
		{name: "conv/bias", shape: []int32{4}, typ: tInt32, data: bias(4, 300), scale: []float32{inS * wS}, zero: []int64{0}},
		{name: "conv/Relu6", shape: []int32{1, 8, 8, 4}, typ: tUint8, scale: []float32{actS}, zero: []int64{0}},
		{name: "dw/weights", shape: []int32{1, 3, 3, 4}, typ: tUint8, data: dwW, scale: []float32{0.05}, zero: []int64{130}},
		{name: "dw/bias", shape: []int32{4}, typ: tInt32, data: bias(4, 500), scale: []float32{actS * 0.05}, zero: []int64{0}},
		{name: "dw/Relu6", shape: []int32{1, 8, 8, 4}, typ: tUint8, scale: []float32{actS}, zero: []int64{0}},
		{name: "fc/weights", shape: []int32{5, 256}, typ: tUint8, data: fcW, scale: []float32{0.004}, zero: []int64{128}},
		{name: "fc/bias", shape: []int32{5}, typ: tInt32, data: bias(5, 2000), scale: []float32{actS * 0.004}, zero: []int64{0}},
		{name: "logits", shape: []int32{1, 5}, typ: tUint8, scale: []float32{0.05}, zero: []int64{100}},
	}
	ops := []tinyOp{
		{code: 3, inputs: []int32{0, 1, 2}, outputs: []int32{3}, optionsType: optConv2D, options: fbTable{nil, int32(1), int32(1)}},
		{code: 4, inputs: []int32{3, 4, 5}, outputs: []int32{6}, optionsType: optDepthwiseConv, options: fbTable{nil, int32(1), int32(1), int32(1)}},
		{code: 9, inputs: []int32{6, 7, 8}, outputs: []int32{9}, optionsType: optFullyConnected, options: fbTable{}},
	}
	return tinyModel(tensors, ops, []int32{0}, []int32{9}, []int32{3, 4, 9})
}
