//go:build cgo && !noturbojpeg

package capture

/*
#cgo LDFLAGS: -lturbojpeg
#include <stdlib.h>
#include <turbojpeg.h>
#if defined(__has_include)
#if __has_include(<jconfig.h>)
#include <jconfig.h>
#endif
#endif

#ifdef LIBJPEG_TURBO_VERSION
#define INSPECTD_STR2(x) #x
#define INSPECTD_STR(x) INSPECTD_STR2(x)
static const char *inspectd_turbo_version(void) { return INSPECTD_STR(LIBJPEG_TURBO_VERSION); }
#else
static const char *inspectd_turbo_version(void) { return ""; }
#endif

// The planes are passed one by one: an array of pointers to Go memory may
// not be handed to C.
static int inspectd_decode_yuv(tjhandle h, const unsigned char *jpeg, unsigned long n,
		unsigned char *y, unsigned char *cb, unsigned char *cr, int ystride, int cstride,
		int width, int height, int flags) {
	unsigned char *planes[3] = {y, cb, cr};
	int strides[3] = {ystride, cstride, cstride};
	return tjDecompressToYUVPlanes(h, jpeg, n, planes, width, strides, height, flags);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"unsafe"
)

// turboAvailable says that MJPEG frames are decoded by libjpeg-turbo.
const turboAvailable = true

// turboFlags: stop at the first warning (a truncated or corrupt frame is
// skipped, as with image/jpeg, instead of being inspected half grey) and
// bound the scans of progressive JPEGs (a crafted frame cannot make one
// decode take seconds). The DCT stays the accurate one: the fast integer
// DCT saves little at reduced scales and adds visible error.
const turboFlags = C.TJFLAG_STOPONWARNING | C.TJFLAG_LIMITSCANS

// JPEGDecoderName names the JPEG decoder this build uses for camera frames,
// for the log and `inspectd version`.
func JPEGDecoderName() string {
	if v := C.GoString(C.inspectd_turbo_version()); v != "" {
		return "libjpeg-turbo " + v
	}
	return "libjpeg-turbo"
}

// turbo is one TurboJPEG decompressor; it serves one goroutine.
type turbo struct {
	h C.tjhandle
	// hdr receives tjDecompressHeader3's width, height, subsampling and
	// colour space: in the struct, not on the stack, so that passing them
	// to C does not move them to the heap every frame.
	hdr [4]C.int
}

func (t *turbo) handle() (C.tjhandle, error) {
	if t.h == nil {
		t.h = C.tjInitDecompress()
		if t.h == nil {
			return nil, fmt.Errorf("libjpeg-turbo: %s", C.GoString(C.tjGetErrorStr2(nil)))
		}
	}
	return t.h, nil
}

// close frees the decompressor; the turbo can be used again after.
func (t *turbo) close() {
	if t.h != nil {
		C.tjDestroy(t.h)
		t.h = nil
	}
}

func (t *turbo) err(what string) error {
	return fmt.Errorf("libjpeg-turbo %s: %s", what, C.GoString(C.tjGetErrorStr2(t.h)))
}

// jpegInfo is what a JPEG's headers say.
type jpegInfo struct {
	width, height int
	subsamp       image.YCbCrSubsampleRatio
	gray          bool // one component
	ycc           bool // three Y'CbCr components: decodable to planes
	ss            int  // TJSAMP_*
}

// header reads the frame's headers (it must have its Huffman tables).
func (t *turbo) header(data []byte) (jpegInfo, error) {
	h, err := t.handle()
	if err != nil {
		return jpegInfo{}, err
	}
	if len(data) == 0 {
		return jpegInfo{}, errors.New("empty JPEG")
	}
	p := &t.hdr
	if C.tjDecompressHeader3(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), &p[0], &p[1], &p[2], &p[3]) != 0 {
		return jpegInfo{}, t.err("header")
	}
	w, ht, ss, cs := p[0], p[1], p[2], p[3]
	in := jpegInfo{width: int(w), height: int(ht), ss: int(ss)}
	switch ss {
	case C.TJSAMP_444:
		in.subsamp = image.YCbCrSubsampleRatio444
	case C.TJSAMP_422:
		in.subsamp = image.YCbCrSubsampleRatio422
	case C.TJSAMP_420:
		in.subsamp = image.YCbCrSubsampleRatio420
	case C.TJSAMP_440:
		in.subsamp = image.YCbCrSubsampleRatio440
	case C.TJSAMP_411:
		in.subsamp = image.YCbCrSubsampleRatio411
	case C.TJSAMP_GRAY:
		in.gray = true
	default:
		ss = -1
	}
	in.ycc = ss >= 0 && !in.gray && cs == C.TJCS_YCbCr
	return in, nil
}

// planes is the layout libjpeg-turbo writes a w×h (scaled) image's planes
// in (tjPlaneWidth, tjPlaneHeight): luma padded to whole chroma samples,
// so a 333-pixel row of a 4:2:2 frame is written as 334 bytes. A buffer
// without the padding would be overrun.
func (in jpegInfo) planes(w, h int) (yStride, yRows, cStride, cRows int) {
	ss := C.int(in.ss)
	return int(C.tjPlaneWidth(0, C.int(w), ss)), int(C.tjPlaneHeight(0, C.int(h), ss)),
		int(C.tjPlaneWidth(1, C.int(w), ss)), int(C.tjPlaneHeight(1, C.int(h), ss))
}

// scaled is a dimension decoded at 1/reduce: TJSCALED, ceil(d/reduce).
func scaled(d, reduce int) int { return (d + reduce - 1) / reduce }

// decodeYCbCr decodes a three-component Y'CbCr JPEG at 1/reduce into dst's
// planes, which must be laid out for the scaled size and the JPEG's
// subsampling.
func (t *turbo) decodeYCbCr(data []byte, dst *image.YCbCr, reduce int) error {
	h, err := t.handle()
	if err != nil {
		return err
	}
	w, ht := dst.Rect.Dx(), dst.Rect.Dy()
	if C.inspectd_decode_yuv(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		(*C.uchar)(unsafe.Pointer(&dst.Y[0])), (*C.uchar)(unsafe.Pointer(&dst.Cb[0])), (*C.uchar)(unsafe.Pointer(&dst.Cr[0])),
		C.int(dst.YStride), C.int(dst.CStride), C.int(w), C.int(ht), turboFlags) != 0 {
		return t.err(fmt.Sprintf("decode at 1/%d", reduce))
	}
	return nil
}

// Pixel formats of decodePacked.
const (
	turboGray = C.TJPF_GRAY
	turboRGBA = C.TJPF_RGBA
)

// decodePacked decodes the frame at 1/reduce into w×h packed pixels
// (turboGray: 1 byte, turboRGBA: 4 bytes with alpha 255), rows stride
// bytes apart. libjpeg-turbo converts colour (and CMYK) and, for gray
// output, decodes the luma component only.
func (t *turbo) decodePacked(data []byte, pix []byte, stride, w, ht, format, reduce int) error {
	h, err := t.handle()
	if err != nil {
		return err
	}
	if C.tjDecompress2(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&pix[0])),
		C.int(w), C.int(stride), C.int(ht), C.int(format), turboFlags) != 0 {
		return t.err(fmt.Sprintf("decode at 1/%d", reduce))
	}
	return nil
}

// EncodeJPEG encodes img (*image.RGBA or *image.Gray; anything else is
// converted to RGBA first) with libjpeg-turbo at quality 1..100 and the
// given chroma subsampling (ignored for gray images), appending to dst:
// how cameras' encoders write MJPEG frames, for recorded test frames and
// the replay bench.
func EncodeJPEG(dst []byte, img image.Image, quality int, subsampling image.YCbCrSubsampleRatio) ([]byte, error) {
	h := C.tjInitCompress()
	if h == nil {
		return nil, fmt.Errorf("libjpeg-turbo: %s", C.GoString(C.tjGetErrorStr2(nil)))
	}
	defer C.tjDestroy(h)
	var pix []byte
	var stride, format int
	var ss C.int
	b := img.Bounds()
	switch m := img.(type) {
	case *image.Gray:
		pix, stride, format, ss = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, C.TJPF_GRAY, C.TJSAMP_GRAY
	default:
		rgba, ok := img.(*image.RGBA)
		if !ok {
			rgba = Flatten(nil, img).(*image.RGBA)
			b = rgba.Rect
		}
		pix, stride, format = rgba.Pix[rgba.PixOffset(b.Min.X, b.Min.Y):], rgba.Stride, C.TJPF_RGBA
		switch subsampling {
		case image.YCbCrSubsampleRatio444:
			ss = C.TJSAMP_444
		case image.YCbCrSubsampleRatio422:
			ss = C.TJSAMP_422
		case image.YCbCrSubsampleRatio420:
			ss = C.TJSAMP_420
		case image.YCbCrSubsampleRatio440:
			ss = C.TJSAMP_440
		case image.YCbCrSubsampleRatio411:
			ss = C.TJSAMP_411
		default:
			return nil, fmt.Errorf("encode JPEG: subsampling %v is not one libjpeg-turbo writes", subsampling)
		}
	}
	var out *C.uchar
	var size C.ulong
	if C.tjCompress2(h, (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(b.Dx()), C.int(stride), C.int(b.Dy()), C.int(format),
		&out, &size, ss, C.int(quality), 0) != 0 {
		return nil, fmt.Errorf("libjpeg-turbo encode: %s", C.GoString(C.tjGetErrorStr2(h)))
	}
	defer C.tjFree(out)
	return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(out)), int(size))...), nil
}
