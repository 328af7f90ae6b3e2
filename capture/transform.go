package capture

import (
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"strconv"
	"strings"
)

// TransformOptions select a region of interest and a rotation. The region is
// cut from the frame as the camera delivers it, then rotated.
type TransformOptions struct {
	// ROI is the region of interest in frame pixels; empty keeps the whole
	// frame.
	ROI image.Rectangle
	// Rotate turns the image clockwise by 0, 90, 180 or 270 degrees (for
	// cameras mounted sideways or upside down).
	Rotate int
}

// ToEdge as an ROI's Max.X or Max.Y extends the region to the frame's right
// or bottom edge, for regions configured before the frame size is known.
const ToEdge = 1 << 30

// Identity reports whether the options change nothing.
func (o TransformOptions) Identity() bool { return o.ROI.Empty() && o.Rotate == 0 }

// Validate checks the rotation and that the region is well formed.
func (o TransformOptions) Validate() error {
	switch o.Rotate {
	case 0, 90, 180, 270:
	default:
		return fmt.Errorf("rotate %d: want 0, 90, 180 or 270", o.Rotate)
	}
	if o.ROI != (image.Rectangle{}) && (o.ROI.Empty() || o.ROI.Min.X < 0 || o.ROI.Min.Y < 0) {
		return fmt.Errorf("roi %v: want a non-empty rectangle at non-negative coordinates", o.ROI)
	}
	return nil
}

// ParseROI reads a region written as "x,y,width,height" ("" is the whole
// frame).
func ParseROI(s string) (image.Rectangle, error) {
	if strings.TrimSpace(s) == "" {
		return image.Rectangle{}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return image.Rectangle{}, fmt.Errorf("roi %q: want x,y,width,height", s)
	}
	var v [4]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return image.Rectangle{}, fmt.Errorf("roi %q: %q is not a non-negative integer", s, p)
		}
		v[i] = n
	}
	if v[2] == 0 || v[3] == 0 {
		return image.Rectangle{}, fmt.Errorf("roi %q: width and height must be positive", s)
	}
	return image.Rect(v[0], v[1], v[0]+v[2], v[1]+v[3]), nil
}

// ApplyTransform cuts opts.ROI out of src's image (and mask), rotates it and
// writes the result into dst's buffers, copying src's metadata. src.Image
// must be an *image.RGBA or *image.Gray. It allocates only when dst's
// buffers are too small.
func ApplyTransform(dst, src *Frame, opts TransformOptions) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	b := src.Image.Bounds()
	r := opts.ROI
	if r.Max.X >= ToEdge {
		r.Max.X = b.Max.X
	}
	if r.Max.Y >= ToEdge {
		r.Max.Y = b.Max.Y
	}
	if r.Empty() && opts.ROI.Empty() {
		r = b
	} else if r.Empty() || !r.In(b) {
		return fmt.Errorf("roi x=%d y=%d %dx%d does not fit in the %dx%d frame",
			r.Min.X, r.Min.Y, r.Dx(), r.Dy(), b.Dx(), b.Dy())
	}
	w, h := r.Dx(), r.Dy()
	if opts.Rotate == 90 || opts.Rotate == 270 {
		w, h = h, w
	}
	copyMeta(dst, src)
	switch s := src.Image.(type) {
	case *image.RGBA:
		out := rgbaBuffer(dst.Image, w, h)
		cropRotate(out.Pix, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, r.Dx(), r.Dy(), 4, opts.Rotate)
		dst.Image = out
	case *image.Gray:
		out := grayBuffer(dst.Image, w, h)
		cropRotate(out.Pix, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, r.Dx(), r.Dy(), 1, opts.Rotate)
		dst.Image = out
	default:
		return fmt.Errorf("transform: image type %T: want *image.RGBA or *image.Gray", src.Image)
	}
	if src.Mask == nil {
		dst.Mask = nil
		return nil
	}
	if !r.In(src.Mask.Bounds()) {
		return fmt.Errorf("transform: mask %v does not cover roi %v", src.Mask.Bounds(), r)
	}
	m := maskBuffer(dst.Mask, w, h)
	cropRotate(m.Pix, src.Mask.Pix[src.Mask.PixOffset(r.Min.X, r.Min.Y):], src.Mask.Stride, r.Dx(), r.Dy(), 1, opts.Rotate)
	dst.Mask = m
	return nil
}

// cropRotate copies a sw×sh region starting at src (rows srcStride apart)
// into the tightly packed dst, rotated clockwise by rot degrees.
func cropRotate(dst, src []byte, srcStride, sw, sh, bpp, rot int) {
	row := sw * bpp
	switch rot {
	case 0:
		copyPlane(dst, row, src, srcStride, row, sh)
	case 180:
		for y := 0; y < sh; y++ {
			s := src[y*srcStride : y*srcStride+row]
			d := dst[(sh-1-y)*row : (sh-y)*row]
			reversePixels(d, s, bpp)
		}
	case 90, 270:
		rotateQuarter(dst, src, srcStride, sw, sh, bpp, rot)
	}
}

// rotateQuarter turns a sw×sh region by 90° or 270° clockwise into dst,
// which is sh pixels wide: for 90°, dst(dx, dy) = src(dy, sh-1-dx); for
// 270°, dst(dx, dy) = src(sw-1-dy, dx). It reads the source row by row and
// scatters into one destination column; the columns' cache lines are reused
// by the next rows. (Walking 32×32 tiles measured 2-3× slower here.)
func rotateQuarter(dst, src []byte, srcStride, sw, sh, bpp, rot int) {
	dw := sh
	for y := 0; y < sh; y++ {
		s := src[y*srcStride : y*srcStride+sw*bpp]
		dx := y
		if rot == 90 {
			dx = sh - 1 - y
		}
		if bpp == 1 {
			if rot == 90 {
				for x, v := range s {
					dst[x*dw+dx] = v
				}
			} else {
				for x, v := range s {
					dst[(sw-1-x)*dw+dx] = v
				}
			}
			continue
		}
		for x := 0; x < sw; x++ {
			dy := x
			if rot == 270 {
				dy = sw - 1 - x
			}
			o := (dy*dw + dx) * 4
			p := s[4*x : 4*x+4 : 4*x+4]
			d := dst[o : o+4 : o+4]
			d[0], d[1], d[2], d[3] = p[0], p[1], p[2], p[3]
		}
	}
}

// reversePixels writes the pixels of s into d in reverse order.
func reversePixels(d, s []byte, bpp int) {
	n := len(s) / bpp
	if bpp == 1 {
		for i, v := range s {
			d[n-1-i] = v
		}
		return
	}
	for i := 0; i < n; i++ {
		o := 4 * (n - 1 - i)
		binary.LittleEndian.PutUint32(d[o:o+4], binary.LittleEndian.Uint32(s[4*i:4*i+4]))
	}
}

// Transform is a Source that crops and rotates another source's frames.
type Transform struct {
	src  Source
	opts TransformOptions
	in   Frame
}

// NewTransform wraps src. With identity options it returns src itself.
func NewTransform(src Source, opts TransformOptions) (Source, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Identity() {
		return src, nil
	}
	return &Transform{src: src, opts: opts}, nil
}

// Next implements Source. A region that does not fit the frames is an
// error that retrying cannot fix.
func (t *Transform) Next(ctx context.Context, f *Frame) error {
	if err := t.src.Next(ctx, &t.in); err != nil {
		return err
	}
	return ApplyTransform(f, &t.in, t.opts)
}

// Counters forwards to the wrapped source.
func (t *Transform) Counters() *Counters { return CountersOf(t.src) }

// Lossless forwards to the wrapped source.
func (t *Transform) Lossless() bool { return IsLossless(t.src) }

// Flush forwards to the wrapped source.
func (t *Transform) Flush() {
	if fl, ok := t.src.(Flusher); ok {
		fl.Flush()
	}
}

// Close closes the wrapped source.
func (t *Transform) Close() error { return t.src.Close() }
