package capture

import (
	"context"
	"image"
	"image/color"
	"testing"
)

// rotateRef rotates img clockwise by deg through At, as an independent
// reference for cropRotate.
func rotateRef(img image.Image, deg int) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	ow, oh := w, h
	if deg == 90 || deg == 270 {
		ow, oh = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var dx, dy int
			switch deg {
			case 0:
				dx, dy = x, y
			case 90:
				dx, dy = h-1-y, x
			case 180:
				dx, dy = w-1-x, h-1-y
			case 270:
				dx, dy = y, w-1-x
			}
			out.Set(dx, dy, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return out
}

func TestTransformRGBAAndMask(t *testing.T) {
	src := testImage(40, 30)
	for i := range src.Pix {
		src.Pix[i] ^= uint8(i * 31) // every pixel distinct
	}
	for i := 3; i < len(src.Pix); i += 4 {
		src.Pix[i] = 255
	}
	mask := image.NewGray(src.Rect)
	for i := range mask.Pix {
		mask.Pix[i] = uint8(i)
	}
	roi := image.Rect(5, 3, 32, 20)
	var dst Frame
	for _, deg := range []int{0, 90, 180, 270} {
		in := Frame{Seq: 9, Image: src, Mask: mask, Name: "x", Label: "spot", Trigger: "t1"}
		if err := ApplyTransform(&dst, &in, TransformOptions{ROI: roi, Rotate: deg}); err != nil {
			t.Fatal(err)
		}
		want := rotateRef(src.SubImage(roi), deg)
		if d := maxDiff(t, want, dst.Image.(*image.RGBA)); d != 0 {
			t.Errorf("rotate %d: image differs", deg)
		}
		wantMask := rotateRef(mask.SubImage(roi), deg)
		for y := 0; y < wantMask.Rect.Dy(); y++ {
			for x := 0; x < wantMask.Rect.Dx(); x++ {
				if dst.Mask.GrayAt(x, y).Y != wantMask.RGBAAt(x, y).R {
					t.Fatalf("rotate %d: mask differs at %d,%d", deg, x, y)
				}
			}
		}
		if dst.Seq != 9 || dst.Name != "x" || dst.Label != "spot" || dst.Trigger != "t1" {
			t.Errorf("metadata not copied: %+v", dst)
		}
	}
}

func TestTransformGray(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 7, 5))
	for i := range g.Pix {
		g.Pix[i] = uint8(i)
	}
	var dst Frame
	for _, deg := range []int{0, 90, 180, 270} {
		if err := ApplyTransform(&dst, &Frame{Image: g}, TransformOptions{ROI: image.Rect(1, 1, 6, 4), Rotate: deg}); err != nil {
			t.Fatal(err)
		}
		want := rotateRef(g.SubImage(image.Rect(1, 1, 6, 4)), deg)
		out := dst.Image.(*image.Gray)
		for y := 0; y < want.Rect.Dy(); y++ {
			for x := 0; x < want.Rect.Dx(); x++ {
				if out.GrayAt(x, y).Y != want.RGBAAt(x, y).R {
					t.Fatalf("rotate %d: pixel %d,%d = %d, want %d", deg, x, y, out.GrayAt(x, y).Y, want.RGBAAt(x, y).R)
				}
			}
		}
		if dst.Mask != nil {
			t.Error("mask appeared from nowhere")
		}
	}
}

func TestTransformErrors(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 10, 10))
	var dst Frame
	if err := ApplyTransform(&dst, &Frame{Image: img}, TransformOptions{ROI: image.Rect(5, 5, 20, 8)}); err == nil {
		t.Error("roi outside the frame: want an error")
	}
	if err := ApplyTransform(&dst, &Frame{Image: img}, TransformOptions{Rotate: 45}); err == nil {
		t.Error("rotate 45: want an error")
	}
	if err := ApplyTransform(&dst, &Frame{Image: image.NewNRGBA(img.Rect)}, TransformOptions{Rotate: 90}); err == nil {
		t.Error("unsupported image type: want an error")
	}
	for _, s := range []string{"1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,4,4"} {
		if _, err := ParseROI(s); err == nil {
			t.Errorf("ParseROI(%q): want an error", s)
		}
	}
	if r, err := ParseROI("10, 20, 300, 200"); err != nil || r != image.Rect(10, 20, 310, 220) {
		t.Errorf("ParseROI = %v %v", r, err)
	}
}

func TestTransformSourceNoAllocs(t *testing.T) {
	sy, err := NewSynthetic(SyntheticOptions{Width: 64, Height: 48, DefectRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewTransform(sy, TransformOptions{ROI: image.Rect(8, 4, 40, 44), Rotate: 90})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	ctx := context.Background()
	if err := src.Next(ctx, &f); err != nil {
		t.Fatal(err)
	}
	if b := f.Image.Bounds(); b.Dx() != 40 || b.Dy() != 32 || f.Mask.Bounds() != b {
		t.Errorf("transformed size %v mask %v, want 40x32", b, f.Mask.Bounds())
	}
	if allocs := testing.AllocsPerRun(10, func() { _ = src.Next(ctx, &f) }); allocs != 0 {
		t.Errorf("transform of a synthetic frame allocates %v per frame", allocs)
	}
	if CountersOf(src).Frames.Load() == 0 {
		t.Error("counters not forwarded")
	}
	same, _ := NewTransform(sy, TransformOptions{})
	if same != Source(sy) {
		t.Error("identity transform should return the source")
	}
	_ = color.Gray{}
}

// An ROI configured as "to the edge" takes the frame's size when it comes.
func TestTransformROIToEdge(t *testing.T) {
	src := &Frame{Image: image.NewGray(image.Rect(0, 0, 40, 30))}
	var dst Frame
	if err := ApplyTransform(&dst, src, TransformOptions{ROI: image.Rect(10, 5, ToEdge, ToEdge)}); err != nil {
		t.Fatal(err)
	}
	if b := dst.Image.Bounds(); b.Dx() != 30 || b.Dy() != 25 {
		t.Fatalf("cropped to %v, want 30x25", b)
	}
	if err := ApplyTransform(&dst, src, TransformOptions{ROI: image.Rect(50, 5, ToEdge, ToEdge)}); err == nil {
		t.Fatal("ROI starting beyond the frame accepted")
	}
}
