package sppb

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed Sparkplug B payload")

// Unmarshal decodes a Sparkplug B payload into p, replacing what p held.
// Strings and byte slices are copied, so b may be reused afterwards. The
// error wraps ErrMalformed and names the field path and what is wrong
// ("metrics[2].double_value: wire type varint, expected fixed64").
//
// A decoded payload takes at most a few hundred bytes of memory per byte of
// input (an empty metric is two bytes on the wire): bound len(b) before
// calling it on input from outside.
func Unmarshal(b []byte, p *Payload) error {
	*p = Payload{}
	if err := decodePayload(b, p); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !utf8.ValidString(p.UUID) {
		return fmt.Errorf("%w: uuid is not valid UTF-8", ErrMalformed)
	}
	for i := range p.Metrics {
		if err := p.Metrics[i].check(); err != nil {
			return fmt.Errorf("%w: metrics[%d]: %w", ErrMalformed, i, err)
		}
	}
	return nil
}

// field is one field read from the wire: its number and wire type, the
// varint or fixed value, or the bytes of a length-delimited field.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// nextField reads the field at the start of b; n is how many bytes it
// took. Unknown fields are skipped by the callers with skip.
func nextField(b []byte) (f field, n int, err error) {
	num, typ, tn := protowire.ConsumeTag(b)
	if tn < 0 {
		return f, 0, protowire.ParseError(tn)
	}
	if !num.IsValid() { // ConsumeTag lets numbers up to 2^31-1 through
		return f, 0, fmt.Errorf("invalid field number %d", num)
	}
	f.num, f.typ = num, typ
	var vn int
	switch typ {
	case protowire.VarintType:
		f.u, vn = protowire.ConsumeVarint(b[tn:])
	case protowire.Fixed32Type:
		var v uint32
		v, vn = protowire.ConsumeFixed32(b[tn:])
		f.u = uint64(v)
	case protowire.Fixed64Type:
		f.u, vn = protowire.ConsumeFixed64(b[tn:])
	case protowire.BytesType:
		f.b, vn = protowire.ConsumeBytes(b[tn:])
	default: // groups: only in unknown (extension) fields
		vn = protowire.ConsumeFieldValue(num, typ, b[tn:])
	}
	if vn < 0 {
		return f, 0, fmt.Errorf("field %d: %w", num, protowire.ParseError(vn))
	}
	return f, tn + vn, nil
}

var wireNames = map[protowire.Type]string{
	protowire.VarintType: "varint", protowire.Fixed32Type: "fixed32", protowire.Fixed64Type: "fixed64",
	protowire.BytesType: "length-delimited", protowire.StartGroupType: "group", protowire.EndGroupType: "end-group",
}

// want checks the wire type of a known field.
func (f *field) want(name string, typ protowire.Type) error {
	if f.typ != typ {
		return fmt.Errorf("%s: wire type %s, expected %s", name, wireNames[f.typ], wireNames[typ])
	}
	return nil
}

// each calls fn for every field of the message in b.
func each(b []byte, fn func(f *field) error) error {
	for len(b) > 0 {
		f, n, err := nextField(b)
		if err != nil {
			return err
		}
		if err := fn(&f); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func decodePayload(b []byte, p *Payload) error {
	return each(b, func(f *field) error {
		switch f.num {
		case fPayloadTimestamp:
			p.Timestamp = f.u
			return f.want("timestamp", protowire.VarintType)
		case fPayloadMetrics:
			if err := f.want("metrics", protowire.BytesType); err != nil {
				return err
			}
			p.Metrics = append(p.Metrics, Metric{})
			if err := decodeMetric(f.b, &p.Metrics[len(p.Metrics)-1]); err != nil {
				return fmt.Errorf("metrics[%d]: %w", len(p.Metrics)-1, err)
			}
		case fPayloadSeq:
			p.Seq, p.HasSeq = f.u, true
			return f.want("seq", protowire.VarintType)
		case fPayloadUUID:
			p.UUID = string(f.b)
			return f.want("uuid", protowire.BytesType)
		case fPayloadBody:
			p.Body = append([]byte{}, f.b...)
			return f.want("body", protowire.BytesType)
		}
		return nil
	})
}

func decodeMetric(b []byte, m *Metric) error {
	return each(b, func(f *field) error {
		switch f.num {
		case fMetricName:
			m.Name = string(f.b)
			return f.want("name", protowire.BytesType)
		case fMetricAlias:
			m.Alias, m.HasAlias = f.u, true
			return f.want("alias", protowire.VarintType)
		case fMetricTimestamp:
			m.Timestamp = f.u
			return f.want("timestamp", protowire.VarintType)
		case fMetricDataType:
			m.DataType = DataType(uint32(f.u))
			return f.want("datatype", protowire.VarintType)
		case fMetricIsHistorical:
			m.IsHistorical = protowire.DecodeBool(f.u)
			return f.want("is_historical", protowire.VarintType)
		case fMetricIsTransient:
			m.IsTransient = protowire.DecodeBool(f.u)
			return f.want("is_transient", protowire.VarintType)
		case fMetricIsNull:
			m.IsNull = protowire.DecodeBool(f.u)
			return f.want("is_null", protowire.VarintType)
		case fMetricMetaData:
			if err := f.want("metadata", protowire.BytesType); err != nil {
				return err
			}
			if m.MetaData == nil {
				m.MetaData = &MetaData{}
			}
			return decodeMetaData(f.b, m.MetaData)
		case fMetricProperties:
			if err := f.want("properties", protowire.BytesType); err != nil {
				return err
			}
			if m.Properties == nil {
				m.Properties = &PropertySet{}
			}
			if err := decodePropertySet(f.b, m.Properties, 0); err != nil {
				return fmt.Errorf("properties: %w", err)
			}
		case fMetricTemplate:
			return errors.New("template_value: Template metrics are not supported")
		case fMetricExtension:
			return errors.New("extension_value: metric value extensions are not supported")
		default:
			if f.num >= fMetricInt && f.num < fMetricTemplate {
				return decodeValue(f, fMetricInt, &m.Value, 0)
			}
		}
		return nil
	})
}

// decodeValue decodes one member of a value oneof whose first member
// (int_value) has field number first: int, long, float, double, boolean
// and string follow it in every message; bytes and dataset in metrics,
// propertyset and propertysets in property values.
func decodeValue(f *field, first protowire.Number, v *Value, depth int) error {
	kind := ValueKind(f.num-first) + KindInt
	if first == fPropInt && kind >= KindBytes { // property values: 9, 10
		kind += KindPropertySet - KindBytes
	}
	wire := protowire.VarintType
	switch kind {
	case KindFloat:
		wire = protowire.Fixed32Type
	case KindDouble:
		wire = protowire.Fixed64Type
	case KindString, KindBytes, KindDataSet, KindPropertySet, KindPropertySetList:
		wire = protowire.BytesType
	}
	if err := f.want(kind.String(), wire); err != nil {
		return err
	}
	switch kind {
	case KindInt:
		*v = Value{Kind: kind, Uint: uint64(uint32(f.u))}
	case KindLong:
		*v = Value{Kind: kind, Uint: f.u}
	case KindFloat:
		*v = Value{Kind: kind, Float32: math.Float32frombits(uint32(f.u))}
	case KindDouble:
		*v = Value{Kind: kind, Float64: math.Float64frombits(f.u)}
	case KindBoolean:
		*v = Value{Kind: kind, Bool: protowire.DecodeBool(f.u)}
	case KindString:
		*v = Value{Kind: kind, Str: string(f.b)}
	case KindBytes:
		*v = Value{Kind: kind, Bytes: append([]byte{}, f.b...)}
	case KindDataSet: // a message seen again in the same oneof member is merged
		if v.Kind != kind || v.DataSet == nil {
			*v = Value{Kind: kind, DataSet: &DataSet{}}
		}
		if err := decodeDataSet(f.b, v.DataSet); err != nil {
			return fmt.Errorf("dataset_value: %w", err)
		}
	case KindPropertySet:
		if v.Kind != kind || v.PropertySet == nil {
			*v = Value{Kind: kind, PropertySet: &PropertySet{}}
		}
		if err := decodePropertySet(f.b, v.PropertySet, depth+1); err != nil {
			return fmt.Errorf("propertyset_value: %w", err)
		}
	case KindPropertySetList:
		if v.Kind != kind {
			*v = Value{Kind: kind, PropertySets: []PropertySet{}}
		}
		err := each(f.b, func(g *field) error {
			if g.num != fSetListPropSets {
				return nil
			}
			if err := g.want("propertyset", protowire.BytesType); err != nil {
				return err
			}
			v.PropertySets = append(v.PropertySets, PropertySet{})
			return decodePropertySet(g.b, &v.PropertySets[len(v.PropertySets)-1], depth+1)
		})
		if err != nil {
			return fmt.Errorf("propertysets_value: %w", err)
		}
	}
	return nil
}

func decodeMetaData(b []byte, md *MetaData) error {
	err := each(b, func(f *field) error {
		var s *string
		switch f.num {
		case fMetaIsMultiPart:
			md.IsMultiPart = protowire.DecodeBool(f.u)
			return f.want("is_multi_part", protowire.VarintType)
		case fMetaSize:
			md.Size = f.u
			return f.want("size", protowire.VarintType)
		case fMetaSeq:
			md.Seq = f.u
			return f.want("seq", protowire.VarintType)
		case fMetaContentType:
			s = &md.ContentType
		case fMetaFileName:
			s = &md.FileName
		case fMetaFileType:
			s = &md.FileType
		case fMetaMD5:
			s = &md.MD5
		case fMetaDescription:
			s = &md.Description
		default:
			return nil
		}
		*s = string(f.b)
		return f.want(fmt.Sprintf("field %d", f.num), protowire.BytesType)
	})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return nil
}

func decodePropertySet(b []byte, s *PropertySet, depth int) error {
	if depth >= MaxDepth {
		return fmt.Errorf("property sets nested deeper than %d", MaxDepth)
	}
	return each(b, func(f *field) error {
		switch f.num {
		case fSetKeys:
			s.Keys = append(s.Keys, string(f.b))
			return f.want("keys", protowire.BytesType)
		case fSetValues:
			if err := f.want("values", protowire.BytesType); err != nil {
				return err
			}
			s.Values = append(s.Values, PropertyValue{})
			if err := decodePropertyValue(f.b, &s.Values[len(s.Values)-1], depth); err != nil {
				return fmt.Errorf("values[%d]: %w", len(s.Values)-1, err)
			}
		}
		return nil
	})
}

func decodePropertyValue(b []byte, pv *PropertyValue, depth int) error {
	return each(b, func(f *field) error {
		switch {
		case f.num == fPropType:
			pv.Type = DataType(uint32(f.u))
			return f.want("type", protowire.VarintType)
		case f.num == fPropIsNull:
			pv.IsNull = protowire.DecodeBool(f.u)
			return f.want("is_null", protowire.VarintType)
		case f.num == fPropExtension:
			return errors.New("extension_value: property value extensions are not supported")
		case f.num >= fPropInt && f.num <= fPropSetList:
			return decodeValue(f, fPropInt, &pv.Value, depth)
		}
		return nil
	})
}

func decodeDataSet(b []byte, d *DataSet) error {
	return each(b, func(f *field) error {
		switch f.num {
		case fDataSetNumCols:
			d.NumColumns = f.u
			return f.want("num_of_columns", protowire.VarintType)
		case fDataSetColumns:
			d.Columns = append(d.Columns, string(f.b))
			return f.want("columns", protowire.BytesType)
		case fDataSetTypes:
			if f.typ == protowire.BytesType { // packed
				for p := f.b; len(p) > 0; {
					v, n := protowire.ConsumeVarint(p)
					if n < 0 {
						return fmt.Errorf("types: %w", protowire.ParseError(n))
					}
					d.Types = append(d.Types, DataType(uint32(v)))
					p = p[n:]
				}
				return nil
			}
			d.Types = append(d.Types, DataType(uint32(f.u)))
			return f.want("types", protowire.VarintType)
		case fDataSetRows:
			if err := f.want("rows", protowire.BytesType); err != nil {
				return err
			}
			d.Rows = append(d.Rows, Row{})
			r := &d.Rows[len(d.Rows)-1]
			err := each(f.b, func(g *field) error {
				if g.num != fRowElements {
					return nil
				}
				if err := g.want("elements", protowire.BytesType); err != nil {
					return err
				}
				r.Elements = append(r.Elements, Value{})
				return decodeDataSetValue(g.b, &r.Elements[len(r.Elements)-1])
			})
			if err != nil {
				return fmt.Errorf("rows[%d]: %w", len(d.Rows)-1, err)
			}
		}
		return nil
	})
}

func decodeDataSetValue(b []byte, v *Value) error {
	return each(b, func(f *field) error {
		switch {
		case f.num == fDataSetValueExtn:
			return errors.New("extension_value: dataset value extensions are not supported")
		case f.num >= fDataSetValueInt && f.num < fDataSetValueExtn:
			return decodeValue(f, fDataSetValueInt, v, 0)
		}
		return nil
	})
}
