package capture

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
)

// YUYV is a packed Y'CbCr 4:2:2 image as V4L2 cameras send it: each pair
// of pixels is four bytes, Y0 Cb Y1 Cr. Camera frames stay packed (one copy
// out of the driver's buffer, no colour conversion); the backbone's
// preprocess resamples them directly (PackedYUYV), and At converts one
// pixel for everything else.
//
// Pairs are aligned to even x in absolute coordinates, as image.YCbCr
// aligns its chroma: pixel (x, y) is in the pair starting at byte
// (y−Rect.Min.Y)·Stride + 4·(x/2 − Rect.Min.X/2) of Pix.
type YUYV struct {
	Pix    []byte
	Stride int
	Rect   image.Rectangle
	// Range is the quantization of the samples (limited: BT.601 studio
	// range, V4L2's default for YUYV).
	Range YUVRange
}

// ColorModel implements image.Image.
func (p *YUYV) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (p *YUYV) Bounds() image.Rectangle { return p.Rect }

// pairOffset is the offset of the pair holding pixel (x, y).
func (p *YUYV) pairOffset(x, y int) int {
	return (y-p.Rect.Min.Y)*p.Stride + 4*(x/2-p.Rect.Min.X/2)
}

// At implements image.Image: the pixel converted to RGB.
func (p *YUYV) At(x, y int) color.Color {
	if !(image.Point{x, y}.In(p.Rect)) {
		return color.RGBA{}
	}
	o := p.pairOffset(x, y)
	s := p.Pix[o : o+4 : o+4]
	yy := int32(s[2*(x&1)])
	u, v := int32(s[1])-128, int32(s[3])-128
	if p.Range == YUVFull {
		yy *= fullYMul
		return color.RGBA{clamp16(yy + fullRV*v), clamp16(yy - fullGU*u - fullGV*v), clamp16(yy + fullBU*u), 0xff}
	}
	yy = (yy - limYOff) * limYMul
	return color.RGBA{clamp16(yy + limRV*v + limRound), clamp16(yy + limRound - limGU*u - limGV*v), clamp16(yy + limBU*u + limRound), 0xff}
}

// SubImage returns the part of p inside r, sharing p's pixels.
func (p *YUYV) SubImage(r image.Rectangle) image.Image {
	q := new(YUYV)
	p.subInto(q, r)
	return q
}

// subInto writes the view of p inside r into q (no allocation).
func (p *YUYV) subInto(q *YUYV, r image.Rectangle) {
	r = r.Intersect(p.Rect)
	*q = YUYV{Stride: p.Stride, Rect: r, Range: p.Range}
	if r.Empty() {
		return
	}
	q.Pix = p.Pix[p.pairOffset(r.Min.X, r.Min.Y):]
}

// PackedYUYV returns the packed samples, their row stride, the bounds and
// whether they are full range: the layout the backbone's preprocess reads
// without converting the frame first.
func (p *YUYV) PackedYUYV() (pix []byte, stride int, rect image.Rectangle, fullRange bool) {
	return p.Pix, p.Stride, p.Rect, p.Range == YUVFull
}

// decodeYUYVPacked copies a w×h YUYV frame (rows possibly padded) out of a
// driver buffer into dst's pixels, reused when they fit: the frame stays
// packed.
func decodeYUYVPacked(dst image.Image, buf []byte, w, h int, rng YUVRange) (*YUYV, error) {
	if w%2 != 0 {
		return nil, fmt.Errorf("YUYV frame width %d: want an even width", w)
	}
	stride, err := packedStride(buf, w, h, 2)
	if err != nil {
		return nil, fmt.Errorf("YUYV %w", err)
	}
	out, ok := dst.(*YUYV)
	if !ok || out == nil {
		out = new(YUYV)
	}
	n := 2 * w * h
	if cap(out.Pix) < n {
		out.Pix = make([]byte, n)
	}
	out.Pix, out.Stride, out.Rect, out.Range = out.Pix[:n], 2*w, image.Rect(0, 0, w, h), rng
	copyPlane(out.Pix, 2*w, buf, stride, 2*w, h)
	return out, nil
}

// Rotated is Src turned clockwise by Deg degrees (90, 180 or 270) without
// copying it: the rotation of a camera mounted sideways is applied where
// the frame is resampled for the network anyway (Unrotated), and by
// Flatten for pictures. Its bounds start at 0,0.
type Rotated struct {
	Src image.Image
	Deg int
}

// ColorModel implements image.Image.
func (r *Rotated) ColorModel() color.Model { return r.Src.ColorModel() }

// Bounds implements image.Image.
func (r *Rotated) Bounds() image.Rectangle {
	b := r.Src.Bounds()
	if r.Deg == 90 || r.Deg == 270 {
		return image.Rect(0, 0, b.Dy(), b.Dx())
	}
	return image.Rect(0, 0, b.Dx(), b.Dy())
}

// At implements image.Image.
func (r *Rotated) At(x, y int) color.Color {
	b := r.Src.Bounds()
	sw, sh := b.Dx(), b.Dy()
	switch r.Deg {
	case 90:
		return r.Src.At(b.Min.X+y, b.Min.Y+sh-1-x)
	case 180:
		return r.Src.At(b.Min.X+sw-1-x, b.Min.Y+sh-1-y)
	case 270:
		return r.Src.At(b.Min.X+sw-1-y, b.Min.Y+x)
	}
	return r.Src.At(b.Min.X+x, b.Min.Y+y)
}

// Unrotated returns the image before rotation and the clockwise rotation
// in degrees, for code that reads the source's pixels directly.
func (r *Rotated) Unrotated() (image.Image, int) { return r.Src, r.Deg }

// Region is a region of interest whose edges fall between the pixels of
// the frame it is cut from: the region of a frame the source reduced
// (Frame.Native), where a region given in full-resolution pixels does not
// start or end on a multiple of the reduction. Image is the smallest
// region of whole pixels that holds it (a view, which pictures and the map
// use); X0, Y0, X1, Y1 are the region's exact edges in Image's coordinates,
// which the backbone's preprocess resamples (Exact), so that the network
// sees the region the full-resolution frame would have given it.
type Region struct {
	image.Image
	X0, Y0, X1, Y1 float64
}

// Exact returns the whole-pixel view and the region's exact edges.
func (r *Region) Exact() (image.Image, float64, float64, float64, float64) {
	return r.Image, r.X0, r.Y0, r.X1, r.Y1
}

// frameViews are the headers a Frame's views are written into, so that
// cutting a region of interest and rotating allocate nothing per frame.
type frameViews struct {
	ycc    image.YCbCr
	gray   image.Gray
	rgba   image.RGBA
	yuyv   YUYV
	rot    Rotated
	region Region
	mask   *image.Gray
}

// subView returns the part of img inside r as a view sharing img's pixels,
// written into v's headers; false for image types without one.
func (v *frameViews) subView(img image.Image, r image.Rectangle) (image.Image, bool) {
	switch m := img.(type) {
	case *image.YCbCr:
		// As image.YCbCr.SubImage does (chroma aligned in absolute
		// coordinates), without allocating the header.
		yi, ci := m.YOffset(r.Min.X, r.Min.Y), m.COffset(r.Min.X, r.Min.Y)
		v.ycc = image.YCbCr{Y: m.Y[yi:], Cb: m.Cb[ci:], Cr: m.Cr[ci:], SubsampleRatio: m.SubsampleRatio,
			YStride: m.YStride, CStride: m.CStride, Rect: r}
		return &v.ycc, true
	case *image.Gray:
		v.gray = image.Gray{Pix: m.Pix[m.PixOffset(r.Min.X, r.Min.Y):], Stride: m.Stride, Rect: r}
		return &v.gray, true
	case *image.RGBA:
		v.rgba = image.RGBA{Pix: m.Pix[m.PixOffset(r.Min.X, r.Min.Y):], Stride: m.Stride, Rect: r}
		return &v.rgba, true
	case *YUYV:
		m.subInto(&v.yuyv, r)
		return &v.yuyv, true
	}
	return nil, false
}

// Flatten copies a frame's image of any of the kinds capture delivers
// (views included) into dst's buffers, reused when they fit, as a plain
// image at the origin: *image.Gray when the frame is gray, *image.RGBA
// otherwise. Pictures (snapshots, heatmaps) and copies that outlive the
// frame use it; inspection reads the frame as it is.
func Flatten(dst image.Image, src image.Image) image.Image {
	rot := 0
	if r, ok := src.(*Rotated); ok {
		src, rot = r.Src, r.Deg
	}
	if r, ok := src.(*Region); ok {
		src = r.Image // the whole pixels around it
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if rot == 90 || rot == 270 {
		w, h = h, w
	}
	switch s := src.(type) {
	case *image.Gray:
		out := grayBuffer(dst, w, h)
		cropRotate(out.Pix, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, b.Dx(), b.Dy(), 1, rot)
		return out
	case *image.RGBA:
		out := rgbaBuffer(dst, w, h)
		cropRotate(out.Pix, s.Pix[s.PixOffset(b.Min.X, b.Min.Y):], s.Stride, b.Dx(), b.Dy(), 4, rot)
		return out
	}
	out := rgbaBuffer(dst, w, h)
	if rot == 0 {
		switch s := src.(type) {
		case *image.YCbCr:
			ycbcrToRGBA(out, s)
			return out
		case *YUYV:
			yuyvToRGBA(out, s)
			return out
		}
		draw.Draw(out, out.Rect, src, b.Min, draw.Src)
		return out
	}
	draw.Draw(out, out.Rect, &Rotated{Src: src, Deg: rot}, image.Point{}, draw.Src)
	return out
}

// yuyvToRGBA converts a (possibly cropped) packed frame into dst.
func yuyvToRGBA(dst *image.RGBA, src *YUYV) {
	b := src.Rect
	w := b.Dx()
	for y := 0; y < b.Dy(); y++ {
		d := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		row := src.Pix[y*src.Stride:]
		x0 := 0
		if b.Min.X%2 != 0 {
			// The first pixel is the second of its pair.
			c := src.At(b.Min.X, b.Min.Y+y).(color.RGBA)
			d[0], d[1], d[2], d[3] = c.R, c.G, c.B, 0xff
			row, d, x0 = row[4:], d[4:], 1
		}
		n := (w - x0) / 2 * 4
		if src.Range == YUVFull {
			yuyvRowFull(d, row[:n])
		} else {
			yuyvRowLimited(d, row[:n])
		}
		if (w-x0)%2 != 0 {
			x := b.Max.X - 1
			c := src.At(x, b.Min.Y+y).(color.RGBA)
			p := dst.Pix[y*dst.Stride+4*(w-1):]
			p[0], p[1], p[2], p[3] = c.R, c.G, c.B, 0xff
		}
	}
}
