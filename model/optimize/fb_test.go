package optimize

import (
	"encoding/binary"
	"math"
)

// A minimal FlatBuffers serializer for building small TFLite models in
// tests: tables are written before their children, so every offset points
// forward, as in a file written by the real builder.

// fbTable is a table: field i holds nil (absent), a scalar (uint8, int32,
// uint32, int64, float32), a string, an fbVec or an fbTable.
type fbTable []any

// fbVec is a vector of scalars, strings or tables.
type fbVec []any

type fbBuilder struct{ out []byte }

func (b *fbBuilder) pad(align, rem int) {
	for len(b.out)%align != rem {
		b.out = append(b.out, 0)
	}
}

func scalarSize(v any) int {
	switch v.(type) {
	case uint8, bool:
		return 1
	case int64:
		return 8
	}
	return 4
}

func (b *fbBuilder) putScalar(pos int, v any) {
	switch x := v.(type) {
	case uint8:
		b.out[pos] = x
	case bool:
		if x {
			b.out[pos] = 1
		}
	case int32:
		binary.LittleEndian.PutUint32(b.out[pos:], uint32(x))
	case uint32:
		binary.LittleEndian.PutUint32(b.out[pos:], x)
	case float32:
		binary.LittleEndian.PutUint32(b.out[pos:], math.Float32bits(x))
	case int64:
		binary.LittleEndian.PutUint64(b.out[pos:], uint64(x))
	default:
		panic("not a scalar")
	}
}

func isRef(v any) bool {
	switch v.(type) {
	case string, fbVec, fbTable:
		return true
	}
	return false
}

// table writes t and its children and returns the table's position.
func (b *fbBuilder) table(t fbTable) int {
	// Inline layout: soffset, then fields in order, each aligned to its
	// size (references are 4-byte uoffsets).
	offs := make([]int, len(t))
	size := 4
	for i, v := range t {
		if v == nil {
			continue
		}
		n := 4
		if !isRef(v) {
			n = scalarSize(v)
		}
		size = (size + n - 1) / n * n
		offs[i] = size
		size += n
	}
	b.pad(2, 0)
	vt := len(b.out)
	b.out = binary.LittleEndian.AppendUint16(b.out, uint16(4+2*len(t)))
	b.out = binary.LittleEndian.AppendUint16(b.out, uint16(size))
	for _, o := range offs {
		b.out = binary.LittleEndian.AppendUint16(b.out, uint16(o))
	}
	b.pad(8, 0)
	tab := len(b.out)
	b.out = append(b.out, make([]byte, size)...)
	binary.LittleEndian.PutUint32(b.out[tab:], uint32(int32(tab-vt)))
	for i, v := range t {
		if v == nil {
			continue
		}
		if !isRef(v) {
			b.putScalar(tab+offs[i], v)
			continue
		}
		child := b.ref(v)
		binary.LittleEndian.PutUint32(b.out[tab+offs[i]:], uint32(child-(tab+offs[i])))
	}
	return tab
}

// ref writes a string, vector or table and returns where it starts.
func (b *fbBuilder) ref(v any) int {
	switch x := v.(type) {
	case fbTable:
		return b.table(x)
	case string:
		b.pad(4, 0)
		pos := len(b.out)
		b.out = binary.LittleEndian.AppendUint32(b.out, uint32(len(x)))
		b.out = append(b.out, x...)
		b.out = append(b.out, 0)
		return pos
	case fbVec:
		elem := 4
		if len(x) > 0 && !isRef(x[0]) {
			elem = scalarSize(x[0])
		}
		b.pad(max(elem, 16), max(elem, 16)-4)
		pos := len(b.out)
		b.out = binary.LittleEndian.AppendUint32(b.out, uint32(len(x)))
		start := len(b.out)
		b.out = append(b.out, make([]byte, elem*len(x))...)
		for i, e := range x {
			if !isRef(e) {
				b.putScalar(start+elem*i, e)
				continue
			}
			child := b.ref(e)
			binary.LittleEndian.PutUint32(b.out[start+4*i:], uint32(child-(start+4*i)))
		}
		return pos
	}
	panic("not a reference")
}

// fbFile serializes a root table with the TFLite file identifier.
func fbFile(root fbTable) []byte {
	b := &fbBuilder{out: make([]byte, 8)}
	copy(b.out[4:], "TFL3")
	pos := b.table(root)
	binary.LittleEndian.PutUint32(b.out[0:], uint32(pos))
	return b.out
}
