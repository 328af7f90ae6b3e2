package padim

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// FormatVersion is the model file layout version this package writes and
// reads.
const FormatVersion = 1

// Tensor names in the model file.
const (
	TensorMean     = "mean"
	TensorInvCov   = "inv_cov"
	TensorChannels = "channels"
)

// maxHeader bounds the JSON header a reader accepts: real headers are a few
// kilobytes, and the length comes from the file.
const maxHeader = 16 << 20

// headerAlign makes the tensor data start on a 64-byte boundary of the
// file, so the mmapped floats are aligned for any vector width.
const headerAlign = 64

// checksumPrefix introduces the hex CRC-32C (Castagnoli, hardware
// accelerated: ~5 ms for a 65 MB model where sha256 would take ~100 ms) of
// the whole file after the length prefix, computed with the checksum's own
// eight hex digits set to '0'.
const checksumPrefix = "crc32c:"

// Metadata describes how a model was fitted and must be used.
type Metadata struct {
	// Pool is the average-pooling factor of the grid (1: none).
	Pool int
	// Eps is the ridge that was added to the covariances.
	Eps float64
	// ImageThreshold and PixelThreshold are the decision levels (0: unset).
	ImageThreshold, PixelThreshold float64
	// BackboneSHA256 is the hex sha256 of the backbone model file.
	BackboneSHA256 string
	// Taps are the backbone tensor names, in embedding order.
	Taps []string
	// TapShapes are the taps' H×W×C, parallel to Taps.
	TapShapes []TapShape
	// Preprocessing is a JSON document describing how images were turned
	// into network input (the caller's schema).
	Preprocessing string
	// FitDate is when the fit finished.
	FitDate time.Time
	// Images is the number of images in the Gaussian fit.
	Images int
	// Seed picked the channels (informational: the channels are stored).
	Seed uint64
	// Extra holds further string metadata; keys must not be reserved ones.
	Extra map[string]string
}

// Tensor is an additional float32 tensor stored with a model.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Model is a fitted PaDiM model. When it comes from Load, State.Mean,
// State.InvCov and the Tensors' data point into a read-only mapping of the
// file: they must not be written, and are invalid after Close.
type Model struct {
	State    State
	Channels []int32
	Meta     Metadata
	// Tensors are optional further tensors (float32), by name.
	Tensors map[string]Tensor
	// Members are further fitted models stored in the same file (an
	// ensemble's other detectors: their own backbone, grid and metadata),
	// each without members of its own. A reader that does not know them
	// sees this model alone, with extra tensors and metadata keys under
	// MemberPrefix. When loaded, their slices point into this model's
	// mapping (DontNeed takes them) and are invalid after its Close.
	Members []*Model

	path   string
	size   int64
	mapped []byte
	unmap  func([]byte) error
}

// Path is the file the model was loaded from ("" if not loaded).
func (m *Model) Path() string { return m.path }

// FileBytes is the size of the loaded file.
func (m *Model) FileBytes() int64 { return m.size }

// DontNeed lets the kernel drop the pages of v, a tensor of this model's
// file mapping, from the process's resident memory (madvise
// MADV_DONTNEED on the whole pages inside v): they are read from the file
// again if touched. For the inverse covariances once a half-precision
// scorer holds its own copy: otherwise their float32 pages, read once to
// make it, would stay resident beside it. It does nothing where v is not
// in the mapping or there is no mapping (an in-memory model).
func (m *Model) DontNeed(v []float32) {
	if m.mapped == nil || len(v) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.mapped)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	hi := lo + uintptr(len(v))*4
	if lo < base || hi > base+uintptr(len(m.mapped)) {
		return
	}
	page := uintptr(os.Getpagesize())
	a, b := (lo-base+page-1)/page*page, (hi-base)/page*page
	if a < b {
		dontNeed(m.mapped[a:b])
	}
}

// Close releases the file mapping. The model's slices are invalid after it.
func (m *Model) Close() error {
	if m.mapped == nil {
		return nil
	}
	b := m.mapped
	m.mapped = nil
	m.State.Mean, m.State.InvCov, m.Channels, m.Tensors, m.Members = nil, nil, nil, nil, nil
	if err := m.unmap(b); err != nil {
		return fmt.Errorf("close model %s: %w", m.path, err)
	}
	return nil
}

// reserved are the metadata keys this package owns.
var reserved = []string{"format_version", "grid_h", "grid_w", "d", "pool", "eps", "image_threshold",
	"pixel_threshold", "backbone_sha256", "taps", "tap_shapes", "preprocessing", "fit_date", "images",
	"seed", "checksum", metaMembers}

// metaMembers is the number of members a file holds (absent: none).
const metaMembers = "members"

// MaxMembers bounds the members of a model file.
const MaxMembers = 8

// MemberPrefix is the prefix of member k's (1-based) metadata keys and
// tensor names in a model file: its own keys and names, prefixed.
func MemberPrefix(k int) string { return "member" + strconv.Itoa(k) + "." }

// memberOf returns the member a prefixed key or tensor name belongs to
// and the name without the prefix (0 for the main model's own).
func memberOf(key string) (int, string) {
	rest, ok := strings.CutPrefix(key, "member")
	if !ok {
		return 0, key
	}
	num, name, ok := strings.Cut(rest, ".")
	k, err := strconv.Atoi(num)
	if !ok || err != nil || k < 1 || strconv.Itoa(k) != num {
		return 0, key
	}
	return k, name
}

func littleEndian() bool {
	var x uint16 = 1
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

type tensorEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

type namedData struct {
	name  string
	dtype string
	shape []int64
	f32   []float32
	i32   []int32
}

func (nd namedData) bytes() []byte {
	switch {
	case len(nd.f32) > 0:
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(nd.f32))), 4*len(nd.f32))
	case len(nd.i32) > 0:
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(nd.i32))), 4*len(nd.i32))
	}
	return nil
}

// Save writes m to path atomically: a temporary file in the same
// directory, fsynced, renamed over path, and the directory fsynced, so a
// crash leaves either the old or the new model, never a torn one (and the
// next Save removes such a crash's temporary file once an hour old).
func Save(path string, m *Model) error {
	return SaveWith(path, m, atomicfile.Options{Perm: 0o644})
}

// SaveWith is Save with the file's permissions, and what is done to it
// before a byte is written (atomicfile.WriteWith): a model file that
// replaces one of an operator's keeps its mode from the start.
func SaveWith(path string, m *Model, opts atomicfile.Options) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("save model %s: %w", path, err)
		}
	}()
	if !littleEndian() {
		return errors.New("writing model files needs a little-endian machine")
	}
	hdr, tensors, err := encodeHeader(m)
	if err != nil {
		return err
	}
	// Checksum: header with zeroed digits, then every tensor's bytes.
	crc := crc32.Update(0, castagnoli, hdr)
	for _, t := range tensors {
		crc = crc32.Update(crc, castagnoli, t.bytes())
	}
	i := bytes.Index(hdr, []byte(checksumPrefix+"00000000"))
	copy(hdr[i+len(checksumPrefix):], fmt.Sprintf("%08x", crc))

	atomicfile.RemoveStale(path) // tens of MB each, left by a crash mid-save
	return atomicfile.WriteWith(path, opts, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 1<<20)
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
		w.Write(n[:])
		w.Write(hdr)
		for _, t := range tensors {
			w.Write(t.bytes())
		}
		return w.Flush()
	})
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeHeader validates m and returns the padded JSON header (checksum
// digits zeroed) and the tensors in file order.
func encodeHeader(m *Model) ([]byte, []namedData, error) {
	meta, tensors, err := encodePart(m, "")
	if err != nil {
		return nil, nil, err
	}
	if len(m.Members) > MaxMembers {
		return nil, nil, fmt.Errorf("%d members, at most %d", len(m.Members), MaxMembers)
	}
	for i, mem := range m.Members {
		if len(mem.Members) > 0 {
			return nil, nil, fmt.Errorf("member %d has members of its own", i+1)
		}
		mm, mt, err := encodePart(mem, MemberPrefix(i+1))
		if err != nil {
			return nil, nil, fmt.Errorf("member %d: %w", i+1, err)
		}
		maps.Copy(meta, mm)
		tensors = append(tensors, mt...)
	}
	if len(m.Members) > 0 {
		meta[metaMembers] = strconv.Itoa(len(m.Members))
	}
	meta["format_version"] = strconv.Itoa(FormatVersion)
	meta["checksum"] = checksumPrefix + "00000000"
	hdr := map[string]any{"__metadata__": meta}
	var off int64
	for _, t := range tensors {
		end := off + int64(len(t.bytes()))
		hdr[t.name] = tensorEntry{Dtype: t.dtype, Shape: t.shape, DataOffsets: [2]int64{off, end}}
		off = end
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, nil, err
	}
	pad := (headerAlign - (8+len(js))%headerAlign) % headerAlign
	js = append(js, bytes.Repeat([]byte{' '}, pad)...)
	return js, tensors, nil
}

// encodePart returns one model's metadata and tensors (not its members),
// under prefix ("" for the main model, MemberPrefix for a member).
func encodePart(m *Model, prefix string) (map[string]string, []namedData, error) {
	s := &m.State
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	if len(m.Channels) != s.D {
		return nil, nil, fmt.Errorf("%d channel indices, want d=%d", len(m.Channels), s.D)
	}
	md := m.Meta
	if md.Pool <= 0 {
		md.Pool = 1
	}
	if err := checkMeta(&md); err != nil {
		return nil, nil, err
	}
	if err := checkChannels(m.Channels, md.TapShapes); err != nil {
		return nil, nil, err
	}
	meta := map[string]string{}
	for k, v := range md.Extra {
		if n, _ := memberOf(k); slices.Contains(reserved, k) || n > 0 {
			return nil, nil, fmt.Errorf("extra metadata key %q is reserved", k)
		}
		meta[prefix+k] = v
	}
	taps, _ := json.Marshal(md.Taps)
	shapes := make([][3]int, len(md.TapShapes))
	for i, t := range md.TapShapes {
		shapes[i] = [3]int{t.H, t.W, t.C}
	}
	tapShapes, _ := json.Marshal(shapes)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for k, v := range map[string]string{
		"grid_h":          strconv.Itoa(s.GridH),
		"grid_w":          strconv.Itoa(s.GridW),
		"d":               strconv.Itoa(s.D),
		"pool":            strconv.Itoa(md.Pool),
		"eps":             f(md.Eps),
		"image_threshold": f(md.ImageThreshold),
		"pixel_threshold": f(md.PixelThreshold),
		"backbone_sha256": md.BackboneSHA256,
		"taps":            string(taps),
		"tap_shapes":      string(tapShapes),
		"preprocessing":   md.Preprocessing,
		"fit_date":        md.FitDate.UTC().Format(time.RFC3339Nano),
		"images":          strconv.Itoa(md.Images),
		"seed":            strconv.FormatUint(md.Seed, 10),
	} {
		meta[prefix+k] = v
	}
	p := int64(s.Positions())
	channels := namedData{name: prefix + TensorChannels, dtype: "I32", shape: []int64{int64(s.D)}, i32: m.Channels}
	if prefix != "" {
		// A member's channel indices as float32 (exact below 2^24): a
		// reader from before members takes them for an extra tensor,
		// which it accepts only in F32, and loads the main model.
		channels.dtype, channels.i32, channels.f32 = "F32", nil, make([]float32, len(m.Channels))
		for i, c := range m.Channels {
			channels.f32[i] = float32(c)
		}
	}
	tensors := []namedData{
		channels,
		{name: prefix + TensorMean, dtype: "F32", shape: []int64{p, int64(s.D)}, f32: s.Mean},
		{name: prefix + TensorInvCov, dtype: "F32", shape: []int64{p, int64(packedLen(s.D))}, f32: s.InvCov},
	}
	for _, name := range slices.Sorted(maps.Keys(m.Tensors)) {
		t := m.Tensors[name]
		if n, _ := memberOf(name); n > 0 || name == TensorChannels || name == TensorMean || name == TensorInvCov || name == "__metadata__" || name == "" {
			return nil, nil, fmt.Errorf("tensor name %q is reserved", name)
		}
		n := 1
		shape := make([]int64, len(t.Shape))
		for i, v := range t.Shape {
			if v < 0 {
				return nil, nil, fmt.Errorf("tensor %q: negative dimension in shape %v", name, t.Shape)
			}
			n *= v
			shape[i] = int64(v)
		}
		if n != len(t.Data) {
			return nil, nil, fmt.Errorf("tensor %q: shape %v holds %d values, data has %d", name, t.Shape, n, len(t.Data))
		}
		tensors = append(tensors, namedData{name: prefix + name, dtype: "F32", shape: shape, f32: t.Data})
	}
	for _, t := range tensors {
		if err := checkFinite(t.name, t.shape, t.f32); err != nil {
			return nil, nil, err // Load would refuse the file
		}
	}
	return meta, tensors, nil
}

// checkMeta validates the metadata fields a model needs, in terms that
// name them.
func checkMeta(md *Metadata) error {
	if md.Pool <= 0 {
		return fmt.Errorf("metadata pool=%d, want ≥ 1", md.Pool)
	}
	if !(md.Eps > 0) || math.IsInf(md.Eps, 0) {
		return fmt.Errorf("metadata eps=%g, want a positive finite number", md.Eps)
	}
	for name, v := range map[string]float64{"image_threshold": md.ImageThreshold, "pixel_threshold": md.PixelThreshold} {
		if !(v >= 0) || math.IsInf(v, 0) {
			return fmt.Errorf("metadata %s=%g, want a finite number ≥ 0", name, v)
		}
	}
	if b, err := hex.DecodeString(md.BackboneSHA256); err != nil || len(b) != 32 || strings.ToLower(md.BackboneSHA256) != md.BackboneSHA256 {
		return fmt.Errorf("metadata backbone_sha256=%q, want 64 lowercase hex digits", md.BackboneSHA256)
	}
	if len(md.Taps) == 0 || len(md.Taps) != len(md.TapShapes) {
		return fmt.Errorf("metadata has %d taps and %d tap shapes, want the same non-zero number", len(md.Taps), len(md.TapShapes))
	}
	for i, t := range md.TapShapes {
		if t.H <= 0 || t.W <= 0 || t.C <= 0 {
			return fmt.Errorf("metadata tap_shapes[%d]=%dx%dx%d, want positive", i, t.H, t.W, t.C)
		}
	}
	if !json.Valid([]byte(md.Preprocessing)) {
		return fmt.Errorf("metadata preprocessing is not valid JSON: %.60q", md.Preprocessing)
	}
	if md.FitDate.IsZero() {
		return errors.New("metadata fit_date is not set")
	}
	if md.Images < 2 {
		return fmt.Errorf("metadata images=%d, want ≥ 2", md.Images)
	}
	return nil
}

// checkChannels requires ascending, distinct indices into the taps'
// concatenated channels, as Embedder.Channels returns them.
func checkChannels(ch []int32, taps []TapShape) error {
	total := 0
	for _, t := range taps {
		total += t.C
	}
	for i, c := range ch {
		if c < 0 || int(c) >= total || (i > 0 && c <= ch[i-1]) {
			return fmt.Errorf("channel index %d at %d is out of range 0..%d or not ascending", c, i, total-1)
		}
	}
	return nil
}

// Expect is what the caller's backbone is; Load refuses models fitted for
// another one. Empty fields are not checked.
type Expect struct {
	BackboneSHA256 string
	Taps           []string
}

// LoadOptions configures Load.
type LoadOptions struct {
	Expect Expect
	// MaxStateBytes refuses, before mapping the file, a model whose scoring
	// state (StateBytes) exceeds it. 0: no limit.
	MaxStateBytes int64
}

// layout is a validated header.
type layout struct {
	dataStart int64
	size      int64
	header    []byte
	entries   map[string]tensorEntry
	state     State // sizes only
	meta      Metadata
	checksum  uint32
	sumAt     int // index of the checksum digits in header
	// members are the layouts of the file's members (entries and
	// metadata without their prefix).
	members []*layout
}

// Load opens, validates and maps a model file. Large tensors are not
// copied: they alias the read-only mapping until Close. A path that is
// not a regular file is refused with a *NotModelFileError, which names
// it and says what it is; any other refusal is a *LoadError.
func Load(path string, opts LoadOptions) (*Model, error) {
	m, err := load(path, opts)
	if nm := (*NotModelFileError)(nil); errors.As(err, &nm) {
		return nil, err // it names the path already
	}
	if err != nil {
		return nil, &LoadError{Path: path, Err: err}
	}
	return m, nil
}

// LoadError is Load's refusal of a path it could not read as a model file
// (a *NotModelFileError aside): one that is gone, cannot be opened, does
// not read as a model file (header, checksum) or is over the memory budget
// (ErrOverBudget). It tells a caller that the file itself was refused, not
// a detector built from it, so that the refusal can be worded without
// reading the file again.
type LoadError struct {
	Path string
	Err  error
}

// Error reads "load model PATH: " and why.
func (e *LoadError) Error() string { return "load model " + e.Path + ": " + e.Err.Error() }

// Unwrap returns why the file was refused.
func (e *LoadError) Unwrap() error { return e.Err }

// NotModelFileError is Load's refusal of a path that is there and is not
// a regular file: a folder, a device, a named pipe or a socket.
type NotModelFileError struct {
	Path string
	Mode os.FileMode
}

// Error names the path and what it is: "/x.prev is a named pipe, not a
// model file".
func (e *NotModelFileError) Error() string {
	if e.Mode.IsDir() {
		return fmt.Sprintf("%s is a folder, not a model file", e.Path)
	}
	return fmt.Sprintf("%s is %s, not a model file", e.Path, FileKind(e.Mode))
}

// FileKind names the kind of a file that is neither regular nor a folder,
// as a refusal words it: "a device", "a named pipe", "a socket", or "not a
// regular file" (atomicfile.FileKind, the words capture and config use
// too).
func FileKind(m os.FileMode) string { return atomicfile.FileKind(m) }

func load(path string, opts LoadOptions) (*Model, error) {
	// What is not a regular file is refused before it is opened: opening
	// a named pipe for reading waits for a writer (a model rollback to a
	// pipe at model.path's .prev held the command handler, and the
	// daemon's model lock, for good), and opening a device may act on it
	// (a watchdog device starts counting down).
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &NotModelFileError{Path: path, Mode: st.Mode()}
	}
	// openFlags opens without waiting (O_NONBLOCK where there is one), so
	// that a pipe put in the file's place after the Stat is refused below
	// instead of blocking the open; a regular file's reads do not heed it.
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &NotModelFileError{Path: path, Mode: st.Mode()}
	}
	hdr, err := readHeader(io.NewSectionReader(f, 0, st.Size()), st.Size())
	if err != nil {
		return nil, err
	}
	lay, err := parseHeader(hdr, st.Size())
	if err != nil {
		return nil, err
	}
	if err := lay.check(opts); err != nil {
		return nil, err
	}
	buf, unmap, err := mapFile(f, st.Size())
	if err != nil {
		return nil, err
	}
	m, err := lay.bind(buf)
	if err != nil {
		unmap(buf)
		return nil, err
	}
	m.path, m.mapped, m.unmap = path, buf, unmap
	return m, nil
}

// decode is Load on an in-memory file (the fuzz target).
func decode(buf []byte, opts LoadOptions) (*Model, error) {
	hdr, err := readHeader(bytes.NewReader(buf), int64(len(buf)))
	if err != nil {
		return nil, err
	}
	lay, err := parseHeader(hdr, int64(len(buf)))
	if err != nil {
		return nil, err
	}
	if err := lay.check(opts); err != nil {
		return nil, err
	}
	return lay.bind(buf)
}

func readHeader(r io.ReaderAt, size int64) ([]byte, error) {
	if size < 8 {
		return nil, fmt.Errorf("file is %d bytes, too short for a safetensors header", size)
	}
	var n [8]byte
	if _, err := r.ReadAt(n[:], 0); err != nil {
		return nil, fmt.Errorf("header length: %w", err)
	}
	hl := binary.LittleEndian.Uint64(n[:])
	if hl < 2 || hl > maxHeader || hl > uint64(size-8) {
		return nil, fmt.Errorf("header length %d is out of bounds (file is %d bytes, limit %d): not a model file inspectd wrote (safetensors), or cut short", hl, size, maxHeader)
	}
	hdr := make([]byte, hl)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return hdr, nil
}

func parseHeader(hdr []byte, size int64) (*layout, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("header is not a JSON object: %w", err)
	}
	lay := &layout{dataStart: 8 + int64(len(hdr)), size: size, header: hdr, entries: map[string]tensorEntry{}}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; !ok {
		return nil, errors.New("header has no __metadata__")
	} else if err := json.Unmarshal(m, &meta); err != nil {
		return nil, fmt.Errorf("header __metadata__ is not a map of strings: %w", err)
	}
	dataLen := size - lay.dataStart
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	// cut is the tensor a file cut short ends in (or before): of those
	// whose data reach past the file's end, the one starting first. The
	// entries are read in sorted order, not the map's, so that a file gets
	// the same words on every load (a dry run and its push must agree).
	var cut span
	cutShort := false
	var need int64
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		msg := raw[name]
		if name == "__metadata__" {
			continue
		}
		var e tensorEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if e.Dtype != "F32" && e.Dtype != "I32" {
			return nil, fmt.Errorf("tensor %q has dtype %q, want F32 or I32", name, e.Dtype)
		}
		n := int64(1)
		for _, v := range e.Shape {
			if v < 0 || (v > 0 && n > math.MaxInt64/4/v) {
				return nil, fmt.Errorf("tensor %q has shape %v, want non-negative dimensions of sane size", name, e.Shape)
			}
			n *= v
		}
		b, en := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || en < b {
			return nil, fmt.Errorf("tensor %q has data_offsets [%d, %d], not a span of data bytes (the file is damaged)", name, b, en)
		}
		if en-b != 4*n {
			return nil, fmt.Errorf("tensor %q: shape %v × 4 bytes = %d, but data_offsets span %d bytes", name, e.Shape, 4*n, en-b)
		}
		lay.entries[name] = e
		spans = append(spans, span{name, b, en})
		need = max(need, en)
		if en > dataLen && (!cutShort || b < cut.begin) {
			cut, cutShort = span{name, b, en}, true
		}
	}
	if cutShort {
		c := cut
		return nil, fmt.Errorf("file is %d bytes, the header's tensors need %d: the file is cut short (copied while written?) or damaged, from tensor %q on (data bytes %d..%d, the file ends at data byte %d)",
			size, lay.dataStart+need, c.name, c.begin, c.end, dataLen)
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.begin != b.begin {
			return int(min(max(a.begin-b.begin, -1), 1))
		}
		return int(min(max(a.end-b.end, -1), 1))
	})
	var at int64
	for _, s := range spans {
		if s.begin != at {
			what := "a gap"
			if s.begin < at {
				what = "an overlap"
			}
			return nil, fmt.Errorf("tensor %q starts at data byte %d: %s after byte %d", s.name, s.begin, what, at)
		}
		at = s.end
	}
	if at != dataLen {
		return nil, fmt.Errorf("tensors cover %d data bytes, the file holds %d", at, dataLen)
	}
	if err := lay.splitMembers(meta); err != nil {
		return nil, err
	}
	return lay, nil
}

// splitMembers parses the main model's metadata and each member's: the
// keys and tensors under MemberPrefix(k) go to member k.
func (lay *layout) splitMembers(meta map[string]string) error {
	n := 0
	if v, ok := meta[metaMembers]; ok {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 || k > MaxMembers {
			return fmt.Errorf("metadata %s=%q, want an integer in 1..%d", metaMembers, v, MaxMembers)
		}
		n = k
	}
	own := map[string]string{}
	subs := make([]map[string]string, n)
	lay.members = make([]*layout, n)
	for i := range n {
		subs[i] = map[string]string{}
		lay.members[i] = &layout{dataStart: lay.dataStart, size: lay.size, entries: map[string]tensorEntry{}}
	}
	for k, v := range meta {
		switch m, name := memberOf(k); {
		case m == 0:
			own[k] = v
		case m > n:
			return fmt.Errorf("metadata key %q belongs to member %d, but the file declares %d member(s)", k, m, n)
		default:
			subs[m-1][name] = v
		}
	}
	for name, e := range lay.entries {
		m, base := memberOf(name)
		if m == 0 {
			continue
		}
		if m > n {
			return fmt.Errorf("tensor %q belongs to member %d, but the file declares %d member(s)", name, m, n)
		}
		lay.members[m-1].entries[base] = e
		delete(lay.entries, name)
	}
	if err := lay.parseMeta(own, false); err != nil {
		return err
	}
	for i, ml := range lay.members {
		if err := ml.parseMeta(subs[i], true); err != nil {
			return fmt.Errorf("member %d: %w", i+1, err)
		}
	}
	return nil
}

// parseMeta reads one model's metadata; a member's has no format version
// or checksum of its own (the file's cover it).
func (lay *layout) parseMeta(meta map[string]string, member bool) error {
	get := func(k string) (string, error) {
		v, ok := meta[k]
		if !ok {
			return "", fmt.Errorf("metadata lacks %q", k)
		}
		return v, nil
	}
	var firstErr error
	str := func(k string) string {
		v, err := get(k)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	}
	integer := func(k string, lo, hi int) int {
		v := str(k)
		n, err := strconv.Atoi(v)
		if firstErr == nil && (err != nil || n < lo || n > hi) {
			firstErr = fmt.Errorf("metadata %s=%q, want an integer in %d..%d", k, v, lo, hi)
		}
		return n
	}
	float := func(k string) float64 {
		v := str(k)
		x, err := strconv.ParseFloat(v, 64)
		if firstErr == nil && (err != nil || math.IsNaN(x) || math.IsInf(x, 0)) {
			firstErr = fmt.Errorf("metadata %s=%q, want a finite number", k, v)
		}
		return x
	}
	if !member {
		if v := str("format_version"); firstErr == nil && v != strconv.Itoa(FormatVersion) {
			return fmt.Errorf("metadata format_version=%q, this build reads version %d", v, FormatVersion)
		}
	}
	const big = 1 << 20
	s := &lay.state
	s.GridH = integer("grid_h", 1, big)
	s.GridW = integer("grid_w", 1, big)
	s.D = integer("d", 1, 1<<16)
	md := &lay.meta
	md.Pool = integer("pool", 1, big)
	md.Eps = float("eps")
	md.ImageThreshold = float("image_threshold")
	md.PixelThreshold = float("pixel_threshold")
	md.BackboneSHA256 = str("backbone_sha256")
	md.Preprocessing = str("preprocessing")
	md.Images = integer("images", 0, math.MaxInt32)
	taps, shapes, date, seed := str("taps"), str("tap_shapes"), str("fit_date"), str("seed")
	var sum string
	if !member {
		sum = str("checksum")
	}
	if firstErr != nil {
		return firstErr
	}
	if err := json.Unmarshal([]byte(taps), &md.Taps); err != nil {
		return fmt.Errorf("metadata taps=%.80q, want a JSON list of strings: %w", taps, err)
	}
	var sh [][3]int
	if err := json.Unmarshal([]byte(shapes), &sh); err != nil {
		return fmt.Errorf("metadata tap_shapes=%.80q, want a JSON list of [h, w, c]: %w", shapes, err)
	}
	for _, t := range sh {
		md.TapShapes = append(md.TapShapes, TapShape{H: t[0], W: t[1], C: t[2]})
	}
	var err error
	if md.FitDate, err = time.Parse(time.RFC3339Nano, date); err != nil {
		return fmt.Errorf("metadata fit_date=%q, want RFC 3339: %w", date, err)
	}
	if md.Seed, err = strconv.ParseUint(seed, 10, 64); err != nil {
		return fmt.Errorf("metadata seed=%q, want an unsigned integer", seed)
	}
	if !member {
		digits, ok := strings.CutPrefix(sum, checksumPrefix)
		c, err := strconv.ParseUint(digits, 16, 32)
		if !ok || len(digits) != 8 || err != nil {
			return fmt.Errorf("metadata checksum=%q, want %s and 8 hex digits", sum, checksumPrefix)
		}
		lay.checksum = uint32(c)
		key := []byte(`"checksum":"` + sum + `"`)
		if bytes.Count(lay.header, key) != 1 {
			return errors.New("metadata checksum is not written as this format writes it")
		}
		lay.sumAt = bytes.Index(lay.header, key) + len(`"checksum":"`+checksumPrefix)
	}
	if err := checkMeta(md); err != nil {
		return err
	}
	for k, v := range meta {
		if !slices.Contains(reserved, k) {
			if md.Extra == nil {
				md.Extra = map[string]string{}
			}
			md.Extra[k] = v
		}
	}
	// The tensors the state needs, with the shapes the metadata implies.
	p := int64(s.GridH) * int64(s.GridW)
	want := map[string]struct {
		dtype string
		shape []int64
	}{
		TensorMean:     {"F32", []int64{p, int64(s.D)}},
		TensorInvCov:   {"F32", []int64{p, int64(packedLen(s.D))}},
		TensorChannels: {"I32", []int64{int64(s.D)}},
	}
	if member {
		want[TensorChannels] = struct {
			dtype string
			shape []int64
		}{"F32", []int64{int64(s.D)}} // see encodePart
	}
	for name, w := range want {
		e, ok := lay.entries[name]
		if !ok {
			return fmt.Errorf("tensor %q is missing", name)
		}
		if e.Dtype != w.dtype || !slices.Equal(e.Shape, w.shape) {
			return fmt.Errorf("tensor %q is %s%v, want %s%v (grid %dx%d, d=%d)", name, e.Dtype, e.Shape, w.dtype, w.shape, s.GridH, s.GridW, s.D)
		}
	}
	for name, e := range lay.entries {
		if _, ok := want[name]; !ok && e.Dtype != "F32" {
			return fmt.Errorf("tensor %q has dtype %s, extra tensors must be F32", name, e.Dtype)
		}
	}
	return nil
}

// ErrOverBudget is wrapped by a load refused because the model's scoring
// state is larger than LoadOptions.MaxStateBytes: the file is sound, the
// box is told to hold less (a caller can say which setting to change).
var ErrOverBudget = errors.New("over the memory budget")

// ScaleState is one scale's share of a model's scoring state: its grid
// (views × grid height, grid width), d and StateBytes.
type ScaleState struct {
	// Name says which scale: "patch" (the file's main state), a further
	// scale's prefix without its "_" ("context", "context2"), after
	// "main model " or "member K " in a file with members.
	Name         string
	GridH, GridW int
	D            int
	Bytes        int64
}

// OverBudgetError is the refusal of a model whose scoring state, all its
// scales and all its members', is over a memory budget. It wraps
// ErrOverBudget and words the total, in bytes and MiB, with each scale's
// share: the first refusal says all that the model needs, so that raising
// the budget by what it says is enough.
type OverBudgetError struct {
	Members int // the file's members besides its main model
	Scales  []ScaleState
	Bytes   int64 // the total
	Budget  int64
}

// Error reads "scoring state needs 79327400 bytes (75.7 MiB: patch grid
// 56x56 d=100 64601600 bytes + context grid 28x28 d=100 14725800 bytes),
// over the memory budget of 65011712 bytes (62.0 MiB)".
func (e *OverBudgetError) Error() string {
	what := "scoring state"
	if e.Members > 0 {
		what = fmt.Sprintf("scoring state of the model and its %d member(s)", e.Members)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	detail := mib(e.Bytes)
	if len(e.Scales) > 0 {
		parts := make([]string, len(e.Scales))
		for i, s := range e.Scales {
			parts[i] = fmt.Sprintf("%s grid %dx%d d=%d %d bytes", s.Name, s.GridH, s.GridW, s.D, s.Bytes)
		}
		detail += ": " + strings.Join(parts, " + ")
	}
	return fmt.Sprintf("%s needs %d bytes (%s), %v of %d bytes (%s)", what, e.Bytes, detail, ErrOverBudget, e.Budget, mib(e.Budget))
}

// Unwrap makes errors.Is(err, ErrOverBudget) hold.
func (e *OverBudgetError) Unwrap() error { return ErrOverBudget }

// CheckBudget returns an *OverBudgetError when the scales' state together
// exceed budget (0: no bound), else nil.
func CheckBudget(scales []ScaleState, members int, budget int64) error {
	var b int64
	for _, s := range scales {
		b += s.Bytes
	}
	if budget <= 0 || b <= budget {
		return nil
	}
	return &OverBudgetError{Members: members, Scales: scales, Bytes: b, Budget: budget}
}

// scales lists one model's scales (the main one's or a member's), each
// name after namePrefix: the main state, then each further scale the file
// holds as a pair of tensors PREFIX_mean [h, w, d] and PREFIX_inv_cov [h,
// w, d(d+1)/2], as the model package stores its context scales. Both
// tensors are in the file (parseHeader), so no size overflows.
func (lay *layout) scales(namePrefix string) []ScaleState {
	s := lay.state
	out := []ScaleState{{Name: namePrefix + "patch", GridH: s.GridH, GridW: s.GridW, D: s.D, Bytes: StateBytes(s.Positions(), s.D)}}
	var more []ScaleState
	for name, e := range lay.entries {
		prefix, ok := strings.CutSuffix(name, "_"+TensorMean)
		if !ok || len(e.Shape) != 3 {
			continue
		}
		h, w, d := e.Shape[0], e.Shape[1], e.Shape[2]
		ic, ok := lay.entries[prefix+"_"+TensorInvCov]
		if !ok || d < 1 || d > 1<<16 || !slices.Equal(ic.Shape, []int64{h, w, int64(packedLen(int(d)))}) {
			continue
		}
		more = append(more, ScaleState{Name: namePrefix + prefix, GridH: int(h), GridW: int(w), D: int(d), Bytes: StateBytes(int(h*w), int(d))})
	}
	// "context" before "context2": shorter names first.
	slices.SortFunc(more, func(a, b ScaleState) int {
		if len(a.Name) != len(b.Name) {
			return len(a.Name) - len(b.Name)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return append(out, more...)
}

// check applies the caller's expectations before anything is mapped.
func (lay *layout) check(opts LoadOptions) error {
	md := &lay.meta
	if e := opts.Expect.BackboneSHA256; e != "" && !strings.EqualFold(e, md.BackboneSHA256) {
		return fmt.Errorf("fitted for backbone sha256 %s, but the backbone in use is %s: refit the model", md.BackboneSHA256, e)
	}
	if e := opts.Expect.Taps; e != nil && !slices.Equal(e, md.Taps) {
		return fmt.Errorf("fitted with taps %q, but the backbone is configured with taps %q: refit the model", md.Taps, e)
	}
	if opts.MaxStateBytes > 0 {
		// All the scales of the model and of each member: a refusal
		// naming the patch scale's share alone sent the user to raise the
		// budget to it, to be refused again for the rest.
		main := ""
		if len(lay.members) > 0 {
			main = "main model "
		}
		scales := lay.scales(main)
		for i, ml := range lay.members {
			scales = append(scales, ml.scales(fmt.Sprintf("member %d ", i+1))...)
		}
		if err := CheckBudget(scales, len(lay.members), opts.MaxStateBytes); err != nil {
			return err
		}
	}
	return nil
}

// bind verifies the checksum over the whole file and points the model's
// slices at buf.
func (lay *layout) bind(buf []byte) (*Model, error) {
	if int64(len(buf)) != lay.size {
		return nil, fmt.Errorf("file changed size while loading (%d, then %d bytes)", lay.size, len(buf))
	}
	hdr := buf[8:lay.dataStart]
	zero := []byte("00000000")
	crc := crc32.Update(0, castagnoli, hdr[:lay.sumAt])
	crc = crc32.Update(crc, castagnoli, zero)
	crc = crc32.Update(crc, castagnoli, hdr[lay.sumAt+8:])
	crc = crc32.Update(crc, castagnoli, buf[lay.dataStart:])
	if crc != lay.checksum {
		return nil, fmt.Errorf("checksum mismatch: file says %08x, contents give %08x (corrupt or truncated file)", lay.checksum, crc)
	}
	data := buf[lay.dataStart:]
	m, err := lay.bindPart(data)
	if err != nil {
		return nil, err
	}
	for i, ml := range lay.members {
		mm, err := ml.bindPart(data)
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i+1, err)
		}
		m.Members = append(m.Members, mm)
	}
	return m, nil
}

// bindPart points one model's slices (the main one's or a member's) at
// the file's data.
func (lay *layout) bindPart(data []byte) (*Model, error) {
	m := &Model{State: lay.state, Meta: lay.meta, size: lay.size}
	f32 := func(name string) []float32 {
		e := lay.entries[name]
		return floats(data[e.DataOffsets[0]:e.DataOffsets[1]])
	}
	m.State.Mean = f32(TensorMean)
	m.State.InvCov = f32(TensorInvCov)
	ce := lay.entries[TensorChannels]
	ch := data[ce.DataOffsets[0]:ce.DataOffsets[1]]
	m.Channels = make([]int32, len(ch)/4)
	for i := range m.Channels {
		m.Channels[i] = int32(binary.LittleEndian.Uint32(ch[4*i:]))
	}
	if ce.Dtype == "F32" { // a member's (encodePart)
		for i, v := range f32(TensorChannels) {
			if v != float32(int32(v)) {
				return nil, fmt.Errorf("tensor %q: channel index %v at %d is not an integer", TensorChannels, v, i)
			}
			m.Channels[i] = int32(v)
		}
	}
	if err := checkChannels(m.Channels, lay.meta.TapShapes); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", TensorChannels, err)
	}
	for name, e := range lay.entries {
		if name == TensorMean || name == TensorInvCov || name == TensorChannels {
			continue
		}
		if m.Tensors == nil {
			m.Tensors = map[string]Tensor{}
		}
		shape := make([]int, len(e.Shape))
		for i, v := range e.Shape {
			shape[i] = int(v)
		}
		m.Tensors[name] = Tensor{Shape: shape, Data: f32(name)}
	}
	// Every float tensor, whoever added it: one NaN in an inverse
	// covariance makes every score NaN, which no threshold flags.
	for _, name := range slices.Sorted(maps.Keys(lay.entries)) {
		if e := lay.entries[name]; e.Dtype == "F32" {
			if err := checkFinite(name, e.Shape, f32(name)); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// floats views little-endian float32 bytes as []float32 without copying
// when the host is little-endian and the bytes are aligned, else decodes a
// copy.
func floats(b []byte) []float32 {
	n := len(b) / 4
	if n == 0 {
		return []float32{}
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if littleEndian() && uintptr(p)%unsafe.Alignof(float32(0)) == 0 {
		return unsafe.Slice((*float32)(p), n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
