package backbone

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// texture is a colourful test frame with fine detail (noise), edges and
// smooth gradients, like a camera image of a part.
func camTexture(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			base := 110 + 60*math.Sin(6*fx+2*fy) + 30*math.Cos(11*fy)
			if (x/37+y/23)%5 == 0 {
				base += 50 // blocks with hard edges
			}
			n := rng.NormFloat64() * 8
			img.SetRGBA(x, y, color.RGBA{
				clampByte(base + n + 30*fx),
				clampByte(base*0.9 + n - 20*fy),
				clampByte(base*0.7 + n + 40*fx*fy), 255})
		}
	}
	return img
}

func clampByte(v float64) uint8 { return uint8(min(max(math.Round(v), 0), 255)) }

// input is a copy of the uint8 input tensor.
func input(b *Backbone) []uint8 {
	return append([]uint8(nil), unsafe.Slice((*uint8)(b.in), b.inW*b.inH*b.inC)...)
}

// compare reports the largest and the mean absolute difference.
func compare(a, b []uint8) (worst int, mean float64) {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		d = max(d, -d)
		worst = max(worst, d)
		sum += d
	}
	return worst, float64(sum) / float64(len(a))
}

// rotated is a test double of capture.Rotated.
type rotated struct {
	src image.Image
	deg int
}

func (r rotated) ColorModel() color.Model { return r.src.ColorModel() }
func (r rotated) Bounds() image.Rectangle {
	b := r.src.Bounds()
	if r.deg == 90 || r.deg == 270 {
		return image.Rect(0, 0, b.Dy(), b.Dx())
	}
	return image.Rect(0, 0, b.Dx(), b.Dy())
}
func (r rotated) At(x, y int) color.Color {
	b := r.src.Bounds()
	sw, sh := b.Dx(), b.Dy()
	switch r.deg {
	case 90:
		return r.src.At(b.Min.X+y, b.Min.Y+sh-1-x)
	case 180:
		return r.src.At(b.Min.X+sw-1-x, b.Min.Y+sh-1-y)
	case 270:
		return r.src.At(b.Min.X+sw-1-y, b.Min.Y+x)
	}
	return r.src.At(b.Min.X+x, b.Min.Y+y)
}
func (r rotated) Unrotated() (image.Image, int) { return r.src, r.deg }

// yuyv is a test double of capture.YUYV (limited range).
type yuyv struct {
	pix    []byte
	stride int
	rect   image.Rectangle
}

func (p *yuyv) ColorModel() color.Model { return color.RGBAModel }
func (p *yuyv) Bounds() image.Rectangle { return p.rect }
func (p *yuyv) At(x, y int) color.Color {
	o := (y-p.rect.Min.Y)*p.stride + 4*(x/2-p.rect.Min.X/2)
	s := p.pix[o : o+4]
	yy := 1.164383 * (float64(s[2*(x&1)]) - 16)
	u, v := float64(s[1])-128, float64(s[3])-128
	return color.RGBA{clampByte(yy + 1.596027*v), clampByte(yy - 0.391762*u - 0.812968*v), clampByte(yy + 2.017232*u), 255}
}
func (p *yuyv) PackedYUYV() ([]byte, int, image.Rectangle, bool) {
	return p.pix, p.stride, p.rect, false
}
func (p *yuyv) sub(r image.Rectangle) *yuyv {
	return &yuyv{pix: p.pix[(r.Min.Y-p.rect.Min.Y)*p.stride+4*(r.Min.X/2-p.rect.Min.X/2):], stride: p.stride, rect: r}
}

func toYUYV(img *image.RGBA) *yuyv {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := &yuyv{pix: make([]byte, 2*w*h), stride: 2 * w, rect: img.Rect}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x += 2 {
			var ys [2]float64
			var us, vs float64
			for i := 0; i < 2; i++ {
				p := img.RGBAAt(x+i, y)
				R, G, B := float64(p.R), float64(p.G), float64(p.B)
				l := 0.299*R + 0.587*G + 0.114*B
				ys[i] = 16 + 219*l/255
				us += 128 + 224*(B-l)/1.772/255/2
				vs += 128 + 224*(R-l)/1.402/255/2
			}
			o := y*2*w + 2*x
			out.pix[o], out.pix[o+1], out.pix[o+2], out.pix[o+3] = clampByte(ys[0]), clampByte(us), clampByte(ys[1]), clampByte(vs)
		}
	}
	return out
}

// studioView is a test double of align's view of a YUYV frame: Y'CbCr
// planes holding studio-range samples (StudioYCbCr), At converting them
// with the studio matrix.
type studioView struct{ m *image.YCbCr }

func (s studioView) StudioYCbCr() *image.YCbCr { return s.m }
func (s studioView) ColorModel() color.Model   { return color.RGBAModel }
func (s studioView) Bounds() image.Rectangle   { return s.m.Rect }
func (s studioView) At(x, y int) color.Color {
	yy := 1.164383 * (float64(s.m.Y[s.m.YOffset(x, y)]) - 16)
	ci := s.m.COffset(x, y)
	u, v := float64(s.m.Cb[ci])-128, float64(s.m.Cr[ci])-128
	return color.RGBA{clampByte(yy + 1.596027*v), clampByte(yy - 0.391762*u - 0.812968*v), clampByte(yy + 2.017232*u), 255}
}
func (s studioView) SubImage(r image.Rectangle) image.Image {
	return studioView{s.m.SubImage(r).(*image.YCbCr)}
}

// studioOf is img as studio-range Y'CbCr planes of the given subsampling.
func studioOf(img *image.RGBA, ratio image.YCbCrSubsampleRatio) studioView {
	out := image.NewYCbCr(img.Rect, ratio)
	for y := 0; y < img.Rect.Dy(); y++ {
		for x := 0; x < img.Rect.Dx(); x++ {
			p := img.RGBAAt(x, y)
			R, G, B := float64(p.R), float64(p.G), float64(p.B)
			l := 0.299*R + 0.587*G + 0.114*B
			out.Y[out.YOffset(x, y)] = clampByte(16 + 219*l/255)
			ci := out.COffset(x, y)
			out.Cb[ci], out.Cr[ci] = clampByte(128+224*(B-l)/1.772/255), clampByte(128+224*(R-l)/1.402/255)
		}
	}
	return studioView{out}
}

// yccOf is img as Y'CbCr planes of the given subsampling (chroma averaged
// over each sample's pixels), as a JPEG decoder delivers them.
func yccOf(tb testing.TB, img *image.RGBA, ratio image.YCbCrSubsampleRatio) *image.YCbCr {
	tb.Helper()
	out := image.NewYCbCr(img.Rect, ratio)
	for y := 0; y < img.Rect.Dy(); y++ {
		for x := 0; x < img.Rect.Dx(); x++ {
			p := img.RGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(p.R, p.G, p.B)
			out.Y[out.YOffset(x, y)] = yy
			ci := out.COffset(x, y)
			out.Cb[ci], out.Cr[ci] = cb, cr // the last pixel of each sample wins: close enough
		}
	}
	return out
}

// plain copies any image into RGBA pixel by pixel: the reference path's
// own view of it.
func plain(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			out.Set(x, y, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return out
}

// The fused pass writes the input the reference path (full-resolution RGBA,
// then the two float passes) writes, for every kind of frame the camera
// path delivers (and the aligned view of a YUYV frame: studio-range 4:2:2
// or 4:2:0 planes), regions of them, rotations and every resize mode.
func TestFusedMatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("pixel arithmetic alone, no goroutines: 29 s under -race (make test's race run is -short)")
	}
	src := camTexture(641, 363, 1) // odd sizes: chroma pairs cut in half
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, src, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	ycc, err := jpeg.Decode(&jb)
	if err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(src.Rect)
	for i := range gray.Pix {
		gray.Pix[i] = src.Pix[4*i+1]
	}
	kinds := map[string]image.Image{"rgba": src, "gray": gray, "ycbcr420": ycc, "yuyv": toYUYV(camTexture(640, 363, 1)),
		"studio422": studioOf(src, image.YCbCrSubsampleRatio422), "studio420": studioOf(src, image.YCbCrSubsampleRatio420)}
	roi := image.Rect(101, 37, 533, 301) // odd corner: chroma halves
	for _, mode := range []ResizeMode{ResizeSquash, ResizeFit, ResizeCrop} {
		b := open(t, Options{Preprocess: Preprocess{Resize: mode}})
		for name, img := range kinds {
			var sub image.Image
			switch m := img.(type) {
			case *yuyv:
				sub = m.sub(roi)
			default:
				sub = img.(interface {
					SubImage(image.Rectangle) image.Image
				}).SubImage(roi)
			}
			for _, rot := range []int{0, 90, 180, 270} {
				for _, cut := range []bool{false, true} {
					in := img
					if cut {
						in = sub
					}
					var view image.Image = in
					if rot != 0 {
						view = rotated{in, rot}
					}
					if _, err := b.SetInputReference(plain(view), nil); err != nil {
						t.Fatal(err)
					}
					want := input(b)
					reg, err := b.SetInput(view)
					if err != nil {
						t.Fatal(err)
					}
					got := input(b)
					worst, mean := compare(want, got)
					// Same filter, same geometry: rounding for RGBA and gray.
					// Y'CbCr and YUYV: the chroma is resampled from its own
					// subsampled plane (not repeated to full resolution
					// first), and colours that clip are clipped after
					// resampling instead of pixel by pixel (this texture
					// saturates some).
					limW, limM := 1, 0.01
					if name == "ycbcr420" || name == "yuyv" || name == "studio422" || name == "studio420" {
						limW, limM = 16, 0.3
					}
					if worst > limW || mean > limM {
						t.Errorf("%s %s rot %d roi %v: input differs from the reference by up to %d levels, %.3f on average",
							mode, name, rot, cut, worst, mean)
					}
					if mode == ResizeFit && reg == (Region{0, 0, 1, 1}) {
						t.Errorf("%s: fit mode filled the whole input", name)
					}
				}
			}
		}
	}
}

// Photometric standardization: statistics from a subsampled pass, the map
// applied after resampling, against the reference's full-resolution LUT.
func TestFusedStandardizationMatchesReference(t *testing.T) {
	b := open(t, Options{Preprocess: Preprocess{Resize: ResizeFit}})
	for _, img := range []image.Image{camTexture(1280, 720, 3), camTexture(333, 500, 4)} {
		for _, dark := range []bool{false, true} {
			if dark { // a dim, low-contrast exposure of the same part
				m := img.(*image.RGBA)
				d := image.NewRGBA(m.Rect)
				for i, v := range m.Pix {
					d.Pix[i] = uint8(30 + int(v)/4)
				}
				img = d
			}
			var std Standardizer
			if _, err := b.SetInputReference(img, &std); err != nil {
				t.Fatal(err)
			}
			want := input(b)
			if _, err := b.SetInputWith(img, std.Measure(img)); err != nil {
				t.Fatal(err)
			}
			worst, mean := compare(want, input(b))
			if worst > 6 || mean > 0.6 {
				t.Errorf("%v dark=%v: standardized input differs from the reference by up to %d levels, %.3f on average",
					img.Bounds(), dark, worst, mean)
			}
		}
	}
}

// Steady state allocates nothing, for every kind of frame.
func TestFusedNoAllocations(t *testing.T) {
	b := open(t, Options{})
	src := camTexture(320, 240, 5)
	var jb bytes.Buffer
	_ = jpeg.Encode(&jb, src, nil)
	ycc, _ := jpeg.Decode(&jb)
	var std Standardizer
	for _, img := range []image.Image{src, ycc, toYUYV(src), rotated{ycc, 90}} {
		if _, err := b.SetInputWith(img, std.Measure(img)); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(5, func() { _, _ = b.SetInputWith(img, std.Measure(img)) }); n != 0 {
			t.Errorf("%T: %v allocations per frame", img, n)
		}
	}
}

// SourceNeed: the input pixels an image fills, so that a camera reduces a
// frame no further than the network's resolution.
func TestSourceNeed(t *testing.T) {
	for _, c := range []struct {
		mode         ResizeMode
		w, h, nw, nh int
	}{
		{ResizeSquash, 1280, 720, 224, 224},
		{ResizeSquash, 100, 720, 100, 224},
		{ResizeFit, 1280, 720, 224, 126},
		{ResizeCrop, 1280, 720, 399, 224},
		{ResizeCrop, 720, 1280, 224, 399},
	} {
		b := open(t, Options{Preprocess: Preprocess{Resize: c.mode}})
		if w, h := b.SourceNeed(c.w, c.h); w != c.nw || h != c.nh {
			t.Errorf("%s %dx%d: need %dx%d, want %dx%d", c.mode, c.w, c.h, w, h, c.nw, c.nh)
		}
	}
}
