package sppb

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of sparkplug_b.proto.
const (
	fPayloadTimestamp = 1
	fPayloadMetrics   = 2
	fPayloadSeq       = 3
	fPayloadUUID      = 4
	fPayloadBody      = 5

	fMetricName         = 1
	fMetricAlias        = 2
	fMetricTimestamp    = 3
	fMetricDataType     = 4
	fMetricIsHistorical = 5
	fMetricIsTransient  = 6
	fMetricIsNull       = 7
	fMetricMetaData     = 8
	fMetricProperties   = 9
	fMetricInt          = 10 // value oneof: int_value .. extension_value = 19
	fMetricTemplate     = 18
	fMetricExtension    = 19

	fMetaIsMultiPart = 1
	fMetaContentType = 2
	fMetaSize        = 3
	fMetaSeq         = 4
	fMetaFileName    = 5
	fMetaFileType    = 6
	fMetaMD5         = 7
	fMetaDescription = 8

	fSetKeys   = 1
	fSetValues = 2

	fPropType         = 1
	fPropIsNull       = 2
	fPropInt          = 3 // value oneof: int_value .. extension_value = 11
	fPropSet          = 9
	fPropSetList      = 10
	fPropExtension    = 11
	fSetListPropSets  = 1
	fDataSetNumCols   = 1
	fDataSetColumns   = 2
	fDataSetTypes     = 3
	fDataSetRows      = 4
	fRowElements      = 1
	fDataSetValueInt  = 1 // value oneof: int_value .. extension_value = 7
	fDataSetValueExtn = 7
)

// MaxDepth bounds the nesting of property sets within property values
// (a PropertySet whose values hold PropertySets ...), for the encoder and
// the decoder alike.
const MaxDepth = 8

// Marshal encodes p. See AppendMarshal.
func (p *Payload) Marshal() ([]byte, error) {
	return p.AppendMarshal(nil)
}

// AppendMarshal appends the encoding of p to b and returns the extended
// buffer; with enough capacity in b it allocates nothing. It refuses a
// payload the specification does not allow, naming the metric and what is
// wrong: a value kind out of place (a PropertySet in a metric), keys and
// values of different lengths, DataSet rows that do not match the columns,
// invalid UTF-8 in a string, property sets nested deeper than MaxDepth.
func (p *Payload) AppendMarshal(b []byte) ([]byte, error) {
	for i := range p.Metrics {
		if err := p.Metrics[i].check(); err != nil {
			return b, fmt.Errorf("sparkplug encode: metrics[%d] %q: %w", i, p.Metrics[i].Name, err)
		}
	}
	if !utf8.ValidString(p.UUID) {
		return b, errors.New("sparkplug encode: uuid is not valid UTF-8")
	}
	if p.Timestamp != 0 {
		b = protowire.AppendTag(b, fPayloadTimestamp, protowire.VarintType)
		b = protowire.AppendVarint(b, p.Timestamp)
	}
	for i := range p.Metrics {
		m := &p.Metrics[i]
		b = protowire.AppendTag(b, fPayloadMetrics, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(m.size()))
		b = m.append(b)
	}
	if p.HasSeq {
		b = protowire.AppendTag(b, fPayloadSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, p.Seq)
	}
	if p.UUID != "" {
		b = protowire.AppendTag(b, fPayloadUUID, protowire.BytesType)
		b = protowire.AppendString(b, p.UUID)
	}
	if len(p.Body) > 0 {
		b = protowire.AppendTag(b, fPayloadBody, protowire.BytesType)
		b = protowire.AppendBytes(b, p.Body)
	}
	return b, nil
}

// Size is the length of p's encoding.
func (p *Payload) Size() int {
	n := 0
	if p.Timestamp != 0 {
		n += 1 + protowire.SizeVarint(p.Timestamp)
	}
	for i := range p.Metrics {
		n += 1 + protowire.SizeBytes(p.Metrics[i].size())
	}
	if p.HasSeq {
		n += 1 + protowire.SizeVarint(p.Seq)
	}
	if p.UUID != "" {
		n += 1 + protowire.SizeBytes(len(p.UUID))
	}
	if len(p.Body) > 0 {
		n += 1 + protowire.SizeBytes(len(p.Body))
	}
	return n
}

// check validates what the encoder cannot express or the decoder would refuse.
func (m *Metric) check() error {
	if !utf8.ValidString(m.Name) {
		return errors.New("name is not valid UTF-8")
	}
	if m.Value.Kind > KindDataSet {
		return fmt.Errorf("a metric value cannot be a %s", m.Value.Kind)
	}
	if err := m.Value.check(0); err != nil {
		return err
	}
	if md := m.MetaData; md != nil {
		for _, s := range []string{md.ContentType, md.FileName, md.FileType, md.MD5, md.Description} {
			if !utf8.ValidString(s) {
				return errors.New("metadata string is not valid UTF-8")
			}
		}
	}
	if m.Properties != nil {
		return m.Properties.check(0)
	}
	return nil
}

func (v *Value) check(depth int) error {
	switch v.Kind {
	case KindString:
		if !utf8.ValidString(v.Str) {
			return errors.New("string value is not valid UTF-8")
		}
	case KindDataSet:
		if v.DataSet == nil {
			return errors.New("dataset value is nil")
		}
		return v.DataSet.check()
	case KindPropertySet:
		if v.PropertySet == nil {
			return errors.New("property set value is nil")
		}
		return v.PropertySet.check(depth + 1)
	case KindPropertySetList:
		for i := range v.PropertySets {
			if err := v.PropertySets[i].check(depth + 1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *PropertySet) check(depth int) error {
	if depth >= MaxDepth {
		return fmt.Errorf("property sets nested deeper than %d", MaxDepth)
	}
	if len(s.Keys) != len(s.Values) {
		return fmt.Errorf("property set has %d keys and %d values", len(s.Keys), len(s.Values))
	}
	for i := range s.Keys {
		if !utf8.ValidString(s.Keys[i]) {
			return errors.New("property key is not valid UTF-8")
		}
		v := &s.Values[i].Value
		if v.Kind == KindBytes || v.Kind == KindDataSet {
			return fmt.Errorf("property %q cannot be a %s", s.Keys[i], v.Kind)
		}
		if err := v.check(depth); err != nil {
			return fmt.Errorf("property %q: %w", s.Keys[i], err)
		}
	}
	return nil
}

func (d *DataSet) check() error {
	if d.NumColumns != uint64(len(d.Columns)) || len(d.Columns) != len(d.Types) {
		return fmt.Errorf("dataset has num_of_columns %d, %d columns and %d types", d.NumColumns, len(d.Columns), len(d.Types))
	}
	for _, c := range d.Columns {
		if !utf8.ValidString(c) {
			return errors.New("dataset column name is not valid UTF-8")
		}
	}
	for i, r := range d.Rows {
		if len(r.Elements) != len(d.Columns) {
			return fmt.Errorf("dataset row %d has %d elements for %d columns", i, len(r.Elements), len(d.Columns))
		}
		for j := range r.Elements {
			e := &r.Elements[j]
			if e.Kind > KindString {
				return fmt.Errorf("dataset row %d column %d cannot be a %s", i, j, e.Kind)
			}
			if e.Kind == KindString && !utf8.ValidString(e.Str) {
				return fmt.Errorf("dataset row %d column %d is not valid UTF-8", i, j)
			}
		}
	}
	return nil
}

func sizeBool(b bool) int {
	if b {
		return 2
	}
	return 0
}

func sizeStr(s string) int {
	if s == "" {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s))
}

func sizeUint(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return append(b, 1)
}

func appendStr(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (m *Metric) size() int {
	n := sizeStr(m.Name)
	if m.HasAlias {
		n += 1 + protowire.SizeVarint(m.Alias)
	}
	n += sizeUint(m.Timestamp) + sizeUint(uint64(m.DataType))
	n += sizeBool(m.IsHistorical) + sizeBool(m.IsTransient) + sizeBool(m.IsNull)
	if m.MetaData != nil {
		n += 1 + protowire.SizeBytes(m.MetaData.size())
	}
	if m.Properties != nil {
		n += 1 + protowire.SizeBytes(m.Properties.size())
	}
	return n + m.Value.size()
}

func (m *Metric) append(b []byte) []byte {
	b = appendStr(b, fMetricName, m.Name)
	if m.HasAlias {
		b = protowire.AppendTag(b, fMetricAlias, protowire.VarintType)
		b = protowire.AppendVarint(b, m.Alias)
	}
	b = appendUint(b, fMetricTimestamp, m.Timestamp)
	b = appendUint(b, fMetricDataType, uint64(m.DataType))
	b = appendBool(b, fMetricIsHistorical, m.IsHistorical)
	b = appendBool(b, fMetricIsTransient, m.IsTransient)
	b = appendBool(b, fMetricIsNull, m.IsNull)
	if m.MetaData != nil {
		b = protowire.AppendTag(b, fMetricMetaData, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(m.MetaData.size()))
		b = m.MetaData.append(b)
	}
	if m.Properties != nil {
		b = protowire.AppendTag(b, fMetricProperties, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(m.Properties.size()))
		b = m.Properties.append(b)
	}
	return m.Value.append(b, fMetricInt)
}

func (v *Value) size() int {
	switch v.Kind {
	case KindInt:
		return 1 + protowire.SizeVarint(uint64(uint32(v.Uint)))
	case KindLong:
		return 1 + protowire.SizeVarint(v.Uint)
	case KindFloat:
		return 1 + 4
	case KindDouble:
		return 1 + 8
	case KindBoolean:
		return 2
	case KindString:
		return 1 + protowire.SizeBytes(len(v.Str))
	case KindBytes: // only in metrics: bytes_value = 16, a two-byte tag
		return protowire.SizeTag(fMetricInt+6) + protowire.SizeBytes(len(v.Bytes))
	case KindDataSet: // only in metrics: dataset_value = 17
		return protowire.SizeTag(fMetricInt+7) + protowire.SizeBytes(v.DataSet.size())
	case KindPropertySet:
		return 1 + protowire.SizeBytes(v.PropertySet.size())
	case KindPropertySetList:
		n := 0
		for i := range v.PropertySets {
			n += 1 + protowire.SizeBytes(v.PropertySets[i].size())
		}
		return 1 + protowire.SizeBytes(n)
	}
	return 0
}

// append writes the value oneof. Its members share one layout in all three
// messages: int, long, float, double, boolean and string come first, in
// that order, from the oneof's first field number; the members after them
// differ by message.
func (v *Value) append(b []byte, first protowire.Number) []byte {
	num := first + protowire.Number(v.Kind-KindInt)
	switch v.Kind {
	case KindInt:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(uint32(v.Uint)))
	case KindLong:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, v.Uint)
	case KindFloat:
		b = protowire.AppendTag(b, num, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, math.Float32bits(v.Float32))
	case KindDouble:
		b = protowire.AppendTag(b, num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.Float64))
	case KindBoolean:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool))
	case KindString:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, v.Str)
	case KindBytes: // metrics: bytes_value = 16
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, v.Bytes)
	case KindDataSet: // metrics: dataset_value = 17
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(v.DataSet.size()))
		return v.DataSet.append(b)
	case KindPropertySet: // property values: propertyset_value = 9
		b = protowire.AppendTag(b, fPropSet, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(v.PropertySet.size()))
		return v.PropertySet.append(b)
	case KindPropertySetList: // property values: propertysets_value = 10
		n := 0
		for i := range v.PropertySets {
			n += 1 + protowire.SizeBytes(v.PropertySets[i].size())
		}
		b = protowire.AppendTag(b, fPropSetList, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		for i := range v.PropertySets {
			s := &v.PropertySets[i]
			b = protowire.AppendTag(b, fSetListPropSets, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(s.size()))
			b = s.append(b)
		}
	}
	return b
}

func (md *MetaData) size() int {
	return sizeBool(md.IsMultiPart) + sizeStr(md.ContentType) + sizeUint(md.Size) + sizeUint(md.Seq) +
		sizeStr(md.FileName) + sizeStr(md.FileType) + sizeStr(md.MD5) + sizeStr(md.Description)
}

func (md *MetaData) append(b []byte) []byte {
	b = appendBool(b, fMetaIsMultiPart, md.IsMultiPart)
	b = appendStr(b, fMetaContentType, md.ContentType)
	b = appendUint(b, fMetaSize, md.Size)
	b = appendUint(b, fMetaSeq, md.Seq)
	b = appendStr(b, fMetaFileName, md.FileName)
	b = appendStr(b, fMetaFileType, md.FileType)
	b = appendStr(b, fMetaMD5, md.MD5)
	return appendStr(b, fMetaDescription, md.Description)
}

func (s *PropertySet) size() int {
	n := 0
	for _, k := range s.Keys {
		n += 1 + protowire.SizeBytes(len(k))
	}
	for i := range s.Values {
		n += 1 + protowire.SizeBytes(s.Values[i].size())
	}
	return n
}

func (s *PropertySet) append(b []byte) []byte {
	for _, k := range s.Keys {
		b = protowire.AppendTag(b, fSetKeys, protowire.BytesType)
		b = protowire.AppendString(b, k)
	}
	for i := range s.Values {
		pv := &s.Values[i]
		b = protowire.AppendTag(b, fSetValues, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(pv.size()))
		b = pv.append(b)
	}
	return b
}

func (pv *PropertyValue) size() int {
	return sizeUint(uint64(pv.Type)) + sizeBool(pv.IsNull) + pv.Value.size()
}

func (pv *PropertyValue) append(b []byte) []byte {
	b = appendUint(b, fPropType, uint64(pv.Type))
	b = appendBool(b, fPropIsNull, pv.IsNull)
	return pv.Value.append(b, fPropInt)
}

func (d *DataSet) size() int {
	n := sizeUint(d.NumColumns)
	for _, c := range d.Columns {
		n += 1 + protowire.SizeBytes(len(c))
	}
	for _, t := range d.Types {
		n += 1 + protowire.SizeVarint(uint64(t))
	}
	for i := range d.Rows {
		n += 1 + protowire.SizeBytes(d.Rows[i].size())
	}
	return n
}

func (d *DataSet) append(b []byte) []byte {
	b = appendUint(b, fDataSetNumCols, d.NumColumns)
	for _, c := range d.Columns {
		b = protowire.AppendTag(b, fDataSetColumns, protowire.BytesType)
		b = protowire.AppendString(b, c)
	}
	for _, t := range d.Types { // proto2: repeated scalars unpacked
		b = protowire.AppendTag(b, fDataSetTypes, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t))
	}
	for i := range d.Rows {
		r := &d.Rows[i]
		b = protowire.AppendTag(b, fDataSetRows, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(r.size()))
		b = r.append(b)
	}
	return b
}

func (r *Row) size() int {
	n := 0
	for i := range r.Elements {
		n += 1 + protowire.SizeBytes(r.Elements[i].size())
	}
	return n
}

func (r *Row) append(b []byte) []byte {
	for i := range r.Elements {
		e := &r.Elements[i]
		b = protowire.AppendTag(b, fRowElements, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(e.size()))
		b = e.append(b, fDataSetValueInt)
	}
	return b
}
