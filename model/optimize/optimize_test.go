package optimize

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/graph"
	"github.com/inspectd/inspectd/model/modeltest"
)

func parse(t testing.TB, b []byte) *graph.Model {
	t.Helper()
	m, err := graph.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func rewrite(t testing.TB, m *graph.Model, f Form) (*Result, *graph.Model) {
	t.Helper()
	orig := append([]byte(nil), m.Bytes()...)
	res, err := Rewrite(m, f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, m.Bytes()) {
		t.Fatal("Rewrite modified the original model's bytes")
	}
	out := parse(t, res.Model)
	if len(out.Tensors) != len(m.Tensors) || len(out.Operators) != len(m.Operators) {
		t.Fatalf("rewrite changed the graph: %d tensors %d operators, was %d %d", len(out.Tensors), len(out.Operators), len(m.Tensors), len(m.Operators))
	}
	return res, out
}

// constData returns a constant tensor's bytes.
func constData(t testing.TB, m *graph.Model, i int) []byte {
	t.Helper()
	bf, err := m.BufferFields(m.Tensors[i].Buffer)
	if err != nil {
		t.Fatal(err)
	}
	return m.Bytes()[bf.Start : bf.Start+bf.Len]
}

func realValues(t testing.TB, m *graph.Model, i int) []float32 {
	t.Helper()
	tn := &m.Tensors[i]
	d := constData(t, m, i)
	if tn.Type == graph.Float32 {
		out := make([]float32, len(d)/4)
		for k := range out {
			out[k] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*k:]))
		}
		return out
	}
	v, err := dequantize(tn, d)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The checked-in tiny model (used by model/backbone's tests to run the
// rewrites through TFLite) is what tinyUint8 builds.
func TestTinyFileUpToDate(t *testing.T) {
	path := filepath.Join("testdata", "tiny_uint8.tflite")
	want := tinyUint8()
	if os.Getenv("INSPECTD_UPDATE_TESTDATA") != "" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run INSPECTD_UPDATE_TESTDATA=1 go test -run TestTinyFileUpToDate ./model/optimize", path)
	}
}

func TestInt8Tiny(t *testing.T) {
	m := parse(t, tinyUint8())
	res, out := rewrite(t, m, Int8)
	if res.Activations != 4 || res.Weights != 3 || res.Biases != 3 {
		t.Errorf("rewrote %d activations %d weights %d biases, want 4 3 3", res.Activations, res.Weights, res.Biases)
	}
	if res.Channels != 9 || res.ExactChannels != 8 {
		t.Errorf("%d of %d channels exact, want 8 of 9 (conv channel 2 spans 135 steps)", res.ExactChannels, res.Channels)
	}
	for _, i := range []int{0, 3, 6, 9} { // activations: exact shift
		o, n := m.Tensors[i], out.Tensors[i]
		if n.Type != graph.Int8 || n.Quant.Scale[0] != o.Quant.Scale[0] || n.Quant.ZeroPoint[0] != o.Quant.ZeroPoint[0]-128 {
			t.Errorf("activation %s: %s %+v, want int8 scale %v zero %d", n.Name, n.Type, n.Quant, o.Quant.Scale[0], o.Quant.ZeroPoint[0]-128)
		}
	}
	for _, c := range []struct {
		w, b, dim, channels int
	}{{1, 2, 0, 4}, {4, 5, 3, 4}, {7, 8, 0, 1}} {
		w := &out.Tensors[c.w]
		if w.Type != graph.Int8 || len(w.Quant.Scale) != c.channels || int(w.Quant.Dim) != c.dim {
			t.Fatalf("weights %s: %s, %d scales along %d; want int8, %d along %d", w.Name, w.Type, len(w.Quant.Scale), w.Quant.Dim, c.channels, c.dim)
		}
		for _, z := range w.Quant.ZeroPoint {
			if z != 0 {
				t.Fatalf("weights %s: zero point %d, want symmetric", w.Name, z)
			}
		}
		for _, v := range constData(t, out, c.w) {
			if int8(v) == -128 {
				t.Fatalf("weights %s hold −128: XNNPACK's symmetric range is ±127", w.Name)
			}
		}
		ch, _ := channelsOf(w.Shape, c.dim)
		if c.channels == 1 {
			ch = channels{n: 1, inner: elements(w.Shape)}
		}
		was, now := realValues(t, m, c.w), realValues(t, out, c.w)
		for i := range was {
			s := float64(w.Quant.Scale[ch.of(i)])
			if d := math.Abs(float64(was[i] - now[i])); d > s/2+1e-9 {
				t.Fatalf("weights %s[%d]: %v became %v (step %v)", w.Name, i, was[i], now[i], s)
			}
		}
		// The bias scale is input scale × weight scale per channel, and
		// the bias values keep their real value to half a step.
		b := &out.Tensors[c.b]
		in := &out.Tensors[out.Operators[map[int]int{1: 0, 4: 1, 7: 2}[c.w]].Inputs[0]]
		if len(b.Quant.Scale) != c.channels {
			t.Fatalf("bias %s has %d scales, want %d", b.Name, len(b.Quant.Scale), c.channels)
		}
		for k, s := range b.Quant.Scale {
			want := float64(in.Quant.Scale[0]) * float64(w.Quant.Scale[k])
			if math.Abs(float64(s)-want) > 1e-6*want {
				t.Errorf("bias %s scale %d = %g, want %g", b.Name, k, s, want)
			}
		}
		bw, bn := realValues(t, m, c.b), realValues(t, out, c.b)
		for k := range bw {
			if d := math.Abs(float64(bw[k] - bn[k])); d > float64(b.Quant.Scale[min(k, len(b.Quant.Scale)-1)]) {
				t.Errorf("bias %s[%d]: %v became %v", b.Name, k, bw[k], bn[k])
			}
		}
	}
	conv := out.Tensors[1].Quant.Scale
	if conv[0] != 0.02 || conv[1] != 0.02 || conv[3] != 0.02 || conv[2] <= 0.02 {
		t.Errorf("conv weight scales %v: exact channels keep 0.02, channel 2 widens", conv)
	}
	if _, err := Rewrite(out, Int8); !errors.Is(err, ErrNothingToDo) {
		t.Errorf("rewriting an int8 model again: %v, want ErrNothingToDo", err)
	}
}

// fused reads an operator's fused activation from its options table.
func fused(t testing.TB, m *graph.Model, op, field int) int {
	t.Helper()
	f, err := m.OperatorOptions(op)
	if err != nil {
		t.Fatal(err)
	}
	if 4+2*field+2 > f.VTableSize {
		return actNone
	}
	off := int(binary.LittleEndian.Uint16(m.Bytes()[f.VTable+4+2*field:]))
	if off == 0 {
		return actNone
	}
	return int(m.Bytes()[f.Table+off])
}

func TestFloat32Tiny(t *testing.T) {
	m := parse(t, tinyUint8())
	res, out := rewrite(t, m, Float32)
	if res.Activations != 4 || res.Weights != 3 || res.Biases != 3 || res.Clamps != 2 {
		t.Errorf("rewrote %d activations %d weights %d biases %d clamps, want 4 3 3 2", res.Activations, res.Weights, res.Biases, res.Clamps)
	}
	for i := range out.Tensors {
		n := &out.Tensors[i]
		if n.Type != graph.Float32 || n.Quant != nil {
			t.Errorf("tensor %s: %s %+v, want float32 without quantization", n.Name, n.Type, n.Quant)
		}
		if n.Constant {
			was, now := realValues(t, m, i), realValues(t, out, i)
			for k := range was {
				if was[k] != now[k] {
					t.Fatalf("%s[%d]: %v dequantized to %v", n.Name, k, was[k], now[k])
				}
			}
		}
	}
	if a := fused(t, out, 0, 3); a != actRelu6 {
		t.Errorf("conv fused activation %d, want RELU6 (the uint8 range 0…6 clamped)", a)
	}
	if a := fused(t, out, 1, 4); a != actRelu6 {
		t.Errorf("depthwise fused activation %d, want RELU6", a)
	}
	if a := fused(t, out, 2, 0); a != actNone {
		t.Errorf("fully connected fused activation %d, want NONE (its range is −5…7.75)", a)
	}
	// The copied options keep the strides.
	for op, fields := range map[int][]int{0: {1, 2}, 1: {1, 2, 3}} {
		f, _ := out.OperatorOptions(op)
		for _, k := range fields {
			off := int(binary.LittleEndian.Uint16(out.Bytes()[f.VTable+4+2*k:]))
			if off == 0 || binary.LittleEndian.Uint32(out.Bytes()[f.Table+off:]) != 1 {
				t.Errorf("operator %d option %d lost in the copy", op, k)
			}
		}
	}
	if _, err := Rewrite(out, Float32); !errors.Is(err, ErrNothingToDo) {
		t.Errorf("rewriting a float model again: %v, want ErrNothingToDo", err)
	}
	if _, err := Rewrite(out, Int8); !errors.Is(err, ErrNothingToDo) {
		t.Errorf("int8 of a float model: %v, want ErrNothingToDo", err)
	}
}

func mobilenet(t testing.TB) *graph.Model {
	t.Helper()
	m, err := graph.ReadFile(modeltest.BackbonePath(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// On the default backbone nearly every weight channel fits symmetric int8
// as it is, so the int8 rewrite is close to exact; the rewritten models
// still take the taps-as-outputs rewrite.
func TestMobileNet(t *testing.T) {
	m := mobilenet(t)
	taps, err := m.AutoTaps()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Form{Int8, Float32} {
		res, out := rewrite(t, m, f)
		want := graph.Int8
		if f == Float32 {
			want = graph.Float32
		}
		for i, tn := range out.Tensors {
			if m.Tensors[i].Type == graph.Uint8 && tn.Type != want {
				t.Fatalf("%s: tensor %s is %s", f, tn.Name, tn.Type)
			}
		}
		if f == Int8 && (res.Channels == 0 || float64(res.ExactChannels) < 0.99*float64(res.Channels) || res.MaxWeightError > 0.5/127+1e-6) {
			t.Errorf("int8: %d of %d channels exact, max error %.4f", res.ExactChannels, res.Channels, res.MaxWeightError)
		}
		if f == Float32 && res.Clamps != 28 {
			// 27 ReLU6 convolutions, and the average pool whose output
			// range 0…6 clamps nothing an average of ReLU6 outputs reaches.
			t.Errorf("float32: %d clamps, want 28 (every ReLU6 convolution and the pool)", res.Clamps)
		}
		b, err := out.WithOutputs(taps, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := graph.Parse(b); err != nil {
			t.Fatalf("%s: taps rewrite of the optimized model: %v", f, err)
		}
	}
}

func TestRewriteRefuses(t *testing.T) {
	base := func() ([]tinyTensor, []tinyOp) {
		tensors := []tinyTensor{
			{name: "in", shape: []int32{1, 4, 4, 1}, typ: tUint8, scale: []float32{1}, zero: []int64{0}},
			{name: "w", shape: []int32{2, 1, 1, 1}, typ: tUint8, data: []byte{1, 2}, scale: []float32{1}, zero: []int64{1}},
			{name: "out", shape: []int32{1, 4, 4, 2}, typ: tUint8, scale: []float32{1}, zero: []int64{0}},
		}
		ops := []tinyOp{{code: 3, inputs: []int32{0, 1, -1}, outputs: []int32{2}, optionsType: optConv2D, options: fbTable{nil, int32(1), int32(1)}}}
		return tensors, ops
	}
	cases := []struct {
		name string
		edit func([]tinyTensor, []tinyOp) ([]tinyTensor, []tinyOp, []int32)
		form Form
		want string
	}{
		{"custom op", func(ts []tinyTensor, ops []tinyOp) ([]tinyTensor, []tinyOp, []int32) {
			ops[0].code = 32
			return ts, ops, []int32{32}
		}, Int8, "unsupported operators CUSTOM"},
		{"quantize op in float", func(ts []tinyTensor, ops []tinyOp) ([]tinyTensor, []tinyOp, []int32) {
			ops[0] = tinyOp{code: 114, inputs: []int32{0}, outputs: []int32{2}}
			return ts, ops, []int32{114}
		}, Float32, "unsupported operators QUANTIZE (operator 0)"},
		{"sparse weights", func(ts []tinyTensor, ops []tinyOp) ([]tinyTensor, []tinyOp, []int32) {
			ts[1].sparse = true
			return ts, ops, []int32{3}
		}, Int8, `tensor 1 ("w") is sparse`},
		{"uint8 without quantization", func(ts []tinyTensor, ops []tinyOp) ([]tinyTensor, []tinyOp, []int32) {
			ts[2].scale, ts[2].zero = nil, nil
			return ts, ops, []int32{3}
		}, Int8, `tensor 2 ("out") is uint8 without quantization`},
		{"weights not constant", func(ts []tinyTensor, ops []tinyOp) ([]tinyTensor, []tinyOp, []int32) {
			ts[1].data = nil
			return ts, ops, []int32{3}
		}, Float32, `weights "w" are not constant`},
		{"short data", func(ts []tinyTensor, ops []tinyOp) ([]tinyTensor, []tinyOp, []int32) {
			ts[1].data = []byte{1}
			return ts, ops, []int32{3}
		}, Int8, "1 data bytes for shape [2 1 1 1]"},
		{"shared buffer", nil, Int8, "share buffer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts, ops := base()
			var b []byte
			if c.edit != nil {
				ts, ops, codes := c.edit(ts, ops)
				b = tinyModel(ts, ops, []int32{0}, []int32{2}, codes)
			} else {
				b = sharedBuffer(t, tinyModel(ts, ops, []int32{0}, []int32{2}, []int32{3}))
			}
			_, err := Rewrite(parse(t, b), c.form)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	if _, err := Rewrite(parse(t, tinyUint8()), "int4"); err == nil || !strings.Contains(err.Error(), `unknown form "int4"`) {
		t.Errorf("unknown form: %v", err)
	}
}

// sharedBuffer points tensor 2 at tensor 1's buffer and gives it data, as
// a converter deduplicating equal constants would.
func sharedBuffer(t *testing.T, b []byte) []byte {
	m := parse(t, b)
	// Tensor table field 2 is the buffer index; find it through the
	// type field's neighbour: the tiny builder lays fields out in order
	// (shape 4, type 8, buffer 12).
	f, err := m.TensorFields(2)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(out[f.Type+4:], m.Tensors[1].Buffer)
	return out
}

// FuzzRewrite: no model that parses may crash a rewrite, and every
// rewrite that succeeds must parse with the same graph.
func FuzzRewrite(f *testing.F) {
	f.Add(tinyUint8())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := graph.Parse(b)
		if err != nil {
			return
		}
		for _, form := range []Form{Int8, Float32} {
			res, err := Rewrite(m, form)
			if err != nil {
				continue
			}
			out, err := graph.Parse(res.Model)
			if err != nil {
				t.Fatalf("%s rewrite does not parse: %v", form, err)
			}
			if len(out.Tensors) != len(m.Tensors) || len(out.Operators) != len(m.Operators) {
				t.Fatalf("%s rewrite changed the graph", form)
			}
		}
	})
}
