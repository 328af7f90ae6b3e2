package capture

import (
	"image"
	"image/draw"
)

// rgbaBuffer returns an RGBA image of w×h at the origin, reusing img's pixels
// when it is an *image.RGBA with enough capacity. The caller owns img, so
// reshaping it in place is allowed.
func rgbaBuffer(img image.Image, w, h int) *image.RGBA {
	n := 4 * w * h
	if m, ok := img.(*image.RGBA); ok && m != nil && cap(m.Pix) >= n {
		m.Pix = m.Pix[:n]
		m.Stride = 4 * w
		m.Rect = image.Rect(0, 0, w, h)
		return m
	}
	return image.NewRGBA(image.Rect(0, 0, w, h))
}

// grayBuffer is rgbaBuffer for *image.Gray.
func grayBuffer(img image.Image, w, h int) *image.Gray {
	n := w * h
	if m, ok := img.(*image.Gray); ok && m != nil && cap(m.Pix) >= n {
		m.Pix = m.Pix[:n]
		m.Stride = w
		m.Rect = image.Rect(0, 0, w, h)
		return m
	}
	return image.NewGray(image.Rect(0, 0, w, h))
}

// ycbcrBuffer returns a Y'CbCr image of w×h at the origin with the given
// subsampling, over planes of at least yStride×yRows and cStride×cRows
// bytes (a decoder may write whole MCUs past the image's edge), reusing
// img's planes when it is an *image.YCbCr with enough capacity.
func ycbcrBuffer(img image.Image, w, h int, ratio image.YCbCrSubsampleRatio, yStride, yRows, cStride, cRows int) *image.YCbCr {
	m, ok := img.(*image.YCbCr)
	ny, nc := yStride*yRows, cStride*cRows
	if !ok || m == nil || cap(m.Y) < ny || cap(m.Cb) < nc || cap(m.Cr) < nc {
		m = &image.YCbCr{Y: make([]byte, ny), Cb: make([]byte, nc), Cr: make([]byte, nc)}
	}
	m.Y, m.Cb, m.Cr = m.Y[:ny], m.Cb[:nc], m.Cr[:nc]
	m.YStride, m.CStride, m.SubsampleRatio, m.Rect = yStride, cStride, ratio, image.Rect(0, 0, w, h)
	return m
}

// maskBuffer is grayBuffer for a possibly nil mask.
func maskBuffer(m *image.Gray, w, h int) *image.Gray {
	if m == nil {
		return image.NewGray(image.Rect(0, 0, w, h))
	}
	return grayBuffer(m, w, h)
}

// isGrayImage reports whether a decoded image carries only luminance.
func isGrayImage(img image.Image) bool {
	switch img.(type) {
	case *image.Gray, *image.Gray16:
		return true
	}
	return false
}

// convertInto writes src into dst's buffers as *image.RGBA or *image.Gray
// (per color) and returns the image to store in the frame. Common decoded
// types are converted with plain loops; rare ones go through image/draw.
func convertInto(dst image.Image, src image.Image, color Color) image.Image {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if color.gray(isGrayImage(src)) {
		out := grayBuffer(dst, w, h)
		switch s := src.(type) {
		case *image.Gray:
			copyPlane(out.Pix, w, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, w, h)
		case *image.YCbCr:
			copyPlane(out.Pix, w, s.Y[s.YOffset(b.Min.X, b.Min.Y):], s.YStride, w, h)
		case *image.RGBA:
			rgbaToGray(out.Pix, w, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, w, h)
		default:
			draw.Draw(out, out.Rect, src, b.Min, draw.Src)
		}
		return out
	}
	out := rgbaBuffer(dst, w, h)
	switch s := src.(type) {
	case *image.RGBA:
		copyPlane(out.Pix, 4*w, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, 4*w, h)
	case *image.Gray:
		grayToRGBA(out.Pix, w, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, h)
	case *image.YCbCr:
		ycbcrToRGBA(out, s)
	default:
		// NRGBA, Paletted, 16-bit and CMYK images: image/draw premultiplies
		// and converts correctly; these come from files, not live cameras.
		draw.Draw(out, out.Rect, src, b.Min, draw.Src)
	}
	return out
}

// copyPlane copies h rows of rowLen bytes between strided planes.
func copyPlane(dst []byte, dstStride int, src []byte, srcStride int, rowLen, h int) {
	for y := 0; y < h; y++ {
		copy(dst[y*dstStride:y*dstStride+rowLen], src[y*srcStride:y*srcStride+rowLen])
	}
}

// grayToRGBA expands a w×h gray plane into opaque RGBA (dst rows 4w apart).
func grayToRGBA(dst []byte, w int, src []byte, srcStride int, h int) {
	for y := 0; y < h; y++ {
		s := src[y*srcStride : y*srcStride+w]
		d := dst[y*4*w : y*4*w+4*w]
		for x, v := range s {
			p := d[4*x : 4*x+4 : 4*x+4]
			p[0], p[1], p[2], p[3] = v, v, v, 0xff
		}
	}
}

// rgbaToGray computes luma with the weights of color.GrayModel.
func rgbaToGray(dst []byte, dstStride int, src []byte, srcStride int, w, h int) {
	for y := 0; y < h; y++ {
		s := src[y*srcStride : y*srcStride+4*w]
		d := dst[y*dstStride : y*dstStride+w]
		for x := range d {
			p := s[4*x : 4*x+4 : 4*x+4]
			d[x] = uint8((19595*uint32(p[0]) + 38470*uint32(p[1]) + 7471*uint32(p[2]) + 1<<15) >> 16)
		}
	}
}
