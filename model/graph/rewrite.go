package graph

import (
	"encoding/binary"
	"fmt"
)

// WithOutputs returns a copy of the model whose main subgraph outputs are
// the given tensors, in that order. With prune, every operator that none of
// them depends on is dropped, which skips the classifier head and the layers
// after the deepest tap.
//
// FlatBuffers offsets only point forward, so the new outputs vector is
// appended at the end of the buffer (4-byte aligned) and the subgraph's
// outputs field is repointed at it; the operators vector is compacted in
// place (moving an element towards the vector's start keeps its offset
// positive).
func (m *Model) WithOutputs(outputs []int, prune bool) ([]byte, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("no output tensors given")
	}
	for _, o := range outputs {
		if o < 0 || o >= len(m.Tensors) {
			return nil, fmt.Errorf("output tensor %d out of range (model has %d tensors)", o, len(m.Tensors))
		}
		if m.Tensors[o].Constant {
			return nil, fmt.Errorf("tensor %d (%q) is a constant (weights), not a feature map", o, m.Tensors[o].Name)
		}
	}
	fieldPos := m.subgraph.field(2)
	if fieldPos == 0 {
		return nil, fmt.Errorf("subgraph 0 has no outputs field to repoint")
	}
	pad := (4 - len(m.raw)%4) % 4
	out := make([]byte, len(m.raw), len(m.raw)+pad+4+4*len(outputs))
	copy(out, m.raw)
	out = append(out, make([]byte, pad)...)
	vec := len(out)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(outputs)))
	for _, o := range outputs {
		out = binary.LittleEndian.AppendUint32(out, uint32(int32(o)))
	}
	binary.LittleEndian.PutUint32(out[fieldPos:], uint32(vec-fieldPos))

	if prune && len(m.Operators) > 0 {
		keep := m.Needed(outputs)
		k := 0
		for j, kept := range keep {
			if !kept {
				continue
			}
			src := m.opsStart + 4*j
			target := src + int(binary.LittleEndian.Uint32(m.raw[src:]))
			dst := m.opsStart + 4*k
			binary.LittleEndian.PutUint32(out[dst:], uint32(target-dst))
			k++
		}
		binary.LittleEndian.PutUint32(out[m.opsStart-4:], uint32(k))
	}
	return out, nil
}

// Operations counts the multiply-adds of CONV_2D, DEPTHWISE_CONV_2D and
// FULLY_CONNECTED operators, for the operators kept (keep == nil: all).
func (m *Model) Operations(keep []bool) int64 {
	var macs int64
	for i, op := range m.Operators {
		if keep != nil && !keep[i] {
			continue
		}
		if len(op.Inputs) < 2 || len(op.Outputs) < 1 || op.Inputs[1] < 0 {
			continue
		}
		w, o := m.Tensors[op.Inputs[1]].Shape, m.Tensors[op.Outputs[0]].Shape
		prod := func(s []int32) int64 {
			p := int64(1)
			for _, v := range s {
				p *= int64(v)
			}
			return p
		}
		switch op.Code.Builtin {
		case OpConv2D: // weights O×KH×KW×I, output N×H×W×O
			if len(w) == 4 && len(o) == 4 {
				macs += prod(o) * int64(w[1]) * int64(w[2]) * int64(w[3])
			}
		case OpDepthwiseConv2D: // weights 1×KH×KW×C
			if len(w) == 4 {
				macs += prod(o) * int64(w[1]) * int64(w[2])
			}
		case OpFullyConnected:
			if len(w) == 2 {
				macs += int64(w[0]) * int64(w[1])
			}
		}
	}
	return macs
}
