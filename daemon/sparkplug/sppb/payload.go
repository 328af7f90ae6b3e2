// Package sppb encodes and decodes Sparkplug B payloads: the protobuf
// messages of sparkplug_b.proto (package org.eclipse.tahu.protobuf) that
// Eclipse Sparkplug 3.0 §6.4 defines, written from the specification with
// google.golang.org/protobuf's protowire, without generated code.
//
// Supported: Payload (timestamp, metrics, seq, uuid, body), Metric (name,
// alias, timestamp, datatype, is_historical, is_transient, is_null,
// metadata, properties and the int, long, float, double, boolean, string,
// bytes and DataSet values), MetaData, PropertySet, PropertyValue,
// PropertySetList and DataSet. Template values and the extension members of
// the value oneofs are refused by the decoder (inspectd neither sends nor
// accepts them); third-party extension fields are skipped like any unknown
// field.
//
// Encoding appends to a caller's buffer and allocates nothing. Decoding
// follows protobuf's rules (last value wins for scalars and oneofs,
// repeated messages append, a singular message seen twice is merged,
// packed and unpacked repeated scalars are both read) and is stricter
// where Sparkplug is: a known field with the wrong wire type, invalid
// UTF-8 in a string, PropertySet keys and values of different lengths and
// DataSet rows that do not match their columns are errors.
package sppb

import (
	"bytes"
	"math"
)

// Payload is a Sparkplug B payload (§6.4.5).
type Payload struct {
	// Timestamp is when the message was published, in milliseconds since
	// the Unix epoch, UTC; 0 means absent.
	Timestamp uint64
	// Metrics are the payload's metrics, in order.
	Metrics []Metric
	// Seq is the message sequence number (0..255) when HasSeq is set.
	// Every message of an edge node carries one except NDEATH (and the
	// commands a host sends).
	Seq    uint64
	HasSeq bool
	// UUID names a schema for Body; empty means absent.
	UUID string
	// Body is custom binary data; empty means absent.
	Body []byte
}

// Metric is one Sparkplug B metric (§6.4.6).
type Metric struct {
	// Name is the slash-separated metric name; births carry it, data and
	// command messages of an edge node that uses aliases carry only Alias.
	Name string
	// Alias is the metric's number when HasAlias is set; 0 is a valid alias.
	Alias    uint64
	HasAlias bool
	// Timestamp is when the value was captured, in milliseconds since the
	// Unix epoch, UTC; 0 means absent.
	Timestamp uint64
	// DataType is required in births; Unknown means absent.
	DataType DataType
	// IsHistorical marks a value that must not update the live tag.
	IsHistorical bool
	// IsTransient marks a value a host should not historize.
	IsTransient bool
	// IsNull says the value is null; Value is then usually KindNone.
	IsNull bool
	// MetaData describes Bytes and File values; nil means absent.
	MetaData *MetaData
	// Properties are the metric's properties; nil means absent.
	Properties *PropertySet
	// Value is the value oneof.
	Value Value
}

// MetaData describes a metric's binary value (§6.4.7).
type MetaData struct {
	IsMultiPart bool
	// ContentType is the media type, e.g. "image/png".
	ContentType string
	// Size is the value's size in bytes.
	Size uint64
	// Seq numbers the parts of a multi-part value.
	Seq         uint64
	FileName    string
	FileType    string
	MD5         string
	Description string
}

// PropertySet is a map of named property values, as two arrays of equal
// length (§6.4.8).
type PropertySet struct {
	Keys   []string
	Values []PropertyValue
}

// PropertyValue is one property (§6.4.9): its datatype and a value of
// kind int, long, float, double, boolean, string, PropertySet or
// PropertySetList.
type PropertyValue struct {
	// Type is the property's datatype; Unknown means absent.
	Type   DataType
	IsNull bool
	Value  Value
}

// DataSet is a table (§6.4.11): NumColumns columns named Columns with
// datatypes Types, and rows of values of kinds int, long, float, double,
// boolean or string.
type DataSet struct {
	NumColumns uint64
	Columns    []string
	Types      []DataType
	Rows       []Row
}

// Row is one DataSet row (§6.4.12).
type Row struct {
	Elements []Value
}

// ValueKind says which member of a value oneof is set.
type ValueKind uint8

// The value kinds. Metrics take KindInt through KindDataSet; property
// values take KindInt through KindString, KindPropertySet and
// KindPropertySetList; DataSet elements take KindInt through KindString.
const (
	KindNone            ValueKind = iota // no value (a null metric or property)
	KindInt                              // int_value, uint32: Int8..Int32, UInt8..UInt32
	KindLong                             // long_value, uint64: Int64, UInt64, DateTime
	KindFloat                            // float_value
	KindDouble                           // double_value
	KindBoolean                          // boolean_value
	KindString                           // string_value: String, Text, UUID
	KindBytes                            // bytes_value: Bytes, File, arrays (metrics only)
	KindDataSet                          // dataset_value (metrics only)
	KindPropertySet                      // propertyset_value (property values only)
	KindPropertySetList                  // propertysets_value (property values only)
)

var kindNames = [...]string{"none", "int_value", "long_value", "float_value", "double_value", "boolean_value",
	"string_value", "bytes_value", "dataset_value", "propertyset_value", "propertysets_value"}

// String is the protobuf name of the oneof member ("double_value").
func (k ValueKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Value is a value oneof: Kind says which field holds it.
type Value struct {
	Kind ValueKind
	// Uint holds KindInt (low 32 bits) and KindLong. Signed types are
	// two's complement: Int8..Int32 sign-extended to 32 bits, Int64 in 64.
	Uint    uint64
	Float32 float32
	Float64 float64
	Bool    bool
	Str     string
	// Bytes is KindBytes' value; the encoder reads it, the decoder copies
	// into a fresh slice.
	Bytes        []byte
	DataSet      *DataSet
	PropertySet  *PropertySet
	PropertySets []PropertySet
}

// IntValue is an int_value of an Int8, Int16 or Int32 metric: v in two's
// complement.
func IntValue(v int32) Value { return Value{Kind: KindInt, Uint: uint64(uint32(v))} }

// UIntValue is an int_value of a UInt8, UInt16 or UInt32 metric.
func UIntValue(v uint32) Value { return Value{Kind: KindInt, Uint: uint64(v)} }

// LongValue is a long_value of an Int64 metric: v in two's complement.
func LongValue(v int64) Value { return Value{Kind: KindLong, Uint: uint64(v)} }

// ULongValue is a long_value of a UInt64 or DateTime metric.
func ULongValue(v uint64) Value { return Value{Kind: KindLong, Uint: v} }

// FloatValue is a float_value.
func FloatValue(v float32) Value { return Value{Kind: KindFloat, Float32: v} }

// DoubleValue is a double_value.
func DoubleValue(v float64) Value { return Value{Kind: KindDouble, Float64: v} }

// BoolValue is a boolean_value.
func BoolValue(v bool) Value { return Value{Kind: KindBoolean, Bool: v} }

// StringValue is a string_value of a String, Text or UUID metric.
func StringValue(s string) Value { return Value{Kind: KindString, Str: s} }

// BytesValue is a bytes_value; b is not copied.
func BytesValue(b []byte) Value { return Value{Kind: KindBytes, Bytes: b} }

// DataSetValue is a dataset_value; d is not copied.
func DataSetValue(d *DataSet) Value { return Value{Kind: KindDataSet, DataSet: d} }

// Int32 is a KindInt value read as a signed 32-bit integer (Int8, Int16
// and Int32 metrics; a sign-extended or a zero-extended Int8 or Int16 both
// come out right once converted to the narrower type).
func (v Value) Int32() int32 { return int32(uint32(v.Uint)) }

// Int64 is a KindLong value read as a signed 64-bit integer.
func (v Value) Int64() int64 { return int64(v.Uint) }

// Equal reports whether v and w hold the same value: floats compare by
// their bits (a NaN equals itself, -0 differs from +0), so that a change
// is a change on the wire.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindInt, KindLong:
		return v.Uint == w.Uint
	case KindFloat:
		return math.Float32bits(v.Float32) == math.Float32bits(w.Float32)
	case KindDouble:
		return math.Float64bits(v.Float64) == math.Float64bits(w.Float64)
	case KindBoolean:
		return v.Bool == w.Bool
	case KindString:
		return v.Str == w.Str
	case KindBytes:
		return bytes.Equal(v.Bytes, w.Bytes)
	case KindDataSet:
		return v.DataSet.equal(w.DataSet)
	case KindPropertySet:
		return v.PropertySet.equal(w.PropertySet)
	case KindPropertySetList:
		if len(v.PropertySets) != len(w.PropertySets) {
			return false
		}
		for i := range v.PropertySets {
			if !v.PropertySets[i].equal(&w.PropertySets[i]) {
				return false
			}
		}
	}
	return true
}

func (d *DataSet) equal(e *DataSet) bool {
	if d == nil || e == nil {
		return d == e
	}
	if d.NumColumns != e.NumColumns || len(d.Columns) != len(e.Columns) || len(d.Types) != len(e.Types) || len(d.Rows) != len(e.Rows) {
		return false
	}
	for i := range d.Columns {
		if d.Columns[i] != e.Columns[i] {
			return false
		}
	}
	for i := range d.Types {
		if d.Types[i] != e.Types[i] {
			return false
		}
	}
	for i := range d.Rows {
		a, b := d.Rows[i].Elements, e.Rows[i].Elements
		if len(a) != len(b) {
			return false
		}
		for j := range a {
			if !a[j].Equal(b[j]) {
				return false
			}
		}
	}
	return true
}

func (s *PropertySet) equal(t *PropertySet) bool {
	if s == nil || t == nil {
		return s == t
	}
	if len(s.Keys) != len(t.Keys) || len(s.Values) != len(t.Values) {
		return false
	}
	for i := range s.Keys {
		if s.Keys[i] != t.Keys[i] {
			return false
		}
	}
	for i := range s.Values {
		a, b := &s.Values[i], &t.Values[i]
		if a.Type != b.Type || a.IsNull != b.IsNull || !a.Value.Equal(b.Value) {
			return false
		}
	}
	return true
}

// Get returns the value of property key and whether the set has it.
func (s *PropertySet) Get(key string) (PropertyValue, bool) {
	if s == nil {
		return PropertyValue{}, false
	}
	for i, k := range s.Keys {
		if k == key && i < len(s.Values) {
			return s.Values[i], true
		}
	}
	return PropertyValue{}, false
}
