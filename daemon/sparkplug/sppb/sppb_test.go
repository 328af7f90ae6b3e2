package sppb

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
)

const ts = 1486144502122

// fullPayload uses every part of the schema this package supports.
func fullPayload() *Payload {
	return &Payload{
		Timestamp: ts, Seq: 0, HasSeq: true, UUID: "u-1", Body: []byte{1, 2, 3},
		Metrics: []Metric{
			{Name: "bdSeq", Alias: 0, HasAlias: true, Timestamp: ts, DataType: TypeInt64, Value: LongValue(0)},
			{Name: "Node Control/Rebirth", Alias: 2, HasAlias: true, Timestamp: ts, DataType: TypeBoolean, Value: BoolValue(false)},
			{Name: "i8", DataType: TypeInt8, Value: IntValue(-1)},
			{Name: "i64", DataType: TypeInt64, Value: LongValue(-5)},
			{Name: "u32", DataType: TypeUInt32, Value: UIntValue(4000000000), IsHistorical: true, IsTransient: true},
			{Name: "f", DataType: TypeFloat, Value: FloatValue(1.5)},
			{Name: "d", DataType: TypeDouble, Value: DoubleValue(-2.25)},
			{Name: "s", DataType: TypeString, Value: StringValue("héllo")},
			{Name: "mask", DataType: TypeBytes, Value: BytesValue([]byte{0x89, 'P', 'N', 'G'}),
				MetaData: &MetaData{ContentType: "image/png", Size: 4, FileName: "m.png", MD5: "x", Description: "d"}},
			{Name: "null", DataType: TypeDouble, IsNull: true},
			{Name: "regions", DataType: TypeDataSet, Value: DataSetValue(&DataSet{NumColumns: 2,
				Columns: []string{"x", "label"}, Types: []DataType{TypeInt32, TypeString},
				Rows: []Row{{Elements: []Value{IntValue(-3), StringValue("a")}}, {Elements: []Value{IntValue(7), StringValue("")}}}})},
			{Name: "props", DataType: TypeDouble, Value: DoubleValue(1), Properties: &PropertySet{
				Keys: []string{"engUnit", "Quality", "nested", "list"},
				Values: []PropertyValue{
					{Type: TypeString, Value: StringValue("ms")},
					{Type: TypeInt32, Value: IntValue(192)},
					{Type: TypePropertySet, Value: Value{Kind: KindPropertySet, PropertySet: &PropertySet{
						Keys: []string{"a"}, Values: []PropertyValue{{Type: TypeBoolean, Value: BoolValue(true)}}}}},
					{Type: TypePropertySetList, Value: Value{Kind: KindPropertySetList, PropertySets: []PropertySet{
						{Keys: []string{"b"}, Values: []PropertyValue{{Type: TypeDouble, IsNull: true}}}}}},
				}}},
		},
	}
}

// fullReference is fullPayload in protobuf text format, as the schema
// reads: what any other Sparkplug implementation must decode.
const fullReference = `
timestamp: 1486144502122
metrics { name: "bdSeq" alias: 0 timestamp: 1486144502122 datatype: 4 long_value: 0 }
metrics { name: "Node Control/Rebirth" alias: 2 timestamp: 1486144502122 datatype: 11 boolean_value: false }
metrics { name: "i8" datatype: 1 int_value: 4294967295 }
metrics { name: "i64" datatype: 4 long_value: 18446744073709551611 }
metrics { name: "u32" datatype: 7 is_historical: true is_transient: true int_value: 4000000000 }
metrics { name: "f" datatype: 9 float_value: 1.5 }
metrics { name: "d" datatype: 10 double_value: -2.25 }
metrics { name: "s" datatype: 12 string_value: "héllo" }
metrics { name: "mask" datatype: 17 bytes_value: "\x89PNG"
  metadata { content_type: "image/png" size: 4 file_name: "m.png" md5: "x" description: "d" } }
metrics { name: "null" datatype: 10 is_null: true }
metrics { name: "regions" datatype: 16 dataset_value {
  num_of_columns: 2 columns: "x" columns: "label" types: 3 types: 12
  rows { elements { int_value: 4294967293 } elements { string_value: "a" } }
  rows { elements { int_value: 7 } elements { string_value: "" } } } }
metrics { name: "props" datatype: 10 double_value: 1 properties {
  keys: "engUnit" keys: "Quality" keys: "nested" keys: "list"
  values { type: 12 string_value: "ms" }
  values { type: 3 int_value: 192 }
  values { type: 20 propertyset_value { keys: "a" values { type: 11 boolean_value: true } } }
  values { type: 21 propertysets_value { propertyset { keys: "b" values { type: 10 is_null: true } } } } } }
seq: 0
uuid: "u-1"
body: "\x01\x02\x03"
`

func reference(t testing.TB, text string) *dynamicpb.Message {
	t.Helper()
	m := dynamicpb.NewMessage(referencePayload)
	if err := prototext.Unmarshal([]byte(text), m); err != nil {
		t.Fatalf("reference text: %v", err)
	}
	return m
}

func mustMarshal(t testing.TB, p *Payload) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != p.Size() {
		t.Fatalf("Size() = %d, encoding has %d bytes", p.Size(), len(b))
	}
	return b
}

// TestEncodeMatchesReference: protobuf's own decoder reads our encoding
// as the schema says.
func TestEncodeMatchesReference(t *testing.T) {
	sameAsReference(t, mustMarshal(t, fullPayload()), reference(t, fullReference))
}

// TestDecodeReferenceEncoding: what protobuf's own encoder writes decodes
// to the same payload, field by field.
func TestDecodeReferenceEncoding(t *testing.T) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(reference(t, fullReference))
	if err != nil {
		t.Fatal(err)
	}
	var p Payload
	if err := Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if got, want := mustMarshal(t, &p), mustMarshal(t, fullPayload()); !bytes.Equal(got, want) {
		t.Fatalf("decoded payload re-encodes as\n%x\nwant\n%x", got, want)
	}
	m := p.Metrics
	switch {
	case !p.HasSeq || p.Seq != 0 || p.Timestamp != ts || p.UUID != "u-1":
		t.Errorf("payload header %+v", p)
	case !m[0].HasAlias || m[0].Alias != 0 || m[2].HasAlias:
		t.Errorf("alias presence: bdSeq %v/%d, i8 %v", m[0].HasAlias, m[0].Alias, m[2].HasAlias)
	case int8(m[2].Value.Int32()) != -1 || m[3].Value.Int64() != -5 || m[4].Value.Uint != 4000000000:
		t.Errorf("integers: %d %d %d", m[2].Value.Int32(), m[3].Value.Int64(), m[4].Value.Uint)
	case m[5].Value.Float32 != 1.5 || m[6].Value.Float64 != -2.25 || m[7].Value.Str != "héllo":
		t.Errorf("float, double, string: %v %v %q", m[5].Value.Float32, m[6].Value.Float64, m[7].Value.Str)
	case m[8].MetaData.ContentType != "image/png" || string(m[8].Value.Bytes) != "\x89PNG":
		t.Errorf("bytes with metadata: %+v %q", m[8].MetaData, m[8].Value.Bytes)
	case !m[9].IsNull || m[9].Value.Kind != KindNone:
		t.Errorf("null metric: %+v", m[9])
	case m[10].Value.DataSet.Rows[0].Elements[0].Int32() != -3 || m[10].Value.DataSet.Types[1] != TypeString:
		t.Errorf("dataset: %+v", m[10].Value.DataSet)
	}
	if q, ok := m[11].Properties.Get("Quality"); !ok || q.Value.Int32() != 192 || q.Type != TypeInt32 {
		t.Errorf("Quality property: %+v, %v", q, ok)
	}
	if n, _ := m[11].Properties.Get("nested"); !n.Value.PropertySet.Values[0].Value.Bool {
		t.Errorf("nested property set: %+v", n)
	}
}

// TestGoldenNDEATH pins the wire format against bytes assembled by hand
// from the protobuf encoding rules: an NDEATH {timestamp 1000, metrics
// [{name "bdSeq", timestamp 1000, datatype Int64, long_value 7}]}.
func TestGoldenNDEATH(t *testing.T) {
	want := []byte{
		0x08, 0xe8, 0x07, // 1: timestamp varint 1000
		0x12, 0x0e, // 2: metrics, 14 bytes
		0x0a, 0x05, 'b', 'd', 'S', 'e', 'q', // 1: name
		0x18, 0xe8, 0x07, // 3: timestamp
		0x20, 0x04, // 4: datatype Int64
		0x58, 0x07, // 11: long_value 7
	}
	p := &Payload{Timestamp: 1000, Metrics: []Metric{{Name: "bdSeq", Timestamp: 1000, DataType: TypeInt64, Value: LongValue(7)}}}
	if got := mustMarshal(t, p); !bytes.Equal(got, want) {
		t.Fatalf("NDEATH encodes as % x\nwant % x", got, want)
	}
	var q Payload
	if err := Unmarshal(want, &q); err != nil || q.HasSeq || q.Metrics[0].Value.Uint != 7 {
		t.Fatalf("decode: %+v, %v", q, err)
	}
}

// TestAppendMarshalAllocatesNothing: the encoder writes into the caller's
// buffer.
func TestAppendMarshalAllocatesNothing(t *testing.T) {
	p := fullPayload()
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { _, _ = p.AppendMarshal(buf[:0]) }); n != 0 {
		t.Fatalf("AppendMarshal allocates %v times per call", n)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Metric
		want string
	}{
		{"property set as a metric value", Metric{Name: "a", Value: Value{Kind: KindPropertySet, PropertySet: &PropertySet{}}},
			`metrics[0] "a": a metric value cannot be a propertyset_value`},
		{"keys without values", Metric{Name: "a", Properties: &PropertySet{Keys: []string{"k"}}},
			"property set has 1 keys and 0 values"},
		{"bytes property", Metric{Name: "a", Properties: &PropertySet{Keys: []string{"k"}, Values: []PropertyValue{{Value: BytesValue(nil)}}}},
			`property "k" cannot be a bytes_value`},
		{"ragged dataset", Metric{Name: "a", Value: DataSetValue(&DataSet{NumColumns: 1, Columns: []string{"x"}, Types: []DataType{TypeInt32},
			Rows: []Row{{Elements: []Value{IntValue(1), IntValue(2)}}}})}, "dataset row 0 has 2 elements for 1 columns"},
		{"column count", Metric{Name: "a", Value: DataSetValue(&DataSet{NumColumns: 2, Columns: []string{"x"}, Types: []DataType{TypeInt32}})},
			"dataset has num_of_columns 2, 1 columns and 1 types"},
		{"bytes in a dataset", Metric{Name: "a", Value: DataSetValue(&DataSet{NumColumns: 1, Columns: []string{"x"}, Types: []DataType{TypeBytes},
			Rows: []Row{{Elements: []Value{BytesValue(nil)}}}})}, "dataset row 0 column 0 cannot be a bytes_value"},
		{"invalid UTF-8 name", Metric{Name: "a\xff"}, "name is not valid UTF-8"},
		{"invalid UTF-8 string", Metric{Name: "a", Value: StringValue("\xc3")}, "string value is not valid UTF-8"},
		{"nil dataset", Metric{Name: "a", Value: Value{Kind: KindDataSet}}, "dataset value is nil"},
		{"nested too deep", Metric{Name: "a", Properties: nested(MaxDepth)}, "property sets nested deeper than 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Payload{Metrics: []Metric{tc.m}}
			_, err := p.Marshal()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := (&Payload{Metrics: []Metric{{Name: "a", Properties: nested(MaxDepth - 1)}}}).Marshal(); err != nil {
		t.Fatalf("property sets nested %d deep: %v", MaxDepth, err)
	}
}

// rawNested encodes a payload whose one metric has property sets nested n
// deep, by hand: the encoder refuses more than MaxDepth.
func rawNested(n int) []byte {
	set := []byte{}
	for range n {
		pv := protowire.AppendTag(nil, fPropSet, protowire.BytesType)
		pv = protowire.AppendBytes(pv, set)
		set = protowire.AppendTag(nil, fSetKeys, protowire.BytesType)
		set = protowire.AppendString(set, "k")
		set = protowire.AppendTag(set, fSetValues, protowire.BytesType)
		set = protowire.AppendBytes(set, pv)
	}
	m := protowire.AppendTag(nil, fMetricProperties, protowire.BytesType)
	m = protowire.AppendBytes(m, set)
	p := protowire.AppendTag(nil, fPayloadMetrics, protowire.BytesType)
	return protowire.AppendBytes(p, m)
}

// nested returns property sets nested n deep below the returned one.
func nested(n int) *PropertySet {
	s := &PropertySet{}
	for range n {
		s = &PropertySet{Keys: []string{"k"}, Values: []PropertyValue{{Type: TypePropertySet, Value: Value{Kind: KindPropertySet, PropertySet: s}}}}
	}
	return s
}

func TestDecodeRefuses(t *testing.T) {
	good := mustMarshal(t, fullPayload())
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated", good[:len(good)-2], "unexpected EOF"},
		{"truncated varint", []byte{0x08, 0xff}, "unexpected EOF"},
		{"field number 0", []byte{0x00, 0x01}, "invalid field number"},
		{"seq as fixed64", []byte{0x19, 0, 0, 0, 0, 0, 0, 0, 0}, "seq: wire type fixed64, expected varint"},
		{"metrics as varint", []byte{0x10, 0x01}, "metrics: wire type varint, expected length-delimited"},
		{"double as varint", []byte{0x12, 0x02, 0x68, 0x01}, "metrics[0]: double_value: wire type varint, expected fixed64"},
		{"string as varint", []byte{0x12, 0x02, 0x78, 0x01}, "metrics[0]: string_value: wire type varint, expected length-delimited"},
		{"template value", []byte{0x12, 0x03, 0x92, 0x01, 0x00}, "template_value: Template metrics are not supported"},
		{"invalid UTF-8 name", []byte{0x12, 0x03, 0x0a, 0x01, 0xff}, "metrics[0]: name is not valid UTF-8"},
		{"keys without values", []byte{0x12, 0x05, 0x4a, 0x03, 0x0a, 0x01, 'k'}, "property set has 1 keys and 0 values"},
		{"ragged dataset", []byte{0x12, 0x0c, 0x8a, 0x01, 0x09, 0x08, 0x01, 0x12, 0x01, 'x', 0x18, 0x03, 0x22, 0x00},
			"dataset row 0 has 0 elements for 1 columns"},
		{"stray end group", []byte{0x0c}, "mismatching end group marker"},
		{"nested too deep", rawNested(MaxDepth + 1), "property sets nested deeper than 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Payload
			err := Unmarshal(tc.in, &p)
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrMalformed containing %q", err, tc.want)
			}
		})
	}
}

// TestDecodeProtobufRules: the decoder follows protobuf where a message
// says a thing twice or in another valid form.
func TestDecodeProtobufRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want *Payload
	}{
		{name: "unknown fields and extensions are skipped",
			raw:  []byte{0x30, 0x05, 0x3a, 0x01, 'x', 0x12, 0x03, 0xa8, 0x1f, 0x01, 0x18, 0x01},
			want: &Payload{Seq: 1, HasSeq: true, Metrics: []Metric{{}}}},
		{name: "a repeated seq keeps the last", raw: []byte{0x18, 0x05, 0x18, 0x07},
			want: &Payload{Seq: 7, HasSeq: true}},
		{name: "the last oneof member wins", raw: []byte{0x12, 0x04, 0x58, 0x05, 0x70, 0x01},
			want: &Payload{Metrics: []Metric{{Value: BoolValue(true)}}}},
		{name: "metadata seen twice is merged", raw: []byte{0x12, 0x08, 0x42, 0x02, 0x18, 0x04, 0x42, 0x02, 0x20, 0x09},
			want: &Payload{Metrics: []Metric{{MetaData: &MetaData{Size: 4, Seq: 9}}}}},
		{name: "packed dataset types", raw: []byte{0x12, 0x0d, 0x8a, 0x01, 0x0a, 0x08, 0x02, 0x12, 0x00, 0x12, 0x00, 0x1a, 0x02, 0x03, 0x0c},
			want: &Payload{Metrics: []Metric{{Value: DataSetValue(&DataSet{NumColumns: 2, Columns: []string{"", ""}, Types: []DataType{TypeInt32, TypeString}})}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Payload
			if err := Unmarshal(tc.raw, &p); err != nil {
				t.Fatal(err)
			}
			if got, want := mustMarshal(t, &p), mustMarshal(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("decoded as %+v (re-encoded % x), want % x", p, got, want)
			}
			ref, err := referenceDecode(tc.raw)
			if err != nil {
				t.Fatalf("reference decoder: %v", err)
			}
			sameAsReference(t, mustMarshal(t, &p), ref)
		})
	}
}

func TestValueEqual(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		a, b Value
		eq   bool
	}{
		{DoubleValue(nan), DoubleValue(nan), true},
		{DoubleValue(0), DoubleValue(math.Copysign(0, -1)), false},
		{DoubleValue(1), FloatValue(1), false},
		{StringValue("a"), StringValue("a"), true},
		{BytesValue([]byte("a")), BytesValue([]byte("b")), false},
		{IntValue(-1), UIntValue(math.MaxUint32), true},
		{DataSetValue(&DataSet{NumColumns: 1, Columns: []string{"x"}, Types: []DataType{TypeInt32}, Rows: []Row{{Elements: []Value{IntValue(1)}}}}),
			DataSetValue(&DataSet{NumColumns: 1, Columns: []string{"x"}, Types: []DataType{TypeInt32}, Rows: []Row{{Elements: []Value{IntValue(2)}}}}), false},
	} {
		if got := tc.a.Equal(tc.b); got != tc.eq {
			t.Errorf("%+v.Equal(%+v) = %v, want %v", tc.a, tc.b, got, tc.eq)
		}
	}
}

func TestDataTypeNames(t *testing.T) {
	if TypeDouble.String() != "Double" || TypeDateTimeArray.String() != "DateTimeArray" || DataType(99).String() != "DataType(99)" {
		t.Fatal(TypeDouble.String(), TypeDateTimeArray.String(), DataType(99).String())
	}
	if TypeInt8.Kind() != KindInt || TypeDateTime.Kind() != KindLong || TypeUUID.Kind() != KindString ||
		TypeFile.Kind() != KindBytes || TypeTemplate.Kind() != KindNone {
		t.Fatal("datatype to value kind")
	}
}
