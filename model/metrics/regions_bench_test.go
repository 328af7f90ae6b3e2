package metrics

import (
	"fmt"
	"image"
	"testing"
)

// boxIoUBefore is BoxIoU as it was before it counted rows on its stack
// (a row from the heap per call): BenchmarkBoxIoU's baseline.
func boxIoUBefore(pred, truth []Box, w, h int) float64 {
	if len(pred) == 0 && len(truth) == 0 {
		return 1
	}
	if len(pred) == 0 || len(truth) == 0 {
		return 0
	}
	var inter, union int
	cover := make([]uint8, w)
	for y := range h {
		any := false
		for _, set := range [2][]Box{pred, truth} {
			for _, b := range set {
				if y >= b.Min.Y && y < b.Max.Y {
					any = true
				}
			}
		}
		if !any {
			continue
		}
		clear(cover)
		for k, set := range [2][]Box{pred, truth} {
			for _, b := range set {
				if y < b.Min.Y || y >= b.Max.Y {
					continue
				}
				for x := max(b.Min.X, 0); x < min(b.Max.X, w); x++ {
					cover[x] |= 1 << k
				}
			}
		}
		for _, c := range cover {
			if c == 3 {
				inter++
			}
			if c != 0 {
				union++
			}
		}
	}
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// BenchmarkBoxIoU is BoxIoU against boxIoUBefore on a defect's boxes of
// an MVTec-sized image (1024) and a small one (256), and checks that they
// agree.
func BenchmarkBoxIoU(b *testing.B) {
	for _, w := range []int{256, 1024} {
		s := w / 256
		pred := []Box{{Rectangle: image.Rect(25*s, 12*s, 150*s, 75*s)}, {Rectangle: image.Rect(175*s, 10*s, 225*s, 22*s)}}
		truth := []Box{{Rectangle: image.Rect(75*s, 25*s, 200*s, 100*s)}}
		if a, o := BoxIoU(pred, truth, w, w), boxIoUBefore(pred, truth, w, w); a != o {
			b.Fatalf("%d wide: IoU %v, before %v", w, a, o)
		}
		for _, c := range []struct {
			name string
			f    func([]Box, []Box, int, int) float64
		}{{"before", boxIoUBefore}, {"now", BoxIoU}} {
			b.Run(fmt.Sprintf("%s/%d", c.name, w), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.f(pred, truth, w, w)
				}
			})
		}
	}
}
