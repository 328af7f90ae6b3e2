package metrics

import (
	"image"
	"math"
	"testing"
)

func TestRegionsFind(t *testing.T) {
	const w, h = 10, 8
	mask := make([]uint8, w*h)
	set := func(x, y int) { mask[y*w+x] = 255 }
	// A 3×2 block, a diagonal pair (one region by 8-connectivity) and a
	// single pixel.
	for y := 1; y < 3; y++ {
		for x := 1; x < 4; x++ {
			set(x, y)
		}
	}
	set(7, 5)
	set(8, 6)
	set(0, 7)
	var r Regions
	got := r.Find(mask, w, h, 0)
	want := []Box{{image.Rect(1, 1, 4, 3), 6}, {image.Rect(7, 5, 9, 7), 2}, {image.Rect(0, 7, 1, 8), 1}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("box %d: %v, want %v", i, got[i], want[i])
		}
	}
	if got := r.Find(mask, w, h, 2); len(got) != 2 || got[1].Area != 2 {
		t.Errorf("at most 2: %v", got)
	}
	// The same mask as the right part of a wider gray image: its stride is
	// not its width.
	g := image.NewGray(image.Rect(0, 0, w+5, h))
	for i, v := range mask {
		g.Pix[(i/w)*g.Stride+5+i%w] = v
	}
	sub := g.SubImage(image.Rect(5, 0, w+5, h)).(*image.Gray)
	got = r.FindGray(sub, 0)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sub-image box %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestBoxIoU(t *testing.T) {
	a := []Box{{Rectangle: image.Rect(0, 0, 4, 4)}}
	b := []Box{{Rectangle: image.Rect(2, 0, 6, 4)}}
	cases := []struct {
		pred, truth []Box
		want        float64
	}{
		{a, a, 1},
		{a, b, 8.0 / 24},
		{nil, a, 0},
		{a, nil, 0},
		{nil, nil, 1},
		// Overlapping boxes of one side count their pixels once.
		{append(append([]Box(nil), a...), b...), b, 16.0 / 24},
	}
	for i, c := range cases {
		if got := BoxIoU(c.pred, c.truth, 8, 8); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("case %d: IoU %v, want %v", i, got, c.want)
		}
	}
}

// Coarser histograms give nearly the same pixel AUROC and PRO in a small
// fraction of the memory.
func TestPixelsBits(t *testing.T) {
	fine, coarse := NewPixels(), NewPixelsBits(16)
	if len(coarse.pos) != 1<<16 {
		t.Fatalf("%d bins", len(coarse.pos))
	}
	const w, h = 64, 48
	amap := make([]float32, w*h)
	mask := make([]uint8, w*h)
	for img := range 8 {
		for i := range amap {
			x, y := i%w, i/w
			d := float64((x-20-img)*(x-20-img) + (y-20)*(y-20))
			amap[i] = float32(3*math.Exp(-d/60) + 0.3*math.Sin(float64(i*7+img)))
			mask[i] = 0
			if d < 40 {
				mask[i] = 1
			}
		}
		fine.Add(amap, mask, w, h)
		coarse.Add(amap, mask, w, h)
	}
	a1, _ := fine.AUROC()
	a2, _ := coarse.AUROC()
	p1, _ := fine.PRO(0.3)
	p2, _ := coarse.PRO(0.3)
	if math.Abs(a1-a2) > 0.002 || math.Abs(p1-p2) > 0.005 {
		t.Errorf("AUROC %.4f vs %.4f, PRO %.4f vs %.4f", a1, a2, p1, p2)
	}
	coarse.Reset()
	if _, err := coarse.AUROC(); err == nil {
		t.Error("AUROC after Reset")
	}
}

// BoxIoU counts a row of an image up to boxIoURow wide without a heap
// allocation (eval calls it per image, the recipe search per synthetic
// defect), and a wider image's row as a narrower one's.
func TestBoxIoURow(t *testing.T) {
	pred := []Box{{Rectangle: image.Rect(100, 50, 600, 300)}, {Rectangle: image.Rect(700, 40, 900, 90)}}
	truth := []Box{{Rectangle: image.Rect(300, 100, 800, 400)}}
	if n := testing.AllocsPerRun(10, func() { BoxIoU(pred, truth, 1024, 1024) }); n != 0 {
		t.Errorf("BoxIoU on a 1024-wide image: %v allocations, want none", n)
	}
	// The same boxes moved right beyond boxIoURow, on an image wide enough.
	dx := boxIoURow
	var pw, tw []Box
	for _, b := range pred {
		pw = append(pw, Box{Rectangle: b.Add(image.Pt(dx, 0))})
	}
	for _, b := range truth {
		tw = append(tw, Box{Rectangle: b.Add(image.Pt(dx, 0))})
	}
	if a, b := BoxIoU(pred, truth, 1024, 1024), BoxIoU(pw, tw, dx+1024, 1024); a != b || a == 0 {
		t.Errorf("IoU %v on a 1024-wide image, %v moved by %d on a wider one", a, b, dx)
	}
}
