package model

import (
	"context"
	"image"
	"strings"
	"testing"
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
		if err != nil || r.InputMismatch != "" {
			t.Errorf("grayscale frame: %q, %v", r.InputMismatch, err)
		}
		r, err = d.Inspect(colour)
		if err != nil || !strings.Contains(r.InputMismatch, "a colour frame, the model was fitted on grayscale images") {
			t.Errorf("colour frame: %q, %v", r.InputMismatch, err)
		}
	}
}
