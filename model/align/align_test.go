package align

import (
	"fmt"
	"image"
	"image/color/palette"
	"image/draw"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// cornerError is the largest distance, in frame pixels, between where two
// transforms put the corners and the centre of a w×h frame.
func cornerError(a, b Transform, w, h int) float64 {
	var worst float64
	for _, c := range [][2]float64{{0, 0}, {float64(w), 0}, {0, float64(h)}, {float64(w), float64(h)}, {float64(w) / 2, float64(h) / 2}} {
		x1, y1 := a.toFrame(w, h, w, h).apply(c[0], c[1])
		x2, y2 := b.toFrame(w, h, w, h).apply(c[0], c[1])
		worst = max(worst, math.Hypot(x1-x2, y1-y2))
	}
	return worst
}

func reference(t *testing.T, mode Mode, frames ...image.Image) *Reference {
	t.Helper()
	b, err := NewBuilder(mode)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := b.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	ref, _, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestRegisterRecoversTransforms renders the same part shifted and turned
// by known amounts and checks that registration finds them to well under
// a PaDiM patch (a 56-cell grid: a cell is 11 pixels of a 640-pixel frame),
// whatever the exposure.
func TestRegisterRecoversTransforms(t *testing.T) {
	for _, size := range [][2]int{{320, 240}, {240, 400}} {
		w, h := size[0], size[1]
		base := scene(w, h, Identity, 1)
		ref := reference(t, Rigid, base, base)
		g := NewRegistrar(ref)
		cell := float64(max(w, h)) / 56
		for _, c := range []struct {
			tr   Transform
			gain float64
		}{
			{Identity, 1},
			{Transform{DX: 0.1 * float64(w), DY: -0.08 * float64(h)}, 1},
			{Transform{Angle: 10 * math.Pi / 180}, 1},
			{Transform{Angle: -12 * math.Pi / 180, DX: -0.12 * float64(w), DY: 0.1 * float64(h)}, 1},
			{Transform{Angle: 6 * math.Pi / 180, DX: 0.05 * float64(w), DY: 0.05 * float64(h)}, 0.5},
		} {
			r, err := g.Register(scene(w, h, c.tr, c.gain))
			if err != nil {
				t.Fatalf("%dx%d %+v: %v", w, h, c.tr, err)
			}
			if e := cornerError(r.Transform, c.tr, w, h); e > 0.25*cell {
				t.Errorf("%dx%d: registered %+v, want %+v: corners off by %.2f px (a patch is %.1f)", w, h, r.Transform, c.tr, e, cell)
			}
			if r.Confidence < 0.9 {
				t.Errorf("%dx%d %+v: confidence %.3f, want ≥ 0.9 for the same part", w, h, c.tr, r.Confidence)
			}
		}
	}
}

// TestTranslateModeKeepsAngle: translate mode finds the shift and never
// a rotation.
func TestTranslateModeKeepsAngle(t *testing.T) {
	w, h := 320, 240
	base := scene(w, h, Identity, 1)
	g := NewRegistrar(reference(t, Translate, base, base))
	want := Transform{DX: 25, DY: -17}
	r, err := g.Register(scene(w, h, want, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Angle != 0 || cornerError(r.Transform, want, w, h) > 1 {
		t.Errorf("translate: got %+v, want %+v", r.Transform, want)
	}
}

// TestUnrelatedFrameHasLowConfidence: a frame of something else (a blank
// plate, the part's negative) does not match the reference.
func TestUnrelatedFrameHasLowConfidence(t *testing.T) {
	w, h := 320, 240
	base := scene(w, h, Identity, 1)
	g := NewRegistrar(reference(t, Rigid, base, base))
	neg := scene(w, h, Identity, -1)
	r, err := g.Register(neg)
	if err == nil && r.Confidence > 0.5 {
		t.Errorf("negative of the part: confidence %.3f, want below 0.5", r.Confidence)
	}
	blank := image.NewGray(image.Rect(0, 0, w, h))
	for i := range blank.Pix {
		blank.Pix[i] = 128
	}
	r, err = g.Register(blank)
	if err == nil && r.Confidence > 0.5 {
		t.Errorf("blank frame: confidence %.3f, want below 0.5", r.Confidence)
	}
}

// TestWarpAlignsFrame: a frame warped by its registration looks like the
// reference view (pixel by pixel inside the part), at full and reduced
// scale.
func TestWarpAlignsFrame(t *testing.T) {
	w, h := 320, 240
	base := scene(w, h, Identity, 1)
	tr := Transform{Angle: 8 * math.Pi / 180, DX: 20, DY: -12}
	frame := scene(w, h, tr, 1)
	var wp Warper
	for _, scale := range []float64{1, 2} {
		v := wp.Apply(frame, tr, viewOf(frame, scale))
		vw, vh := ViewSize(w, h, scale)
		if v.Bounds().Dx() != vw || v.Bounds().Dy() != vh {
			t.Fatalf("scale %g: view %v, want %dx%d", scale, v.Bounds(), vw, vh)
		}
		var diff float64
		var n int
		for y := vh / 4; y < 3*vh/4; y++ {
			for x := vw / 4; x < 3*vw/4; x++ {
				got := v.(*image.RGBA).RGBAAt(x, y).R
				want := base.RGBAAt(int((float64(x)+0.5)*scale), int((float64(y)+0.5)*scale)).R
				diff += math.Abs(float64(got) - float64(want))
				n++
			}
		}
		if m := diff / float64(n); m > 12*scale {
			t.Errorf("scale %g: aligned view differs from the reference by %.1f grey levels on average", scale, m)
		}
	}
}

// TestWarpBackInvertsWarp: a map marking one spot of the aligned view lands
// on the same part spot in the frame.
func TestWarpBackInvertsWarp(t *testing.T) {
	w, h := 400, 300
	tr := Transform{Angle: -9 * math.Pi / 180, DX: -30, DY: 18}
	for _, scale := range []float64{1, 1.6} {
		vw, vh := ViewSize(w, h, scale)
		view := make([]float32, vw*vh)
		// A spot at reference position (100, 80).
		ux, uy := 100.0, 80.0
		for y := 0; y < vh; y++ {
			for x := 0; x < vw; x++ {
				rx, ry := (float64(x)+0.5)*float64(w)/float64(vw), (float64(y)+0.5)*float64(h)/float64(vh)
				view[y*vw+x] = float32(math.Exp(-(math.Pow(rx-ux, 2) + math.Pow(ry-uy, 2)) / 200))
			}
		}
		m, err := WarpBack(nil, w, h, view, vw, vh, tr, 1)
		if err != nil {
			t.Fatal(err)
		}
		best, bx, by := float32(-1), 0, 0
		for i, v := range m {
			if v > best {
				best, bx, by = v, i%w, i/w
			}
		}
		fx, fy := tr.toFrame(w, h, w, h).apply(ux, uy)
		if d := math.Hypot(float64(bx)+0.5-fx, float64(by)+0.5-fy); d > 2 {
			t.Errorf("scale %g: spot at (%d,%d) in the frame, want (%.1f,%.1f)", scale, bx, by, fx, fy)
		}
	}
	if _, err := WarpBack(nil, w, h, make([]float32, 10), 4, 4, tr, 1); err == nil {
		t.Error("WarpBack accepted a map of the wrong size")
	}
}

// TestMaxInFrame: the maximum over the view pixels whose centre lies in
// the frame, against counting them one by one in float64 (random maps and
// poses, views partly outside the frame); on a smooth map it agrees with
// the maximum of the map warped back to the frame.
func TestMaxInFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for k := range 300 {
		w, h := 40+rng.IntN(600), 30+rng.IntN(400)
		scale := 1 + 2*rng.Float64()
		vw, vh := ViewSize(w, h, scale)
		tr := Transform{Angle: (rng.Float64() - 0.5) * 2 * math.Pi, DX: (rng.Float64() - 0.5) * float64(w), DY: (rng.Float64() - 0.5) * float64(h)}
		view := make([]float32, vw*vh)
		for i := range view {
			view[i] = rng.Float32()
		}
		got, err := MaxInFrame(view, vw, vh, w, h, tr)
		if err != nil {
			t.Fatal(err)
		}
		m := tr.toFrame(w, h, vw, vh)
		want, n := float32(math.Inf(-1)), 0
		for y := range vh {
			for x := range vw {
				fx, fy := m.apply(float64(x)+0.5, float64(y)+0.5)
				if fx >= 0 && fx < float64(w) && fy >= 0 && fy < float64(h) {
					want = max(want, view[y*vw+x])
					n++
				}
			}
		}
		if n == 0 {
			for _, v := range view {
				want = max(want, v)
			}
		}
		if got != want {
			t.Fatalf("case %d: %dx%d frame, view %dx%d, %+v: max %v, want %v (%d pixels inside)", k, w, h, vw, vh, tr, got, want, n)
		}
	}
	// A smooth map (a spot and a slope): the same score as warping back.
	w, h := 640, 480
	vw, vh := ViewSize(w, h, 1.4)
	tr := Transform{Angle: 0.15, DX: 25, DY: -14}
	view := make([]float32, vw*vh)
	for y := range vh {
		for x := range vw {
			view[y*vw+x] = float32(math.Exp(-(math.Pow(float64(x)-300, 2)+math.Pow(float64(y)-100, 2))/800) + float64(x)/float64(4*vw))
		}
	}
	back, err := WarpBack(nil, w, h, view, vw, vh, tr, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := float32(math.Inf(-1))
	for _, v := range back {
		want = max(want, v)
	}
	got, _ := MaxInFrame(view, vw, vh, w, h, tr)
	if math.Abs(float64(got-want)) > 0.002*float64(want) {
		t.Errorf("smooth map: max in frame %v, warped back %v", got, want)
	}
	if _, err := MaxInFrame(view, vw, vh-1, w, h, tr); err == nil {
		t.Error("MaxInFrame accepted a map of the wrong size")
	}
}

// TestBuildMeanPose: the reference view sits at the mean pose of the
// images it is built from, so that no frame has to move further than the
// line's own spread.
func TestBuildMeanPose(t *testing.T) {
	w, h := 320, 240
	shifts := []Transform{{DX: -20, DY: 10}, {DX: 0, DY: -6}, {DX: 14, DY: 2}, {DX: 6, DY: -6}}
	var frames []image.Image
	var mx, my float64
	for _, s := range shifts {
		frames = append(frames, scene(w, h, s, 1))
		mx += s.DX / float64(len(shifts))
		my += s.DY / float64(len(shifts))
	}
	b, _ := NewBuilder(Rigid)
	for _, f := range frames {
		b.Add(f)
	}
	ref, rep, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Images != len(shifts) || len(rep.Results) != len(shifts) {
		t.Fatalf("report %+v", rep)
	}
	g := NewRegistrar(ref)
	for i, s := range shifts {
		r, err := g.Register(frames[i])
		if err != nil {
			t.Fatal(err)
		}
		want := Transform{DX: s.DX - mx, DY: s.DY - my}
		if e := cornerError(r.Transform, want, w, h); e > 1.5 {
			t.Errorf("frame %d: %+v against the mean pose, want %+v", i, r.Transform, want)
		}
	}
}

func TestNewReferenceRefusesBadTemplates(t *testing.T) {
	tw, th, _ := thumbGeometry(640, 480, Thumb)
	good := make([]float32, tw*th)
	for _, c := range []struct {
		name  string
		mode  Mode
		w, h  int
		pix   []float32
		wants string
	}{
		{"mode", Off, tw, th, good, "mode"},
		{"size", Rigid, tw + 1, th, good, "want"},
		{"length", Rigid, tw, th, good[1:], "values"},
		{"NaN", Rigid, tw, th, append([]float32{float32(math.NaN())}, good[1:]...), "0..255"},
		{"range", Rigid, tw, th, append([]float32{300}, good[1:]...), "0..255"},
	} {
		if _, err := NewReference(c.mode, 640, 480, c.w, c.h, c.pix, nil); err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("%s: err %v, want one naming %q", c.name, err, c.wants)
		}
	}
	if _, err := NewReference(Rigid, 640, 480, tw, th, good, nil); err != nil {
		t.Errorf("good template refused: %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"": Off, "off": Off, "translate": Translate, "rigid": Rigid, "turn": Turn} {
		if m, err := ParseMode(s); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("affine"); err == nil {
		t.Error("ParseMode accepted affine")
	}
}

// TestRegisterDoesNotAllocate: steady state registration and warping
// allocate nothing (the pipeline runs them per frame), by one goroutine
// or with the rows shared.
func TestRegisterDoesNotAllocate(t *testing.T) {
	w, h := 320, 240
	base := scene(w, h, Identity, 1)
	g := NewRegistrar(reference(t, Rigid, base, base))
	frame := scene(w, h, Transform{DX: 5}, 1)
	var m []float32
	view := make([]float32, 160*120)
	for _, workers := range []int{1, 2} {
		wp := Warper{Workers: workers}
		run := func() {
			r, _ := g.Register(frame)
			wp.Apply(frame, r.Transform, viewOf(frame, 2))
			m, _ = WarpBack(m, w, h, view, 160, 120, r.Transform, 1)
			m, _ = wp.WarpBack(m, w, h, view, 160, 120, r.Transform, 3)
		}
		run()
		if a := testing.AllocsPerRun(10, run); a != 0 {
			t.Errorf("%d workers: %v allocations per frame, want 0", workers, a)
		}
		wp.Close()
	}
}

// TestWarpFrameTypes: every frame type the pipeline meets warps to the
// same picture as its RGBA conversion (YCbCr: JPEG frames, a Y'CbCr view,
// chroma interpolated where image/draw takes the nearest sample).
func TestWarpFrameTypes(t *testing.T) {
	w, h := 64, 48
	ycc := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			ycc.Y[ycc.YOffset(x, y)] = uint8(40 + 3*x)
			ycc.Cb[ycc.COffset(x, y)] = uint8(100 + y)
			ycc.Cr[ycc.COffset(x, y)] = uint8(160 - x)
		}
	}
	ref := image.NewRGBA(ycc.Rect)
	draw.Draw(ref, ref.Rect, ycc, image.Point{}, draw.Src)
	nrgba := image.NewNRGBA(ycc.Rect)
	draw.Draw(nrgba, nrgba.Rect, ycc, image.Point{}, draw.Src)
	gray := image.NewGray(ycc.Rect)
	draw.Draw(gray, gray.Rect, ycc, image.Point{}, draw.Src)
	paletted := image.NewPaletted(ycc.Rect, palette.Plan9)
	draw.Draw(paletted, paletted.Rect, ycc, image.Point{}, draw.Src)
	tr := Transform{Angle: 0.1, DX: 3, DY: -2}
	var want Warper
	wantImg := want.Apply(ref, tr, viewOf(ref, 1)).(*image.RGBA)
	for name, c := range map[string]struct {
		img  image.Image
		tol  int
		kind string
	}{"YCbCr": {ycc, 4, "*image.YCbCr"}, "NRGBA": {nrgba, 0, "*image.RGBA"}, "Paletted": {paletted, 60, "*image.RGBA"}} {
		var wp Warper
		view := wp.Apply(c.img, tr, viewOf(c.img, 1))
		if kind := fmt.Sprintf("%T", view); kind != c.kind {
			t.Fatalf("%s: %s, want %s", name, kind, c.kind)
		}
		got := toRGBA(view)
		worst := 0
		for i := range got.Pix {
			worst = max(worst, abs(int(got.Pix[i])-int(wantImg.Pix[i])))
		}
		if worst > c.tol {
			t.Errorf("%s: differs from the RGBA frame's warp by up to %d, want ≤ %d", name, worst, c.tol)
		}
	}
	var wp Warper
	if g, ok := wp.Apply(gray, tr, viewOf(gray, 1)).(*image.Gray); !ok || g.Rect.Dx() != w {
		t.Errorf("gray frame: %T, want *image.Gray", wp.Apply(gray, tr, viewOf(gray, 1)))
	}
}

// toRGBA is img converted to RGBA (a Y'CbCr view as the backbone reads it).
func toRGBA(img image.Image) *image.RGBA {
	if m, ok := img.(*image.RGBA); ok {
		return m
	}
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Rect, img, img.Bounds().Min, draw.Src)
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestRegisterAnyAngle: with a max angle of 180° a part turned by any
// amount (a screw lying anyhow on a belt) is registered from the start
// angle nearest its turn; with the default reach the large turns are not
// found (which is why the bound decides the search).
func TestRegisterAnyAngle(t *testing.T) {
	w, h := 320, 320
	base := scene(w, h, Identity, 1)
	ref := reference(t, Rigid, base, base)
	g := NewRegistrar(ref)
	g.SetMaxAngle(180)
	cell := float64(max(w, h)) / 56
	for _, deg := range []float64{0, 47, 90, 133, -75, 165, -170, 180} {
		want := Transform{Angle: deg * math.Pi / 180, DX: 0.05 * float64(w), DY: -0.04 * float64(h)}
		r, err := g.Register(scene(w, h, want, 1))
		if err != nil {
			t.Fatalf("%g°: %v", deg, err)
		}
		if e := cornerError(r.Transform, want, w, h); e > 0.25*cell || r.Confidence < 0.9 {
			t.Errorf("%g°: registered %.1f° %+v (confidence %.3f), want %+v: corners off by %.2f px", deg, r.AngleDegrees(), r.Transform, r.Confidence, want, e)
		}
		if !(r.Angle > -math.Pi-1e-9 && r.Angle <= math.Pi+1e-9) {
			t.Errorf("%g°: angle %g not in (−π, π]", deg, r.Angle)
		}
	}
	narrow := NewRegistrar(ref)
	narrow.SetMaxAngle(20)
	r, err := narrow.Register(scene(w, h, Transform{Angle: math.Pi / 2}, 1))
	if err == nil && math.Abs(r.AngleDegrees()-90) < 2 {
		t.Errorf("one start angle found a 90° turn (%.1f°): the start angles are not what finds it", r.AngleDegrees())
	}
	if got := len(StartAngles(180)); got != 12 {
		t.Errorf("StartAngles(180): %d starts, want 12", got)
	}
	if got := StartAngles(20); len(got) != 1 || got[0] != 0 {
		t.Errorf("StartAngles(20) = %v, want [0]", got)
	}
	if got := len(StartAngles(45)); got != 3 {
		t.Errorf("StartAngles(45): %d starts, want 3 (0, ±30°)", got)
	}
}

// TestWarpRowEndsAtEdge: rows whose last sample lies a hair inside the
// frame's edge are sampled without clamping up to where the taps stay
// inside; every sample of that span must lie inside. Positions accumulated
// pixel by pixel in float32 once drifted up to 0.004 pixels past the end
// point on such rows (a turned, shifted screw panicked the warp with an
// index beyond the frame); they are now exact fixed point.
func TestWarpRowEndsAtEdge(t *testing.T) {
	const w, h, vw = 512, 512, 448
	rng := rand.New(rand.NewPCG(5, 9))
	src := plane8{pix: make([]uint8, w*h), stride: w, step: 1, w: w, h: h}
	out := make([]uint8, vw)
	whole := 0
	for range 20000 {
		// sy runs from y0 to just below h−1 along the row.
		y0 := rng.Float64() * 60
		delta := rng.Float64() * 0.01
		c := (float64(h-1) - delta - y0) / (vw - 1)
		m := affine{a: 0.3, c: c, e: 10, f: y0 + 0.5 - c*0.5}
		r := rowFix(m, 0, weightBias)
		lo, hi := r.span(vw, w, h)
		if lo == 0 && hi == vw {
			whole++
		}
		for x := lo; x < hi; x++ {
			px, py := r.at(x)
			if px < 0 || py < 0 || px>>fixBits+1 > w-1 || py>>fixBits+1 > h-1 {
				t.Fatalf("sample %d of the unclamped span [%d, %d) at (%g, %g): its taps leave the %dx%d frame", x, lo, hi, float64(px)/fixOne, float64(py)/fixOne, w, h)
			}
		}
		for _, x := range []int{lo - 1, hi} {
			if x < 0 || x >= vw {
				continue
			}
			if px, py := r.at(x); px >= 0 && py >= 0 && px>>fixBits+1 <= w-1 && py>>fixBits+1 <= h-1 {
				t.Fatalf("sample %d just outside the span [%d, %d) has its taps inside: the span is too narrow", x, lo, hi)
			}
		}
		src.row(r, out)
	}
	if whole < 1000 {
		t.Fatalf("%d rows ending near the edge were sampled whole without clamping, want many: the test does not test the edge", whole)
	}
}

// TestWarpAnyPoseStaysInside warps frames under many poses, from turned a
// little to upside down and shifted by up to half the frame, at the view
// scales the detector uses: every sample must stay inside the frame (a
// row judged inside its edges by its end points once drifted past them as
// the position was accumulated pixel by pixel, and indexed beyond the
// frame).
func TestWarpAnyPoseStaysInside(t *testing.T) {
	if testing.Short() {
		t.Skip("computation only on one goroutine (the row goroutines are raced by TestWarpWorkers): the full run checks it")
	}
	rng := rand.New(rand.NewPCG(3, 7))
	var wp Warper
	for _, size := range [][2]int{{512, 512}, {640, 480}, {333, 517}} {
		w, h := size[0], size[1]
		gray := image.NewGray(image.Rect(0, 0, w, h))
		rgba := image.NewRGBA(image.Rect(0, 0, w, h))
		ycc := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		for range 60 {
			tr := Transform{Angle: (2*rng.Float64() - 1) * math.Pi, DX: (rng.Float64() - 0.5) * float64(w), DY: (rng.Float64() - 0.5) * float64(h)}
			scale := 1 + rng.Float64()
			if rng.IntN(4) == 0 {
				scale = 8.0 / 7
			}
			for _, img := range []image.Image{gray, rgba, ycc} {
				wp.Apply(img, tr, viewOf(img, scale))
			}
		}
	}
}

// TestRegisterPrecision: parts turned within ±10° (and at any angle with a
// full-turn search) and shifted by up to 30 px in a 640×480 frame are
// registered within a pixel at the corners, 0.5 px on average.
func TestRegisterPrecision(t *testing.T) {
	const w, h = 640, 480
	base := scene(w, h, Identity, 1)
	ref := reference(t, Rigid, base, base)
	for _, maxDeg := range []float64{0, 180} {
		g := NewRegistrar(ref)
		g.SetMaxAngle(maxDeg)
		rng := rand.New(rand.NewPCG(1, 2))
		var worst, sum float64
		const n = 16
		for range n {
			angle := (2*rng.Float64() - 1) * 10 * math.Pi / 180
			if maxDeg > 0 {
				angle = (2*rng.Float64() - 1) * math.Pi
			}
			want := Transform{Angle: angle, DX: (rng.Float64() - 0.5) * 60, DY: (rng.Float64() - 0.5) * 50}
			r, err := g.Register(scene(w, h, want, 1))
			if err != nil {
				t.Fatalf("max angle %g, %+v: %v", maxDeg, want, err)
			}
			e := cornerError(r.Transform, want, w, h)
			worst, sum = max(worst, e), sum+e
		}
		if mean := sum / n; worst > 1.2 || mean > 0.5 {
			t.Errorf("max angle %g: corner error mean %.3f px, worst %.3f px; want ≤ 0.5 and ≤ 1.2", maxDeg, mean, worst)
		} else {
			t.Logf("max angle %g: corner error mean %.3f px, worst %.3f px", maxDeg, mean, worst)
		}
	}
}

// Frames below MinSide are refused with their size, by the reference's
// builder and by the registrar, not left to fail inside.
func TestRegisterTooSmall(t *testing.T) {
	small := scene(MinSide-1, 40, Transform{}, 1)
	bl, _ := NewBuilder(Rigid)
	if err := bl.Add(small); err == nil || !strings.Contains(err.Error(), "31x40 frame is too small") {
		t.Errorf("builder: %v", err)
	}
	g := benchRegistrar(t, 160, 120)
	if _, err := g.Register(small); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("registrar: %v", err)
	}
	if err := bl.Add(scene(MinSide, MinSide, Transform{}, 1)); err != nil {
		t.Errorf("a %dx%d frame: %v", MinSide, MinSide, err)
	}
	// Too elongated: named as such (it failed with "no image registered").
	for _, sz := range [][2]int{{800, 100}, {80, 1000}} {
		long := scene(sz[0], sz[1], Transform{}, 1)
		if err := bl.Add(long); err == nil || !strings.Contains(err.Error(), "times as long as wide") {
			t.Errorf("builder, %dx%d: %v", sz[0], sz[1], err)
		}
		if _, err := g.Register(long); err == nil || !strings.Contains(err.Error(), "times as long as wide") {
			t.Errorf("registrar, %dx%d: %v", sz[0], sz[1], err)
		}
	}
	// At the bound it registers: a 7.5:1 part shifted by 4 pixels.
	b2, _ := NewBuilder(Rigid)
	for i := range 4 {
		if err := b2.Add(scene(750, 100, Transform{DX: float64(i) - 1.5}, 1)); err != nil {
			t.Fatal(err)
		}
	}
	ref, _, err := b2.Build()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := NewRegistrar(ref).Register(scene(750, 100, Transform{DX: 4}, 1)); err != nil || math.Abs(r.DX-4) > 1.5 {
		t.Errorf("a 750x100 frame shifted by 4 px: %+v, %v", r, err)
	}
}

// TestWarpBackStep: a map blurred as the anomaly map is (a sum of
// Gaussian spots of σ view pixels), warped back at knots StepFor(σ in
// frame pixels) apart and interpolated, stays within 2% of its range of
// the warp of every pixel, equals it on the knots, and covers frames of
// every size and poses that leave part of the frame outside the view.
func TestWarpBackStep(t *testing.T) {
	if testing.Short() {
		t.Skip("60 warps, no goroutines: 19 s, 78 s under -race (make test's race run is -short)")
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for k := range 60 {
		w, h := 20+rng.IntN(1300), 20+rng.IntN(740)
		scale := max(1, float64(min(w, h))/448)
		vw, vh := ViewSize(w, h, scale)
		sigma := 8 * float64(min(vw, vh)) / 448 // the detector's: 4 at 224
		tr := Transform{Angle: (rng.Float64() - 0.5) * 0.7, DX: (rng.Float64() - 0.5) * 0.3 * float64(w), DY: (rng.Float64() - 0.5) * 0.3 * float64(h)}
		view := make([]float32, vw*vh)
		for range 6 {
			cx, cy, a := rng.Float64()*float64(vw), rng.Float64()*float64(vh), rng.Float64()
			for y := range vh {
				for x := range vw {
					d2 := math.Pow(float64(x)-cx, 2) + math.Pow(float64(y)-cy, 2)
					view[y*vw+x] += float32(a * math.Exp(-d2/(2*sigma*sigma)))
				}
			}
		}
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range view {
			lo, hi = min(lo, v), max(hi, v)
		}
		step := StepFor(sigma * min(float64(w)/float64(vw), float64(h)/float64(vh)))
		exact, err := WarpBack(nil, w, h, view, vw, vh, tr, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := WarpBack(make([]float32, 3), w, h, view, vw, vh, tr, step)
		if err != nil {
			t.Fatal(err)
		}
		worst, at := 0.0, 0
		for i := range exact {
			if d := math.Abs(float64(got[i] - exact[i])); d > worst {
				worst, at = d, i
			}
			x, y := i%w, i/w
			knot := (x%step == 0 || x == w-1) && (y%step == 0 || y == h-1)
			if knot && got[i] != exact[i] {
				t.Fatalf("case %d: knot (%d,%d) %v, exact %v", k, x, y, got[i], exact[i])
			}
		}
		if worst > 0.02*float64(hi-lo) {
			t.Errorf("case %d: %dx%d frame, view %dx%d, σ %.1f, step %d: off by %.4f at (%d,%d), range %.3f", k, w, h, vw, vh, sigma, step, worst, at%w, at/w, hi-lo)
		}
	}
	if s := StepFor(12.9); s != 3 {
		t.Errorf("StepFor(12.9) = %d, want 3", s)
	}
	if s := StepFor(5); s != 1 {
		t.Errorf("StepFor(5) = %d, want 1 (a sharp map is warped pixel by pixel)", s)
	}
}

// board renders a w×h frame of a perforated board (holes every period
// pixels, a periodic fixture) shifted by boardDX, with a part (a plate
// with a slot and a hole, nothing periodic) on it shifted by partDX, both
// along x.
func board(w, h, period int, boardDX, partDX float64) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	p := float64(period)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			u, v := float64(x)+0.5-boardDX, float64(y)+0.5
			// Copper with a hole at the centre of every period×period cell.
			du, dv := math.Mod(math.Mod(u, p)+p, p)-p/2, math.Mod(math.Mod(v, p)+p, p)-p/2
			val := 150.0
			if math.Hypot(du, dv) < p/5 {
				val = 25
			}
			// The part, around the frame's centre.
			px, py := float64(x)+0.5-partDX-float64(w)/2, float64(y)+0.5-float64(h)/2
			if math.Abs(px) < 0.3*p && math.Abs(py) < 0.4*p {
				val = 50 + 4*py/p
				if math.Abs(px+0.2*p) < 0.08*p && py < 0.5*p {
					val = 220 // a slot
				}
				if math.Hypot(px-0.3*p, py+0.4*p) < 0.12*p {
					val = 200
				}
			}
			img.Pix[y*img.Stride+x] = uint8(val)
		}
	}
	return img
}

// TestRegisterPrefersThePartsPoses: a part that moved one period along
// its perforated board matches the reference better one period off (the
// board lines up again there) than where the good parts lay; the
// registration keeps the board where the good parts' boards were, so that
// the part's move shows on the map, and still follows a scene that moved
// further than the good parts did when it matches clearly. Without the
// pose spread (files from before it) the period shift wins: the case that
// fails without the prior.
func TestRegisterPrefersThePartsPoses(t *testing.T) {
	const w, h, period = 320, 240, 64
	var frames []image.Image
	for _, dx := range []float64{-3, 0, 2, 4, -1, 1} {
		frames = append(frames, board(w, h, period, dx, dx))
	}
	ref := reference(t, Rigid, frames...)
	sp := ref.Spread()
	if !sp.Measured || sp.X > 0.03 || sp.Y > 0.01 {
		t.Fatalf("spread %+v, want the training parts' few pixels", sp)
	}
	moved := board(w, h, period, 0, period)
	g := NewRegistrar(ref)
	r, err := g.Register(moved)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.DX) > 3 || math.Abs(r.DY) > 3 {
		t.Errorf("part moved one period on its board: registered at (%.1f, %.1f) px, want the board where the good parts' were (0, 0)", r.DX, r.DY)
	}
	// The whole scene moved half a period, further than the good parts
	// lay: the match there is clear and wins. (A whole period would look
	// like the part moved on its board but at the frame's edges; the
	// prior reads it so.)
	r, err = g.Register(board(w, h, period, period/2, period/2))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.DX-period/2) > 1.5 || math.Abs(r.DY) > 1.5 {
		t.Errorf("scene moved half a period: registered at (%.1f, %.1f) px, want (%d, 0)", r.DX, r.DY, period/2)
	}
	// Without the prior the moved part is registered onto the next period.
	if err := ref.SetSpread(Spread{}); err != nil {
		t.Fatal(err)
	}
	r, err = NewRegistrar(ref).Register(moved)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.DX-period) > 3 {
		t.Fatalf("without the pose prior the moved part registered at (%.1f, %.1f) px: this test no longer tells the prior's work (want %d px)", r.DX, r.DY, period)
	}
	if err := ref.SetSpread(Spread{X: -0.1}); err == nil {
		t.Error("SetSpread took a negative spread")
	}
}
