package capture

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
)

// testImage is a colourful RGBA image whose horizontal pixel pairs share a
// colour, so that 4:2:2 chroma subsampling loses nothing and a YUYV round
// trip must reproduce it up to rounding.
func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x += 2 {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) * 7), 255}
			if (x/16+y/16)%3 == 0 {
				c = color.RGBA{230, 40, 60, 255}
			}
			img.SetRGBA(x, y, c)
			if x+1 < w {
				img.SetRGBA(x+1, y, c)
			}
		}
	}
	return img
}

// rgbToYUVLimited is the BT.601 studio-range forward transform, computed in
// floating point as a reference independent of the decoder's fixed point.
func rgbToYUVLimited(r, g, b uint8) (y, u, v uint8) {
	R, G, B := float64(r)/255, float64(g)/255, float64(b)/255
	Y := 0.299*R + 0.587*G + 0.114*B
	Cb := (B - Y) / 1.772
	Cr := (R - Y) / 1.402
	return uint8(math.Round(16 + 219*Y)), uint8(math.Round(128 + 224*Cb)), uint8(math.Round(128 + 224*Cr))
}

// toYUYV packs img as YUYV with the given row padding.
func toYUYV(img *image.RGBA, pad int) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	stride := 2*w + pad
	buf := make([]byte, stride*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x += 2 {
			p := img.RGBAAt(x, y)
			q := img.RGBAAt(x+1, y)
			y0, u0, v0 := rgbToYUVLimited(p.R, p.G, p.B)
			y1, u1, v1 := rgbToYUVLimited(q.R, q.G, q.B)
			o := y*stride + 2*x
			buf[o], buf[o+1], buf[o+2], buf[o+3] = y0, uint8((int(u0)+int(u1)+1)/2), y1, uint8((int(v0)+int(v1)+1)/2)
		}
	}
	return buf
}

func maxDiff(t *testing.T, a, b *image.RGBA) int {
	t.Helper()
	if a.Rect != b.Rect {
		t.Fatalf("sizes differ: %v vs %v", a.Rect, b.Rect)
	}
	worst := 0
	for y := a.Rect.Min.Y; y < a.Rect.Max.Y; y++ {
		for x := a.Rect.Min.X; x < a.Rect.Max.X; x++ {
			p, q := a.RGBAAt(x, y), b.RGBAAt(x, y)
			for _, d := range []int{int(p.R) - int(q.R), int(p.G) - int(q.G), int(p.B) - int(q.B), int(p.A) - int(q.A)} {
				worst = max(worst, d, -d)
			}
		}
	}
	return worst
}

func TestDecodeYUYVRoundTrip(t *testing.T) {
	src := testImage(64, 48)
	for _, pad := range []int{0, 32} {
		out, err := DecodeYUYV(nil, toYUYV(src, pad), 64, 48, YUVLimited)
		if err != nil {
			t.Fatal(err)
		}
		// Studio range has 219 luma levels for 256: rounding costs up to
		// about 1.2 levels per step, 2 after the chroma terms.
		if d := maxDiff(t, src, out); d > 2 {
			t.Errorf("pad %d: decoded RGB differs from the original by up to %d levels, want <= 2", pad, d)
		}
	}
}

func TestDecodeYUYVGrayMatchesRGBLuma(t *testing.T) {
	src := testImage(32, 16)
	buf := toYUYV(src, 0)
	g, err := DecodeYUYVGray(nil, buf, 32, 16, YUVLimited)
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 16; y++ {
		for x := 0; x < 32; x++ {
			p := src.RGBAAt(x, y)
			want := 0.299*float64(p.R) + 0.587*float64(p.G) + 0.114*float64(p.B)
			if d := math.Abs(float64(g.GrayAt(x, y).Y) - want); d > 1.6 {
				t.Fatalf("pixel %d,%d: gray %d, want luma %.1f", x, y, g.GrayAt(x, y).Y, want)
			}
		}
	}
}

func TestDecodeYUYVErrors(t *testing.T) {
	if _, err := DecodeYUYV(nil, make([]byte, 10), 4, 4, YUVLimited); err == nil {
		t.Error("short buffer: want an error")
	}
	if _, err := DecodeYUYV(nil, make([]byte, 100), 5, 4, YUVLimited); err == nil {
		t.Error("odd width: want an error")
	}
	if _, err := DecodeYUYV(nil, nil, 0, 0, YUVLimited); err == nil {
		t.Error("zero size: want an error")
	}
}

func TestDecodeYUYVReusesBuffer(t *testing.T) {
	buf := toYUYV(testImage(64, 48), 0)
	first, err := DecodeYUYV(nil, buf, 64, 48, YUVLimited)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		out, err := DecodeYUYV(first, buf, 64, 48, YUVLimited)
		if err != nil || out != first {
			t.Fatal("buffer not reused")
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeYUYV allocates %v times per frame, want 0", allocs)
	}
}

func TestDecodeGrey(t *testing.T) {
	w, h, stride := 5, 3, 8
	buf := make([]byte, stride*h)
	for i := range buf {
		buf[i] = uint8(i)
	}
	img, err := DecodeGrey(nil, buf, w, h, false)
	if err != nil {
		t.Fatal(err)
	}
	g := img.(*image.Gray)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if got := g.GrayAt(x, y).Y; got != uint8(y*stride+x) {
				t.Fatalf("pixel %d,%d = %d, want %d", x, y, got, y*stride+x)
			}
		}
	}
	rgb, err := DecodeGrey(nil, buf, w, h, true)
	if err != nil {
		t.Fatal(err)
	}
	if c := rgb.(*image.RGBA).RGBAAt(2, 1); c != (color.RGBA{10, 10, 10, 255}) {
		t.Errorf("RGB pixel 2,1 = %v, want gray 10", c)
	}
}

// TestYCbCrToRGBAExact checks the JPEG colour conversion against the
// standard library for every subsampling ratio, on odd sizes and sub-images.
func TestYCbCrToRGBAExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	for _, ratio := range ratios {
		for _, r := range []image.Rectangle{image.Rect(0, 0, 17, 9), image.Rect(3, 1, 20, 12)} {
			src := image.NewYCbCr(r, ratio)
			for _, p := range [][]byte{src.Y, src.Cb, src.Cr} {
				for i := range p {
					p[i] = uint8(rng.IntN(256))
				}
			}
			dst := rgbaBuffer(nil, r.Dx(), r.Dy())
			ycbcrToRGBA(dst, src)
			for y := r.Min.Y; y < r.Max.Y; y++ {
				for x := r.Min.X; x < r.Max.X; x++ {
					c := src.YCbCrAt(x, y)
					rr, gg, bb := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
					got := dst.RGBAAt(x-r.Min.X, y-r.Min.Y)
					if got != (color.RGBA{rr, gg, bb, 255}) {
						t.Fatalf("%v %v: pixel %d,%d = %v, want %v", ratio, r, x, y, got, color.RGBA{rr, gg, bb, 255})
					}
				}
			}
		}
	}
}

// encodeJPEG encodes img with image/jpeg, which writes the Annex K tables.
func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stripDHT removes every DHT segment before the scan, as USB cameras send
// MJPEG, and returns the removed segments.
func stripDHT(t testing.TB, j []byte) (stripped, dht []byte) {
	t.Helper()
	out := append([]byte(nil), j[:2]...)
	pos := 2
	for pos+4 <= len(j) {
		m := j[pos+1]
		if m == markerSOS {
			return append(out, j[pos:]...), dht
		}
		n := int(j[pos+2])<<8 | int(j[pos+3])
		seg := j[pos : pos+2+n]
		if m == markerDHT {
			dht = append(dht, seg...)
		} else {
			out = append(out, seg...)
		}
		pos += 2 + n
	}
	t.Fatal("no SOS in test JPEG")
	return nil, nil
}

func TestStandardDHTMatchesImageJPEG(t *testing.T) {
	_, dht := stripDHT(t, encodeJPEG(t, testImage(16, 16)))
	if !bytes.Equal(dht, stdDHT) {
		t.Fatalf("the built-in DHT segment differs from the one image/jpeg writes (%d vs %d bytes)", len(stdDHT), len(dht))
	}
}

func TestFixMJPEG(t *testing.T) {
	orig := encodeJPEG(t, testImage(40, 24))
	noDHT, _ := stripDHT(t, orig)
	if _, err := jpeg.Decode(bytes.NewReader(noDHT)); err == nil {
		t.Fatal("image/jpeg decoded a frame without Huffman tables; the test frame is not what cameras send")
	}
	out, inserted, err := FixMJPEG(nil, noDHT)
	if err != nil || !inserted {
		t.Fatalf("FixMJPEG: inserted=%v err=%v", inserted, err)
	}
	want, err := jpeg.Decode(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	got, err := jpeg.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("decode fixed frame: %v", err)
	}
	if !bytes.Equal(got.(*image.YCbCr).Y, want.(*image.YCbCr).Y) || !bytes.Equal(got.(*image.YCbCr).Cr, want.(*image.YCbCr).Cr) {
		t.Error("the fixed frame decodes differently from the original")
	}
	// A frame with tables comes back untouched, without copying.
	same, inserted, err := FixMJPEG(nil, orig)
	if err != nil || inserted || &same[0] != &orig[0] {
		t.Errorf("frame with DHT: inserted=%v err=%v, want it returned as is", inserted, err)
	}
	// The fix-up reuses its buffer.
	buf := make([]byte, 0, len(out))
	if allocs := testing.AllocsPerRun(10, func() { _, _, _ = FixMJPEG(buf, noDHT) }); allocs != 0 {
		t.Errorf("FixMJPEG allocates %v times with a big enough buffer", allocs)
	}
}

func TestFixMJPEGRejectsGarbage(t *testing.T) {
	orig := encodeJPEG(t, testImage(8, 8))
	noDHT, _ := stripDHT(t, orig)
	cases := map[string][]byte{
		"empty":          nil,
		"not jpeg":       []byte("GIF89a......"),
		"truncated":      noDHT[:30],
		"bad length":     {0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff, 0, 0},
		"eoi before sos": {0xff, 0xd8, 0xff, 0xd9},
		"no marker":      {0xff, 0xd8, 0x12, 0x34, 0x56},
	}
	for name, data := range cases {
		if _, _, err := FixMJPEG(nil, data); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestMJPEGDecoder(t *testing.T) {
	src := testImage(48, 32)
	orig := encodeJPEG(t, src)
	noDHT, _ := stripDHT(t, orig)
	var d MJPEGDecoder
	want, err := jpeg.Decode(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	ref := image.NewRGBA(want.Bounds())
	for y := 0; y < 32; y++ {
		for x := 0; x < 48; x++ {
			r, g, b, _ := want.At(x, y).RGBA()
			ref.SetRGBA(x, y, color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255})
		}
	}
	var img image.Image
	for _, frame := range [][]byte{orig, noDHT, noDHT} {
		img, err = d.Decode(img, frame, ColorAuto)
		if err != nil {
			t.Fatal(err)
		}
		if diff := maxDiff(t, ref, img.(*image.RGBA)); diff != 0 {
			t.Fatalf("decoded frame differs from image/jpeg by %d levels", diff)
		}
	}
	g, err := d.Decode(nil, noDHT, ColorGray)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.(*image.Gray); !ok {
		t.Errorf("ColorGray gave %T", g)
	}
	if _, err := d.Decode(nil, noDHT[:len(noDHT)/2], ColorAuto); err == nil {
		t.Error("truncated frame: want an error")
	}
}
