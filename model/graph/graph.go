// Package graph reads and rewrites TensorFlow Lite model files: the tensors
// and operators of the main subgraph, the strides of feature maps relative to
// the input, and the rewrite that turns intermediate tensors ("taps") into
// outputs while dropping every operator that no output depends on.
//
// The TFLite C API in the library inspectd links (2.9) cannot read
// intermediate tensors, so taps only become readable as subgraph outputs.
package graph

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// TensorType is the TFLite schema's tensor element type.
type TensorType uint8

// Tensor types of the TFLite schema that inspectd handles or names.
const (
	Float32 TensorType = 0
	Float16 TensorType = 1
	Int32   TensorType = 2
	Uint8   TensorType = 3
	Int64   TensorType = 4
	String  TensorType = 5
	Bool    TensorType = 6
	Int16   TensorType = 7
	Int8    TensorType = 9
	Float64 TensorType = 10
)

var typeNames = map[TensorType]string{Float32: "float32", Float16: "float16", Int32: "int32", Uint8: "uint8",
	Int64: "int64", String: "string", Bool: "bool", Int16: "int16", 8: "complex64", Int8: "int8", Float64: "float64"}

func (t TensorType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Quantization holds a tensor's affine quantization: real = Scale×(q−ZeroPoint).
// Per-channel tensors have one entry per slice along Dim.
type Quantization struct {
	Scale     []float32
	ZeroPoint []int64
	Dim       int32
}

// Tensor is one tensor of the main subgraph.
type Tensor struct {
	Index  int
	Name   string
	Shape  []int32
	Type   TensorType
	Buffer uint32
	// Constant is true when the tensor's buffer holds data (weights).
	Constant bool
	Quant    *Quantization
}

// Operator is one node of the main subgraph, in execution order.
type Operator struct {
	Index   int
	Code    OpCode
	Inputs  []int32
	Outputs []int32
}

// OpCode names an operator: a builtin code or a custom name.
type OpCode struct {
	Builtin int32
	Custom  string
	Version int32
}

// Name is the operator's schema name (CONV_2D, …) or its custom name.
func (c OpCode) Name() string {
	if c.Builtin == 32 && c.Custom != "" {
		return "CUSTOM:" + c.Custom
	}
	return BuiltinName(c.Builtin)
}

// Model is a parsed TFLite flatbuffer: its main subgraph (subgraph 0) and
// the positions the rewrite needs.
type Model struct {
	raw         []byte
	Version     uint32
	Description string
	Subgraphs   int
	Tensors     []Tensor
	Operators   []Operator
	Inputs      []int32
	Outputs     []int32

	subgraph table
	opsStart int // first element of subgraph 0's operators vector
}

// Bytes returns the file the model was parsed from.
func (m *Model) Bytes() []byte { return m.raw }

// ErrNotTFLite says the bytes are not a TFLite flatbuffer at all.
var ErrNotTFLite = errors.New("not a TensorFlow Lite model (no TFL3 file identifier)")

// ReadFile reads and parses a TFLite model file (ReadBytes).
func ReadFile(path string) (*Model, error) {
	b, err := ReadBytes(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return m, nil
}

// ReadBytes reads a TFLite model file whole. A path that leads to a named
// pipe, a device or a socket is refused unopened, in atomicfile.FileKind's
// words ("/x.tflite is a named pipe, not a TFLite file"): `model inspect`
// and `model optimize` of a named pipe waited in the open for a writer for
// good (SIGTERM too, which the CLI catches), and /dev/zero was read until
// memory ran out. A folder or a path not there is left to the read, which
// names it.
func ReadBytes(path string) ([]byte, error) {
	if path == "" {
		// The open said "open : no such file or directory", naming no
		// file.
		return nil, errors.New("read model: the model path is empty: name a .tflite file")
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		return nil, fmt.Errorf("%s is %s, not a TFLite file", path, atomicfile.FileKind(st.Mode()))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// A link to a file that is not there was "open x: no such file
		// or directory", as if the link itself were gone.
		if bl := atomicfile.BrokenLink(path); bl != nil {
			return nil, fmt.Errorf("read model: %w", bl)
		}
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	return b, nil
}

// Parse reads a TFLite flatbuffer. It never panics on damaged input: every
// problem becomes an error saying what is wrong and where.
func Parse(b []byte) (m *Model, err error) {
	switch {
	case len(b) == 0:
		return nil, errors.New("empty file: expected a TensorFlow Lite model")
	case len(b) < 8:
		return nil, fmt.Errorf("file is %d bytes: too short for a TensorFlow Lite model", len(b))
	case string(b[4:8]) != "TFL3":
		return nil, ErrNotTFLite
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(corrupt)
			if !ok {
				panic(r)
			}
			m, err = nil, fmt.Errorf("corrupt or truncated TensorFlow Lite model: %s", c.msg)
		}
	}()
	fb := buf(b)
	root := fb.table(fb.deref(0, "root table"), "model")
	m = &Model{raw: b, Version: root.u32(0, 0), Description: root.str(3)}
	if m.Version != 3 {
		return nil, fmt.Errorf("TensorFlow Lite schema version %d: only version 3 is supported", m.Version)
	}
	var codes []OpCode
	for _, t := range root.tables(1, "operator code") {
		c := OpCode{Builtin: int32(t.u8(0, 0)), Custom: t.str(1), Version: t.i32(2, 1)}
		if bc := t.i32(3, 0); bc > c.Builtin {
			c.Builtin = bc
		}
		codes = append(codes, c)
	}
	buffers := root.tables(4, "buffer")
	subgraphs := root.tables(2, "subgraph")
	if len(subgraphs) == 0 {
		return nil, errors.New("model has no subgraph")
	}
	m.Subgraphs = len(subgraphs)
	sg := subgraphs[0]
	m.subgraph = sg
	for i, t := range sg.tables(0, "tensor") {
		tn := Tensor{Index: i, Shape: t.int32s(0), Type: TensorType(t.u8(1, 0)), Buffer: t.u32(2, 0), Name: t.str(3)}
		if int(tn.Buffer) < len(buffers) {
			if _, n := buffers[tn.Buffer].vector(0, 1); n > 0 {
				tn.Constant = true
			}
		} else if tn.Buffer != 0 {
			return nil, fmt.Errorf("tensor %d (%q) refers to buffer %d of %d", i, tn.Name, tn.Buffer, len(buffers))
		}
		if qp := t.field(4); qp != 0 {
			q := fb.table(fb.deref(qp, "quantization"), "quantization")
			sc, zp := q.float32s(2), q.int64s(3)
			if len(sc) > 0 {
				tn.Quant = &Quantization{Scale: sc, ZeroPoint: zp, Dim: q.i32(6, 0)}
			}
		}
		m.Tensors = append(m.Tensors, tn)
	}
	m.Inputs, m.Outputs = sg.int32s(1), sg.int32s(2)
	m.opsStart, _ = sg.vector(3, 4)
	for i, t := range sg.tables(3, "operator") {
		oi := t.u32(0, 0)
		if int(oi) >= len(codes) {
			return nil, fmt.Errorf("operator %d uses operator code %d of %d", i, oi, len(codes))
		}
		m.Operators = append(m.Operators, Operator{Index: i, Code: codes[oi], Inputs: t.int32s(1), Outputs: t.int32s(2)})
	}
	if err := m.checkIndices(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Model) checkIndices() error {
	n := int32(len(m.Tensors))
	bad := func(where string, ids []int32, optional bool) error {
		for _, id := range ids {
			if (id == -1 && optional) || (id >= 0 && id < n) {
				continue
			}
			return fmt.Errorf("%s refers to tensor %d of %d", where, id, n)
		}
		return nil
	}
	if err := bad("subgraph inputs", m.Inputs, false); err != nil {
		return err
	}
	if err := bad("subgraph outputs", m.Outputs, false); err != nil {
		return err
	}
	if len(m.Inputs) == 0 {
		return errors.New("model has no input tensor")
	}
	for _, op := range m.Operators {
		if err := bad(fmt.Sprintf("operator %d (%s) inputs", op.Index, op.Code.Name()), op.Inputs, true); err != nil {
			return err
		}
		if err := bad(fmt.Sprintf("operator %d (%s) outputs", op.Index, op.Code.Name()), op.Outputs, false); err != nil {
			return err
		}
	}
	return nil
}

// TensorByName finds a tensor of the main subgraph. An unknown name gives an
// error that lists the closest names, since tap names are long and easy to
// mistype.
func (m *Model) TensorByName(name string) (*Tensor, error) {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i], nil
		}
	}
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for _, t := range m.Tensors {
		if t.Constant {
			continue
		}
		q, c := strings.ToLower(name), strings.ToLower(t.Name)
		// Characters of the query missing from the name count most; the
		// length difference breaks ties, so a shortened or mistyped path
		// still finds the full name.
		miss := len(q) - commonSubsequence(q, c)
		cs = append(cs, cand{t.Name, miss*1000 + abs(len(c)-len(q))})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var near []string
	for i := 0; i < len(cs) && i < 5; i++ {
		near = append(near, fmt.Sprintf("%q", cs[i].name))
	}
	return nil, fmt.Errorf("no tensor named %q in the model; closest: %s (run 'inspectd model inspect' for all)", name, strings.Join(near, ", "))
}

// commonSubsequence is the length of the longest common subsequence.
func commonSubsequence(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Stride is the power-of-two factor by which a 4-D NHWC feature map is
// smaller than the input (with TensorFlow's "same" padding an odd input size
// rounds up: 257 → 129 → 65 …); 0 when the tensor is no such map.
func (m *Model) Stride(t *Tensor) int {
	in := &m.Tensors[m.Inputs[0]]
	if len(t.Shape) != 4 || len(in.Shape) != 4 || t.Shape[1] <= 0 || t.Shape[2] <= 0 {
		return 0
	}
	ih, iw, h, w := in.Shape[1], in.Shape[2], t.Shape[1], t.Shape[2]
	for s := int32(1); s <= 128; s *= 2 {
		if (ih+s-1)/s == h && (iw+s-1)/s == w {
			return int(s)
		}
	}
	return 0
}

// AutoTaps picks, in execution order, the last operator output of stride 4, 8
// and 16: for a plain CNN that is the deepest feature map at each of the
// three resolutions PaDiM uses.
func (m *Model) AutoTaps() ([]int, error) {
	last := map[int]int{}
	for _, op := range m.Operators {
		for _, o := range op.Outputs {
			t := &m.Tensors[o]
			if s := m.Stride(t); s == 4 || s == 8 || s == 16 {
				last[s] = int(o)
			}
		}
	}
	var taps []int
	for _, s := range []int{4, 8, 16} {
		if i, ok := last[s]; ok {
			taps = append(taps, i)
		}
	}
	if len(taps) == 0 {
		return nil, errors.New("no 4-D feature map of stride 4, 8 or 16 in the model: name the taps in the configuration")
	}
	return taps, nil
}

// Needed returns which operators the given tensors depend on.
func (m *Model) Needed(tensors []int) []bool {
	producer := map[int32]int{}
	for i, op := range m.Operators {
		for _, o := range op.Outputs {
			producer[o] = i
		}
	}
	keep := make([]bool, len(m.Operators))
	stack := make([]int32, 0, len(tensors))
	for _, t := range tensors {
		stack = append(stack, int32(t))
	}
	seen := map[int32]bool{}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[t] {
			continue
		}
		seen[t] = true
		if p, ok := producer[t]; ok && !keep[p] {
			keep[p] = true
			for _, in := range m.Operators[p].Inputs {
				if in >= 0 {
					stack = append(stack, in)
				}
			}
		}
	}
	return keep
}
