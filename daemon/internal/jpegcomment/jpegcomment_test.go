package jpegcomment

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
)

// segment is one marker segment before the scan: its marker's second byte
// and its body (after the length field).
type segment struct {
	marker byte
	body   []byte
}

// segments lists the marker segments of a JPEG up to its first start of
// scan, failing the test on a malformed one.
func segments(t *testing.T, data []byte) []segment {
	t.Helper()
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		t.Fatalf("no start of image: % x", data[:min(len(data), 4)])
	}
	var out []segment
	for at := 2; ; {
		if at+4 > len(data) || data[at] != 0xFF {
			t.Fatalf("no marker at %d", at)
		}
		n := int(binary.BigEndian.Uint16(data[at+2:]))
		if n < 2 || at+2+n > len(data) {
			t.Fatalf("segment %02X at %d: length %d runs past the end", data[at+1], at, n)
		}
		out = append(out, segment{data[at+1], data[at+4 : at+2+n]})
		if data[at+1] == 0xDA {
			return out
		}
		at += 2 + n
	}
}

// picture is a small JPEG with pixels that tell a shifted decode apart,
// from image/jpeg, which writes no APP0 (JFIF) segment.
func picture(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 40, 24))
	for y := range 24 {
		for x := range 40 {
			img.Set(x, y, color.RGBA{uint8(x * 6), uint8(y * 10), uint8((x + y) * 3), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jfif is a JFIF APP0 segment (version 1.02, no thumbnail), as libjpeg
// writes it first.
var jfif = []byte{0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 2, 0, 0, 1, 0, 1, 0, 0}

// The comment goes right after the start of image when the JPEG has no
// APP0 segment, and right after the APP0 segment when it has one (JFIF
// requires APP0 first); the rest of the file is unchanged and decodes to
// the same pixels.
func TestAppendPlacesTheComment(t *testing.T) {
	plain := picture(t)
	if s := segments(t, plain); s[0].marker == 0xE0 {
		t.Fatal("image/jpeg wrote an APP0 segment: the case without one needs another source")
	}
	withAPP0 := append(append(append([]byte(nil), plain[:2]...), jfif...), plain[2:]...)
	text := []byte(`{"seq":42,"boot_id":"b-1","file":"Teil_ä.jpg"}`)
	for _, c := range []struct {
		name    string
		data    []byte
		comment int // index of the comment among the segments
	}{{"no APP0", plain, 0}, {"APP0", withAPP0, 1}} {
		prefix := []byte("kept")
		got, err := Append(prefix, c.data, text)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.HasPrefix(got, prefix) {
			t.Fatalf("%s: dst's bytes not kept", c.name)
		}
		got = got[len(prefix):]
		if len(got) != len(c.data)+Overhead+len(text) {
			t.Errorf("%s: %d bytes, want %d + Overhead + %d", c.name, len(got), len(c.data), len(text))
		}
		before, after := segments(t, c.data), segments(t, got)
		if len(after) != len(before)+1 {
			t.Fatalf("%s: %d segments before the scan, want %d", c.name, len(after), len(before)+1)
		}
		if s := after[c.comment]; s.marker != 0xFE || !bytes.Equal(s.body, text) {
			t.Errorf("%s: segment %d is %02X of %d bytes, want the comment %q", c.name, c.comment, s.marker, len(s.body), text)
		}
		for i, s := range before { // the others, in their order
			j := i
			if i >= c.comment {
				j++
			}
			if after[j].marker != s.marker || !bytes.Equal(after[j].body, s.body) {
				t.Errorf("%s: segment %02X moved or changed", c.name, s.marker)
			}
		}
		want, err := jpeg.Decode(bytes.NewReader(c.data))
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("%s: the commented JPEG does not decode: %v", c.name, err)
		}
		if !bytes.Equal(img.(*image.YCbCr).Y, want.(*image.YCbCr).Y) {
			t.Errorf("%s: the commented JPEG decodes to other pixels", c.name)
		}
	}
}

// What is not a JPEG, an APP0 segment cut short and a text too long for
// one segment are refused, naming the reason.
func TestAppendRefuses(t *testing.T) {
	plain := picture(t)
	for _, c := range []struct {
		name, want string
		data, text []byte
	}{
		{"PNG", "not a JPEG", []byte("\x89PNG\r\n\x1a\n"), nil},
		{"APP0 past the end", "APP0 segment runs past", append([]byte{0xFF, 0xD8}, jfif[:10]...), nil},
		{"APP0 without length", "APP0 segment cut short", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00}, nil},
		{"text over a segment", "at most 65533", plain, make([]byte, MaxText+1)},
	} {
		if _, err := Append(nil, c.data, c.text); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if _, err := Append(nil, plain, make([]byte, MaxText)); err != nil {
		t.Errorf("a text of MaxText bytes: %v", err)
	}
}
