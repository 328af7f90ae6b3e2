package capture

import (
	"fmt"
	"image"
)

// YUVRange says how a camera's 8-bit Y'CbCr values map onto RGB.
type YUVRange int

const (
	// YUVLimited is BT.601 studio range (Y 16..235, C 16..240), the V4L2
	// default for YUYV cameras.
	YUVLimited YUVRange = iota
	// YUVFull is BT.601 full range (JFIF), as inside JPEG files.
	YUVFull
)

// Conversion factors in 16.16 fixed point. They are constants, not fields
// of a struct, so that the inner loops keep every value in registers.
const (
	// BT.601 studio range: 255/219 = 1.164383; 1.596027, 0.391762,
	// 0.812968, 2.017232 for the chroma terms.
	limYMul, limRV, limGU, limGV, limBU = 76309, 104597, 25675, 53279, 132201
	limYOff, limRound                   = 16, 1 << 15
	// Full range: the factors of image/color.YCbCrToRGB (which does not
	// round), so JPEG output is bit-identical to the standard library's.
	fullYMul, fullRV, fullGU, fullGV, fullBU = 0x10101, 91881, 22554, 46802, 116130
)

// clamp16 takes a 16.16 value to a byte, saturating.
func clamp16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}

// yuyvStride works out the bytes per row of a packed 2-byte-per-pixel frame
// (drivers may pad rows) and checks the buffer holds a whole frame.
func packedStride(buf []byte, w, h, bpp int) (int, error) {
	if w <= 0 || h <= 0 {
		return 0, fmt.Errorf("frame size %dx%d: want positive width and height", w, h)
	}
	need := w * h * bpp
	if len(buf) < need {
		return 0, fmt.Errorf("frame of %d bytes: want at least %d for %dx%d at %d bytes/pixel", len(buf), need, w, h, bpp)
	}
	stride := w * bpp
	if len(buf) != need && len(buf)%h == 0 && len(buf)/h >= stride && len(buf)/h-stride < 256 {
		stride = len(buf) / h
	}
	return stride, nil
}

// DecodeYUYV converts a packed YUYV 4:2:2 frame of w×h into an RGBA image,
// reusing dst's pixels when they fit. w must be even.
func DecodeYUYV(dst image.Image, buf []byte, w, h int, rng YUVRange) (*image.RGBA, error) {
	if w%2 != 0 {
		return nil, fmt.Errorf("YUYV frame width %d: want an even width", w)
	}
	stride, err := packedStride(buf, w, h, 2)
	if err != nil {
		return nil, fmt.Errorf("YUYV %w", err)
	}
	out := rgbaBuffer(dst, w, h)
	for y := 0; y < h; y++ {
		d, sr := out.Pix[y*out.Stride:y*out.Stride+4*w], buf[y*stride:y*stride+2*w]
		if rng == YUVFull {
			yuyvRowFull(d, sr)
		} else {
			yuyvRowLimited(d, sr)
		}
	}
	return out, nil
}

// yuyvRowLimited converts one row of studio-range YUYV (Y0 U Y1 V groups).
func yuyvRowLimited(dst, src []byte) {
	// Advancing the slices (instead of indexing) lets the compiler use
	// constant offsets for every byte: ~20% fewer instructions.
	for len(src) >= 4 && len(dst) >= 8 {
		s := src[:4:4]
		d := dst[:8:8]
		u := int32(s[1]) - 128
		v := int32(s[3]) - 128
		dr := limRV*v + limRound
		dg := limRound - limGU*u - limGV*v
		db := limBU*u + limRound
		y0 := (int32(s[0]) - limYOff) * limYMul
		y1 := (int32(s[2]) - limYOff) * limYMul
		d[0] = clamp16(y0 + dr)
		d[1] = clamp16(y0 + dg)
		d[2] = clamp16(y0 + db)
		d[3] = 0xff
		d[4] = clamp16(y1 + dr)
		d[5] = clamp16(y1 + dg)
		d[6] = clamp16(y1 + db)
		d[7] = 0xff
		src, dst = src[4:], dst[8:]
	}
}

// yuyvRowFull converts one row of full-range YUYV.
func yuyvRowFull(dst, src []byte) {
	// Advancing the slices (instead of indexing) lets the compiler use
	// constant offsets for every byte: ~20% fewer instructions.
	for len(src) >= 4 && len(dst) >= 8 {
		s := src[:4:4]
		d := dst[:8:8]
		u := int32(s[1]) - 128
		v := int32(s[3]) - 128
		dr := fullRV * v
		dg := -fullGU*u - fullGV*v
		db := fullBU * u
		y0 := int32(s[0]) * fullYMul
		y1 := int32(s[2]) * fullYMul
		d[0] = clamp16(y0 + dr)
		d[1] = clamp16(y0 + dg)
		d[2] = clamp16(y0 + db)
		d[3] = 0xff
		d[4] = clamp16(y1 + dr)
		d[5] = clamp16(y1 + dg)
		d[6] = clamp16(y1 + db)
		d[7] = 0xff
		src, dst = src[4:], dst[8:]
	}
}

// DecodeYUYVGray takes the luma of a packed YUYV frame as a gray image.
// Limited-range luma is expanded to 0..255 so gray and RGB paths agree.
func DecodeYUYVGray(dst image.Image, buf []byte, w, h int, rng YUVRange) (*image.Gray, error) {
	if w%2 != 0 {
		return nil, fmt.Errorf("YUYV frame width %d: want an even width", w)
	}
	stride, err := packedStride(buf, w, h, 2)
	if err != nil {
		return nil, fmt.Errorf("YUYV %w", err)
	}
	out := grayBuffer(dst, w, h)
	for y := 0; y < h; y++ {
		s := buf[y*stride : y*stride+2*w]
		d := out.Pix[y*w : y*w+w]
		if rng == YUVFull {
			for x := range d {
				d[x] = s[2*x]
			}
			continue
		}
		for x := range d {
			d[x] = clamp16((int32(s[2*x])-limYOff)*limYMul + limRound)
		}
	}
	return out, nil
}

// DecodeGrey copies a GREY (8-bit luma) frame into a gray image, or expands
// it to RGBA when rgb is set.
func DecodeGrey(dst image.Image, buf []byte, w, h int, rgb bool) (image.Image, error) {
	stride, err := packedStride(buf, w, h, 1)
	if err != nil {
		return nil, fmt.Errorf("GREY %w", err)
	}
	if rgb {
		out := rgbaBuffer(dst, w, h)
		grayToRGBA(out.Pix, w, buf, stride, h)
		return out, nil
	}
	out := grayBuffer(dst, w, h)
	copyPlane(out.Pix, w, buf, stride, w, h)
	return out, nil
}

// ycbcrToRGBA converts a decoded JPEG (full-range Y'CbCr, any subsampling)
// into dst, bit-identical to image/color.YCbCrToRGB.
func ycbcrToRGBA(dst *image.RGBA, src *image.YCbCr) {
	b := src.Rect
	w, h := b.Dx(), b.Dy()
	for y := 0; y < h; y++ {
		sy := b.Min.Y + y
		d := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		yrow := src.Y[src.YOffset(b.Min.X, sy):]
		yrow = yrow[:w]
		switch src.SubsampleRatio {
		case image.YCbCrSubsampleRatio444:
			ci := src.COffset(b.Min.X, sy)
			ycbcrRow(d, yrow, src.Cb[ci:ci+w], src.Cr[ci:ci+w], 0)
		case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
			if b.Min.X%2 != 0 {
				ycbcrRowGeneric(d, src, sy)
				continue
			}
			ci := src.COffset(b.Min.X, sy)
			cw := (w + 1) / 2
			ycbcrRow(d, yrow, src.Cb[ci:ci+cw], src.Cr[ci:ci+cw], 1)
		default:
			ycbcrRowGeneric(d, src, sy)
		}
	}
}

// ycbcrRow converts one row whose chroma is horizontally subsampled by
// 1<<shift (0 or 1).
func ycbcrRow(d, yrow, cb, cr []byte, shift uint) {
	if shift == 1 {
		ycbcrRowPairs(d, yrow, cb, cr)
		return
	}
	n := min(len(yrow), len(cb), len(cr), len(d)/4)
	yrow, cb, cr = yrow[:n], cb[:n], cr[:n]
	for x, yv := range yrow {
		p := d[4*x : 4*x+4 : 4*x+4]
		u := int32(cb[x]) - 128
		v := int32(cr[x]) - 128
		yy := int32(yv) * fullYMul
		p[0] = clamp16(yy + fullRV*v)
		p[1] = clamp16(yy - fullGU*u - fullGV*v)
		p[2] = clamp16(yy + fullBU*u)
		p[3] = 0xff
	}
}

// ycbcrRowPairs converts a 4:2:2 or 4:2:0 row: two luma samples per chroma
// sample, the slices advanced as in yuyvRowLimited.
func ycbcrRowPairs(d, yrow, cb, cr []byte) {
	for len(yrow) >= 2 && len(cb) >= 1 && len(cr) >= 1 && len(d) >= 8 {
		p := d[:8:8]
		u := int32(cb[0]) - 128
		v := int32(cr[0]) - 128
		dr := fullRV * v
		dg := -fullGU*u - fullGV*v
		db := fullBU * u
		y0 := int32(yrow[0]) * fullYMul
		y1 := int32(yrow[1]) * fullYMul
		p[0] = clamp16(y0 + dr)
		p[1] = clamp16(y0 + dg)
		p[2] = clamp16(y0 + db)
		p[3] = 0xff
		p[4] = clamp16(y1 + dr)
		p[5] = clamp16(y1 + dg)
		p[6] = clamp16(y1 + db)
		p[7] = 0xff
		yrow, cb, cr, d = yrow[2:], cb[1:], cr[1:], d[8:]
	}
	if len(yrow) == 1 && len(cb) >= 1 && len(cr) >= 1 && len(d) >= 4 {
		// Odd width: the last pixel has a chroma sample of its own.
		u := int32(cb[0]) - 128
		v := int32(cr[0]) - 128
		yy := int32(yrow[0]) * fullYMul
		d[0] = clamp16(yy + fullRV*v)
		d[1] = clamp16(yy - fullGU*u - fullGV*v)
		d[2] = clamp16(yy + fullBU*u)
		d[3] = 0xff
	}
}

// ycbcrRowGeneric handles the rare subsampling ratios (4:4:0, 4:1:1, 4:1:0)
// and odd origins through YCbCr's offset methods (no interface calls).
func ycbcrRowGeneric(d []byte, src *image.YCbCr, sy int) {
	b := src.Rect
	for x := 0; x < b.Dx(); x++ {
		sx := b.Min.X + x
		yi, ci := src.YOffset(sx, sy), src.COffset(sx, sy)
		u := int32(src.Cb[ci]) - 128
		v := int32(src.Cr[ci]) - 128
		yy := int32(src.Y[yi]) * fullYMul
		p := d[4*x : 4*x+4 : 4*x+4]
		p[0] = clamp16(yy + fullRV*v)
		p[1] = clamp16(yy - fullGU*u - fullGV*v)
		p[2] = clamp16(yy + fullBU*u)
		p[3] = 0xff
	}
}

// EncodeYUYV packs an image (even width) as YUYV 4:2:2 in BT.601 studio
// range, as V4L2 cameras send it, appending to dst: each pair of pixels
// keeps its two lumas and the mean of their chromas. For recorded test
// frames and the replay bench.
func EncodeYUYV(dst []byte, img image.Image) ([]byte, error) {
	b := img.Bounds()
	if b.Dx()%2 != 0 || b.Empty() {
		return nil, fmt.Errorf("encode YUYV: %dx%d: want a non-empty image of even width", b.Dx(), b.Dy())
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		rgba = Flatten(nil, img).(*image.RGBA)
		b = rgba.Rect
	}
	// Studio range: Y = 16 + 219·L/255, C = 128 + 224·(B−L)/(1.772·255).
	ycc := func(p []byte) (y, cb, cr float64) {
		r, g, bl := float64(p[0]), float64(p[1]), float64(p[2])
		l := 0.299*r + 0.587*g + 0.114*bl
		return 16 + 219*l/255, 224 * (bl - l) / 1.772 / 255, 224 * (r - l) / 1.402 / 255
	}
	round := func(v float64) byte { return byte(min(max(v+0.5, 0), 255)) }
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			o := rgba.PixOffset(x, y)
			y0, u0, v0 := ycc(rgba.Pix[o : o+3])
			y1, u1, v1 := ycc(rgba.Pix[o+4 : o+7])
			dst = append(dst, round(y0), round(128+(u0+u1)/2), round(y1), round(128+(v0+v1)/2))
		}
	}
	return dst, nil
}
