package dataset

import (
	"fmt"
	"hash/fnv"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"
)

// Misalign is the non-aligned protocol of the PaDiM paper (Defard et al.,
// 2020, section 4.4, "Rd-MVTec AD"): every training and test image is
// rotated by a uniform random angle in ±MaxAngle degrees about its centre
// (the corners it uncovers black, as torchvision's RandomRotation fills
// them) and a random window of Crop times each side is cut from it and
// resized back to the image's size (the paper crops 224 of 256 pixels:
// 0.875). A mask gets its image's transform. The paper averages five
// random draws.
//
// The parameters of an image depend only on Seed and the image's key (its
// path relative to the data set), never on the order images are read in
// or on which others are used: a draw repeats exactly.
type Misalign struct {
	Seed uint64
	// MaxAngle is in degrees (0: 10).
	MaxAngle float64
	// Crop is the side of the window as a fraction of the image's (0:
	// 0.875).
	Crop float64
	// EdgeFill replicates the image's edge into the corners the rotation
	// uncovers instead of filling them black.
	EdgeFill bool
	// Parts is which parts of the transform are applied ("": all).
	Parts MisalignParts
}

// MisalignParts names a part of the protocol applied alone, to tell what
// each costs: a figure lost to the centred crop alone (nothing moves
// between images, nothing to register) is content the crop removed, which
// no registration restores.
type MisalignParts string

// The parts --misalign-parts takes.
const (
	// PartsAll is the paper's protocol: turn, then a window of Crop at
	// a random place.
	PartsAll MisalignParts = "all"
	// PartsCrop is the window alone, centred: every image zoomed and
	// cut alike, none moved.
	PartsCrop MisalignParts = "crop"
	// PartsShift is the window at a random place, no turn.
	PartsShift MisalignParts = "shift"
	// PartsTurn is the turn alone, no window (the whole turned image).
	PartsTurn MisalignParts = "turn"
)

// ParseMisalignParts reads a --misalign-parts value ("" is all).
func ParseMisalignParts(s string) (MisalignParts, error) {
	switch p := MisalignParts(s); p {
	case "", PartsAll:
		return PartsAll, nil
	case PartsCrop, PartsShift, PartsTurn:
		return p, nil
	}
	return "", fmt.Errorf("misalign parts %q: want all, crop, shift or turn", s)
}

// Random says whether the parts differ between draws (crop alone does
// not: every seed gives the same transform).
func (p MisalignParts) Random() bool { return p != PartsCrop }

// The paper's protocol.
const (
	MisalignAngle = 10
	MisalignCrop  = 0.875
)

func (m Misalign) defaults() Misalign {
	if !(m.MaxAngle > 0) {
		m.MaxAngle = MisalignAngle
	}
	if !(m.Crop > 0 && m.Crop <= 1) {
		m.Crop = MisalignCrop
	}
	return m
}

// MisalignParams is one image's transform.
type MisalignParams struct {
	// Angle is the rotation in radians; positive turns the content
	// clockwise on the image (y points down).
	Angle float64
	// X0, Y0 are the window's top-left corner as fractions of the image's
	// width and height (0..1−Crop); Crop its side as a fraction.
	X0, Y0, Crop float64
	// EdgeFill: see Misalign.
	EdgeFill bool
}

// Params returns the transform of the image with the given key.
func (m Misalign) Params(key string) MisalignParams {
	m = m.defaults()
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s", m.Seed, key)
	r := rand.New(rand.NewPCG(m.Seed, h.Sum64()))
	a := (2*r.Float64() - 1) * m.MaxAngle * math.Pi / 180
	p := MisalignParams{Angle: a, X0: r.Float64() * (1 - m.Crop), Y0: r.Float64() * (1 - m.Crop), Crop: m.Crop, EdgeFill: m.EdgeFill}
	switch m.Parts {
	case PartsCrop:
		p.Angle, p.X0, p.Y0 = 0, (1-m.Crop)/2, (1-m.Crop)/2
	case PartsShift:
		p.Angle = 0
	case PartsTurn:
		p.X0, p.Y0, p.Crop = 0, 0, 1
	}
	return p
}

// Source is the map from an output pixel's centre (x+0.5, y+0.5) of a w×h
// image to the source image's continuous coordinates: into the window,
// then back through the rotation about the centre.
func (p MisalignParams) Source(w, h int) (a, b, c, d, e, f float64) {
	cs, sn := math.Cos(p.Angle), math.Sin(p.Angle)
	cx, cy := float64(w)/2, float64(h)/2
	// q = (X0·w + crop·x, Y0·h + crop·y); s = R(−angle)·(q − c) + c.
	qx, qy := p.X0*float64(w)-cx, p.Y0*float64(h)-cy
	k := p.Crop
	return cs * k, sn * k, -sn * k, cs * k, cs*qx + sn*qy + cx, -sn*qx + cs*qy + cy
}

// Apply returns img transformed: bilinear, black where the rotation
// uncovered the corners. Gray images stay *image.Gray, others become
// *image.RGBA.
func (p MisalignParams) Apply(img image.Image) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	a, bb, c, d, e, f := p.Source(w, h)
	at := func(x, y int) (float64, float64) {
		fx, fy := float64(x)+0.5, float64(y)+0.5
		return a*fx + bb*fy + e - 0.5, c*fx + d*fy + f - 0.5
	}
	if g, ok := img.(*image.Gray); ok {
		out := image.NewGray(image.Rect(0, 0, w, h))
		off := g.PixOffset(b.Min.X, b.Min.Y)
		px := func(x, y int) float64 {
			if x < 0 || y < 0 || x >= w || y >= h {
				if !p.EdgeFill {
					return 0
				}
				x, y = min(max(x, 0), w-1), min(max(y, 0), h-1)
			}
			return float64(g.Pix[off+y*g.Stride+x])
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				sx, sy := at(x, y)
				out.Pix[y*out.Stride+x] = uint8(bilinear(px, sx, sy) + 0.5)
			}
		}
		return out
	}
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(src, src.Rect, img, b.Min, draw.Src)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for ch := 0; ch < 3; ch++ {
		px := func(x, y int) float64 {
			if x < 0 || y < 0 || x >= w || y >= h {
				if !p.EdgeFill {
					return 0
				}
				x, y = min(max(x, 0), w-1), min(max(y, 0), h-1)
			}
			return float64(src.Pix[y*src.Stride+4*x+ch])
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				sx, sy := at(x, y)
				out.Pix[y*out.Stride+4*x+ch] = uint8(bilinear(px, sx, sy) + 0.5)
			}
		}
	}
	for i := 3; i < len(out.Pix); i += 4 {
		out.Pix[i] = 255
	}
	return out
}

// bilinear interpolates px at index coordinates (x, y) (pixel centres at
// integers); px is 0 outside the image.
func bilinear(px func(x, y int) float64, x, y float64) float64 {
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	ix, iy := int(x0), int(y0)
	top := px(ix, iy)*(1-fx) + px(ix+1, iy)*fx
	bot := px(ix, iy+1)*(1-fx) + px(ix+1, iy+1)*fx
	return top*(1-fy) + bot*fy
}

// ApplyMask returns a w×h 0/1 mask transformed like its image, by nearest
// neighbour (0 where the rotation uncovered the corners).
func (p MisalignParams) ApplyMask(mask []uint8, w, h int) []uint8 {
	a, b, c, d, e, f := p.Source(w, h)
	out := make([]uint8, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			sx := int(math.Floor(a*fx + b*fy + e))
			sy := int(math.Floor(c*fx + d*fy + f))
			if sx >= 0 && sy >= 0 && sx < w && sy < h {
				out[y*w+x] = mask[sy*w+sx]
			}
		}
	}
	return out
}
