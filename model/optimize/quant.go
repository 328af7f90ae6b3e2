package optimize

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/inspectd/inspectd/model/graph"
)

// channels describes how a flat tensor index maps to a quantization
// channel: channel = (i / inner) % n.
type channels struct{ n, inner int }

func channelsOf(shape []int32, dim int) (channels, error) {
	if dim < 0 || dim >= len(shape) {
		return channels{}, fmt.Errorf("quantized dimension %d outside shape %v", dim, shape)
	}
	inner := 1
	for _, s := range shape[dim+1:] {
		inner *= int(s)
	}
	return channels{n: int(shape[dim]), inner: inner}, nil
}

func (c channels) of(i int) int { return (i / c.inner) % c.n }

// elements is the product of a shape, or −1 for a negative dimension or
// an absurd size (shapes come from the file).
func elements(shape []int32) int {
	n := 1
	for _, s := range shape {
		if s < 0 || (s > 0 && n > (1<<40)/int(s)) {
			return -1
		}
		n *= int(s)
	}
	return n
}

// dequantize returns the real values of a quantized constant tensor
// (uint8, int8 or int32; per tensor or per channel).
func dequantize(t *graph.Tensor, data []byte) ([]float32, error) {
	q := t.Quant
	if q == nil || len(q.Scale) == 0 {
		return nil, fmt.Errorf("tensor %d (%q) is %s without quantization", t.Index, t.Name, t.Type)
	}
	size := map[graph.TensorType]int{graph.Uint8: 1, graph.Int8: 1, graph.Int32: 4}[t.Type]
	if size == 0 {
		return nil, fmt.Errorf("tensor %d (%q) has type %s: want uint8, int8 or int32", t.Index, t.Name, t.Type)
	}
	n := elements(t.Shape)
	if n < 0 || len(data) != n*size {
		return nil, fmt.Errorf("tensor %d (%q): %d data bytes for shape %v of %s", t.Index, t.Name, len(data), t.Shape, t.Type)
	}
	ch := channels{n: 1, inner: max(n, 1)}
	if len(q.Scale) > 1 {
		var err error
		if ch, err = channelsOf(t.Shape, int(q.Dim)); err != nil {
			return nil, fmt.Errorf("tensor %d (%q): %w", t.Index, t.Name, err)
		}
		if ch.n != len(q.Scale) {
			return nil, fmt.Errorf("tensor %d (%q): %d scales for %d channels", t.Index, t.Name, len(q.Scale), ch.n)
		}
	}
	if len(q.ZeroPoint) != len(q.Scale) {
		return nil, fmt.Errorf("tensor %d (%q): %d zero points for %d scales", t.Index, t.Name, len(q.ZeroPoint), len(q.Scale))
	}
	out := make([]float32, n)
	for i := range out {
		c := ch.of(i)
		var v int64
		switch t.Type {
		case graph.Uint8:
			v = int64(data[i])
		case graph.Int8:
			v = int64(int8(data[i]))
		case graph.Int32:
			v = int64(int32(binary.LittleEndian.Uint32(data[4*i:])))
		}
		out[i] = float32(float64(q.Scale[c]) * float64(v-q.ZeroPoint[c]))
	}
	return out, nil
}

// grid is where weights lay on their original quantization grid: pos is
// each weight's q − zero point, step the grid's spacing per channel.
type grid struct {
	pos  []int32
	step []float32
}

// gridOf reads the original grid of uint8/int8 weights quantized per
// tensor or per channel along the same dimension as ch; nil otherwise.
func gridOf(t *graph.Tensor, data []byte, ch channels, dim int) *grid {
	q := t.Quant
	if q == nil || (len(q.Scale) != 1 && (len(q.Scale) != ch.n || int(q.Dim) != dim)) || len(q.ZeroPoint) != len(q.Scale) {
		return nil
	}
	g := &grid{pos: make([]int32, len(data)), step: make([]float32, ch.n)}
	for c := range g.step {
		g.step[c] = q.Scale[min(c, len(q.Scale)-1)]
	}
	for i, b := range data {
		v := int32(b)
		if t.Type == graph.Int8 {
			v = int32(int8(b))
		}
		g.pos[i] = v - int32(q.ZeroPoint[min(ch.of(i), len(q.ZeroPoint)-1)])
	}
	return g
}

// symmetric quantizes weights to int8 with zero point 0 and range
// [−127, 127] (what TFLite's int8 kernels and XNNPACK's QC8 path require),
// one scale per channel along ch. A channel whose original grid positions
// all fit [−127, 127] keeps its original step and values exactly; the
// others get scale = largest magnitude / 127. It returns the data, the
// scales, the number of channels kept exactly and the largest rounding
// error relative to its channel's largest magnitude.
func symmetric(w []float32, ch channels, g *grid) ([]byte, []float32, int, float64) {
	peak := make([]float64, ch.n)
	exact := make([]bool, ch.n)
	if g != nil {
		for c := range exact {
			exact[c] = g.step[c] > 0
		}
		for i, p := range g.pos {
			if p < -127 || p > 127 {
				exact[ch.of(i)] = false
			}
		}
	}
	for i, v := range w {
		c := ch.of(i)
		peak[c] = math.Max(peak[c], math.Abs(float64(v)))
	}
	scales := make([]float32, ch.n)
	kept := 0
	for c, p := range peak {
		switch {
		case exact[c]:
			scales[c] = g.step[c]
			kept++
		case p == 0:
			// An all-zero channel still needs a positive finite scale.
			scales[c] = 1
		default:
			scales[c] = float32(p / 127)
		}
	}
	out := make([]byte, len(w))
	var worst float64
	for i, v := range w {
		c := ch.of(i)
		if exact[c] {
			out[i] = byte(int8(g.pos[i]))
			continue
		}
		s := float64(scales[c])
		q := math.Max(-127, math.Min(127, math.Round(float64(v)/s)))
		out[i] = byte(int8(q))
		if peak[c] > 0 {
			worst = math.Max(worst, math.Abs(float64(v)-q*s)/peak[c])
		}
	}
	return out, scales, kept, worst
}

// floatBytes encodes float32 values little-endian.
func floatBytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}
