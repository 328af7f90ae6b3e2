package render

import (
	"image"
	"testing"
)

func TestOverlayColours(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 4, 1))
	amap := []float32{0, 1, 2, 4}
	out := Overlay(nil, img, amap, 4, 1, 1)
	// Low scores tint blue, high scores red.
	if p := out.RGBAAt(0, 0); p.B <= p.R {
		t.Errorf("score 0 drawn %v, want blue", p)
	}
	if p := out.RGBAAt(3, 0); p.R <= p.B || p.R < 80 {
		t.Errorf("score 4× threshold drawn %v, want red", p)
	}
	again := Overlay(out, img, amap, 4, 1, 1)
	if again != out {
		t.Error("Overlay did not reuse its destination")
	}
	if n := testing.AllocsPerRun(10, func() { Overlay(out, img, amap, 4, 1, 1) }); n != 0 {
		t.Errorf("%v allocations per overlay", n)
	}
}

func TestPanel(t *testing.T) {
	p := Panel(image.NewGray(image.Rect(0, 0, 10, 5)), image.NewGray(image.Rect(0, 0, 6, 8)))
	if p.Rect.Dx() != 20 || p.Rect.Dy() != 8 {
		t.Fatalf("panel %v", p.Rect)
	}
}
