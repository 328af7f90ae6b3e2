// Package render turns anomaly maps into pictures people look at: heatmap
// overlays on the inspected image, for the MQTT heatmap topic, the HTTP
// /heatmap.jpg endpoint and eval reports.
package render

import (
	"image"
	"image/color"
	"image/draw"
)

// jet is a 256-entry colormap from blue (normal) through green and yellow
// to red (anomalous).
var jet = func() (lut [256]color.RGBA) {
	for i := range lut {
		v := float64(i) / 255
		r := clamp(1.5 - abs(4*v-3))
		g := clamp(1.5 - abs(4*v-2))
		b := clamp(1.5 - abs(4*v-1))
		lut[i] = color.RGBA{uint8(r * 255), uint8(g * 255), uint8(b * 255), 255}
	}
	return
}()

func clamp(x float64) float64 { return min(max(x, 0), 1) }
func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Overlay draws img with the anomaly map (w×h, the image's size) blended
// over it into dst, reusing dst when it has the right size. The map is
// scaled so that 0 is blue and threshold×2 is red, so that the colour means
// the same on every frame of one model (threshold → green-yellow); pixels
// over the threshold are drawn more opaque.
func Overlay(dst *image.RGBA, img image.Image, amap []float32, w, h int, threshold float64) *image.RGBA {
	if dst == nil || dst.Rect.Dx() != w || dst.Rect.Dy() != h {
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	b := img.Bounds()
	draw.Draw(dst, dst.Rect, img, b.Min, draw.Src)
	scale := float32(255 / (2 * max(threshold, 1e-12)))
	t := float32(threshold)
	for y := 0; y < h; y++ {
		row := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		m := amap[y*w : (y+1)*w]
		for x, v := range m {
			c := jet[uint8(min(max(v*scale, 0), 255))]
			a := uint32(100)
			if v > t {
				a = 170
			}
			p := row[4*x : 4*x+4 : 4*x+4]
			p[0] = uint8((uint32(p[0])*(255-a) + uint32(c.R)*a) / 255)
			p[1] = uint8((uint32(p[1])*(255-a) + uint32(c.G)*a) / 255)
			p[2] = uint8((uint32(p[2])*(255-a) + uint32(c.B)*a) / 255)
			p[3] = 255
		}
	}
	return dst
}

// Panel lays pictures side by side with a gap, for reports.
func Panel(parts ...image.Image) *image.RGBA {
	const gap = 4
	w, h := 0, 0
	for _, p := range parts {
		w += p.Bounds().Dx() + gap
		h = max(h, p.Bounds().Dy())
	}
	out := image.NewRGBA(image.Rect(0, 0, max(w-gap, 1), max(h, 1)))
	draw.Draw(out, out.Rect, image.NewUniform(color.RGBA{40, 40, 40, 255}), image.Point{}, draw.Src)
	x := 0
	for _, p := range parts {
		r := image.Rect(x, 0, x+p.Bounds().Dx(), p.Bounds().Dy())
		draw.Draw(out, r, p, p.Bounds().Min, draw.Src)
		x += p.Bounds().Dx() + gap
	}
	return out
}

// Mask turns a 0/1 mask into a black and white picture.
func Mask(mask []uint8, w, h int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i, v := range mask {
		if v != 0 {
			g.Pix[i] = 255
		}
	}
	return g
}
