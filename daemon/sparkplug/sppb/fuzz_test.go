package sppb

import (
	"bytes"
	"testing"
)

// FuzzUnmarshal feeds arbitrary bytes to the decoder: it must never
// panic, and whatever it accepts must (1) re-encode, (2) be accepted by
// protobuf's own decoder with the same meaning, and (3) re-encode to the
// same bytes after another round trip.
//
//	go test -run '^$' -fuzz FuzzUnmarshal ./daemon/sparkplug/sppb
func FuzzUnmarshal(f *testing.F) {
	full, err := fullPayload().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte{0x08, 0xe8, 0x07, 0x12, 0x0e, 0x0a, 0x05, 'b', 'd', 'S', 'e', 'q', 0x18, 0xe8, 0x07, 0x20, 0x04, 0x58, 0x07})
	f.Add([]byte{})
	f.Add([]byte{0x12, 0x08, 0x42, 0x02, 0x18, 0x04, 0x42, 0x02, 0x20, 0x09})
	f.Add([]byte{0x12, 0x0d, 0x8a, 0x01, 0x0a, 0x08, 0x02, 0x12, 0x00, 0x12, 0x00, 0x1a, 0x02, 0x03, 0x0c})
	f.Add([]byte{0x30, 0x05, 0x3a, 0x01, 'x', 0x12, 0x03, 0xa8, 0x1f, 0x01, 0x18, 0x01})
	f.Add([]byte{0x12, 0x03, 0x92, 0x01, 0x00})
	f.Add(rawNested(MaxDepth - 1))
	f.Add(full[:len(full)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Payload
		if err := Unmarshal(data, &p); err != nil {
			return
		}
		enc, err := p.Marshal()
		if err != nil {
			t.Fatalf("decoded payload does not re-encode: %v", err)
		}
		if len(enc) != p.Size() {
			t.Fatalf("Size() = %d, encoding has %d bytes", p.Size(), len(enc))
		}
		ref, err := referenceDecode(data)
		if err != nil {
			t.Fatalf("accepted what protobuf refuses: %v", err)
		}
		sameAsReference(t, enc, ref)
		var q Payload
		if err := Unmarshal(enc, &q); err != nil {
			t.Fatalf("own encoding refused: %v", err)
		}
		again, err := q.Marshal()
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("second round trip differs: %x, %v\nfirst %x", again, err, enc)
		}
	})
}
