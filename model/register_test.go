package model

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"log/slog"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/padim"
)

// plate renders a w×h grey frame of a machined plate with holes and a slot
// on a textured background, the part turned by deg degrees (clockwise on
// the image) about the frame's centre and shifted by (dx, dy) pixels; a
// dark blob of radius 5 px marks a defect at part position (bx, by)
// (frame pixels of the unmoved part) when bx ≥ 0.
func plate(w, h int, deg, dx, dy, bx, by float64) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	th := deg * math.Pi / 180
	cs, sn := math.Cos(th), math.Sin(th)
	cx, cy := float64(w)/2, float64(h)/2
	s := float64(min(w, h))
	for y := range h {
		for x := range w {
			// Frame → part: u = R(−θ)(x − c − shift) + c.
			fx, fy := float64(x)+0.5-cx-dx, float64(y)+0.5-cy-dy
			u, v := cs*fx+sn*fy+cx, -sn*fx+cs*fy+cy
			px, py := (u-cx)/s, (v-cy)/s
			val := 70 + 18*math.Sin(u*0.41)*math.Cos(v*0.33)
			if math.Abs(px) < 0.32 && math.Abs(py) < 0.22 {
				val = 185 + 8*math.Sin(px*37)
				for _, c := range [][2]float64{{-0.2, -0.1}, {0.2, -0.1}, {-0.2, 0.1}, {0.06, 0.12}} {
					if math.Hypot(px-c[0], py-c[1]) < 0.045 {
						val = 35
					}
				}
				if px > -0.05 && px < 0.15 && math.Abs(py+0.02) < 0.016 {
					val = 45
				}
			}
			if bx >= 0 && math.Hypot(u-bx, v-by) < 5 {
				val = 20
			}
			img.Pix[y*img.Stride+x] = uint8(min(max(val, 0), 255))
		}
	}
	return img
}

// poses are the training parts: small shifts and turns, as on a line.
func poses(n int) grays {
	var g grays
	for i := range n {
		f := float64(i)
		g = append(g, plate(160, 120, 2.5*math.Sin(1.7*f), 4*math.Sin(2.3*f+1), 3*math.Cos(1.3*f), -1, -1))
	}
	return g
}

func alignOptions(t testing.TB, mode align.Mode) Options {
	return Options{Backbone: backbone.Options{Path: modeltest.BackbonePath(t), Threads: 2, Preprocess: backbone.Preprocess{Resize: backbone.ResizeSquash}},
		Features: 32, MinFeatures: 16, Sigma: 4, Align: AlignOptions{Mode: mode, MaxShift: 0.15, MaxAngle: 12}}
}

// A detector fitted with rigid registration reports each frame's shift
// and angle within tolerance, scores a displaced good part as good, draws
// a displaced defect where it lies in the frame, refuses a frame beyond
// its bounds or unlike the part with a RegistrationError, and keeps all of
// it through Save and Load.
func TestRegistrationInspectAndRoundTrip(t *testing.T) {
	opts := alignOptions(t, align.Rigid)
	d, rep, err := Fit(context.Background(), opts, poses(24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if rep.Images != 24 || d.Info().Align != string(align.Rigid) || !strings.Contains(d.Info().Recipe, "-rigid") {
		t.Fatalf("report %+v, info align %q recipe %q", rep, d.Info().Align, d.Info().Recipe)
	}
	check := func(d *Detector) float64 {
		t.Helper()
		// A good part moved a little further than any training part.
		r, err := d.Inspect(plate(160, 120, 3, 4, -3, -1, -1))
		if err != nil {
			t.Fatal(err)
		}
		g := r.Registration
		if g.Mode != align.Rigid || math.Abs(g.Angle-3) > 0.5 || math.Abs(g.ShiftX-4) > 1 || math.Abs(g.ShiftY+3) > 1 || g.Confidence < 0.8 {
			t.Errorf("registration %+v, want rigid, 3°, (4, −3) px, confidence ≥ 0.8", g)
		}
		if r.W != 160 || r.H != 120 || len(r.Map) != 160*120 || r.Anomalous {
			t.Errorf("map %dx%d (%d values), anomalous %v (score %.2f, threshold %.2f): want the frame's 160x120, good",
				r.W, r.H, len(r.Map), r.Anomalous, r.Score, r.Threshold)
		}
		good := r.Score
		// A defect on the moved part: the map's peak is where the frame shows it.
		bx, by := 80.0+0.2*120, 60.0+0.02*120 // on the plate, off the holes and slot
		r, err = d.Inspect(plate(160, 120, 3, 4, -3, bx, by))
		if err != nil {
			t.Fatal(err)
		}
		th := 3 * math.Pi / 180
		fx := math.Cos(th)*(bx-80) - math.Sin(th)*(by-60) + 80 + 4
		fy := math.Sin(th)*(bx-80) + math.Cos(th)*(by-60) + 60 - 3
		best := 0
		for i, v := range r.Map {
			if v > r.Map[best] {
				best = i
			}
		}
		px, py := float64(best%r.W)+0.5, float64(best/r.W)+0.5
		if math.Hypot(px-fx, py-fy) > 10 || !(r.Score > 1.3*good) {
			t.Errorf("defect at (%.0f, %.0f) in the frame, map peak at (%.0f, %.0f); score %.2f against the good part's %.2f",
				fx, fy, px, py, r.Score, good)
		}
		// Beyond the shift bound (0.15 of 160 = 24 px).
		_, err = d.Inspect(plate(160, 120, 0, 30, 0, -1, -1))
		var re *RegistrationError
		if !errors.As(err, &re) || !errors.Is(err, ErrRegistration) || re.Kind != "shift" || math.Abs(re.Registration.ShiftX-30) > 2 {
			t.Errorf("shift of 30 px: err %v (%+v), want a RegistrationError of kind shift with the estimate", err, re)
		}
		// Beyond the angle bound (12°).
		_, err = d.Inspect(plate(160, 120, 18, 0, 0, -1, -1))
		if !errors.As(err, &re) || re.Kind != "angle" {
			t.Errorf("turn of 18°: err %v, want a RegistrationError of kind angle", err)
		}
		// Not the part at all.
		_, err = d.Inspect(image.NewGray(image.Rect(0, 0, 160, 120)))
		if !errors.Is(err, ErrRegistration) {
			t.Errorf("blank frame: err %v, want ErrRegistration", err)
		}
		// A frame of another size that matches poorly says the size the
		// model was fitted on.
		_, err = d.Inspect(plate(200, 120, 0, 0, 0, -1, -1))
		if !errors.As(err, &re) || re.Kind != "low_confidence" ||
			!strings.Contains(err.Error(), "fitted on 160x120 frames, this one is 200x120") {
			t.Errorf("frame of another size: err %v, want the fitted size named", err)
		}
		// Evaluation scores what the daemon refuses and says so; the
		// bounds hold again after.
		for _, img := range []image.Image{plate(160, 120, 0, 30, 0, -1, -1), image.NewGray(image.Rect(0, 0, 160, 120))} {
			r, refused, err := d.InspectUnbounded(img)
			if err != nil || r == nil || len(r.Map) != 160*120 || !errors.Is(refused, ErrRegistration) {
				t.Errorf("InspectUnbounded: err %v, refused %v", err, refused)
			}
		}
		if _, err := d.Inspect(plate(160, 120, 0, 30, 0, -1, -1)); !errors.Is(err, ErrRegistration) {
			t.Errorf("after InspectUnbounded a frame beyond the bounds is scored: err %v", err)
		}
		return good
	}
	before := check(d)
	path := filepath.Join(t.TempDir(), "aligned.safetensors")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path, alignOptions(t, align.Off))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Info().Align != string(align.Rigid) || l.Info().AlignMinConfidence != d.Info().AlignMinConfidence || l.Info().Recipe != d.Info().Recipe {
		t.Errorf("loaded info %+v, want the fitted %+v", l.Info(), d.Info())
	}
	w0, h0, p0, q0 := d.al.ref.Template()
	w1, h1, p1, q1 := l.al.ref.Template()
	if w0 != w1 || h0 != h1 || len(p0) != len(p1) {
		t.Fatalf("template %dx%d loaded as %dx%d", w0, h0, w1, h1)
	}
	for i := range p0 {
		if p0[i] != p1[i] || q0[i] != q1[i] {
			t.Fatalf("template pixel %d: %v (weight %v) saved, %v (%v) loaded", i, p0[i], q0[i], p1[i], q1[i])
		}
	}
	if sp := d.al.ref.Spread(); !sp.Measured || l.al.ref.Spread() != sp {
		t.Errorf("pose spread %+v fitted, %+v loaded: want it measured and kept", sp, l.al.ref.Spread())
	}
	if after := check(l); math.Abs(after-before) > 1e-4*before {
		t.Errorf("good part scores %.5f after Load, %.5f before", after, before)
	}
	// A file whose registration entries are damaged is refused, naming them.
	for _, c := range []struct {
		name  string
		spoil func(m *padim.Model)
		want  string
	}{
		{"metadata without template", func(m *padim.Model) { delete(m.Tensors, tensorAlignTemplate) }, `metadata "align" and tensor "align_template" must come together`},
		{"bad metadata", func(m *padim.Model) { m.Meta.Extra[extraAlign] = "{" }, `registration metadata "align"`},
		{"unknown mode", func(m *padim.Model) { m.Meta.Extra[extraAlign] = `{"mode":"affine","frame_w":160,"frame_h":120}` }, `mode "affine"`},
		{"template size", func(m *padim.Model) {
			t := m.Tensors[tensorAlignTemplate]
			m.Tensors[tensorAlignTemplate] = padim.Tensor{Shape: []int{t.Shape[0] - 1, t.Shape[1]}, Data: t.Data[t.Shape[1]:]}
		}, "template"},
		{"spread", func(m *padim.Model) {
			m.Meta.Extra[extraAlign] = strings.Replace(m.Meta.Extra[extraAlign], `"spread_x":`, `"spread_x":-`, 1)
		}, "align spread"},
		{"one spread", func(m *padim.Model) {
			m.Meta.Extra[extraAlign] = regexp.MustCompile(`,"spread_y":[^,}]*`).ReplaceAllString(m.Meta.Extra[extraAlign], "")
		}, "spread_x and spread_y must come together"},
		{"null spread", func(m *padim.Model) {
			m.Meta.Extra[extraAlign] = regexp.MustCompile(`"spread_x":[^,}]*`).ReplaceAllString(m.Meta.Extra[extraAlign], `"spread_x":null`)
		}, "spread_x and spread_y must come together"},
		{"weights", func(m *padim.Model) {
			t := m.Tensors[tensorAlignWeight]
			m.Tensors[tensorAlignWeight] = padim.Tensor{Shape: []int{1, 3}, Data: t.Data[:3]}
		}, "weights"},
	} {
		pm, err := padim.Load(path, padim.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.spoil(pm)
		bad := filepath.Join(t.TempDir(), "bad.safetensors")
		if err := padim.Save(bad, pm); err != nil {
			t.Fatal(err)
		}
		pm.Close()
		if _, err := Load(bad, alignOptions(t, align.Off)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: err %v, want one naming %q and the file", c.name, err, c.want)
		}
	}
}

// Model files from before registration load without it.
func TestLegacyFileHasNoRegistration(t *testing.T) {
	d, err := Load(filepath.Join("testdata", "legacy_plain.safetensors"), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, err := d.Inspect(texture(1000, false))
	if err != nil || d.Info().Align != string(align.Off) || r.Registration != (Registration{}) || r.Timing.Align != 0 {
		t.Errorf("legacy model: err %v, align %q, registration %+v", err, d.Info().Align, r.Registration)
	}
}

// Turn mode registers parts lying at any angle: fitted on plates turned
// every which way, it places one turned by 130° (beyond any rigid bound)
// and scores it like an upright one; the angle bound does not apply.
func TestRegistrationTurn(t *testing.T) {
	sameRegistrationPath(t)
	var g grays
	for i := range 24 {
		f := float64(i)
		g = append(g, plate(160, 160, 15*f, 3*math.Sin(2.3*f+1), 3*math.Cos(1.3*f), -1, -1))
	}
	opts := alignOptions(t, align.Turn)
	d, _, err := Fit(context.Background(), opts, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Info().Align != string(align.Turn) {
		t.Fatalf("info align %q, want turn", d.Info().Align)
	}
	// Angles are against the reference view, which sits at the training
	// images' mean pose: the turns between frames must come out.
	var upright float64
	for _, deg := range []float64{0, 130, -100, 175} {
		r, err := d.Inspect(plate(160, 160, deg, 4, -3, -1, -1))
		if err != nil {
			t.Fatalf("%g°: %v", deg, err)
		}
		if deg == 0 {
			upright = r.Registration.Angle
		}
		got := r.Registration.Angle - upright
		// The view's corners the frame does not reach at odd angles (edge
		// pixels repeated) cost a little: 0.6–1.3 of the threshold here.
		if diff := math.Remainder(got-deg, 360); math.Abs(diff) > 2 || r.Normalized > 1.6 {
			t.Errorf("%g°: registered %.1f° from the upright plate, score %.3g of the threshold", deg, got, r.Normalized)
		}
	}
}

// Translate mode corrects shifts and leaves turns alone; a model without
// registration reports none.
func TestRegistrationTranslateAndOff(t *testing.T) {
	sameRegistrationPath(t)
	opts := alignOptions(t, align.Translate)
	d, _, err := Fit(context.Background(), opts, poses(24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, err := d.Inspect(plate(160, 120, 0, -9, 6, -1, -1))
	if err != nil {
		t.Fatal(err)
	}
	if g := r.Registration; g.Mode != align.Translate || g.Angle != 0 || math.Abs(g.ShiftX+9) > 1.5 || math.Abs(g.ShiftY-6) > 1.5 {
		t.Errorf("registration %+v, want translate, 0°, (−9, 6) px", g)
	}
	off, _, err := Fit(context.Background(), alignOptions(t, align.Off), poses(24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	r, err = off.Inspect(plate(160, 120, 0, 30, 0, -1, -1))
	if err != nil || r.Registration != (Registration{}) || off.Info().Align != string(align.Off) {
		t.Errorf("without registration: err %v, registration %+v, info align %q", err, r.Registration, off.Info().Align)
	}
}

// Recipe names carry the registration and parse back.
func TestRecipeAlignName(t *testing.T) {
	for _, n := range []string{"v1-squash-rigid-z", "v2-fit-shift-std-z-ctx2", "v1p-squash-rigid-raw", "v1p-squash-turn-raw"} {
		r, err := ParseRecipe(n, nil)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if r.Name() != n || !r.aligned() {
			t.Errorf("%s parsed as %+v, named %s", n, r, r.Name())
		}
	}
	if _, err := ParseRecipe("v1-squash-rigid", nil); err == nil {
		t.Error("a name without scoring parsed")
	}
}

// The recipe search offers registration when the good images' parts turn
// (rigid) or only shift (translate), not when they keep still or turn more
// than half the bounds allow (screws at any angle: registration at any
// angle is suggested then, in near-square frames only); always the
// configured mode.
func TestAlignOffer(t *testing.T) {
	sameRegistrationPath(t)
	still, shifted, wide := grays{}, grays{}, grays{}
	for i := range 16 {
		f := float64(i)
		still = append(still, plate(160, 120, 0, 0, 0, -1, -1))
		shifted = append(shifted, plate(160, 120, 0, 6*math.Sin(2.1*f), 5*math.Cos(1.7*f), -1, -1))
		wide = append(wide, plate(320, 120, 2.5*math.Sin(1.7*f), 4*math.Sin(2.3*f+1), 3*math.Cos(1.3*f), -1, -1))
	}
	idx := firstIndices(16)
	for _, c := range []struct {
		name     string
		src      grays
		mode     align.Mode
		maxAngle float64
		want     align.Mode
	}{
		{"turning", poses(16), align.Off, 0, align.Rigid},
		{"turning beyond the bounds", poses(16), align.Off, 1.5, ""},
		{"turning beyond the bounds in long frames", wide, align.Off, 1.5, ""},
		{"shifting", shifted, align.Off, 0, align.Translate},
		{"still", still, align.Off, 0, ""},
		{"configured", still, align.Translate, 0, align.Translate},
		{"configured turn", still, align.Turn, 0, align.Turn},
		{"off", poses(16), align.Off, 0, ""},
	} {
		o := Options{Align: AlignOptions{Mode: c.mode, MaxAngle: c.maxAngle, Offer: c.name != "off"}}
		got, ps, err := alignOffer(context.Background(), o, c.src, idx)
		if err != nil || got != c.want {
			t.Errorf("%s: offer %q (spread %+v, err %v), want %q", c.name, got, ps, err, c.want)
		}
		if want := c.name == "turning beyond the bounds"; ps.TurnSuggested(o.Align) != want {
			t.Errorf("%s: turn suggested %v, want %v (spread %+v)", c.name, !want, want, ps)
		}
	}
	// The bounds are fractions of width and height, as registration
	// applies them per frame: a spread within half the bounds measured
	// along the diagonal but beyond them along a side is beyond.
	_, ps, err := alignOffer(context.Background(), Options{Align: AlignOptions{Offer: true}}, shifted, idx)
	if err != nil || !(ps.SideShift > ps.Shift) {
		t.Fatalf("shifting: spread %+v, err %v: want the side's fraction above the diagonal's", ps, err)
	}
	o := Options{Align: AlignOptions{Offer: true, MaxShift: ps.Shift + ps.SideShift}} // half of it between the two
	if got, _, _ := alignOffer(context.Background(), o, shifted, idx); got != "" {
		t.Errorf("shifting by %.3f of a side (%.3f of the diagonal), max_shift %.3f: offer %q, want none (beyond half the bounds)", ps.SideShift, ps.Shift, o.Align.MaxShift, got)
	}
}

// firstIndices is 0..n-1: the images of a source of n.
func firstIndices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// The search registers every candidate the way the configuration names
// (whatever the poses: the user's choice), tries every candidate
// registered too when the mode is auto (Offer) and the poses vary, and only
// unregistered otherwise. (A configured mode once logged "registration
// offered" and added no registered candidate: auto ignored capture.align;
// a new user's trial then found an unregistered candidate chosen over the
// configured mode, silently.)
func TestSearchCandidatesRegistered(t *testing.T) {
	sameFitPath(t)
	still := grays{}
	for range 16 {
		still = append(still, plate(160, 120, 0, 0, 0, -1, -1))
	}
	idx := firstIndices(16)
	for _, c := range []struct {
		name     string
		src      grays
		mode     align.Mode
		offer    bool
		maxAngle float64
		want     align.Mode
		warn     string // "": no warning
	}{
		{"configured translate", still, align.Translate, false, 0, align.Translate, ""},
		{"configured turn", still, align.Turn, true, 0, align.Turn, ""},
		{"configured rigid, turning", poses(16), align.Rigid, true, 0, align.Rigid, ""},
		{"configured rigid, turning beyond half the bound", poses(16), align.Rigid, false, 1.5, align.Rigid, "capture.align.mode: turn registers parts at any angle"},
		{"configured translate, turning", poses(16), align.Translate, false, 0, align.Translate, "which translate does not follow"},
		{"auto, turning", poses(16), align.Off, true, 0, align.Rigid, ""},
		{"auto, still", still, align.Off, true, 0, "", ""},
		{"off, turning", poses(16), align.Off, false, 0, "", "capture.align.mode auto lets the search try it"},
		{"off, still", still, align.Off, false, 0, "", ""},
	} {
		var logs strings.Builder
		o := Options{Align: AlignOptions{Mode: c.mode, Offer: c.offer, MaxAngle: c.maxAngle}, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Bundled: []BundledPath{{backbone.MobileNetV1, "v1.tflite"}, {backbone.MobileNetV2, "v2.tflite"}}}
		base := o.Candidates(1.33, "x", false)
		got, offer, _, err := o.searchCandidates(context.Background(), c.src, idx, 1.33, "x", false)
		if err != nil || offer != c.want {
			t.Fatalf("%s: offer %q, err %v; want %q", c.name, offer, err, c.want)
		}
		warned := strings.Contains(logs.String(), "level=WARN")
		if warned != (c.warn != "") || !strings.Contains(logs.String(), c.warn) {
			t.Errorf("%s: log %s\nwant a warning %q", c.name, logs.String(), c.warn)
		}
		want, wantRegistered := len(base), 0
		switch {
		case c.mode != align.Off:
			wantRegistered = len(base)
		case c.want != "":
			want, wantRegistered = 2*len(base), len(base)
		}
		registered := 0
		for _, r := range got {
			if r.Align != "" {
				registered++
				if r.Align != c.want {
					t.Errorf("%s: candidate %s registered %q, want %q", c.name, r.Name(), r.Align, c.want)
				}
			}
		}
		if len(got) != want || registered != wantRegistered {
			t.Errorf("%s: %d candidates, %d registered; want %d, %d registered", c.name, len(got), registered, want, wantRegistered)
		}
	}
}

// A configured registration whose reference view cannot be built is an
// error naming the mode and the image (by its name when the source gives
// one), before any candidate is fitted (each would fail on it, one warning
// per family).
func TestSearchCandidatesConfiguredReferenceFails(t *testing.T) {
	tiny := grays{}
	for range 4 {
		tiny = append(tiny, image.NewGray(image.Rect(0, 0, 24, 24)))
	}
	o := Options{Align: AlignOptions{Mode: align.Rigid}, Logger: slog.New(slog.DiscardHandler),
		Bundled: []BundledPath{{backbone.MobileNetV1, "v1.tflite"}}}
	for _, c := range []struct {
		src  ImageSource
		want string
	}{{tiny, "image 0: "}, {namedGrays{tiny}, "image 0 (part-0.png): "}} {
		_, _, _, err := o.searchCandidates(context.Background(), c.src, []int{0, 1, 2, 3}, 1, "x", true)
		if err == nil || !strings.Contains(err.Error(), "capture.align.mode rigid: reference view") || !strings.Contains(err.Error(), "24x24") ||
			!strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want it to name %q", err, c.want)
		}
	}
}

// namedGrays names its images as files would be (ImageNamer).
type namedGrays struct{ grays }

func (n namedGrays) ImageName(i int) string { return fmt.Sprintf("part-%d.png", i) }

// Good images of several frame sizes with registration: the fit warns
// (registration aligns every frame to one reference view without scaling
// it), and does not for frames of one size.
func TestRegistrationWarnsOnSeveralFrameSizes(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		var logs strings.Builder
		opts := alignOptions(t, align.Translate)
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		src := grays{}
		for i := range 6 {
			w, h := 160, 120
			if mixed && i%2 == 1 {
				w, h = 200, 150
			}
			src = append(src, plate(w, h, 0, float64(i%3), 0, -1, -1))
		}
		d, _, err := Fit(context.Background(), opts, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		if got := strings.Contains(logs.String(), "several frame sizes"); got != mixed || mixed && !strings.Contains(logs.String(), "sizes=2") {
			t.Errorf("mixed %v: warned %v, log:\n%s", mixed, got, logs.String())
		}
	}
}

// A named recipe spells out its registration: a configured mode it does
// not name is not applied, and the fit says so with the name that has it.
func TestNamedRecipeKeepsItsRegistration(t *testing.T) {
	var logs strings.Builder
	opts := alignOptions(t, align.Turn)
	opts.Recipe = RecipePlain
	opts.Bundled = []BundledPath{{backbone.MobileNetV1, modeltest.BackbonePath(t)}}
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	d, _, err := Fit(context.Background(), opts, poses(6), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Info().Align != string(align.Off) || !strings.Contains(logs.String(), "capture.align.mode is not applied") ||
		!strings.Contains(logs.String(), "recipe_with_it=v1p-squash-turn-raw") {
		t.Errorf("align %q, log:\n%s", d.Info().Align, logs.String())
	}
}

// TestRegistrationFrameTypes: the same frame as a camera delivers it in
// gray, RGBA or Y'CbCr 4:2:0 (JPEG: the aligned view stays Y'CbCr and is
// converted at the network's input size) is registered alike and scored
// alike.
func TestRegistrationFrameTypes(t *testing.T) {
	sameFitPath(t)
	d, _, err := Fit(context.Background(), alignOptions(t, align.Rigid), poses(24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, defect := range []bool{false, true} {
		bx, by := -1.0, -1.0
		if defect {
			bx, by = 80+0.2*120, 60+0.02*120
		}
		gray := plate(160, 120, 3, 4, -3, bx, by)
		rgba := image.NewRGBA(gray.Rect)
		draw.Draw(rgba, rgba.Rect, gray, image.Point{}, draw.Src)
		ycc := image.NewYCbCr(gray.Rect, image.YCbCrSubsampleRatio420)
		copy(ycc.Y, gray.Pix)
		for i := range ycc.Cb {
			ycc.Cb[i], ycc.Cr[i] = 128, 128
		}
		var scores []float64
		var first Registration
		for i, img := range []image.Image{gray, rgba, ycc} {
			r, err := d.Inspect(img)
			if err != nil {
				t.Fatalf("%T: %v", img, err)
			}
			g := r.Registration
			if i == 0 {
				first = g
			} else if math.Abs(g.Angle-first.Angle) > 0.05 || math.Abs(g.ShiftX-first.ShiftX) > 0.2 || math.Abs(g.ShiftY-first.ShiftY) > 0.2 {
				t.Errorf("%T: registered %+v, the gray frame %+v", img, g, first)
			}
			if r.Anomalous != defect {
				t.Errorf("%T (defect %v): anomalous %v, score %.3f, threshold %.3f", img, defect, r.Anomalous, r.Score, r.Threshold)
			}
			scores = append(scores, r.Score)
		}
		for i, s := range scores[1:] {
			if math.Abs(s-scores[0]) > 0.03*scores[0] {
				t.Errorf("defect %v: score %.4f for frame type %d, %.4f for gray: want within 3%%", defect, s, i+1, scores[0])
			}
		}
	}
}

// TestViewAndMapSize: an aligned view keeps twice the network input's
// pixels on each axis that reaches it (squashed: each axis alone;
// letterboxed: by the long side; tiled: per tile), never more than the
// frame; the map is drawn at the input's resolution, never finer than the
// frame.
func TestViewAndMapSize(t *testing.T) {
	squash := viewShape{inW: 224, inH: 224}
	fit := viewShape{inW: 224, inH: 224, fit: true}
	for _, c := range []struct {
		name       string
		sh         viewShape
		w, h       int
		view, amap image.Point
	}{
		{"squash 1280x720", squash, 1280, 720, image.Pt(448, 448), image.Pt(398, 224)},
		{"squash 640x480", squash, 640, 480, image.Pt(448, 448), image.Pt(299, 224)},
		{"squash 512x512", squash, 512, 512, image.Pt(448, 448), image.Pt(224, 224)},
		{"squash 300x200", squash, 300, 200, image.Pt(300, 200), image.Pt(300, 200)},
		{"fit 1280x720", fit, 1280, 720, image.Pt(448, 252), image.Pt(398, 224)},
		{"fit 400x300", fit, 400, 300, image.Pt(400, 300), image.Pt(299, 224)},
		{"tiles 3 along x", viewShape{inW: 224, inH: 224, fit: true, tiles: 3, axis: axisX}, 1500, 400, image.Pt(1344, 400), image.Pt(840, 224)},
		{"tiles 3 along y", viewShape{inW: 224, inH: 224, tiles: 3, axis: axisY}, 500, 1240, image.Pt(448, 1240), image.Pt(224, 556)},
	} {
		a := &aligner{shape: c.sh}
		if got := a.viewSize(c.w, c.h); got != c.view {
			t.Errorf("%s: view %v, want %v", c.name, got, c.view)
		}
		if w, h := a.mapSize(c.w, c.h); image.Pt(w, h) != c.amap {
			t.Errorf("%s: map %dx%d, want %v", c.name, w, h, c.amap)
		}
	}
}

// sameRegistrationPath skips a test in the -short race run (make test):
// registration's fit, pose search and warp (its row goroutines, every
// frame type) are raced by TestRegistrationInspectAndRoundTrip and
// TestRegistrationFrameTypes; this one checks values on the same path, in
// the full run.
func sameRegistrationPath(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("registration's path is raced by TestRegistrationInspectAndRoundTrip and TestRegistrationFrameTypes; this checks values, in the full run")
	}
}
