package optimize

import (
	"encoding/binary"
	"fmt"
	"math"
)

// writer appends FlatBuffers objects to the end of a model file and
// repoints existing fields at them. FlatBuffers uoffsets are unsigned and
// relative to the field, so a field can only point forward: everything new
// goes after the original bytes, and a new table is written before the
// vectors it refers to. Alignment follows what the FlatBuffers verifier
// checks (vectors aligned to their element size, tables to 4).
type writer struct {
	out []byte
}

func newWriter(raw []byte) *writer {
	out := make([]byte, len(raw), len(raw)+len(raw)/2+4096)
	copy(out, raw)
	return &writer{out: out}
}

// pad appends zero bytes until len(out) ≡ rem (mod align).
func (w *writer) pad(align, rem int) {
	for len(w.out)%align != rem {
		w.out = append(w.out, 0)
	}
}

// point sets the uoffset field at pos to reach target.
func (w *writer) point(pos, target int) error {
	if pos <= 0 || target <= pos || target-pos > math.MaxUint32 {
		return fmt.Errorf("cannot point field at byte %d to byte %d: FlatBuffers offsets only point forward", pos, target)
	}
	binary.LittleEndian.PutUint32(w.out[pos:], uint32(target-pos))
	return nil
}

// vector appends a vector's length prefix so that its elements start
// aligned to elemAlign, and returns the prefix position.
func (w *writer) vector(n, elemAlign int) int {
	a := max(elemAlign, 4)
	w.pad(a, a-4)
	pos := len(w.out)
	w.out = binary.LittleEndian.AppendUint32(w.out, uint32(n))
	return pos
}

func (w *writer) float32s(v []float32) int {
	pos := w.vector(len(v), 4)
	for _, x := range v {
		w.out = binary.LittleEndian.AppendUint32(w.out, math.Float32bits(x))
	}
	return pos
}

func (w *writer) int64s(v []int64) int {
	pos := w.vector(len(v), 8)
	for _, x := range v {
		w.out = binary.LittleEndian.AppendUint64(w.out, uint64(x))
	}
	return pos
}

// bytes appends a [ubyte] vector whose data starts 16-byte aligned, which
// lets kernels read float weights in place.
func (w *writer) bytes(data []byte) int {
	pos := w.vector(len(data), 16)
	w.out = append(w.out, data...)
	return pos
}

// quantization appends a QuantizationParameters table
// {scale: [float] (field 2), zero_point: [long] (3), quantized_dimension:
// int (6)}; with no scales it appends an empty table, which TFLite reads as
// "not quantized".
func (w *writer) quantization(scale []float32, zero []int64, dim int32) int {
	if len(scale) == 0 {
		w.pad(2, 0)
		vt := len(w.out)
		w.out = binary.LittleEndian.AppendUint16(w.out, 4) // vtable size
		w.out = binary.LittleEndian.AppendUint16(w.out, 4) // table size
		w.pad(4, 0)
		tab := len(w.out)
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(int32(tab-vt)))
		return tab
	}
	// vtable: size, table size, then 7 field offsets (fields 0..6).
	w.pad(2, 0)
	vt := len(w.out)
	fields := [7]uint16{2: 4, 3: 8, 6: 12}
	w.out = binary.LittleEndian.AppendUint16(w.out, 4+2*7)
	w.out = binary.LittleEndian.AppendUint16(w.out, 16)
	for _, f := range fields {
		w.out = binary.LittleEndian.AppendUint16(w.out, f)
	}
	w.pad(4, 0)
	tab := len(w.out)
	w.out = binary.LittleEndian.AppendUint32(w.out, uint32(int32(tab-vt)))
	w.out = append(w.out, make([]byte, 8)...) // scale, zero_point offsets
	w.out = binary.LittleEndian.AppendUint32(w.out, uint32(dim))
	sv := w.float32s(scale)
	zv := w.int64s(zero)
	// Both targets lie after the table: the offsets are forward.
	binary.LittleEndian.PutUint32(w.out[tab+4:], uint32(sv-(tab+4)))
	binary.LittleEndian.PutUint32(w.out[tab+8:], uint32(zv-(tab+8)))
	return tab
}
