package model

import (
	"context"
	"image"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/capture"
)

// A model records whether it was fitted on grayscale or colour images, and
// each inspection says when a frame is of the other kind (a camera switched
// to another format after the fit: every part may be flagged).
func TestInputMismatch(t *testing.T) {
	opts := testOptions(t)
	det, _, err := Fit(context.Background(), opts, textures(12), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if got := det.Info().TrainInput; got != inputGray {
		t.Fatalf("fitted on grayscale images: train input %q", got)
	}
	gray := texture(500, false)
	colour := image.NewRGBA(gray.Bounds())
	for i, v := range gray.Pix {
		colour.Pix[4*i], colour.Pix[4*i+1], colour.Pix[4*i+2], colour.Pix[4*i+3] = v, v, v, 255
	}
	_, ld := saveLoad(t, det, opts)
	for _, d := range []*Detector{det, ld} {
		r, err := d.Inspect(gray)
		if err != nil || r.InputMismatch != "" || r.Mismatch != 0 {
			t.Errorf("grayscale frame: %q (%b), %v", r.InputMismatch, r.Mismatch, err)
		}
		r, err = d.Inspect(colour)
		if err != nil || !strings.Contains(r.InputMismatch, "a colour frame, the model was fitted on grayscale images") || r.Mismatch != MismatchInput {
			t.Errorf("colour frame: %q (%b), %v", r.InputMismatch, r.Mismatch, err)
		}
		// A frame of another shape (a model fitted on strips shown a
		// square part scored at its threshold whatever it showed).
		r, err = d.Inspect(grain(501, 160, 160, image.Rectangle{}))
		if err != nil || r.InputMismatch != "" {
			t.Errorf("a square frame within the slack of 200x160 training images: %q, %v", r.InputMismatch, err)
		}
		r, err = d.Inspect(grain(502, 400, 80, image.Rectangle{}))
		if err != nil || r.InputMismatch != "a 400x80 frame (width/height 5.00), the model was fitted on images of width/height 1.25" || r.Mismatch != MismatchAspect {
			t.Errorf("a 400x80 frame: %q (%b), %v", r.InputMismatch, r.Mismatch, err)
		}
		// Every frame of such a line says the same, without a new message each.
		strip := grain(503, 400, 80, image.Rectangle{})
		if n := testing.AllocsPerRun(10, func() { d.inputMismatch(strip) }); n != 0 {
			t.Errorf("%v allocations per mismatched frame, want 0", n)
		}
	}
	if a := ld.Info(); a.TrainInput != inputGray || !slices.Equal(a.TrainAspect, []float64{1.25, 1.25}) {
		t.Errorf("loaded info %+v", a)
	}
}

// A fit on grayscale and colour images together says so: frames score by
// the kind most of them were.
func TestFitWarnsOnMixedInput(t *testing.T) {
	opts := testOptions(t)
	var logs strings.Builder
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	const warning = "the training images are grayscale and colour both"
	for _, explicit := range []float64{0, 5} { // a threshold given skips the leave-one-out scores
		logs.Reset()
		o := opts
		o.Threshold.Explicit = explicit
		det, _, err := Fit(context.Background(), o, mixedTextures(12), nil)
		if err != nil {
			t.Fatal(err)
		}
		det.Close()
		if n := strings.Count(logs.String(), warning); n != 1 {
			t.Errorf("threshold %g: %d warnings of mixed training images, want 1:\n%s", explicit, n, logs.String())
		}
	}
}

// The model is taken for one of the kind most training images were:
// eleven grayscale images and one colour one make a grayscale model, whose
// colour frames are the ones warned of (a trial: one colour image among
// thirty grayscale ones recorded a colour model, and the warning then fell
// on the line's grayscale frames). The warning gives both counts.
func TestFitRecordsTheMajorityKind(t *testing.T) {
	opts := testOptions(t)
	var logs strings.Builder
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	det, _, err := Fit(context.Background(), opts, oneColour(12), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if got := det.Info().TrainInput; got != inputGray {
		t.Errorf("train_input %q, want %q", got, inputGray)
	}
	if !strings.Contains(logs.String(), "grayscale=11 colour=1 fitted_on="+inputGray) {
		t.Errorf("warning lacks the counts:\n%s", logs.String())
	}
	g, _ := oneColour(12).Image(1)
	c, _ := oneColour(12).Image(0)
	if r, err := det.Inspect(g); err != nil || r.Mismatch&MismatchInput != 0 {
		t.Errorf("grayscale frame: %v, mismatch %q", err, r.InputMismatch)
	}
	if r, err := det.Inspect(c); err != nil || r.Mismatch&MismatchInput == 0 {
		t.Errorf("colour frame: %v, mismatch %q, want a colour-frame warning", err, r.InputMismatch)
	}
}

// oneColour are textures, the first one as a colour image.
type oneColour int

func (n oneColour) Len() int { return int(n) }

func (n oneColour) Image(i int) (image.Image, error) {
	if i == 0 {
		return mixedTextures(n).Image(1)
	}
	return texture(uint64(i), false), nil
}

// mixedTextures are textures, every other one as a colour image.
type mixedTextures int

func (n mixedTextures) Len() int { return int(n) }

func (n mixedTextures) Image(i int) (image.Image, error) {
	g := texture(uint64(i), false)
	if i%2 == 0 {
		return g, nil
	}
	c := image.NewRGBA(g.Bounds())
	for k, v := range g.Pix {
		c.Pix[4*k], c.Pix[4*k+1], c.Pix[4*k+2], c.Pix[4*k+3] = v, v, v, 255
	}
	return c, nil
}

// A grayscale frame cut or turned by capture (capture.rotate, a region of
// a frame decoded reduced) comes as a view, not an *image.Gray: it was
// taken for a colour frame, and the daemon warned that the line's frames
// were colour on a grayscale model and to refit (a trial: a folder of
// grayscale PNGs with capture.rotate 90). A view of a colour frame is
// still one.
func TestInputMismatchViews(t *testing.T) {
	opts := testOptions(t)
	det, _, err := Fit(context.Background(), opts, textures(12), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	gray := texture(500, false)
	colour := image.NewRGBA(gray.Bounds())
	for i, v := range gray.Pix {
		colour.Pix[4*i], colour.Pix[4*i+1], colour.Pix[4*i+2], colour.Pix[4*i+3] = v, v, v, 255
	}
	b := gray.Bounds()
	for _, tc := range []struct {
		name   string
		img    image.Image
		colour bool
	}{
		{"gray turned 180", &capture.Rotated{Src: gray, Deg: 180}, false},
		{"gray turned 90", &capture.Rotated{Src: gray, Deg: 90}, false},
		{"gray region", &capture.Region{Image: gray, X0: 0.5, Y0: 0.5, X1: float64(b.Dx()) - 0.5, Y1: float64(b.Dy()) - 0.5}, false},
		{"gray region turned", &capture.Rotated{Src: &capture.Region{Image: gray, X0: 0, Y0: 0, X1: float64(b.Dx()), Y1: float64(b.Dy())}, Deg: 180}, false},
		{"colour turned 180", &capture.Rotated{Src: colour, Deg: 180}, true},
	} {
		r, err := det.Inspect(tc.img)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		said := strings.Contains(r.InputMismatch, "a colour frame") || r.Mismatch&MismatchInput != 0
		if said != tc.colour {
			t.Errorf("%s: %q (%b), want colour named %v", tc.name, r.InputMismatch, r.Mismatch, tc.colour)
		}
	}
}
