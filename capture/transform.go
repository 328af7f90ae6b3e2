package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"strconv"
	"strings"
	"sync/atomic"
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

// FixedSizeSource is implemented by sources whose frames keep one size
// while they run (a camera, at the size it negotiated), as opposed to
// files, each of its own size. A Transform over one holds its region of
// interest to the size of the first frame it cut (see FrameSizeError).
type FixedSizeSource interface {
	Source
	// FixedFrameSize reports that every frame has the size of the first,
	// unless the source says otherwise (a camera reopened at another size
	// logs it).
	FixedFrameSize() bool
}

// FrameSizeError is a frame that Transform refuses to cut: its source's
// frames keep one size (FixedSizeSource), and this one has another (a
// camera reopened after an unplug that negotiated another size), or the
// region of interest does not fit in it and no frame has been cut yet (a
// camera first opened at a size the region was not given for). The region
// is in pixels of the size the source first sent that it fits in; cut at
// the same numbers from a frame of another size it covers another part of
// the view, even where it fits, so the frame is refused rather than cut
// wrong. The frame was captured (its Time and Seq are set). It is not
// Temporary: every frame is refused until the source sends frames of the
// size Was again (of a size the region fits in, while Was is zero); a new
// Transform (a reload with a region for the new size) takes the new size,
// unless HoldSize gave it the size of the one it replaces (a camera
// closed and opened again with the same region). Either way the source
// goes on: it is a camera at the wrong size, not a source that ended.
type FrameSizeError struct {
	// ROI is the region of interest as given (ToEdge ends unresolved).
	ROI image.Rectangle
	// Was is the size the region was first cut from, zero when no frame
	// has been cut (the region does not fit in Now); Now this frame's.
	Was, Now image.Point
}

func (e *FrameSizeError) Error() string {
	if e.Was == (image.Point{}) {
		r := TransformOptions{ROI: e.ROI}.Region(e.Now.X, e.Now.Y)
		return fmt.Sprintf("frame refused: roi x=%d y=%d %dx%d does not fit in the %dx%d frames the camera sends; no frame is inspected "+
			"until it sends a size the roi fits in (set capture.camera.width and height to the size the roi was given for, or give the roi for %dx%d and reload)",
			r.Min.X, r.Min.Y, r.Dx(), r.Dy(), e.Now.X, e.Now.Y, e.Now.X, e.Now.Y)
	}
	w, h := "to the edge", "to the edge"
	if e.ROI.Max.X < ToEdge {
		w = strconv.Itoa(e.ROI.Dx())
	}
	if e.ROI.Max.Y < ToEdge {
		h = strconv.Itoa(e.ROI.Dy())
	}
	return fmt.Sprintf("frame refused: the camera now sends %dx%d frames, not the %dx%d the roi (x=%d y=%d width %s height %s) was given for; "+
		"cut at the same pixels it would cover another part of the view (open the camera at %dx%d again, or give the roi for %dx%d and reload)",
		e.Now.X, e.Now.Y, e.Was.X, e.Was.Y, e.ROI.Min.X, e.ROI.Min.Y, w, h, e.Was.X, e.Was.Y, e.Now.X, e.Now.Y)
}

// ROIMisfitError is a file's image that Transform cannot cut: the region
// of interest does not fit in it (a stray thumbnail dropped into a watched
// folder). Unlike a camera's frames (FrameSizeError), every file has a
// size of its own, so this one says nothing of the next: the source goes
// on with the next file at the next call. The file was read (the frame's
// Name, Time and Seq are set; its Image is the whole image, not cut); it is
// a part to answer as one that could not be inspected, not Temporary and
// not the end of the source.
type ROIMisfitError struct {
	// Name is the file's name (Frame.Name).
	Name string
	// ROI is the region of interest as given (ToEdge ends unresolved).
	ROI image.Rectangle
	// Size is the image's, at full resolution.
	Size image.Point
}

func (e *ROIMisfitError) Error() string {
	return fmt.Sprintf("file %s not inspected: roi %s does not fit in its %dx%d image", e.Name, describeROI(e.ROI), e.Size.X, e.Size.Y)
}

// DescribeROI writes a region of interest as the errors name it ("x=8 y=8
// 32x32", an end at the frame's edge as "to the edge"), for log lines
// that name the roi beside such an error.
func DescribeROI(r image.Rectangle) string { return describeROI(r) }

// describeROI writes a region of interest as configured: "x=8 y=8 32x32",
// an end at the frame's edge (ToEdge) as "to the edge".
func describeROI(r image.Rectangle) string {
	w, h := "to the edge", "to the edge"
	if r.Max.X < ToEdge {
		w = strconv.Itoa(r.Dx())
	}
	if r.Max.Y < ToEdge {
		h = strconv.Itoa(r.Dy())
	}
	if r.Max.X < ToEdge && r.Max.Y < ToEdge {
		return fmt.Sprintf("x=%d y=%d %sx%s", r.Min.X, r.Min.Y, w, h)
	}
	return fmt.Sprintf("x=%d y=%d width %s height %s", r.Min.X, r.Min.Y, w, h)
}

// heldSize is the full-resolution frame size a region of interest is held
// to (FixedSizeSource), zero until a frame has been cut. It is shared by a
// Transform and the Transforms that replace it on the same camera with the
// same region (HoldSize), so that a camera closed and opened again keeps
// the size the region was given for. Packed as width<<32 | height so that
// it is read and set atomically: the Transform replaced may still be
// cutting its last frame when its successor is made.
type heldSize struct{ v atomic.Uint64 }

func (h *heldSize) load() image.Point {
	v := h.v.Load()
	return image.Pt(int(v>>32), int(uint32(v)))
}

// take sets the size unless one is set already, and returns the size
// held.
func (h *heldSize) take(p image.Point) image.Point {
	h.v.CompareAndSwap(0, uint64(uint32(p.X))<<32|uint64(uint32(p.Y)))
	return h.load()
}

// Transform is a Source that cuts a region of interest out of another
// source's frames and rotates it, without copying the frame: the frame's
// Image becomes a view (a sub-image, a *Rotated) of the image the source
// decoded into the frame's own buffers. A ground-truth mask (synthetic
// frames) is copied, cut and rotated. A consumer's Need is passed on in the
// source's terms, so that a camera decodes the frame reduced only as far as
// the region still keeps what the consumer needs.
type Transform struct {
	src  Source
	opts TransformOptions
	// fixed: the source's frames keep one size (FixedSizeSource) and a
	// region is given; size holds that of the first frame cut (full
	// resolution), which every later frame must have.
	fixed bool
	size  *heldSize
	outer NeedFunc // the consumer's, during Next
	need  NeedFunc // t.translate, bound once
}

// NewTransform wraps src. With identity options it returns src itself.
// A single file (*File), whose image is known, is refused when the region
// does not fit in it: every frame of it would be refused.
func NewTransform(src Source, opts TransformOptions) (Source, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Identity() {
		return src, nil
	}
	if fl, ok := src.(*File); ok {
		b := fl.img.Bounds()
		if err := opts.CheckFileImage(fl.opts.Path, b.Dx(), b.Dy()); err != nil {
			return nil, err
		}
	}
	t := &Transform{src: src, opts: opts}
	if fs, ok := src.(FixedSizeSource); ok && fs.FixedFrameSize() && opts.ROI != (image.Rectangle{}) {
		t.fixed, t.size = true, &heldSize{}
	}
	t.need = t.translate
	return t, nil
}

// CheckFileImage is the refusal NewTransform gives a single file's (a file
// source's) w×h image at path: the region of interest does not fit in it,
// so every frame of it would be refused. nil when it fits or no region is
// given. config check asks it too, so that a file run refuses at start is
// not reported ok.
func (o TransformOptions) CheckFileImage(path string, w, h int) error {
	if o.ROI == (image.Rectangle{}) {
		return nil
	}
	if r := o.Region(w, h); r.Empty() || !r.In(image.Rect(0, 0, w, h)) {
		return fmt.Errorf("roi %s does not fit in the %dx%d image of file %s", describeROI(o.ROI), w, h, path)
	}
	return nil
}

// HoldSize makes the Transform in src hold its region of interest to the
// frame size that the Transform in prev holds its region to (or will,
// once it cuts its first frame), when both cut the same region out of a
// source whose frames keep one size (a camera): a camera closed and
// opened again in prev's place (restart-camera, a reload that changes
// only other settings of the camera's) that negotiates another
// size has its frames refused (FrameSizeError) as a camera reopened after
// an unplug has, instead of the region being cut at the same numbers from
// another view. Wrappers in front of either (Throttle, Triggered) are
// looked through. It reports whether the size is held; call it before
// src's first Next.
func HoldSize(src, prev Source) bool {
	t, p := transformIn(src), transformIn(prev)
	if t == nil || p == nil || !t.fixed || !p.fixed || t.opts.ROI != p.opts.ROI {
		return false
	}
	t.size = p.size
	return true
}

// transformIn is the Transform src is or wraps, nil if none.
func transformIn(src Source) *Transform {
	for {
		switch s := src.(type) {
		case *Transform:
			return s
		case *Throttle:
			src = s.src
		case *Triggered:
			src = s.src
		default:
			return nil
		}
	}
}

// Region resolves the region of interest in a w×h frame: ToEdge ends
// become the frame's edges, an empty ROI the whole frame. The result may
// not fit the frame; Transform reports that.
func (o TransformOptions) Region(w, h int) image.Rectangle {
	r := o.ROI
	if r.Max.X >= ToEdge {
		r.Max.X = w
	}
	if r.Max.Y >= ToEdge {
		r.Max.Y = h
	}
	if r.Empty() && o.ROI.Empty() {
		r = image.Rect(0, 0, w, h)
	}
	return r
}

// quarter reports a rotation that swaps width and height.
func (o TransformOptions) quarter() bool { return o.Rotate == 90 || o.Rotate == 270 }

// translate is the consumer's need for the region, rotated, stated for
// the whole w×h frame: the frame size at which the region keeps it.
func (t *Transform) translate(w, h int) (int, int) {
	r := t.opts.Region(w, h)
	if r.Empty() || !r.In(image.Rect(0, 0, w, h)) {
		return w, h // Next reports the misfit; no reduction meanwhile
	}
	rw, rh := r.Dx(), r.Dy()
	lw, lh := rw, rh
	if t.opts.quarter() {
		lw, lh = rh, rw
	}
	nw, nh := t.outer(lw, lh)
	if t.opts.quarter() {
		nw, nh = nh, nw
	}
	return (nw*w + rw - 1) / rw, (nh*h + rh - 1) / rh
}

// Next implements Source. A region that does not fit a frame is, for a
// source of one frame size (a camera), a FrameSizeError, every frame
// refused until the camera sends a size the region fits in; for a file's
// image (a folder's) a ROIMisfitError, the source going on with the next
// file; for others (synthetic frames) an error that retrying cannot fix.
func (t *Transform) Next(ctx context.Context, f *Frame) error {
	outer := f.Need
	if outer != nil {
		t.outer = outer
		f.Need = t.need
	}
	err := t.src.Next(ctx, f)
	f.Need, t.outer = outer, nil
	if err != nil {
		return err
	}
	err = t.view(f)
	if r, ok := t.src.(frameRefuser); ok && errors.As(err, new(*ROIMisfitError)) {
		r.refuse()
	}
	return err
}

// frameRefuser is a source told that the frame it gave last could not be
// used (a looped Folder: a pass of files the region of interest fits in
// none of gave nothing to inspect, and waits before the next as a pass of
// undecodable files does, instead of replaying them as fast as they read).
type frameRefuser interface{ refuse() }

// view makes f's image and mask the region of interest, rotated.
func (t *Transform) view(f *Frame) error {
	img := f.Image
	b := img.Bounds()
	// The region in the source's full-resolution pixels, then in the
	// image's, which the source may have reduced.
	fw, fh := b.Dx(), b.Dy()
	if f.Native != (image.Point{}) {
		fw, fh = f.Native.X, f.Native.Y
	}
	full := t.opts.Region(fw, fh)
	fits := !full.Empty() && full.In(image.Rect(0, 0, fw, fh))
	if t.fixed {
		switch now, was := image.Pt(fw, fh), t.size.load(); {
		case was != (image.Point{}) && now != was:
			return &FrameSizeError{ROI: t.opts.ROI, Was: was, Now: now}
		case !fits:
			// A camera first opened at a size the region does not fit:
			// refused as a reopen at another size is, and no size is
			// taken for the region until one it fits in comes.
			return &FrameSizeError{ROI: t.opts.ROI, Now: now}
		case was == (image.Point{}):
			// A Transform it replaced (HoldSize) may have taken one
			// meanwhile, from its last frame.
			if was = t.size.take(now); now != was {
				return &FrameSizeError{ROI: t.opts.ROI, Was: was, Now: now}
			}
		}
	}
	if !fits && f.Name != "" {
		// A file of its own size (a thumbnail dropped into a watched
		// folder): answered, and the next file read.
		return &ROIMisfitError{Name: f.Name, ROI: t.opts.ROI, Size: image.Pt(fw, fh)}
	}
	if !fits {
		return fmt.Errorf("roi x=%d y=%d %dx%d does not fit in the %dx%d frame",
			full.Min.X, full.Min.Y, full.Dx(), full.Dy(), fw, fh)
	}
	r, red := full, 1
	if f.Native != (image.Point{}) {
		// A frame reduced by red (ceil(fw/red) pixels wide): the region's
		// edges at full resolution fall between its pixels unless they are
		// multiples of red. The view is the smallest region of whole pixels
		// around it; the exact edges go with it (Region).
		red = (fw + b.Dx() - 1) / b.Dx()
		r = image.Rect(full.Min.X/red, full.Min.Y/red, (full.Max.X+red-1)/red, (full.Max.Y+red-1)/red).Intersect(image.Rect(0, 0, b.Dx(), b.Dy()))
		nw, nh := full.Dx(), full.Dy()
		if t.opts.quarter() {
			nw, nh = nh, nw
		}
		f.Native = image.Pt(nw, nh)
	}
	r = r.Add(b.Min)
	if f.views == nil {
		f.views = &frameViews{}
	}
	v := f.views
	if r != b {
		sub, ok := v.subView(img, r)
		if !ok {
			return fmt.Errorf("transform: image type %T cannot be cut", img)
		}
		img = sub
	}
	if red > 1 && (full.Min.X%red != 0 || full.Min.Y%red != 0 || full.Max.X%red != 0 || full.Max.Y%red != 0) {
		d := float64(red)
		v.region = Region{Image: img, X0: float64(b.Min.X) + float64(full.Min.X)/d, Y0: float64(b.Min.Y) + float64(full.Min.Y)/d,
			X1: min(float64(b.Min.X)+float64(full.Max.X)/d, float64(r.Max.X)), Y1: min(float64(b.Min.Y)+float64(full.Max.Y)/d, float64(r.Max.Y))}
		img = &v.region
	}
	if t.opts.Rotate != 0 {
		v.rot = Rotated{Src: img, Deg: t.opts.Rotate}
		img = &v.rot
	}
	f.Image = img
	if f.Mask == nil {
		return nil
	}
	if !full.In(f.Mask.Bounds()) {
		return fmt.Errorf("transform: mask %v does not cover roi %v", f.Mask.Bounds(), full)
	}
	w, h := full.Dx(), full.Dy()
	if t.opts.quarter() {
		w, h = h, w
	}
	v.mask = maskBuffer(v.mask, w, h)
	m := f.Mask
	cropRotate(v.mask.Pix, m.Pix[m.PixOffset(full.Min.X, full.Min.Y):], m.Stride, full.Dx(), full.Dy(), 1, t.opts.Rotate)
	f.Mask = v.mask
	return nil
}

// Options are the region of interest and rotation the transform applies.
func (t *Transform) Options() TransformOptions { return t.opts }

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
