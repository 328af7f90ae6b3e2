package sppb

import "strconv"

// DataType is a Sparkplug B datatype: the DataType enum of sparkplug_b.proto
// (Sparkplug 3.0 §6.4.16), used by metrics, property values and DataSet
// columns. On the wire it is a uint32.
type DataType uint32

// The datatypes of Sparkplug 3.0 §6.4.16.
const (
	TypeUnknown         DataType = 0
	TypeInt8            DataType = 1
	TypeInt16           DataType = 2
	TypeInt32           DataType = 3
	TypeInt64           DataType = 4
	TypeUInt8           DataType = 5
	TypeUInt16          DataType = 6
	TypeUInt32          DataType = 7
	TypeUInt64          DataType = 8
	TypeFloat           DataType = 9
	TypeDouble          DataType = 10
	TypeBoolean         DataType = 11
	TypeString          DataType = 12
	TypeDateTime        DataType = 13
	TypeText            DataType = 14
	TypeUUID            DataType = 15
	TypeDataSet         DataType = 16
	TypeBytes           DataType = 17
	TypeFile            DataType = 18
	TypeTemplate        DataType = 19
	TypePropertySet     DataType = 20
	TypePropertySetList DataType = 21
	TypeInt8Array       DataType = 22
	TypeInt16Array      DataType = 23
	TypeInt32Array      DataType = 24
	TypeInt64Array      DataType = 25
	TypeUInt8Array      DataType = 26
	TypeUInt16Array     DataType = 27
	TypeUInt32Array     DataType = 28
	TypeUInt64Array     DataType = 29
	TypeFloatArray      DataType = 30
	TypeDoubleArray     DataType = 31
	TypeBooleanArray    DataType = 32
	TypeStringArray     DataType = 33
	TypeDateTimeArray   DataType = 34
)

var dataTypeNames = [...]string{
	"Unknown", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double",
	"Boolean", "String", "DateTime", "Text", "UUID", "DataSet", "Bytes", "File", "Template", "PropertySet",
	"PropertySetList", "Int8Array", "Int16Array", "Int32Array", "Int64Array", "UInt8Array", "UInt16Array",
	"UInt32Array", "UInt64Array", "FloatArray", "DoubleArray", "BooleanArray", "StringArray", "DateTimeArray",
}

// String is the specification's name of t ("Double", "UInt64"), or
// "DataType(N)" for a value outside the enum.
func (t DataType) String() string {
	if int(t) < len(dataTypeNames) {
		return dataTypeNames[t]
	}
	return "DataType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// Kind is the member of the value oneof that carries a value of type t on
// the wire (§6.4.17: Int8..UInt32 in int_value, Int64, UInt64 and DateTime
// in long_value, String, Text and UUID in string_value, Bytes, File and the
// arrays in bytes_value), or KindNone for Unknown, Template and values
// outside the enum.
func (t DataType) Kind() ValueKind {
	switch t {
	case TypeInt8, TypeInt16, TypeInt32, TypeUInt8, TypeUInt16, TypeUInt32:
		return KindInt
	case TypeInt64, TypeUInt64, TypeDateTime:
		return KindLong
	case TypeFloat:
		return KindFloat
	case TypeDouble:
		return KindDouble
	case TypeBoolean:
		return KindBoolean
	case TypeString, TypeText, TypeUUID:
		return KindString
	case TypeDataSet:
		return KindDataSet
	case TypeBytes, TypeFile, TypeInt8Array, TypeInt16Array, TypeInt32Array, TypeInt64Array, TypeUInt8Array,
		TypeUInt16Array, TypeUInt32Array, TypeUInt64Array, TypeFloatArray, TypeDoubleArray, TypeBooleanArray,
		TypeStringArray, TypeDateTimeArray:
		return KindBytes
	case TypePropertySet:
		return KindPropertySet
	case TypePropertySetList:
		return KindPropertySetList
	}
	return KindNone
}
