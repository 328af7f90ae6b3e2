// Package backbone runs a TensorFlow Lite CNN and reads the feature maps of
// chosen intermediate tensors ("taps") that PaDiM models.
//
// The model is rewritten on load (see model/graph) so that the taps are the
// subgraph's outputs and every operator no tap depends on is dropped; the
// tap outputs are dequantized into float32 buffers that are reused across
// frames.
package backbone

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"time"
	"unsafe"

	"github.com/mattn/go-tflite"

	"github.com/inspectd/inspectd/model/graph"
)

// Options configure a backbone.
type Options struct {
	// Path is the TFLite file; Bytes may be given instead (Path then only
	// names it in messages).
	Path  string
	Bytes []byte
	// Taps are tensor names; empty picks the last tensor of stride 4, 8
	// and 16 (graph.AutoTaps).
	Taps []string
	// Extra names more outputs to keep (the classifier, for a sanity test).
	Extra []string
	// NoPrune keeps every operator (for comparisons).
	NoPrune bool
	// Threads for TFLite's CPU kernels; 0 means 1.
	Threads int
	// XNNPACK applies the XNNPACK delegate to float models.
	XNNPACK bool
	// XNNPACKFlags are passed to the XNNPACK delegate (QS8/QU8 paths);
	// 0 leaves quantized operators on the builtin kernels.
	XNNPACKFlags uint32
	Delegate     DelegateOptions
	Preprocess   Preprocess
	Logger       *slog.Logger

	// Optimize chooses how a quantized model runs on the CPU (accel.go):
	// "" or "off" runs the file as is; "int8" and "float" rewrite it
	// (model/optimize) for XNNPACK's QS8 or float path; "auto" measures
	// each candidate once in a child process and keeps the fastest whose
	// taps agree with the original. Ignored when Delegate.Library is set.
	Optimize string
	// StateDir is where "auto" caches its choice (empty: measure at every
	// start).
	StateDir string
	// ProbeCommand is the program and arguments that run ServeProbe in a
	// child process (inspectd: SelfProbeCommand). Without it "auto" tries
	// no XNNPACK candidate, since a delegate crash would take the caller
	// down.
	ProbeCommand []string
	// Memo, when set, shares "auto"'s choices between the backbones one
	// process opens (nil: every Open without a cached choice measures).
	Memo *VariantMemo
}

// Tap describes one tapped tensor.
type Tap struct {
	Name    string
	Index   int
	H, W, C int
	Stride  int
	Type    string
	Scale   float64
	Zero    int
}

// FeatureMap is one tap's output of the last frame, dequantized,
// NHWC with N = 1: Data[(y*W+x)*C+c]. Data is reused by the next frame.
type FeatureMap struct {
	Tap  *Tap
	Data []float32
}

// Backbone is a loaded TFLite model with taps. It is not safe for
// concurrent use: one goroutine runs frames through it.
type Backbone struct {
	opts     Options
	name     string
	sha      string
	graph    *graph.Model
	model    *tflite.Model
	options  *tflite.InterpreterOptions
	interp   *tflite.Interpreter
	delegate *delegate
	accel    string
	// run is the model actually run (the original or its optimized
	// rewrite, same tensor indices); variant names it (accel.go).
	run     *graph.Model
	variant string

	inW, inH, inC int
	inType        tflite.TensorType
	in            unsafe.Pointer
	prep          Preprocess
	fused         fused
	rs            *resizer // the reference path's (SetInputReference)
	row           []float32

	taps   []Tap
	outs   []output
	extras []*tflite.Tensor
	fmaps  []FeatureMap

	// data is the original model file (for a re-measurement), cacheKeyOf
	// its variant cache key and live the latency watch ("auto" only).
	data       []byte
	cacheKeyOf string
	live       liveCheck
}

type output struct {
	t    *tflite.Tensor
	kind tflite.TensorType
	n    int
	lut  [256]float32
	data unsafe.Pointer
}

// Open loads a model, rewrites it so its taps are outputs, and prepares an
// interpreter. Every problem (missing, empty, truncated or non-TFLite file,
// unknown tap, unsupported input) is an error naming the file.
func Open(o Options) (*Backbone, error) {
	name := o.Path
	if name == "" {
		name = "(model bytes)"
	}
	b := &Backbone{opts: o, name: name, prep: o.Preprocess}
	if b.prep.Resize == "" {
		b.prep.Resize = ResizeSquash
	}
	if b.prep.Std == ([3]float32{}) {
		b.prep.Std = [3]float32{1, 1, 1}
	}
	data := o.Bytes
	if data == nil {
		var err error
		// graph.ReadBytes refuses a named pipe or a device unopened:
		// model optimize opens its input here too.
		if data, err = graph.ReadBytes(o.Path); err != nil {
			return nil, fmt.Errorf("load backbone: %w", err)
		}
	}
	sum := sha256.Sum256(data)
	b.sha = hex.EncodeToString(sum[:])
	if o.Optimize == OptimizeAuto {
		b.data = data
	}
	g, err := graph.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load backbone %s: %w", name, err)
	}
	b.graph = g
	if err := b.resolveTaps(); err != nil {
		return nil, fmt.Errorf("backbone %s: %w", name, err)
	}
	outputs := make([]int, 0, len(b.taps)+len(o.Extra))
	for _, t := range b.taps {
		outputs = append(outputs, t.Index)
	}
	for _, e := range o.Extra {
		t, err := g.TensorByName(e)
		if err != nil {
			return nil, fmt.Errorf("backbone %s: extra output: %w", name, err)
		}
		outputs = append(outputs, t.Index)
	}
	if err := b.chooseVariant(data, outputs); err != nil {
		return nil, fmt.Errorf("backbone %s: %w", name, err)
	}
	rewritten, err := b.run.WithOutputs(outputs, !o.NoPrune)
	if err != nil {
		return nil, fmt.Errorf("backbone %s: %w", name, err)
	}
	if err := b.build(rewritten); err != nil {
		b.Close()
		return nil, fmt.Errorf("backbone %s: %w", name, err)
	}
	return b, nil
}

func (b *Backbone) resolveTaps() error {
	g := b.graph
	var idx []int
	if len(b.opts.Taps) == 0 {
		var err error
		if idx, err = g.AutoTaps(); err != nil {
			return err
		}
	}
	for _, n := range b.opts.Taps {
		t, err := g.TensorByName(n)
		if err != nil {
			return fmt.Errorf("tap: %w", err)
		}
		idx = append(idx, t.Index)
	}
	in := &g.Tensors[g.Inputs[0]]
	for _, i := range idx {
		t := &g.Tensors[i]
		if t.Constant {
			return fmt.Errorf("tap %q is a constant (weights), not a feature map", t.Name)
		}
		if len(t.Shape) != 4 || t.Shape[0] != 1 {
			return fmt.Errorf("tap %q has shape %v: want a 1×H×W×C feature map", t.Name, t.Shape)
		}
		switch t.Type {
		case graph.Uint8, graph.Int8, graph.Float32:
		default:
			return fmt.Errorf("tap %q has type %s: want uint8, int8 or float32", t.Name, t.Type)
		}
		tap := Tap{Name: t.Name, Index: i, H: int(t.Shape[1]), W: int(t.Shape[2]), C: int(t.Shape[3]),
			Stride: g.Stride(t), Type: t.Type.String(), Scale: 1}
		if t.Quant != nil && len(t.Quant.Scale) == 1 {
			tap.Scale = float64(t.Quant.Scale[0])
			if len(t.Quant.ZeroPoint) == 1 {
				tap.Zero = int(t.Quant.ZeroPoint[0])
			}
		} else if t.Type != graph.Float32 {
			return fmt.Errorf("tap %q is %s without per-tensor quantization", t.Name, t.Type)
		}
		if tap.Stride == 0 && len(in.Shape) == 4 {
			return fmt.Errorf("tap %q (%dx%d) is not an integer stride of the %dx%d input", t.Name, tap.H, tap.W, in.Shape[1], in.Shape[2])
		}
		b.taps = append(b.taps, tap)
	}
	return nil
}

// log is the backbone's logger; its lines name the backbone, since a
// recipe search opens several (and their variant measurements interleave).
func (b *Backbone) log() *slog.Logger {
	if b.opts.Logger != nil {
		return b.opts.Logger.With("backbone", b.name)
	}
	return slog.New(slog.DiscardHandler)
}

func (b *Backbone) build(model []byte) error {
	m, err := newModel(model)
	if err != nil {
		b.log().Warn("model bytes kept for the life of the process", "err", err)
		m = tflite.NewModel(model)
	}
	b.model = m
	if b.model == nil {
		return errors.New("TensorFlow Lite refused the model (see its message above)")
	}
	threads := max(b.opts.Threads, 1)
	inType := b.run.Tensors[b.run.Inputs[0]].Type
	var want []*delegate
	if b.opts.Delegate.Library != "" {
		d, err := newExternal(b.opts.Delegate)
		if err != nil {
			if b.opts.Delegate.Required {
				return err
			}
			b.log().Warn("delegate unavailable, running on the CPU", "library", b.opts.Delegate.Library, "err", err)
		} else {
			want = append(want, d)
		}
	}
	if len(want) == 0 && b.opts.XNNPACK && (inType == graph.Float32 || b.opts.XNNPACKFlags != 0) {
		if d, err := newXNNPACK(threads, b.opts.XNNPACKFlags); err == nil {
			want = append(want, d)
		}
	}
	for _, d := range want {
		if b.newInterpreter(threads, d) {
			b.delegate, b.accel = d, d.name
			break
		}
		if d.name != "xnnpack" && b.opts.Delegate.Required {
			d.Delete()
			return fmt.Errorf("delegate %s could not be applied to the model and delegate.required is set", d.name)
		}
		b.log().Warn("delegate could not be applied to the model, running on the CPU", "delegate", d.name)
		d.Delete()
	}
	if b.interp == nil && !b.newInterpreter(threads, nil) {
		return errors.New("TensorFlow Lite could not build an interpreter for the model (see its message above)")
	}
	if b.accel == "" {
		b.accel = "cpu"
	}
	if st := b.interp.AllocateTensors(); st != tflite.OK {
		return fmt.Errorf("allocate tensors: %s", st)
	}
	return b.bindTensors()
}

func (b *Backbone) newInterpreter(threads int, d *delegate) bool {
	opts := tflite.NewInterpreterOptions()
	opts.SetNumThread(threads)
	if d != nil {
		opts.AddDelegate(d)
	}
	it := tflite.NewInterpreter(b.model, opts)
	if it == nil {
		opts.Delete()
		return false
	}
	b.interp, b.options = it, opts
	return true
}

func (b *Backbone) bindTensors() error {
	in := b.interp.GetInputTensor(0)
	if in == nil || in.NumDims() != 4 || in.Dim(0) != 1 {
		return errors.New("input tensor must be 1×H×W×C")
	}
	b.inH, b.inW, b.inC = in.Dim(1), in.Dim(2), in.Dim(3)
	if b.inC != 1 && b.inC != 3 {
		return fmt.Errorf("input has %d channels: want 1 (grayscale) or 3 (RGB)", b.inC)
	}
	b.inType = in.Type()
	switch b.inType {
	case tflite.UInt8, tflite.Int8, tflite.Float32:
	default:
		return fmt.Errorf("input type %s: want uint8, int8 or float32", b.inType)
	}
	b.in = in.Data()
	b.row = make([]float32, b.inW*3)
	if n := b.interp.GetOutputTensorCount(); n != len(b.taps)+len(b.opts.Extra) {
		return fmt.Errorf("interpreter has %d outputs, want %d", n, len(b.taps)+len(b.opts.Extra))
	}
	b.outs = make([]output, len(b.taps))
	b.fmaps = make([]FeatureMap, len(b.taps))
	for i := range b.taps {
		t := b.interp.GetOutputTensor(i)
		tp := &b.taps[i]
		if t.NumDims() != 4 || t.Dim(1) != tp.H || t.Dim(2) != tp.W || t.Dim(3) != tp.C {
			return fmt.Errorf("tap %q: interpreter shape differs from the file's", tp.Name)
		}
		o := output{t: t, kind: t.Type(), n: tp.H * tp.W * tp.C, data: t.Data()}
		q := t.QuantizationParams()
		if o.kind == tflite.UInt8 || o.kind == tflite.Int8 {
			tp.Scale, tp.Zero = q.Scale, q.ZeroPoint
			for v := 0; v < 256; v++ {
				raw := v
				if o.kind == tflite.Int8 {
					raw = int(int8(uint8(v)))
				}
				o.lut[v] = float32(q.Scale * float64(raw-q.ZeroPoint))
			}
		}
		b.outs[i] = o
		b.fmaps[i] = FeatureMap{Tap: tp, Data: make([]float32, o.n)}
	}
	for i := range b.opts.Extra {
		b.extras = append(b.extras, b.interp.GetOutputTensor(len(b.taps)+i))
	}
	return nil
}

// Taps describes the tapped tensors, finest first as configured.
func (b *Backbone) Taps() []Tap { return b.taps }

// InputSize is the network input's width and height.
func (b *Backbone) InputSize() (w, h int) { return b.inW, b.inH }

// SHA256 is the hex digest of the original model file (before rewriting),
// which PaDiM model files record so a mismatched backbone is refused.
func (b *Backbone) SHA256() string { return b.sha }

// Accelerator names what runs the model: "cpu", "xnnpack" or a plugin path.
func (b *Backbone) Accelerator() string { return b.accel }

// Graph is the parsed original model.
func (b *Backbone) Graph() *graph.Model { return b.graph }

// Extract runs one image through the model and returns the tap feature
// maps (reused by the next call) and the region of the input that holds the
// image. It does not allocate in steady state.
func (b *Backbone) Extract(img image.Image) ([]FeatureMap, Region, error) {
	reg, err := b.SetInput(img)
	if err != nil {
		return nil, reg, err
	}
	if err := b.Invoke(); err != nil {
		return nil, reg, err
	}
	return b.Features(), reg, nil
}

// SetInput preprocesses an image into the input tensor (SetInputWith
// without a photometric map).
func (b *Backbone) SetInput(img image.Image) (Region, error) {
	return b.SetInputWith(img, Photometric{})
}

// SetInputWith preprocesses an image into the input tensor in one fused
// pass (fused.go): frames as the camera path delivers them (*image.Gray,
// *image.RGBA, *image.YCbCr of any subsampling, packed YUYV, regions of
// them, rotated views) are resampled where they lie, antialiased, mapped
// by ph and quantized straight into the interpreter's input; other image
// types are converted to RGBA first. It returns the part of the input that
// holds the image, and allocates nothing in steady state.
func (b *Backbone) SetInputWith(img image.Image, ph Photometric) (Region, error) {
	reg, ok, err := b.fusedInput(img, ph)
	if ok || err != nil {
		return reg, err
	}
	reg, _, err = b.fusedInput(b.fused.flatten(img), ph)
	return reg, err
}

// SourceNeed is the smallest size a w×h image can be delivered at without
// losing resolution the network uses: the input pixels it fills (all of
// them when squashed, the letterboxed part when fitted), and for a cropped
// image the whole image at that scale. A source that reduces frames (an
// MJPEG camera's DCT scaling) keeps at least this much.
func (b *Backbone) SourceNeed(w, h int) (int, int) {
	gx, gy, err := geometry(w, h, b.inW, b.inH, b.prep.Resize)
	if err != nil {
		return w, h
	}
	need := func(n int, s span) int {
		return min(n, int(math.Ceil(float64(n)*float64(s.dstLen)/s.len-1e-9)))
	}
	return need(w, gx), need(h, gy)
}

// SetInputReference preprocesses an image the way inspectd did before the
// fused pass, the yardstick the fused pass is measured and tested against
// (`inspectd bench --camera-replay` times both): the image converted to
// RGBA at full resolution, then resampled in two float passes over every
// row. Without a standardizer it writes the same input as SetInput to
// within rounding; std, when given, standardizes the full-resolution copy
// first (Standardizer.Apply).
func (b *Backbone) SetInputReference(img image.Image, std *Standardizer) (Region, error) {
	if std != nil {
		img = std.Apply(img)
	}
	img = normalizeOrigin(img)
	bd := img.Bounds()
	if b.rs == nil || b.rs.srcW != bd.Dx() || b.rs.srcH != bd.Dy() {
		rs, err := newResizer(bd.Dx(), bd.Dy(), b.inW, b.inH, b.prep.Resize)
		if err != nil {
			return Region{}, fmt.Errorf("preprocess: %w", err)
		}
		b.rs = rs
	}
	b.rs.horizontal(img)
	n := b.inW * b.inC
	for y := 0; y < b.inH; y++ {
		b.rs.vertical(b.row, y)
		b.store(y*n, b.row)
	}
	return b.rs.region, nil
}

// store quantizes one row of RGB pixels (0..255) into the input tensor.
func (b *Backbone) store(off int, row []float32) {
	w, c := b.inW, b.inC
	switch b.inType {
	case tflite.UInt8:
		dst := unsafe.Slice((*uint8)(b.in), b.inW*b.inH*c)[off : off+w*c]
		if c == 3 {
			for i, v := range row {
				dst[i] = uint8(min(max(v+0.5, 0), 255))
			}
			return
		}
		for x := 0; x < w; x++ {
			dst[x] = uint8(min(max(gray(row[3*x:3*x+3])+0.5, 0), 255))
		}
	case tflite.Int8:
		dst := unsafe.Slice((*int8)(b.in), b.inW*b.inH*c)[off : off+w*c]
		if c == 3 {
			for i, v := range row {
				dst[i] = int8(int(min(max(v+0.5, 0), 255)) - 128)
			}
			return
		}
		for x := 0; x < w; x++ {
			dst[x] = int8(int(min(max(gray(row[3*x:3*x+3])+0.5, 0), 255)) - 128)
		}
	case tflite.Float32:
		dst := unsafe.Slice((*float32)(b.in), b.inW*b.inH*c)[off : off+w*c]
		m, s := b.prep.Mean, b.prep.Std
		if c == 3 {
			for x := 0; x < w; x++ {
				for k := 0; k < 3; k++ {
					dst[3*x+k] = (row[3*x+k] - m[k]) / s[k]
				}
			}
			return
		}
		for x := 0; x < w; x++ {
			dst[x] = (gray(row[3*x:3*x+3]) - m[0]) / s[0]
		}
	}
}

func gray(p []float32) float32 { return 0.299*p[0] + 0.587*p[1] + 0.114*p[2] }

// Invoke runs the network on the current input.
func (b *Backbone) Invoke() error {
	s := time.Now()
	if st := b.interp.Invoke(); st != tflite.OK {
		return fmt.Errorf("backbone %s: invoke: %s", b.name, st)
	}
	b.observe(time.Since(s))
	return nil
}

// Features dequantizes the tap outputs of the last Invoke.
func (b *Backbone) Features() []FeatureMap {
	for i := range b.outs {
		o := &b.outs[i]
		dst := b.fmaps[i].Data
		switch o.kind {
		case tflite.UInt8, tflite.Int8:
			src := unsafe.Slice((*uint8)(o.data), o.n)
			lut := &o.lut
			for j, v := range src {
				dst[j] = lut[v]
			}
		case tflite.Float32:
			copy(dst, unsafe.Slice((*float32)(o.data), o.n))
		}
	}
	return b.fmaps
}

// RawTap returns the raw bytes of tap i's output tensor of the last Invoke
// (valid until the next Invoke), for bit-exact comparisons.
func (b *Backbone) RawTap(i int) []byte {
	o := &b.outs[i]
	return unsafe.Slice((*byte)(o.data), o.t.ByteSize())
}

// RawInput returns the raw bytes of the input tensor as the last SetInput
// wrote them (valid until the next one), for comparisons of
// preprocessing paths.
func (b *Backbone) RawInput() []byte {
	return unsafe.Slice((*byte)(b.in), b.interp.GetInputTensor(0).ByteSize())
}

// Extra returns extra output i (as configured in Options.Extra) as raw bytes
// with its type name.
func (b *Backbone) Extra(i int) ([]byte, string) {
	t := b.extras[i]
	return unsafe.Slice((*byte)(t.Data()), t.ByteSize()), t.Type().String()
}

// Close frees the interpreter, its options, the delegate and the model.
func (b *Backbone) Close() {
	if b.interp != nil {
		b.interp.Delete()
		b.interp = nil
	}
	if b.options != nil {
		b.options.Delete()
		b.options = nil
	}
	if b.delegate != nil {
		b.delegate.Delete()
		b.delegate = nil
	}
	if b.model != nil {
		b.model.Delete()
		b.model = nil
	}
}
