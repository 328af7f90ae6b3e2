package capture

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"testing"
)

// rotateRef rotates img clockwise by deg through At, as an independent
// reference for the views and cropRotate.
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

// staticSource delivers the same decoded frame every time, into the
// caller's frame as a camera does, and records the need it was given.
type staticSource struct {
	img    image.Image
	mask   *image.Gray
	native image.Point
	// probe: the need asked for frames of these sizes, during Next.
	probe []image.Point
	got   []image.Point
}

func (s *staticSource) Next(_ context.Context, f *Frame) error {
	s.got = s.got[:0]
	for _, p := range s.probe {
		if f.Need == nil {
			break
		}
		w, h := f.Need(p.X, p.Y)
		s.got = append(s.got, image.Pt(w, h))
	}
	f.setDecoded(s.img)
	f.setMask(s.mask)
	f.Native = s.native
	f.Seq, f.Name, f.Label, f.Trigger = 9, "x", "spot", "t1"
	return nil
}
func (s *staticSource) Close() error { return nil }

func transformed(t *testing.T, src Source, opts TransformOptions) *Frame {
	t.Helper()
	tr, err := NewTransform(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := tr.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// The region of interest and the rotation are views of the decoded frame
// (no copy), for every kind of frame a source delivers; flattened they are
// the region rotated, pixel for pixel. The mask is cut and rotated alike.
func TestTransformViews(t *testing.T) {
	src := testImage(40, 30)
	for i := range src.Pix {
		src.Pix[i] ^= uint8(i * 31) // every pixel distinct
	}
	for i := 3; i < len(src.Pix); i += 4 {
		src.Pix[i] = 255
	}
	gray := image.NewGray(src.Rect)
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i)
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, src, nil); err != nil {
		t.Fatal(err)
	}
	ycc, err := jpeg.Decode(&jb)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := decodeYUYVPacked(nil, toYUYV(src, 8), 40, 30, YUVLimited)
	if err != nil {
		t.Fatal(err)
	}
	mask := image.NewGray(src.Rect)
	for i := range mask.Pix {
		mask.Pix[i] = uint8(255 - i)
	}
	roi := image.Rect(5, 3, 32, 20) // odd corner: chroma pairs split
	for name, img := range map[string]image.Image{"rgba": src, "gray": gray, "ycbcr": ycc, "yuyv": packed} {
		for _, deg := range []int{0, 90, 180, 270} {
			f := transformed(t, &staticSource{img: img, mask: mask}, TransformOptions{ROI: roi, Rotate: deg})
			if deg != 0 {
				if _, ok := f.Image.(*Rotated); !ok {
					t.Fatalf("%s rotate %d: %T, want a *Rotated view", name, deg, f.Image)
				}
			}
			sub := img.(interface {
				SubImage(image.Rectangle) image.Image
			}).SubImage(roi)
			want := rotateRef(sub, deg)
			got := rotateRef(f.Image, 0) // through At
			if d := maxDiff(t, want, got); d != 0 {
				t.Errorf("%s rotate %d: the view differs from the region rotated by %d levels", name, deg, d)
			}
			flat := Flatten(nil, f.Image)
			if g, ok := flat.(*image.Gray); ok {
				flat = rotateRef(g, 0)
			}
			if d := maxDiff(t, want, flat.(*image.RGBA)); d != 0 {
				t.Errorf("%s rotate %d: Flatten differs from the region rotated by %d levels", name, deg, d)
			}
			wantMask := rotateRef(mask.SubImage(roi), deg)
			for y := 0; y < wantMask.Rect.Dy(); y++ {
				for x := 0; x < wantMask.Rect.Dx(); x++ {
					if f.Mask.GrayAt(x, y).Y != wantMask.RGBAAt(x, y).R {
						t.Fatalf("%s rotate %d: mask differs at %d,%d", name, deg, x, y)
					}
				}
			}
			if f.Seq != 9 || f.Name != "x" || f.Label != "spot" || f.Trigger != "t1" {
				t.Errorf("metadata lost: %+v", f)
			}
		}
	}
	// The source's own mask is left alone: the next frame writes into it.
	if mask.Pix[0] != 255 {
		t.Error("the transform wrote into the source's mask")
	}
}

// A consumer's need is passed on in the source's terms: for the region, as
// the rotated region is seen, scaled up to the whole frame.
func TestTransformTranslatesNeed(t *testing.T) {
	src := &staticSource{img: image.NewGray(image.Rect(0, 0, 1280, 720)), probe: []image.Point{{1280, 720}, {100, 100}}}
	var asked [2]int
	need := func(w, h int) (int, int) {
		asked = [2]int{w, h}
		return 224, 112
	}
	tr, err := NewTransform(src, TransformOptions{ROI: image.Rect(320, 40, 960, 680), Rotate: 90})
	if err != nil {
		t.Fatal(err)
	}
	f := Frame{Need: need}
	if err := tr.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if len(src.got) != 2 {
		t.Fatal("no need passed to the source")
	}
	// The 640×640 region, rotated, needs 224 wide by 112 high: 112 of its
	// columns and 224 of its rows, so 224 of the frame's 1280 columns and
	// 252 of its 720 rows.
	if asked != [2]int{640, 640} || src.got[0] != image.Pt(224, 252) {
		t.Errorf("need for the frame %v (region asked as %v), want 224x252 for 640x640", src.got[0], asked)
	}
	if src.got[1] != image.Pt(100, 100) {
		t.Errorf("a frame the region does not fit: need %v, want the whole frame", src.got[1])
	}
	if f.Need == nil {
		t.Error("the caller's need was not restored")
	}
}

// A frame the source delivered reduced: the region is cut at the reduced
// scale and Native says its full-resolution size.
func TestTransformReducedFrame(t *testing.T) {
	img := testImage(320, 180) // a 1280×720 frame decoded at 1/4
	f := transformed(t, &staticSource{img: img, native: image.Pt(1280, 720)},
		TransformOptions{ROI: image.Rect(320, 40, 960, 680), Rotate: 270})
	if b := f.Image.Bounds(); b.Dx() != 160 || b.Dy() != 160 {
		t.Errorf("reduced region %v, want 160x160", b)
	}
	if f.Native != image.Pt(640, 640) {
		t.Errorf("native size %v, want 640x640", f.Native)
	}
	want := rotateRef(img.SubImage(image.Rect(80, 10, 240, 170)), 270)
	if d := maxDiff(t, want, Flatten(nil, f.Image).(*image.RGBA)); d != 0 {
		t.Errorf("reduced region differs by %d", d)
	}
}

func TestTransformErrors(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 10, 10))
	tr, err := NewTransform(&staticSource{img: img}, TransformOptions{ROI: image.Rect(5, 5, 20, 8)})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := tr.Next(context.Background(), &f); err == nil {
		t.Error("roi outside the frame: want an error")
	}
	if _, err := NewTransform(&staticSource{img: img}, TransformOptions{Rotate: 45}); err == nil {
		t.Error("rotate 45: want an error")
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
}

// An ROI configured as "to the edge" takes the frame's size when it comes.
func TestTransformROIToEdge(t *testing.T) {
	f := transformed(t, &staticSource{img: image.NewGray(image.Rect(0, 0, 40, 30))}, TransformOptions{ROI: image.Rect(10, 5, ToEdge, ToEdge)})
	if b := f.Image.Bounds(); b.Dx() != 30 || b.Dy() != 25 {
		t.Fatalf("cropped to %v, want 30x25", b)
	}
	tr, _ := NewTransform(&staticSource{img: image.NewGray(image.Rect(0, 0, 40, 30))}, TransformOptions{ROI: image.Rect(50, 5, ToEdge, ToEdge)})
	var g Frame
	if err := tr.Next(context.Background(), &g); err == nil {
		t.Fatal("ROI starting beyond the frame accepted")
	}
}
