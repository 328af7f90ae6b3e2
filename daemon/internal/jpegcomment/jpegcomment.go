// Package jpegcomment puts a text into a JPEG as a comment segment (COM),
// without decoding the picture: the tag that says which inspection a
// heatmap shows, on MQTT and on /heatmap.jpg alike.
package jpegcomment

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Overhead is what a comment adds to a JPEG besides its text: the COM
// marker and the segment's length field. Payload limits count it.
const Overhead = 4

// MaxText is the longest text one comment segment holds (its length field
// is 16 bits and counts itself).
const MaxText = 0xFFFF - 2

// Append appends to dst the JPEG data with a comment segment holding text
// inserted after the start of image and, when the JPEG has one, after its
// JFIF APP0 segment, which must directly follow the start of image (JFIF
// 1.02); any other segment may follow a comment. It returns the extended
// dst.
func Append(dst, data, text []byte) ([]byte, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, errors.New("not a JPEG: no start-of-image marker")
	}
	if len(text) > MaxText {
		return nil, fmt.Errorf("%d bytes of text, a JPEG comment holds at most %d", len(text), MaxText)
	}
	at := 2
	if data[2] == 0xFF && data[3] == 0xE0 { // APP0
		if len(data) < 6 {
			return nil, errors.New("APP0 segment cut short")
		}
		at = 4 + int(binary.BigEndian.Uint16(data[4:6]))
		if at > len(data) {
			return nil, errors.New("APP0 segment runs past the JPEG's end")
		}
	}
	dst = append(dst, data[:at]...)
	dst = append(dst, 0xFF, 0xFE)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(text)+2))
	dst = append(dst, text...)
	return append(dst, data[at:]...), nil
}
