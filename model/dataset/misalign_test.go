package dataset

import (
	"fmt"
	"image"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestMisalignParamsRepeatAndSpan(t *testing.T) {
	m := Misalign{Seed: 3}
	lo, hi := math.Inf(1), math.Inf(-1)
	var mean float64
	const n = 2000
	for i := range n {
		key := fmt.Sprintf("test/good/%03d.png", i)
		p := m.Params(key)
		if p != m.Params(key) {
			t.Fatalf("%s: params differ between calls", key)
		}
		if q := (Misalign{Seed: 4}).Params(key); q == p {
			t.Fatalf("%s: seeds 3 and 4 give the same params", key)
		}
		deg := p.Angle * 180 / math.Pi
		if math.Abs(deg) > MisalignAngle || p.Crop != MisalignCrop ||
			p.X0 < 0 || p.Y0 < 0 || p.X0 > 1-MisalignCrop || p.Y0 > 1-MisalignCrop {
			t.Fatalf("%s: %+v outside the protocol", key, p)
		}
		lo, hi = min(lo, deg), max(hi, deg)
		mean += deg / n
	}
	if lo > -9.5 || hi < 9.5 || math.Abs(mean) > 0.5 {
		t.Errorf("angles span %.2f..%.2f°, mean %.2f°: want uniform over ±10°", lo, hi, mean)
	}
	if p := (Misalign{Seed: 1, MaxAngle: 2, Crop: 0.5}).Params("x"); math.Abs(p.Angle) > 2*math.Pi/180 || p.Crop != 0.5 || p.X0 > 0.5 {
		t.Errorf("custom protocol: %+v", p)
	}
}

// TestMisalignMaskFollowsImage: a bright square and its mask, transformed
// with the same params, still coincide; the corners uncovered by the
// rotation are black; sizes and gray stay.
func TestMisalignMaskFollowsImage(t *testing.T) {
	w, h := 200, 160
	img := image.NewGray(image.Rect(0, 0, w, h))
	mask := make([]uint8, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Pix[y*w+x] = 100
			if x >= 120 && x < 160 && y >= 40 && y < 90 {
				img.Pix[y*w+x] = 250
				mask[y*w+x] = 1
			}
		}
	}
	for seed := range uint64(5) {
		p := Misalign{Seed: seed}.Params("a.png")
		out, ok := p.Apply(img).(*image.Gray)
		if !ok || out.Rect.Dx() != w || out.Rect.Dy() != h {
			t.Fatalf("seed %d: got %T %v, want a %dx%d gray image", seed, p.Apply(img), p.Apply(img).Bounds(), w, h)
		}
		om := p.ApplyMask(mask, w, h)
		var inter, union int
		for i := range om {
			bright := out.Pix[i] > 175
			on := om[i] == 1
			if bright && on {
				inter++
			}
			if bright || on {
				union++
			}
		}
		if iou := float64(inter) / float64(union); iou < 0.9 {
			t.Errorf("seed %d (%+v): image and mask overlap by IoU %.3f, want ≥ 0.9", seed, p, iou)
		}
	}
	// Without the crop, a 10° turn uncovers the corners: black there.
	p := MisalignParams{Angle: 10 * math.Pi / 180, Crop: 1}
	out := p.Apply(img).(*image.Gray)
	if out.Pix[0] != 0 || out.Pix[w*h-1] != 0 || out.Pix[(h/2)*w+w/2] != 100 {
		t.Errorf("turned without crop: corners %d %d centre %d, want 0 0 100", out.Pix[0], out.Pix[w*h-1], out.Pix[(h/2)*w+w/2])
	}
	// Colour images come back as RGBA with the same channels moved.
	rgb := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := 0; i < len(rgb.Pix); i += 4 {
		rgb.Pix[i], rgb.Pix[i+1], rgb.Pix[i+2], rgb.Pix[i+3] = 200, 100, 50, 255
	}
	c, ok := (MisalignParams{Crop: 0.5, X0: 0.25, Y0: 0.25}).Apply(rgb).(*image.RGBA)
	if !ok || c.RGBAAt(4, 4).R != 200 || c.RGBAAt(4, 4).G != 100 || c.RGBAAt(4, 4).B != 50 {
		t.Errorf("colour image: %T %v", c, c.RGBAAt(4, 4))
	}
}

// TestMisalignIdentity: no turn and the full window leave an image as it
// is.
func TestMisalignIdentity(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 30, 20))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	out := (MisalignParams{Crop: 1}).Apply(img).(*image.Gray)
	for i := range img.Pix {
		if out.Pix[i] != img.Pix[i] {
			t.Fatalf("pixel %d: %d, want %d", i, out.Pix[i], img.Pix[i])
		}
	}
}

// TestMisalignParts: each part alone is the protocol with the others
// left out: crop centred and alike for every image and seed, shift
// without a turn, turn without a window; a name not known is refused
// naming the choices.
func TestMisalignParts(t *testing.T) {
	const c = (1 - MisalignCrop) / 2
	var shiftX, turnA []float64
	for i := range 50 {
		key := fmt.Sprintf("train/good/%03d.png", i)
		for seed := range uint64(3) {
			if p := (Misalign{Seed: seed, Parts: PartsCrop}).Params(key); p != (MisalignParams{X0: c, Y0: c, Crop: MisalignCrop}) {
				t.Fatalf("crop, %s seed %d: %+v, want the centred window and no turn", key, seed, p)
			}
		}
		full := Misalign{Seed: 1}.Params(key)
		if p := (Misalign{Seed: 1, Parts: PartsAll}).Params(key); p != full {
			t.Fatalf("all, %s: %+v, want the protocol's %+v", key, p, full)
		}
		s := Misalign{Seed: 1, Parts: PartsShift}.Params(key)
		if s.Angle != 0 || s.X0 != full.X0 || s.Y0 != full.Y0 || s.Crop != MisalignCrop {
			t.Fatalf("shift, %s: %+v, want the protocol's window %+v without its turn", key, s, full)
		}
		tu := Misalign{Seed: 1, Parts: PartsTurn, EdgeFill: true}.Params(key)
		if tu.Angle != full.Angle || tu.X0 != 0 || tu.Y0 != 0 || tu.Crop != 1 || !tu.EdgeFill {
			t.Fatalf("turn, %s: %+v, want the protocol's turn %+v on the whole image", key, tu, full)
		}
		shiftX, turnA = append(shiftX, s.X0), append(turnA, tu.Angle)
	}
	if slices.Min(shiftX) == slices.Max(shiftX) || slices.Min(turnA) == slices.Max(turnA) {
		t.Errorf("shift or turn does not vary between images: x0 %v, angles %v", shiftX, turnA)
	}
	for _, s := range []string{"", "all", "crop", "shift", "turn"} {
		p, err := ParseMisalignParts(s)
		if err != nil || (s != "" && string(p) != s) || (s == "" && p != PartsAll) {
			t.Errorf("ParseMisalignParts(%q) = %q, %v", s, p, err)
		}
	}
	if _, err := ParseMisalignParts("zoom"); err == nil || !strings.Contains(err.Error(), "want all, crop, shift or turn") {
		t.Errorf("ParseMisalignParts(zoom): %v", err)
	}
	if PartsCrop.Random() || !PartsShift.Random() || !PartsAll.Random() || !PartsTurn.Random() {
		t.Error("only the centred crop is alike in every draw")
	}
}
