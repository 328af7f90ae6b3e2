package model

import (
	"image"
	"image/draw"
)

// Tiling axes: along x the views sit side by side (a wide part), along y
// one above the other (a tall one).
const (
	axisX = "x"
	axisY = "y"
)

// tiling cuts a frame into equal views along one axis (n ≤ 1: the whole
// frame is the one view). Each view is squashed onto the network input,
// so a part far longer than wide keeps its resolution along its length
// instead of shrinking into a sliver of a letterboxed input.
type tiling struct {
	n    int
	axis string
	rgba *image.RGBA // copy for image types without SubImage
}

func (t *tiling) views() int { return max(t.n, 1) }

// view returns view v of img (img itself without tiles).
func (t *tiling) view(img image.Image, v int) image.Image {
	if t.n <= 1 {
		return img
	}
	b := img.Bounds()
	r := b
	if t.axis == axisY {
		r.Min.Y, r.Max.Y = b.Min.Y+v*b.Dy()/t.n, b.Min.Y+(v+1)*b.Dy()/t.n
	} else {
		r.Min.X, r.Max.X = b.Min.X+v*b.Dx()/t.n, b.Min.X+(v+1)*b.Dx()/t.n
	}
	if s, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	}); ok {
		return s.SubImage(r)
	}
	if t.rgba == nil || t.rgba.Rect.Dx() != r.Dx() || t.rgba.Rect.Dy() != r.Dy() {
		t.rgba = image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	}
	draw.Draw(t.rgba, t.rgba.Rect, img, r.Min, draw.Src)
	return t.rgba
}

// tileAxis is the long side of a w×h frame.
func tileAxis(w, h int) string {
	if h > w {
		return axisY
	}
	return axisX
}
