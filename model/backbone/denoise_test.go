package backbone

import (
	"image"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// naiveMedian3 is the median of the 3×3 neighbourhood by sorting, the
// edge repeated: the definition Median3 must meet.
func naiveMedian3(img *image.RGBA, x, y, c int) byte {
	b := img.Rect
	var v []byte
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			xx := min(max(x+dx, 0), b.Dx()-1)
			yy := min(max(y+dy, 0), b.Dy()-1)
			v = append(v, img.Pix[yy*img.Stride+4*xx+c])
		}
	}
	slices.Sort(v)
	return v[4]
}

func TestMedian3MatchesSortedNeighbourhood(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewRGBA(image.Rect(0, 0, 37, 23)) // 148 samples a row: words and a tail
	for i := range img.Pix {
		img.Pix[i] = byte(r.IntN(256))
	}
	var m Median3
	out := m.Apply(img).(*image.RGBA)
	for y := range 23 {
		for x := range 37 {
			for c := range 4 {
				if got, want := out.Pix[y*out.Stride+4*x+c], naiveMedian3(img, x, y, c); got != want {
					t.Fatalf("(%d,%d) channel %d: %d, want %d", x, y, c, got, want)
				}
			}
		}
	}
}

// The bytewise minimum and maximum of eight bytes at once agree with
// min and max on every pair of levels, in every byte place.
func TestMinMax8EveryPair(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			for place := range 8 {
				x, y := uint64(a)<<(8*place)|0x0102030405060708&^(0xFF<<(8*place)), uint64(b)<<(8*place)
				lo, hi := minMax8(x, y)
				if got, want := byte(lo>>(8*place)), byte(min(a, b)); got != want {
					t.Fatalf("min(%d, %d) in byte %d: %d", a, b, place, got)
				}
				if got, want := byte(hi>>(8*place)), byte(max(a, b)); got != want {
					t.Fatalf("max(%d, %d) in byte %d: %d", a, b, place, got)
				}
			}
		}
	}
}

// A grayscale frame stays gray and is filtered the same way, and a frame
// of another colour model (a camera's NRGBA, a frame with an origin off
// zero) as its levels are, in its own model.
func TestMedian3GrayAndOtherModels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rgba := image.NewRGBA(image.Rect(0, 0, 19, 11)) // gray: two words and a tail a row
	gray := image.NewGray(rgba.Rect)
	for i := range gray.Pix {
		v := byte(r.IntN(256))
		gray.Pix[i] = v
		copy(rgba.Pix[4*i:], []byte{v, v, v, 255})
	}
	var m Median3
	g, ok := m.Apply(gray).(*image.Gray)
	if !ok {
		t.Fatalf("a gray frame came back as %T", m.Apply(gray))
	}
	for y := range 11 {
		for x := range 19 {
			if got, want := g.Pix[y*g.Stride+x], naiveMedian3(rgba, x, y, 0); got != want {
				t.Fatalf("gray (%d,%d): %d, want %d", x, y, got, want)
			}
		}
	}
	shifted := image.NewNRGBA(image.Rect(5, 7, 24, 18))
	for y := range 11 {
		copy(shifted.Pix[y*shifted.Stride:], rgba.Pix[y*rgba.Stride:y*rgba.Stride+4*19])
	}
	var m2 Median3
	out, ok := m2.Apply(shifted).(*image.NRGBA)
	if !ok {
		t.Fatalf("an NRGBA frame came back as %T", m2.Apply(shifted))
	}
	for y := range 11 {
		for x := range 19 {
			if got, want := out.Pix[y*out.Stride+4*x], naiveMedian3(rgba, x, y, 0); got != want {
				t.Fatalf("shifted NRGBA (%d,%d): %d, want %d", x, y, got, want)
			}
		}
	}
}

// BenchmarkMedian3 times the median filter on a 640×480 frame (colour
// and gray) against the backbone's pass on it in the same run, taking
// turns frame by frame so that machine noise hits both: preprocessing and
// invoke, on the builtin kernels and on the int8 variant (XNNPACK) that
// model.optimize: int8 runs. The ratios are the filter's share of a pass.
// allocs/op must be 0.
func BenchmarkMedian3(b *testing.B) {
	for _, tc := range []struct {
		name string
		img  image.Image
	}{
		{"rgba-640x480", camTexture(640, 480, 1)},
		{"gray-640x480", grayOf(camTexture(640, 480, 1))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bbs := []*Backbone{open(b, Options{}), open(b, Options{Optimize: OptimizeInt8})}
			var m Median3
			for _, bb := range bbs {
				if _, _, err := bb.Extract(m.Apply(tc.img)); err != nil {
					b.Fatal(err)
				}
			}
			var t [3]time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s := time.Now()
				f := m.Apply(tc.img)
				t[0] += time.Since(s)
				for k, bb := range bbs {
					s := time.Now()
					if _, err := bb.SetInput(f); err != nil {
						b.Fatal(err)
					}
					if err := bb.Invoke(); err != nil {
						b.Fatal(err)
					}
					t[k+1] += time.Since(s)
				}
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(ms(t[0]), "median-ms/frame")
			b.ReportMetric(ms(t[1]), "builtin-ms/frame")
			b.ReportMetric(ms(t[2]), "int8-ms/frame")
			b.ReportMetric(float64(t[0])/float64(t[1]), "median/builtin")
			b.ReportMetric(float64(t[0])/float64(t[2]), "median/int8")
		})
	}
}

// grayOf is img's first channel as a gray frame.
func grayOf(img *image.RGBA) *image.Gray {
	g := image.NewGray(img.Rect)
	for i := range g.Pix {
		g.Pix[i] = img.Pix[4*i]
	}
	return g
}
