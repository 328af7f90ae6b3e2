package align

import (
	"image"
	"math"
)

// scene renders a w×h RGBA frame of a machined part on a textured
// background: a bright plate with holes and a slot, seen under transform t
// (the part's reference position maps to R(t.Angle)(u − c) + c + t.Shift).
// gain scales the contrast (exposure changes).
func scene(w, h int, t Transform, gain float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	inv := t.fromFrame(w, h, w, h)
	s := float64(min(w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			u, v := inv.apply(float64(x)+0.5, float64(y)+0.5)
			// Normalized part coordinates about the centre.
			px, py := (u-float64(w)/2)/s, (v-float64(h)/2)/s
			val := 60 + 20*math.Sin(u*0.37)*math.Cos(v*0.29) // background texture
			if math.Abs(px) < 0.3 && math.Abs(py) < 0.2 {
				val = 190 + 10*math.Sin(px*40)
				for _, c := range [][2]float64{{-0.2, -0.1}, {0.2, -0.1}, {-0.2, 0.1}, {0.05, 0.12}} {
					if math.Hypot(px-c[0], py-c[1]) < 0.04 {
						val = 30
					}
				}
				if px > -0.05 && px < 0.15 && math.Abs(py+0.02) < 0.015 {
					val = 40
				}
			}
			val = 128 + (val-128)*gain
			c := uint8(min(max(val, 0), 255))
			i := img.PixOffset(x, y)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c, uint8(min(int(c)+10, 255)), c, 255
		}
	}
	return img
}
