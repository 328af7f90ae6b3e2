package capture

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
)

// stdDHT is a complete DHT segment holding the four Huffman tables of
// ITU-T T.81 Annex K.3 (luminance DC/AC, chrominance DC/AC), in the order
// and layout image/jpeg's encoder writes them. USB cameras streaming MJPEG
// leave these out of every frame (the AVI1 convention) and decoders are
// expected to assume them.
var stdDHT = []byte{
	0xff, 0xc4, 0x01, 0xa2,
	// Luminance DC (Tc=0, Th=0).
	0x00,
	0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
	// Luminance AC (Tc=1, Th=0).
	0x10,
	0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d,
	0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12,
	0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
	0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08,
	0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
	0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16,
	0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
	0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
	0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
	0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
	0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79,
	0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
	0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
	0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
	0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
	0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
	0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4,
	0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
	0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea,
	0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
	0xf9, 0xfa,
	// Chrominance DC (Tc=0, Th=1).
	0x01,
	0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
	// Chrominance AC (Tc=1, Th=1).
	0x11,
	0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77,
	0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21,
	0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
	0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91,
	0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
	0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34,
	0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
	0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38,
	0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
	0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
	0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
	0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
	0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
	0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96,
	0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
	0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
	0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
	0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2,
	0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
	0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9,
	0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
	0xf9, 0xfa,
}

// JPEG markers the fix-up walks over.
const (
	markerSOI = 0xd8
	markerEOI = 0xd9
	markerSOS = 0xda
	markerDHT = 0xc4
	markerTEM = 0x01
)

// FixMJPEG makes an MJPEG frame decodable by a standard JPEG decoder: when
// no DHT segment precedes the first SOS it returns the frame with the
// standard Huffman tables inserted there, built in dst (reused when its
// capacity suffices); otherwise it returns frame itself. It walks only the
// header segments, so its cost does not grow with the image data.
func FixMJPEG(dst, frame []byte) (out []byte, inserted bool, err error) {
	h, err := scanMJPEG(frame)
	if err != nil {
		return nil, false, err
	}
	out, inserted = h.fix(dst, frame)
	return out, inserted, nil
}

// StripHuffmanTables returns a JPEG without the DHT segments before its
// first scan, as USB cameras send MJPEG frames (the decoder assumes the
// standard tables, FixMJPEG): recorded camera frames for tests and the
// replay bench. It appends to dst.
func StripHuffmanTables(dst, jpg []byte) ([]byte, error) {
	h, err := scanMJPEG(jpg)
	if err != nil {
		return nil, err
	}
	out := append(dst, jpg[:2]...)
	pos := 2
	for pos < h.sos {
		// scanMJPEG checked the segments: a marker (after fill bytes) and
		// a length, or a stand-alone marker.
		start := pos
		for jpg[pos] == 0xff {
			pos++
		}
		m := jpg[pos]
		pos++
		if m == markerSOI || m == markerTEM || (m >= 0xd0 && m <= 0xd7) {
			out = append(out, jpg[start:pos]...)
			continue
		}
		pos += int(jpg[pos])<<8 | int(jpg[pos+1])
		if m != markerDHT {
			out = append(out, jpg[start:pos]...)
		}
	}
	return append(out, jpg[h.sos:]...), nil
}

// SplitMJPEG cuts a Motion-JPEG stream (JPEG frames back to back, as
// recorded from a camera or written by `inspectd capture encode`) into its
// frames, each from its SOI to its EOI; the frames share data's bytes.
// Bytes between frames are skipped; a stream that ends inside a frame, or
// holds none, is an error that says where.
func SplitMJPEG(data []byte) ([][]byte, error) {
	var frames [][]byte
	pos := 0
	for {
		// The next SOI.
		for pos+1 < len(data) && !(data[pos] == 0xff && data[pos+1] == markerSOI) {
			pos++
		}
		if pos+1 >= len(data) {
			break
		}
		end, err := jpegEnd(data, pos)
		if err != nil {
			return nil, fmt.Errorf("MJPEG stream: frame %d at byte %d: %w", len(frames)+1, pos, err)
		}
		frames = append(frames, data[pos:end:end])
		pos = end
	}
	if len(frames) == 0 {
		return nil, errors.New("MJPEG stream: no JPEG frame (no SOI marker)")
	}
	return frames, nil
}

// jpegEnd finds the end of the JPEG starting at data[start] (just past its
// EOI): header segments are skipped by their lengths, entropy-coded data
// byte by byte (0xff 0x00 is a stuffed byte, 0xff 0xd0..0xd7 a restart
// marker), and further scans of progressive JPEGs are followed.
func jpegEnd(data []byte, start int) (int, error) {
	pos := start + 2
	for {
		if pos >= len(data) {
			return 0, errors.New("truncated (no EOI)")
		}
		if data[pos] != 0xff {
			return 0, fmt.Errorf("byte %d is %#02x, want a marker", pos-start, data[pos])
		}
		for pos < len(data) && data[pos] == 0xff {
			pos++
		}
		if pos >= len(data) {
			return 0, errors.New("truncated (no EOI)")
		}
		m := data[pos]
		pos++
		switch {
		case m == markerEOI:
			return pos, nil
		case m == markerSOI || m == markerTEM || (m >= 0xd0 && m <= 0xd7):
			continue
		case m == 0:
			return 0, fmt.Errorf("stuffed byte in the headers at byte %d", pos-start)
		}
		if pos+2 > len(data) {
			return 0, errors.New("truncated (no EOI)")
		}
		n := int(data[pos])<<8 | int(data[pos+1])
		if n < 2 || pos+n > len(data) {
			return 0, fmt.Errorf("segment %#02x at byte %d has length %d", m, pos-start, n)
		}
		pos += n
		if m != markerSOS {
			continue
		}
		// Entropy-coded data up to the next marker that is not a stuffed
		// byte or a restart.
		for {
			i := bytes.IndexByte(data[pos:], 0xff)
			if i < 0 || pos+i+1 >= len(data) {
				return 0, errors.New("truncated in the scan (no EOI)")
			}
			pos += i
			if n := data[pos+1]; n == 0 || (n >= 0xd0 && n <= 0xd7) || n == 0xff {
				pos++
				continue
			}
			break
		}
	}
}

// mjpegHeader is what the header walk found: where the first scan starts,
// whether Huffman tables came before it, and the frame size its SOF
// declares (0×0 when no SOF came before the scan).
type mjpegHeader struct {
	sos           int
	dht           bool
	width, height int
}

// fix is FixMJPEG once the headers are known.
func (h mjpegHeader) fix(dst, frame []byte) ([]byte, bool) {
	if h.dht {
		return frame, false
	}
	out := append(dst[:0], frame[:h.sos]...)
	out = append(out, stdDHT...)
	out = append(out, frame[h.sos:]...)
	return out, true
}

// isSOF reports the start-of-frame markers (baseline, extended,
// progressive, lossless; Huffman or arithmetic), which carry the size.
func isSOF(m byte) bool {
	return m >= 0xc0 && m <= 0xcf && m != markerDHT && m != 0xc8 && m != 0xcc
}

// scanMJPEG walks the header segments of a frame up to its first SOS.
func scanMJPEG(frame []byte) (mjpegHeader, error) {
	var h mjpegHeader
	if len(frame) < 4 || frame[0] != 0xff || frame[1] != markerSOI {
		return h, errors.New("MJPEG frame: no SOI marker at the start")
	}
	pos := 2
	for {
		if pos >= len(frame) {
			return h, fmt.Errorf("MJPEG frame: truncated in the headers at byte %d (no SOS)", pos)
		}
		if frame[pos] != 0xff {
			return h, fmt.Errorf("MJPEG frame: byte %d is %#02x, want a 0xff marker", pos, frame[pos])
		}
		// A marker may be preceded by any number of 0xff fill bytes.
		start := pos
		for pos < len(frame) && frame[pos] == 0xff {
			pos++
		}
		if pos >= len(frame) {
			return h, fmt.Errorf("MJPEG frame: truncated in the headers at byte %d (no SOS)", pos)
		}
		m := frame[pos]
		pos++
		switch {
		case m == markerSOS:
			h.sos = start
			return h, nil
		case m == markerEOI:
			return h, fmt.Errorf("MJPEG frame: EOI at byte %d before any SOS", start)
		case m == markerSOI || m == markerTEM || (m >= 0xd0 && m <= 0xd7):
			continue // stand-alone markers carry no length
		case m == 0:
			return h, fmt.Errorf("MJPEG frame: stuffed byte at %d in the headers", start)
		}
		if pos+2 > len(frame) {
			return h, fmt.Errorf("MJPEG frame: truncated segment %#02x at byte %d", m, start)
		}
		n := int(frame[pos])<<8 | int(frame[pos+1])
		if n < 2 || pos+n > len(frame) {
			return h, fmt.Errorf("MJPEG frame: segment %#02x at byte %d has length %d, %d bytes left", m, start, n, len(frame)-pos)
		}
		switch {
		case m == markerDHT:
			h.dht = true
		case isSOF(m) && n >= 7:
			// Length, precision, then height and width (ITU-T T.81 B.2.2).
			h.height = int(frame[pos+3])<<8 | int(frame[pos+4])
			h.width = int(frame[pos+5])<<8 | int(frame[pos+6])
		}
		pos += n
	}
}

// MJPEGDecoder decodes camera MJPEG frames into reusable buffers, inserting
// missing Huffman tables. It decodes with libjpeg-turbo where the build has
// it (JPEGDecoderName), reduced in the DCT domain when the consumer needs
// less than the full resolution, and with Go's image/jpeg otherwise. One
// decoder serves one goroutine; Close frees the libjpeg-turbo state.
type MJPEGDecoder struct {
	// MaxPixels refuses a frame whose SOF declares more pixels (0:
	// DefaultMaxPixels) with an *ImageTooLargeError, before decoding.
	MaxPixels int64
	// Std decodes with Go's image/jpeg at full resolution, as builds
	// without libjpeg-turbo do (a baseline for comparisons).
	Std bool

	fixed []byte
	rd    bytes.Reader
	tj    turbo
}

// Decode decodes frame at full resolution (DecodeScaled without a need).
func (d *MJPEGDecoder) Decode(dst image.Image, frame []byte, color Color) (image.Image, error) {
	img, _, err := d.DecodeScaled(dst, frame, color, nil)
	return img, err
}

// DecodeScaled decodes frame into dst's buffers (reused when they fit) and
// returns the image and the reduction r it was decoded at: with
// libjpeg-turbo the largest of 1/2, 1/4 and 1/8 that still leaves what need
// asks for (the DCT of each 8×8 block is inverted at 4×4, 2×2 or 1×1, an
// antialiased reduction that also saves most of the decoding), else 1. The
// image is ceil(w/r)×ceil(h/r):
//
//   - ColorAuto: *image.YCbCr, the JPEG's own planes without colour
//     conversion (with image/jpeg: as it decodes them), or *image.Gray for
//     a grayscale JPEG; other colour spaces (RGB, CMYK) *image.RGBA;
//   - ColorRGB: *image.RGBA;
//   - ColorGray: *image.Gray, the luma (libjpeg-turbo skips the chroma).
func (d *MJPEGDecoder) DecodeScaled(dst image.Image, frame []byte, color Color, need NeedFunc) (image.Image, int, error) {
	h, err := scanMJPEG(frame)
	if err != nil {
		return nil, 1, err
	}
	// A frame without SOF before its scan fails in the decoder below,
	// before it allocates anything.
	if h.width != 0 || h.height != 0 {
		if err := checkSize("MJPEG frame", "jpeg", h.width, h.height, pixelLimit(d.MaxPixels)); err != nil {
			return nil, 1, err
		}
	}
	data, inserted := h.fix(d.fixed, frame)
	if inserted {
		d.fixed = data[:0]
	}
	if d.Std || !turboAvailable {
		img, err := d.decodeStd(dst, data, color)
		if err != nil {
			return nil, 1, fmt.Errorf("MJPEG frame of %d bytes: %w", len(frame), err)
		}
		return img, 1, nil
	}
	img, r, err := d.decodeTurbo(dst, data, color, need)
	if err != nil {
		return nil, 1, fmt.Errorf("MJPEG frame of %d bytes: %w", len(frame), err)
	}
	return img, r, nil
}

func (d *MJPEGDecoder) decodeStd(dst image.Image, data []byte, color Color) (image.Image, error) {
	d.rd.Reset(data)
	img, err := jpeg.Decode(&d.rd)
	d.rd.Reset(nil)
	if err != nil {
		return nil, err
	}
	if y, ok := img.(*image.YCbCr); ok && color == ColorAuto {
		return y, nil // the planes as decoded: no conversion to throw away
	}
	return convertInto(dst, img, color), nil
}

func (d *MJPEGDecoder) decodeTurbo(dst image.Image, data []byte, color Color, need NeedFunc) (image.Image, int, error) {
	in, err := d.tj.header(data)
	if err != nil {
		return nil, 1, err
	}
	if err := checkSize("MJPEG frame", "jpeg", in.width, in.height, pixelLimit(d.MaxPixels)); err != nil {
		return nil, 1, err
	}
	r := reduction(in.width, in.height, need)
	w, h := scaled(in.width, r), scaled(in.height, r)
	switch {
	case color == ColorGray || (in.gray && color == ColorAuto):
		out := grayBuffer(dst, w, h)
		return out, r, d.tj.decodePacked(data, out.Pix, out.Stride, w, h, turboGray, r)
	case color == ColorRGB || !in.ycc:
		out := rgbaBuffer(dst, w, h)
		return out, r, d.tj.decodePacked(data, out.Pix, out.Stride, w, h, turboRGBA, r)
	}
	ys, yr, cs, cr := in.planes(w, h)
	out := ycbcrBuffer(dst, w, h, in.subsamp, ys, yr, cs, cr)
	return out, r, d.tj.decodeYCbCr(data, out, r)
}

// Close frees the decoder's libjpeg-turbo state; the decoder stays usable.
func (d *MJPEGDecoder) Close() { d.tj.close() }
