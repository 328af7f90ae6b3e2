package capture

import (
	"bytes"
	"context"
	"image"
	"math"
	"sort"
	"testing"
)

func maskArea(m *image.Gray) float64 {
	n := 0
	for _, v := range m.Pix {
		if v == 255 {
			n++
		} else if v != 0 {
			return -1
		}
	}
	return float64(n) / float64(len(m.Pix))
}

func TestSyntheticRepeatable(t *testing.T) {
	opts := SyntheticOptions{Width: 96, Height: 64, Seed: 7, DefectRate: 0.5}
	a, _ := NewSynthetic(opts)
	b, _ := NewSynthetic(opts)
	var fa, fb Frame
	for i := 0; i < 6; i++ {
		_ = a.Next(context.Background(), &fa)
		_ = b.Next(context.Background(), &fb)
		if !bytes.Equal(fa.Image.(*image.RGBA).Pix, fb.Image.(*image.RGBA).Pix) || !bytes.Equal(fa.Mask.Pix, fb.Mask.Pix) || fa.Label != fb.Label {
			t.Fatalf("frame %d differs between two sources with the same seed", i+1)
		}
	}
	opts.Seed = 8
	c, _ := NewSynthetic(opts)
	var fc Frame
	_ = c.Next(context.Background(), &fc)
	_ = a.Next(context.Background(), &fa) // frame 7 vs frame 1 of another seed
	if bytes.Equal(fa.Image.(*image.RGBA).Pix, fc.Image.(*image.RGBA).Pix) {
		t.Error("different seeds give the same frame")
	}
}

func TestSyntheticDefects(t *testing.T) {
	sy, err := NewSynthetic(SyntheticOptions{Width: 128, Height: 128, Seed: 3, DefectRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var f Frame
	for i := 0; i < 60; i++ {
		if err := sy.Next(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
		a := maskArea(f.Mask)
		if a < 0 {
			t.Fatal("mask holds values other than 0 and 255")
		}
		if a < 0.003 || a > 0.06 {
			t.Errorf("frame %d (%s): defect covers %.2f%% of the frame, want about 0.5-5%%", f.Seq, f.Label, 100*a)
		}
		seen[f.Label]++
	}
	for _, k := range DefectKinds() {
		if seen[k.String()] == 0 {
			t.Errorf("no %s in 60 defective frames: %v", k, seen)
		}
	}
}

func TestSyntheticRateAndNormalOnly(t *testing.T) {
	sy, _ := NewSynthetic(SyntheticOptions{Width: 48, Height: 48, Seed: 1, DefectRate: 0.3})
	var f Frame
	n := 0
	for i := 0; i < 300; i++ {
		_ = sy.Next(context.Background(), &f)
		if f.Label != "" {
			n++
			if maskArea(f.Mask) == 0 {
				t.Errorf("frame %d labelled %s has an empty mask", f.Seq, f.Label)
			}
		} else if maskArea(f.Mask) != 0 {
			t.Errorf("normal frame %d has a mask", f.Seq)
		}
	}
	if r := float64(n) / 300; r < 0.22 || r > 0.38 {
		t.Errorf("defect rate %.2f, want about 0.3", r)
	}
	normal, _ := NewSynthetic(SyntheticOptions{Width: 48, Height: 48, Seed: 1, DefectRate: 1, NormalOnly: true})
	for i := 0; i < 50; i++ {
		_ = normal.Next(context.Background(), &f)
		if f.Label != "" || maskArea(f.Mask) != 0 {
			t.Fatalf("NormalOnly gave a %q defect", f.Label)
		}
	}
	only, _ := NewSynthetic(SyntheticOptions{Width: 48, Height: 48, DefectRate: 1, Kinds: []DefectKind{Chip}, Color: ColorGray})
	for i := 0; i < 10; i++ {
		_ = only.Next(context.Background(), &f)
		if f.Label != "chip" {
			t.Fatalf("Kinds=[chip] gave %q", f.Label)
		}
	}
	if _, ok := f.Image.(*image.Gray); !ok {
		t.Errorf("ColorGray gave %T", f.Image)
	}
}

func TestSyntheticOptionErrors(t *testing.T) {
	for _, o := range []SyntheticOptions{
		{Width: 10, Height: 10},
		{Width: 64, Height: 64, DefectRate: 1.5},
		{Width: 64, Height: 64, DefectRate: math.NaN()},
		{Width: 64, Height: 64, Kinds: []DefectKind{9}},
	} {
		if _, err := NewSynthetic(o); err == nil {
			t.Errorf("%+v: want an error", o)
		}
	}
	if _, err := ParseDefectKind("dent"); err == nil {
		t.Error("ParseDefectKind(dent): want an error")
	}
	if k, err := ParseDefectKind("Contamination"); err != nil || k != Contamination {
		t.Errorf("ParseDefectKind = %v %v", k, err)
	}
}

func TestSyntheticNoAllocs(t *testing.T) {
	sy, _ := NewSynthetic(SyntheticOptions{Width: 64, Height: 64, DefectRate: 0.5})
	var f Frame
	_ = sy.Next(context.Background(), &f)
	if a := testing.AllocsPerRun(20, func() { _ = sy.Next(context.Background(), &f) }); a != 0 {
		t.Errorf("synthetic frame allocates %v times", a)
	}
}

// TestSyntheticDefectsStandOut fits the simplest anomaly model there is (a
// Gaussian per pixel over normal frames) and checks that defect pixels
// score above normal ones: the normal variation must stay moderate and the
// defects visible, or a PaDiM fitted on the scene could not find them.
func TestSyntheticDefectsStandOut(t *testing.T) {
	const w, h, nFit, nTest = 128, 128, 60, 40
	fit, _ := NewSynthetic(SyntheticOptions{Width: w, Height: h, Seed: 11, NormalOnly: true, Color: ColorGray})
	sum := make([]float64, w*h)
	sum2 := make([]float64, w*h)
	var f Frame
	for i := 0; i < nFit; i++ {
		_ = fit.Next(context.Background(), &f)
		for j, v := range f.Image.(*image.Gray).Pix {
			sum[j] += float64(v)
			sum2[j] += float64(v) * float64(v)
		}
	}
	mean := make([]float64, w*h)
	sd := make([]float64, w*h)
	for j := range sum {
		mean[j] = sum[j] / nFit
		sd[j] = math.Sqrt(max(sum2[j]/nFit-mean[j]*mean[j], 0)) + 2
	}
	test, _ := NewSynthetic(SyntheticOptions{Width: w, Height: h, Seed: 12, DefectRate: 1, Color: ColorGray})
	type scored struct {
		z      float64
		defect bool
	}
	var px []scored
	hits := 0
	for i := 0; i < nTest; i++ {
		_ = test.Next(context.Background(), &f)
		pix := f.Image.(*image.Gray).Pix
		maxIn, maxOut := 0.0, 0.0
		for j, v := range pix {
			z := math.Abs(float64(v)-mean[j]) / sd[j]
			d := f.Mask.Pix[j] == 255
			px = append(px, scored{z, d})
			if d {
				maxIn = max(maxIn, z)
			} else {
				maxOut = max(maxOut, z)
			}
		}
		if maxIn > maxOut {
			hits++
		}
	}
	sort.Slice(px, func(i, j int) bool { return px[i].z < px[j].z })
	var pos, neg, rankSum float64
	for i, p := range px {
		if p.defect {
			pos++
			rankSum += float64(i + 1)
		} else {
			neg++
		}
	}
	auroc := (rankSum - pos*(pos+1)/2) / (pos * neg)
	t.Logf("per-pixel Gaussian: pixel AUROC %.3f, defect is the top pixel in %d/%d frames", auroc, hits, nTest)
	if auroc < 0.9 {
		t.Errorf("pixel AUROC %.3f of a per-pixel Gaussian, want >= 0.9", auroc)
	}
	if hits < nTest*3/4 {
		t.Errorf("the highest-scoring pixel is a defect in only %d of %d frames", hits, nTest)
	}
}

// Frame(n) renders what the nth Next delivers, without moving the
// sequence.
func TestSyntheticFrameByIndex(t *testing.T) {
	a, err := NewSynthetic(SyntheticOptions{Width: 64, Height: 48, Seed: 3, DefectRate: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSynthetic(SyntheticOptions{Width: 64, Height: 48, Seed: 3, DefectRate: 0.5})
	var seq [4]Frame
	for i := range seq {
		if err := a.Next(context.Background(), &seq[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{3, 1, 4, 3} {
		var f Frame
		b.Frame(uint64(n), &f)
		if !bytes.Equal(f.Image.(*image.RGBA).Pix, seq[n-1].Image.(*image.RGBA).Pix) || f.Label != seq[n-1].Label {
			t.Fatalf("Frame(%d) differs from the %dth Next", n, n)
		}
	}
	var next Frame
	b.Next(context.Background(), &next)
	if !bytes.Equal(next.Image.(*image.RGBA).Pix, seq[0].Image.(*image.RGBA).Pix) {
		t.Fatal("Frame moved the sequence")
	}
}

// TestPlateSpanHoldsThePlate: the columns render skips as belt alone are
// belt alone: for frames of several sizes and poses, every pixel outside
// plateSpan's interval has no plate coverage (its rounded rectangle's
// distance ≥ 0.5 px), no shadow and no hole, so frames are the same as when every
// pixel took the whole path.
func TestPlateSpanHoldsThePlate(t *testing.T) {
	for _, sz := range []image.Point{{640, 480}, {96, 64}, {1280, 720}, {300, 900}} {
		sy, err := NewSynthetic(SyntheticOptions{Width: sz.X, Height: sz.Y, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		skipped := 0
		for n := uint64(1); n <= 25; n++ {
			sy.seq = n
			p := &sy.p
			*p = frameParams{}
			sy.params(p)
			cx, cy := float64(sy.w)/2+p.dx, float64(sy.h)/2+p.dy
			for y := 0; y < sy.h; y++ {
				py := float64(y) + 0.5 - cy
				xlo, xhi := sy.plateSpan(p, py, cx)
				for x := 0; x < sy.w; x++ {
					if x >= xlo && x < xhi {
						continue
					}
					skipped++
					px := float64(x) + 0.5 - cx
					u, v := p.cosA*px+p.sinA*py, -p.sinA*px+p.cosA*py
					if d := roundRectSDF(u, v, sy.hw, sy.hh, sy.corner); d < 0.5 {
						t.Fatalf("%v frame %d: pixel (%d,%d) outside the span [%d,%d) is %.2f px from the plate", sz, n, x, y, xlo, xhi, d)
					}
					if d := roundRectSDF(u-sy.shadow, v-sy.shadow, sy.hw, sy.hh, sy.corner); d < 2*sy.shadow {
						t.Fatalf("%v frame %d: pixel (%d,%d) outside the span [%d,%d) is in the plate's shadow", sz, n, x, y, xlo, xhi)
					}
					if hx, hy := math.Abs(u)-sy.holeX, math.Abs(v)-sy.holeY; math.Sqrt(hx*hx+hy*hy) < sy.holeR {
						t.Fatalf("%v frame %d: pixel (%d,%d) outside the span [%d,%d) is in a hole", sz, n, x, y, xlo, xhi)
					}
				}
			}
		}
		if skipped == 0 {
			t.Errorf("%v: no pixel was skipped", sz)
		}
	}
}

// TestSyntheticShortcutsRenderTheSameFrames: the belt-only columns
// (plateSpan) and the plain-steel ones (plainRow) give frames and masks
// byte for byte equal to rendering every pixel the whole way, in colour
// and grey, at several sizes, with every kind of defect.
func TestSyntheticShortcutsRenderTheSameFrames(t *testing.T) {
	if testing.Short() {
		t.Skip("computation only, no goroutines: the full run checks it")
	}
	for _, tc := range []struct {
		w, h  int
		color Color
	}{{640, 480, ColorRGB}, {96, 64, ColorRGB}, {300, 900, ColorGray}, {1280, 720, ColorGray}} {
		opts := SyntheticOptions{Width: tc.w, Height: tc.h, Seed: 11, DefectRate: 0.8, Color: tc.color}
		fast, err := NewSynthetic(opts)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := NewSynthetic(opts)
		ref.reference = true
		plain := 0
		for n := uint64(1); n <= 12; n++ {
			var a, b Frame
			fast.Frame(n, &a)
			ref.Frame(n, &b)
			if !bytes.Equal(pixels(a.Image), pixels(b.Image)) || !bytes.Equal(a.Mask.Pix, b.Mask.Pix) {
				t.Fatalf("%dx%d frame %d (%s): the shortcuts render another frame than the whole path", tc.w, tc.h, n, a.Label)
			}
		}
		// A row between the recess and the plate's top edge has plain
		// steel: the shortcut is taken.
		fast.plainRow(&fast.p, -0.19*float64(tc.h), float64(tc.w)/2+fast.p.dx, 0, tc.w)
		for _, v := range fast.plain {
			if v {
				plain++
			}
		}
		if tc.w >= 300 && plain < tc.w/4 {
			t.Errorf("%dx%d: %d plain columns in a row across the plate: the shortcut is hardly taken", tc.w, tc.h, plain)
		}
	}
}

func pixels(img image.Image) []byte {
	switch m := img.(type) {
	case *image.RGBA:
		return m.Pix
	case *image.Gray:
		return m.Pix
	}
	return nil
}
