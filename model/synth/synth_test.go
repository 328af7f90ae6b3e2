package synth

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

// surface is a gray texture of mid brightness with grain.
func surface(w, h int, seed uint64) *image.Gray {
	r := rand.New(rand.NewPCG(seed, 1))
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = uint8(120 + 10*r.NormFloat64())
	}
	return g
}

// Every kind changes the image inside its mask, barely outside, covers a
// plausible share of the frame, and repeats with the same generator.
func TestApplyKinds(t *testing.T) {
	const w, h = 200, 150
	img, donor := surface(w, h, 1), surface(w, h, 2)
	for _, k := range Kinds() {
		for seed := range uint64(20) {
			out, mask := Apply(img, donor, k, rand.New(rand.NewPCG(seed, uint64(k))))
			g, ok := out.(*image.Gray)
			if !ok {
				t.Fatalf("%s: a gray image came back as %T", k, out)
			}
			var in, outside, area float64
			var nOut float64
			for i, m := range mask {
				d := math.Abs(float64(g.Pix[i]) - float64(img.Pix[i]))
				if m == 1 {
					in += d
					area++
				} else {
					outside += d
					nOut++
				}
			}
			share := area / (w * h)
			// A texture change (blur, contrast) moves pixels less than a
			// shift of brightness does.
			least := map[Kind]float64{Region: 2}[k]
			if least == 0 {
				least = 4
			}
			if area == 0 || in/area < least {
				t.Errorf("%s seed %d: mean change inside the mask %.1f over %v pixels, want a visible change", k, seed, in/max(area, 1), area)
			}
			if outside/nOut > 1.5 {
				t.Errorf("%s seed %d: mean change outside the mask %.2f", k, seed, outside/nOut)
			}
			lo, hi := map[Kind][2]float64{Paste: {0.003, 0.1}, Region: {0.01, 0.3}, Scratch: {0.0005, 0.03}, Blob: {0.0002, 0.02}}[k][0],
				map[Kind][2]float64{Paste: {0.003, 0.1}, Region: {0.01, 0.3}, Scratch: {0.0005, 0.03}, Blob: {0.0002, 0.02}}[k][1]
			if share < lo || share > hi {
				t.Errorf("%s seed %d: mask covers %.4f of the frame, want %g..%g", k, seed, share, lo, hi)
			}
			again, mask2 := Apply(img, donor, k, rand.New(rand.NewPCG(seed, uint64(k))))
			for i := range mask {
				if mask[i] != mask2[i] || again.(*image.Gray).Pix[i] != g.Pix[i] {
					t.Fatalf("%s seed %d: not repeatable", k, seed)
				}
			}
		}
	}
}

// Colour images of any type come back as RGBA with the defect applied to
// every channel; the input is never changed.
func TestApplyColour(t *testing.T) {
	const w, h = 120, 90
	src := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i := range src.Y {
		src.Y[i] = 100
	}
	for i := range src.Cb {
		src.Cb[i], src.Cr[i] = 100, 150
	}
	before := append([]uint8(nil), src.Y...)
	out, mask := Apply(src, nil, Blob, rand.New(rand.NewPCG(5, 5)))
	rgba, ok := out.(*image.RGBA)
	if !ok {
		t.Fatalf("got %T, want *image.RGBA", out)
	}
	for i, m := range mask {
		if m == 0 {
			continue
		}
		got := rgba.RGBAAt(i%w, i/w)
		want := color.RGBAModel.Convert(src.At(i%w, i/w)).(color.RGBA)
		if got == want {
			t.Fatalf("pixel %d inside the mask unchanged", i)
		}
		break
	}
	for i, v := range src.Y {
		if v != before[i] {
			t.Fatal("the input image was changed")
		}
	}
}

// A sub-image (bounds not at the origin) is read from its own pixels.
func TestApplySubImage(t *testing.T) {
	big := surface(300, 200, 3)
	for y := 0; y < 200; y++ {
		for x := 150; x < 300; x++ {
			big.Pix[y*big.Stride+x] = 250
		}
	}
	sub := big.SubImage(image.Rect(0, 0, 150, 200)).(*image.Gray)
	sub2 := big.SubImage(image.Rect(150, 0, 300, 200))
	out, _ := Apply(sub2, nil, Scratch, rand.New(rand.NewPCG(1, 1)))
	if b := out.Bounds(); b.Min != (image.Point{}) || b.Dx() != 150 {
		t.Fatalf("bounds %v", b)
	}
	o, _ := Apply(sub, nil, Scratch, rand.New(rand.NewPCG(1, 1)))
	if o.(*image.Gray).Pix[0] > 200 {
		t.Fatal("read the wrong part of the parent image")
	}
}
