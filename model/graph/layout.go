package graph

import (
	"fmt"
)

// TensorFields are the byte positions, inside Bytes(), of one tensor's
// fields, for writers that patch a model in place (model/optimize). A
// position is 0 where the field is absent from the tensor's vtable (the
// schema default applies; such a field cannot be patched in place).
type TensorFields struct {
	// Type is the element type byte.
	Type int
	// Quantization is the uoffset field pointing at the
	// QuantizationParameters table.
	Quantization int
	// Sparsity is the uoffset field of the sparsity table (sparse weights).
	Sparsity int
}

// BufferFields locate one buffer's data inside Bytes().
type BufferFields struct {
	// Data is the buffer table's uoffset field pointing at the data vector
	// (0 when the buffer is empty and has no such field).
	Data int
	// Start and Len are the data bytes (Len 0 when empty).
	Start, Len int
}

// safely runs f, turning the bounds-checked reader's panic into an error
// (the model already passed Parse, so this only guards against misuse).
func safely(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(corrupt)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("corrupt or truncated TensorFlow Lite model: %s", c.msg)
		}
	}()
	f()
	return nil
}

// TensorFields returns the byte positions of tensor i's fields.
func (m *Model) TensorFields(i int) (TensorFields, error) {
	if i < 0 || i >= len(m.Tensors) {
		return TensorFields{}, fmt.Errorf("tensor %d out of range (model has %d tensors)", i, len(m.Tensors))
	}
	var f TensorFields
	err := safely(func() {
		t := m.subgraph.element(0, i, "tensor")
		f = TensorFields{Type: t.field(1), Quantization: t.field(4), Sparsity: t.field(6)}
	})
	return f, err
}

// BufferCount is the number of entries in the model's buffers vector.
func (m *Model) BufferCount() int {
	n := 0
	_ = safely(func() {
		fb := buf(m.raw)
		root := fb.table(fb.deref(0, "root table"), "model")
		_, n = root.vector(4, 4)
	})
	return n
}

// BufferFields returns where buffer b's data lies.
func (m *Model) BufferFields(b uint32) (BufferFields, error) {
	var f BufferFields
	err := safely(func() {
		fb := buf(m.raw)
		root := fb.table(fb.deref(0, "root table"), "model")
		t := root.element(4, int(b), "buffer")
		f.Data = t.field(0)
		f.Start, f.Len = t.vector(0, 1)
	})
	return f, err
}

// element is table k of the vector of tables in field i.
func (t table) element(i, k int, what string) table {
	s, n := t.vector(i, 4)
	if k < 0 || k >= n {
		t.b.fail("%s %d of %d", what, k, n)
	}
	return t.b.table(t.b.deref(s+4*k, what), fmt.Sprintf("%s %d", what, k))
}

// OptionsFields locate an operator's builtin options table inside Bytes().
type OptionsFields struct {
	// Field is the operator's builtin_options uoffset field (0 when the
	// operator has no options).
	Field int
	// Table is the options table's position, VTable its vtable's and
	// VTableSize the vtable's size in bytes; TableSize is the table's
	// inline size as its vtable records it.
	Table, VTable, VTableSize, TableSize int
}

// OperatorOptions returns where operator i's builtin options lie.
func (m *Model) OperatorOptions(i int) (OptionsFields, error) {
	var f OptionsFields
	err := safely(func() {
		op := m.subgraph.element(3, i, "operator")
		f.Field = op.field(4)
		if f.Field == 0 {
			return
		}
		t := op.b.table(op.b.deref(f.Field, "builtin options"), "builtin options")
		f.Table, f.VTable, f.VTableSize = t.pos, t.vt, t.vtSize
		f.TableSize = int(t.b.u16(t.vt+2, "builtin options vtable"))
		t.b.check(t.pos, f.TableSize, "builtin options")
	})
	return f, err
}
