package sppb

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The reference decoder: sparkplug_b.proto as a descriptor, read by
// google.golang.org/protobuf's own (reflection-based) parser. The encoder
// and decoder of this package are checked against it, so that they agree
// with every other protobuf implementation, not only with each other.
// Template and the value extensions are left out: this package refuses
// them, so the reference reading them as unknown fields changes nothing.

type fieldSpec struct {
	name     string
	num      int32
	repeated bool
	typ      descriptorpb.FieldDescriptorProto_Type
	msg      string // message type name for TYPE_MESSAGE
	oneof    bool   // member of the message's one oneof, "value"
}

const (
	tU32  = descriptorpb.FieldDescriptorProto_TYPE_UINT32
	tU64  = descriptorpb.FieldDescriptorProto_TYPE_UINT64
	tF32  = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
	tF64  = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
	tBool = descriptorpb.FieldDescriptorProto_TYPE_BOOL
	tStr  = descriptorpb.FieldDescriptorProto_TYPE_STRING
	tByt  = descriptorpb.FieldDescriptorProto_TYPE_BYTES
	tMsg  = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
)

func message(name string, fields ...fieldSpec) *descriptorpb.DescriptorProto {
	d := &descriptorpb.DescriptorProto{Name: proto.String(name)}
	for _, f := range fields {
		fd := &descriptorpb.FieldDescriptorProto{
			Name:   proto.String(f.name),
			Number: proto.Int32(f.num),
			Label:  descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			Type:   f.typ.Enum(),
		}
		if f.repeated {
			fd.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		}
		if f.msg != "" {
			fd.TypeName = proto.String(".org.eclipse.tahu.protobuf.Payload." + f.msg)
		}
		if f.oneof {
			fd.OneofIndex = proto.Int32(0)
			if len(d.OneofDecl) == 0 {
				d.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("value")}}
			}
		}
		d.Field = append(d.Field, fd)
	}
	return d
}

func scalarOneof(first int32, more ...fieldSpec) []fieldSpec {
	fs := []fieldSpec{
		{name: "int_value", num: first, typ: tU32, oneof: true},
		{name: "long_value", num: first + 1, typ: tU64, oneof: true},
		{name: "float_value", num: first + 2, typ: tF32, oneof: true},
		{name: "double_value", num: first + 3, typ: tF64, oneof: true},
		{name: "boolean_value", num: first + 4, typ: tBool, oneof: true},
		{name: "string_value", num: first + 5, typ: tStr, oneof: true},
	}
	return append(fs, more...)
}

// referencePayload is the message descriptor of Payload.
var referencePayload = func() protoreflect.MessageDescriptor {
	payload := message("Payload",
		fieldSpec{name: "timestamp", num: 1, typ: tU64},
		fieldSpec{name: "metrics", num: 2, repeated: true, typ: tMsg, msg: "Metric"},
		fieldSpec{name: "seq", num: 3, typ: tU64},
		fieldSpec{name: "uuid", num: 4, typ: tStr},
		fieldSpec{name: "body", num: 5, typ: tByt},
	)
	row := message("Row", fieldSpec{name: "elements", num: 1, repeated: true, typ: tMsg, msg: "DataSet.DataSetValue"})
	row.Field[0].TypeName = proto.String(".org.eclipse.tahu.protobuf.Payload.DataSet.DataSetValue")
	dataset := message("DataSet",
		fieldSpec{name: "num_of_columns", num: 1, typ: tU64},
		fieldSpec{name: "columns", num: 2, repeated: true, typ: tStr},
		fieldSpec{name: "types", num: 3, repeated: true, typ: tU32},
		fieldSpec{name: "rows", num: 4, repeated: true, typ: tMsg, msg: "DataSet.Row"},
	)
	dataset.NestedType = []*descriptorpb.DescriptorProto{message("DataSetValue", scalarOneof(1)...), row}
	payload.NestedType = []*descriptorpb.DescriptorProto{
		dataset,
		message("PropertyValue", append([]fieldSpec{
			{name: "type", num: 1, typ: tU32},
			{name: "is_null", num: 2, typ: tBool},
		}, scalarOneof(3,
			fieldSpec{name: "propertyset_value", num: 9, typ: tMsg, msg: "PropertySet", oneof: true},
			fieldSpec{name: "propertysets_value", num: 10, typ: tMsg, msg: "PropertySetList", oneof: true},
		)...)...),
		message("PropertySet",
			fieldSpec{name: "keys", num: 1, repeated: true, typ: tStr},
			fieldSpec{name: "values", num: 2, repeated: true, typ: tMsg, msg: "PropertyValue"},
		),
		message("PropertySetList", fieldSpec{name: "propertyset", num: 1, repeated: true, typ: tMsg, msg: "PropertySet"}),
		message("MetaData",
			fieldSpec{name: "is_multi_part", num: 1, typ: tBool},
			fieldSpec{name: "content_type", num: 2, typ: tStr},
			fieldSpec{name: "size", num: 3, typ: tU64},
			fieldSpec{name: "seq", num: 4, typ: tU64},
			fieldSpec{name: "file_name", num: 5, typ: tStr},
			fieldSpec{name: "file_type", num: 6, typ: tStr},
			fieldSpec{name: "md5", num: 7, typ: tStr},
			fieldSpec{name: "description", num: 8, typ: tStr},
		),
		message("Metric", append([]fieldSpec{
			{name: "name", num: 1, typ: tStr},
			{name: "alias", num: 2, typ: tU64},
			{name: "timestamp", num: 3, typ: tU64},
			{name: "datatype", num: 4, typ: tU32},
			{name: "is_historical", num: 5, typ: tBool},
			{name: "is_transient", num: 6, typ: tBool},
			{name: "is_null", num: 7, typ: tBool},
			{name: "metadata", num: 8, typ: tMsg, msg: "MetaData"},
			{name: "properties", num: 9, typ: tMsg, msg: "PropertySet"},
		}, scalarOneof(10,
			fieldSpec{name: "bytes_value", num: 16, typ: tByt, oneof: true},
			fieldSpec{name: "dataset_value", num: 17, typ: tMsg, msg: "DataSet", oneof: true},
		)...)...),
	}
	file := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("sparkplug_b.proto"),
		Package:     proto.String("org.eclipse.tahu.protobuf"),
		Syntax:      proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{payload},
	}
	fd, err := protodesc.NewFile(file, nil)
	if err != nil {
		panic("sparkplug_b.proto descriptor: " + err.Error())
	}
	return fd.Messages().ByName("Payload")
}()

// referenceDecode parses b with the reference decoder, dropping unknown
// fields (this package skips them too).
func referenceDecode(b []byte) (*dynamicpb.Message, error) {
	m := dynamicpb.NewMessage(referencePayload)
	err := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
	return m, err
}

// normalize clears optional scalar fields that hold their zero value, so
// that a field sent explicitly as 0, false or "" compares equal to an
// absent one: this package keeps presence only where Sparkplug gives it
// meaning (Payload.seq, Metric.alias) and in oneofs.
func normalize(m protoreflect.Message) {
	var zero []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				normalize(l.Get(i).Message())
			}
		case fd.IsList():
		case fd.Kind() == protoreflect.MessageKind:
			normalize(v.Message())
		case fd.ContainingOneof() != nil:
		case fd.Name() == "seq" && fd.ContainingMessage().Name() == "Payload", fd.Name() == "alias":
		case fd.Kind() == protoreflect.BytesKind:
			if len(v.Bytes()) == 0 {
				zero = append(zero, fd)
			}
		case v.Equal(fd.Default()):
			zero = append(zero, fd)
		}
		return true
	})
	for _, fd := range zero {
		m.Clear(fd)
	}
}

// sameAsReference checks that b, which this package encoded, means to the
// reference decoder what want (a reference message) means.
func sameAsReference(t testing.TB, b []byte, want *dynamicpb.Message) {
	t.Helper()
	got, err := referenceDecode(b)
	if err != nil {
		t.Fatalf("reference decoder refuses our encoding %x: %v", b, err)
	}
	normalize(got)
	normalize(want)
	if !proto.Equal(got, want) {
		t.Fatalf("reference decoder reads our encoding as\n%v\nwant\n%v", got, want)
	}
}
