package graph

import (
	"encoding/binary"
	"fmt"
	"math"
)

// corrupt is the panic value the bounds-checked reader uses internally; Parse
// recovers it into an error so that a damaged file can never crash the caller.
type corrupt struct{ msg string }

// buf is a bounds-checked FlatBuffers reader over a TFLite model. TFLite files
// come from outside (users bring their own backbones), so every offset is
// checked instead of trusting the file the way generated FlatBuffers code does.
type buf []byte

func (b buf) fail(format string, a ...any) { panic(corrupt{fmt.Sprintf(format, a...)}) }

func (b buf) check(pos, n int, what string) {
	if pos < 0 || n < 0 || pos > len(b) || n > len(b)-pos {
		b.fail("%s at byte %d (+%d) lies outside the %d-byte file", what, pos, n, len(b))
	}
}

func (b buf) u8(pos int, what string) uint8 { b.check(pos, 1, what); return b[pos] }
func (b buf) u16(pos int, what string) uint16 {
	b.check(pos, 2, what)
	return binary.LittleEndian.Uint16(b[pos:])
}
func (b buf) u32(pos int, what string) uint32 {
	b.check(pos, 4, what)
	return binary.LittleEndian.Uint32(b[pos:])
}
func (b buf) u64(pos int, what string) uint64 {
	b.check(pos, 8, what)
	return binary.LittleEndian.Uint64(b[pos:])
}

// deref follows a uoffset stored at pos.
func (b buf) deref(pos int, what string) int {
	off := b.u32(pos, what)
	if off == 0 || uint64(pos)+uint64(off) >= uint64(len(b)) {
		b.fail("%s at byte %d points outside the file (offset %d)", what, pos, off)
	}
	return pos + int(off)
}

// table is a FlatBuffers table position plus its vtable.
type table struct {
	b      buf
	pos    int
	vt     int
	vtSize int
	what   string
}

func (b buf) table(pos int, what string) table {
	soff := int32(b.u32(pos, what))
	vt := int64(pos) - int64(soff)
	if vt < 0 || vt > int64(len(b))-4 {
		b.fail("%s at byte %d has its vtable outside the file", what, pos)
	}
	vtSize := int(b.u16(int(vt), what+" vtable"))
	if vtSize < 4 || vtSize%2 != 0 {
		b.fail("%s at byte %d has a malformed vtable (size %d)", what, pos, vtSize)
	}
	b.check(int(vt), vtSize, what+" vtable")
	return table{b: b, pos: pos, vt: int(vt), vtSize: vtSize, what: what}
}

// field returns the absolute position of field i, or 0 when absent.
func (t table) field(i int) int {
	o := 4 + 2*i
	if o+2 > t.vtSize {
		return 0
	}
	off := int(t.b.u16(t.vt+o, t.what))
	if off == 0 {
		return 0
	}
	t.b.check(t.pos+off, 1, t.what+" field")
	return t.pos + off
}

func (t table) u8(i int, def uint8) uint8 {
	if p := t.field(i); p != 0 {
		return t.b.u8(p, t.what)
	}
	return def
}

func (t table) i32(i int, def int32) int32 {
	if p := t.field(i); p != 0 {
		return int32(t.b.u32(p, t.what))
	}
	return def
}

func (t table) u32(i int, def uint32) uint32 {
	if p := t.field(i); p != 0 {
		return t.b.u32(p, t.what)
	}
	return def
}

// vector returns the position of the first element and the length of the
// vector in field i (0, 0 when absent), checking that elemSize×len fits.
func (t table) vector(i, elemSize int) (start, n int) {
	p := t.field(i)
	if p == 0 {
		return 0, 0
	}
	v := t.b.deref(p, t.what+" vector")
	ln := t.b.u32(v, t.what+" vector length")
	if uint64(ln)*uint64(elemSize) > uint64(len(t.b)) {
		t.b.fail("%s: vector of %d elements at byte %d is longer than the file", t.what, ln, v)
	}
	t.b.check(v+4, int(ln)*elemSize, t.what+" vector")
	return v + 4, int(ln)
}

func (t table) str(i int) string {
	s, n := t.vector(i, 1)
	if n == 0 {
		return ""
	}
	return string(t.b[s : s+n])
}

func (t table) int32s(i int) []int32 {
	s, n := t.vector(i, 4)
	out := make([]int32, n)
	for k := range out {
		out[k] = int32(binary.LittleEndian.Uint32(t.b[s+4*k:]))
	}
	return out
}

func (t table) float32s(i int) []float32 {
	s, n := t.vector(i, 4)
	out := make([]float32, n)
	for k := range out {
		out[k] = math.Float32frombits(binary.LittleEndian.Uint32(t.b[s+4*k:]))
	}
	return out
}

func (t table) int64s(i int) []int64 {
	s, n := t.vector(i, 8)
	out := make([]int64, n)
	for k := range out {
		out[k] = int64(binary.LittleEndian.Uint64(t.b[s+8*k:]))
	}
	return out
}

// tables returns the tables of a vector of tables in field i.
func (t table) tables(i int, what string) []table {
	s, n := t.vector(i, 4)
	out := make([]table, n)
	for k := range out {
		out[k] = t.b.table(t.b.deref(s+4*k, what), fmt.Sprintf("%s %d", what, k))
	}
	return out
}
