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

// smoothImage is a colourful image without edges, whose r×r block means a
// DCT-domain reduction must reproduce closely.
func smoothImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			img.SetRGBA(x, y, color.RGBA{
				uint8(128 + 100*math.Sin(2*math.Pi*(fx+0.3*fy))),
				uint8(128 + 90*math.Cos(2*math.Pi*(1.5*fy-0.5*fx))),
				uint8(60 + 150*fx*fy), 255})
		}
	}
	return img
}

// maxLumaDiff is the largest difference of BT.601 luma between two images.
func maxLumaDiff(a, b *image.RGBA) float64 {
	worst := 0.0
	for i := 0; i+3 < len(a.Pix) && i+3 < len(b.Pix); i += 4 {
		la := 0.299*float64(a.Pix[i]) + 0.587*float64(a.Pix[i+1]) + 0.114*float64(a.Pix[i+2])
		lb := 0.299*float64(b.Pix[i]) + 0.587*float64(b.Pix[i+1]) + 0.114*float64(b.Pix[i+2])
		worst = max(worst, math.Abs(la-lb))
	}
	return worst
}

// jpegTolerance is how far libjpeg-turbo's decoding may differ from
// image/jpeg's: both invert the DCT exactly in integers, with different
// rounding (0 where the build decodes with image/jpeg itself).
var jpegTolerance = map[bool]int{true: 3, false: 0}[turboAvailable]

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

func TestStripHuffmanTables(t *testing.T) {
	orig := encodeJPEG(t, testImage(40, 24))
	want, _ := stripDHT(t, orig)
	got, err := StripHuffmanTables(nil, orig)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("StripHuffmanTables: %d bytes, err %v; want the %d bytes without DHT", len(got), err, len(want))
	}
	if again, _ := StripHuffmanTables(nil, got); !bytes.Equal(again, got) {
		t.Error("a frame without tables changed")
	}
	if _, err := StripHuffmanTables(nil, []byte("GIF89a")); err == nil {
		t.Error("not a JPEG: want an error")
	}
}

func TestSplitMJPEG(t *testing.T) {
	a := encodeJPEG(t, testImage(40, 24))
	b, _ := stripDHT(t, encodeJPEG(t, smoothImage(64, 48)))
	var stream []byte
	stream = append(stream, a...)
	stream = append(stream, b...)
	stream = append(stream, "\r\n--boundary\r\n"...) // bytes between frames are skipped
	stream = append(stream, a...)
	frames, err := SplitMJPEG(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 3 || !bytes.Equal(frames[0], a) || !bytes.Equal(frames[1], b) || !bytes.Equal(frames[2], a) {
		t.Fatalf("split into %d frames", len(frames))
	}
	for name, bad := range map[string][]byte{
		"no frame":  []byte("hello"),
		"truncated": stream[:len(a)+len(b)/2],
	} {
		if _, err := SplitMJPEG(bad); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
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
	want, err := jpeg.Decode(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	ref := convertInto(nil, want, ColorRGB).(*image.RGBA)
	for _, std := range []bool{true, false} {
		d := MJPEGDecoder{Std: std}
		tol := jpegTolerance
		if std {
			tol = 0 // image/jpeg itself
		}
		var img image.Image
		for _, frame := range [][]byte{orig, noDHT, noDHT} {
			img, err = d.Decode(img, frame, ColorAuto)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := img.(*image.YCbCr); !ok {
				t.Fatalf("std=%v: ColorAuto gave %T, want the JPEG's planes", std, img)
			}
			if diff := maxDiff(t, ref, flat(img)); diff > tol {
				t.Fatalf("std=%v: decoded frame differs from image/jpeg by %d levels, want <= %d", std, diff, tol)
			}
		}
		rgb, err := d.Decode(nil, noDHT, ColorRGB)
		if err != nil {
			t.Fatal(err)
		}
		// libjpeg-turbo interpolates the chroma it converts to RGB (image/jpeg
		// repeats it), which moves colours across testImage's hard edges:
		// compare the luma there (which moves only where a colour clips).
		if diff := maxLumaDiff(ref, rgb.(*image.RGBA)); diff > float64(2*tol) {
			t.Errorf("std=%v: ColorRGB's luma differs from image/jpeg's by %.1f levels", std, diff)
		}
		g, err := d.Decode(nil, noDHT, ColorGray)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := g.(*image.Gray); !ok {
			t.Errorf("std=%v: ColorGray gave %T", std, g)
		}
		if _, err := d.Decode(nil, noDHT[:len(noDHT)/2], ColorAuto); err == nil {
			t.Errorf("std=%v: truncated frame: want an error", std)
		}
		d.Close()
	}
}

// The DCT-domain reduction: the largest of 1/2, 1/4, 1/8 that keeps what
// the consumer needs, agreeing with a full decode averaged down.
func TestMJPEGDecodeScaled(t *testing.T) {
	if !turboAvailable {
		t.Skip("built without libjpeg-turbo: frames decode at full resolution")
	}
	src := smoothImage(640, 360)
	frame, _ := stripDHT(t, encodeJPEG(t, src))
	var d MJPEGDecoder
	defer d.Close()
	full, err := d.Decode(nil, frame, ColorRGB)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		needW, needH, reduce int
	}{
		{640, 360, 1}, {320, 180, 2}, {300, 100, 2}, {160, 45, 4}, {80, 45, 4}, {40, 22, 8}, {10, 10, 8}, {321, 10, 1},
	} {
		need := func(w, h int) (int, int) { return c.needW, c.needH }
		for _, color := range []Color{ColorAuto, ColorRGB, ColorGray} {
			img, r, err := d.DecodeScaled(nil, frame, color, need)
			if err != nil {
				t.Fatal(err)
			}
			if r != c.reduce {
				t.Fatalf("need %dx%d: reduced by %d, want %d", c.needW, c.needH, r, c.reduce)
			}
			if b := img.Bounds(); b.Dx() != (640+r-1)/r || b.Dy() != (360+r-1)/r {
				t.Fatalf("reduced by %d: %v", r, b)
			}
			if color == ColorGray {
				continue
			}
			// Each pixel is close to the mean of its r×r block at full
			// resolution (the scaled IDCT is a low-pass, not a box).
			// The luma tightly; the colours within what repeating rather
			// than interpolating the chroma (ColorAuto's planes, flattened)
			// moves them at 1/8 of this image.
			got := flat(img)
			fr := full.(*image.RGBA)
			worst, worstLuma := 0.0, 0.0
			for y := 1; y < got.Rect.Dy()-1; y++ {
				for x := 1; x < got.Rect.Dx()-1; x++ {
					var mean [3]float64
					for ch := 0; ch < 3; ch++ {
						sum := 0
						for dy := 0; dy < r; dy++ {
							for dx := 0; dx < r; dx++ {
								sum += int(fr.Pix[fr.PixOffset(x*r+dx, y*r+dy)+ch])
							}
						}
						mean[ch] = float64(sum) / float64(r*r)
						worst = max(worst, math.Abs(float64(got.Pix[got.PixOffset(x, y)+ch])-mean[ch]))
					}
					p := got.Pix[got.PixOffset(x, y):]
					luma := 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
					worstLuma = max(worstLuma, math.Abs(luma-(0.299*mean[0]+0.587*mean[1]+0.114*mean[2])))
				}
			}
			if worstLuma > 4 || worst > 12 {
				t.Errorf("reduced by %d (%v): a pixel differs from its block's mean by %.1f levels of luma, %.0f of a colour",
					r, color, worstLuma, worst)
			}
		}
	}
	// Reused buffers: nothing allocated per frame.
	need := func(w, h int) (int, int) { return 224, 224 }
	img, _, _ := d.DecodeScaled(nil, frame, ColorAuto, need)
	if n := testing.AllocsPerRun(10, func() { img, _, _ = d.DecodeScaled(img, frame, ColorAuto, need) }); n != 0 {
		t.Errorf("DecodeScaled allocates %v times per frame", n)
	}
}

// Every subsampling libjpeg-turbo writes, at sizes that are and are not
// whole MCUs, at every reduction: the Y'CbCr planes (written with the
// padding libjpeg-turbo adds to partial MCUs; a buffer without it was
// overrun into the chroma planes) agree with libjpeg-turbo's own RGB
// output: the luma exactly up to rounding, the chroma on average (RGB
// output interpolates the chroma, the planes keep it).
func TestMJPEGPlanesEverySubsampling(t *testing.T) {
	if !turboAvailable {
		t.Skip("built without libjpeg-turbo")
	}
	ratios := []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411}
	for _, ratio := range ratios {
		for _, size := range []image.Point{{640, 360}, {333, 211}, {328, 248}, {1288, 728}} {
			frame, err := EncodeJPEG(nil, smoothImage(size.X, size.Y), 90, ratio)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []int{1, 2, 4, 8} {
				k := map[bool]int{true: 2, false: 1}[r == 8] // 1/8 keeps twice the need
				need := func(w, h int) (int, int) { return (w + r - 1) / r / k, (h + r - 1) / r / k }
				var d MJPEGDecoder
				planes, got, err := d.DecodeScaled(nil, frame, ColorAuto, need)
				if err != nil || got != r {
					t.Fatalf("%v %v 1/%d: reduced by %d, err %v", ratio, size, r, got, err)
				}
				if y, ok := planes.(*image.YCbCr); !ok || y.SubsampleRatio != ratio {
					t.Fatalf("%v %v 1/%d: decoded as %T", ratio, size, r, planes)
				}
				rgb, _, err := d.DecodeScaled(nil, frame, ColorRGB, need)
				if err != nil {
					t.Fatal(err)
				}
				d.Close()
				a, b := flat(planes), rgb.(*image.RGBA)
				if l := maxLumaDiff(a, b); l > 2.5 {
					t.Errorf("%v %v 1/%d: luma differs by %.1f levels", ratio, size, r, l)
				}
				// Row by row: an overrun plane shows as a row far off.
				for y := 0; y < a.Rect.Dy(); y++ {
					sum := 0
					for i, v := range a.Pix[y*a.Stride : (y+1)*a.Stride] {
						dv := int(v) - int(b.Pix[y*b.Stride+i])
						sum += max(dv, -dv)
					}
					if mean := float64(sum) / float64(a.Stride); mean > 8 {
						t.Errorf("%v %v 1/%d: row %d's colours differ by %.1f levels on average", ratio, size, r, y, mean)
						break
					}
				}
			}
		}
	}
}

// EncodeYUYV is the inverse of the decoder, to rounding.
func TestEncodeYUYVRoundTrip(t *testing.T) {
	src := testImage(64, 48)
	buf, err := EncodeYUYV(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if want := toYUYV(src, 0); !bytes.Equal(buf, want) {
		n := 0
		for i := range buf {
			if d := int(buf[i]) - int(want[i]); d > 1 || d < -1 {
				n++
			}
		}
		if n > 0 {
			t.Errorf("%d samples differ from the reference packing by more than rounding", n)
		}
	}
	if _, err := EncodeYUYV(nil, testImage(63, 4)); err == nil {
		t.Error("odd width: want an error")
	}
}
