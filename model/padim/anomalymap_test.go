package padim

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveMap is the textbook version: bilinear upsampling pixel by pixel
// (align_corners=False, clamped to the region's cells), then a 2-D
// separable blur over the full image with reflected borders.
func naiveMap(dist []float32, gw, gh, ow, oh int, sigma float64, r Rect) []float64 {
	if r == (Rect{}) {
		r = Rect{0, 0, 1, 1}
	}
	clampAxis := func(n int, r0, r1, f float64) (int, int, float64) {
		kmin := int(math.Ceil(r0*float64(n) - 0.5))
		kmax := int(math.Floor(r1*float64(n) - 0.5))
		if kmin > kmax {
			c := int((r0 + r1) / 2 * float64(n))
			kmin, kmax = c, c
		}
		g := (r0+f*(r1-r0))*float64(n) - 0.5
		g = math.Min(math.Max(g, float64(kmin)), float64(kmax))
		k0 := int(math.Floor(g))
		return k0, min(k0+1, kmax), g - float64(k0)
	}
	up := make([]float64, ow*oh)
	for y := range oh {
		y0, y1, ty := clampAxis(gh, r.Y0, r.Y1, (float64(y)+0.5)/float64(oh))
		for x := range ow {
			x0, x1, tx := clampAxis(gw, r.X0, r.X1, (float64(x)+0.5)/float64(ow))
			at := func(yy, xx int) float64 { return float64(dist[yy*gw+xx]) }
			up[y*ow+x] = (1-ty)*((1-tx)*at(y0, x0)+tx*at(y0, x1)) + ty*((1-tx)*at(y1, x0)+tx*at(y1, x1))
		}
	}
	k := gaussianKernel(sigma * float64(min(ow, oh)) / 224)
	rad := len(k) / 2
	tmp := make([]float64, ow*oh)
	for y := range oh {
		for x := range ow {
			for t, w := range k {
				tmp[y*ow+x] += w * up[y*ow+reflect(x+t-rad, ow)]
			}
		}
	}
	out := make([]float64, ow*oh)
	for y := range oh {
		for x := range ow {
			for t, w := range k {
				out[y*ow+x] += w * tmp[reflect(y+t-rad, oh)*ow+x]
			}
		}
	}
	return out
}

func TestAnomalyMapMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		gw, gh, ow, oh int
		sigma          float64
		region         Rect
	}{
		{7, 5, 40, 31, DefaultSigma, Rect{}},
		{14, 14, 224, 224, DefaultSigma, Rect{}},
		{14, 14, 100, 380, DefaultSigma, Rect{0.3, 0, 0.7, 1}}, // letterboxed portrait tile
		{8, 8, 64, 20, 0, Rect{0, 0.25, 1, 0.75}},
		{6, 6, 9, 9, 20, Rect{}},                        // kernel much wider than the image
		{6, 6, 30, 30, 4, Rect{0.42, 0.42, 0.45, 0.45}}, // region inside one cell
		{1, 1, 5, 3, 4, Rect{}},
	} {
		dist := make([]float32, tc.gw*tc.gh)
		for i := range dist {
			dist[i] = r.Float32() * 10
		}
		m, err := NewAnomalyMap(AnomalyMapOptions{GridW: tc.gw, GridH: tc.gh, OutW: tc.ow, OutH: tc.oh, Sigma: tc.sigma, Region: tc.region})
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, tc.ow*tc.oh)
		score, err := m.Render(dst, dist)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveMap(dist, tc.gw, tc.gh, tc.ow, tc.oh, tc.sigma, tc.region)
		wantMax := math.Inf(-1)
		for i, v := range want {
			wantMax = math.Max(wantMax, v)
			if math.Abs(float64(dst[i])-v) > 1e-4*10 {
				t.Fatalf("%+v: pixel (%d,%d) = %v, naive %v", tc, i%tc.ow, i/tc.ow, dst[i], v)
			}
		}
		if math.Abs(float64(score)-wantMax) > 1e-3 {
			t.Fatalf("%+v: score %v, naive max %v", tc, score, wantMax)
		}
	}
}

// Letterbox padding must not leak into the map: cells outside the region
// hold huge distances, the image's cells small ones.
func TestAnomalyMapRegionExcludesPadding(t *testing.T) {
	const g = 16
	dist := make([]float32, g*g)
	for y := range g {
		for x := range g {
			dist[y*g+x] = 1000
			if y >= 4 && y < 12 { // the image occupies rows 4..11: Y 0.25..0.75
				dist[y*g+x] = 1 + float32(x%2)
			}
		}
	}
	m, err := NewAnomalyMap(AnomalyMapOptions{GridW: g, GridH: g, OutW: 640, OutH: 320, Sigma: DefaultSigma, Region: Rect{0, 0.25, 1, 0.75}})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 640*320)
	score, _ := m.Render(dst, dist)
	if score > 2 || score < 1 {
		t.Fatalf("score %v: padding leaked into the map", score)
	}
	if r := RegionOf(image.Rect(0, 56, 224, 168), 224, 224); r != (Rect{0, 0.25, 1, 0.75}) {
		t.Fatalf("RegionOf: %+v", r)
	}
	if got := m.SigmaPixels(); math.Abs(got-4*320.0/224) > 1e-12 {
		t.Fatalf("sigma %v px, want %v", got, 4*320.0/224)
	}
}

func TestAnomalyMapConstantAndErrors(t *testing.T) {
	m, err := NewAnomalyMap(AnomalyMapOptions{GridW: 28, GridH: 28, OutW: 333, OutH: 250, Sigma: DefaultSigma})
	if err != nil {
		t.Fatal(err)
	}
	dist := make([]float32, 28*28)
	for i := range dist {
		dist[i] = 3.5
	}
	dst := make([]float32, 333*250)
	score, _ := m.Render(dst, dist)
	for _, v := range dst {
		if math.Abs(float64(v)-3.5) > 1e-5 {
			t.Fatalf("constant grid gave %v", v)
		}
	}
	if math.Abs(float64(score)-3.5) > 1e-5 {
		t.Fatalf("score %v", score)
	}
	if n := testing.AllocsPerRun(5, func() { _, _ = m.Render(dst, dist) }); n != 0 {
		t.Errorf("%v allocs per Render", n)
	}
	if _, err := m.Render(dst[:5], dist); err == nil {
		t.Error("short destination accepted")
	}
	if _, err := m.Render(dst, dist[:5]); err == nil {
		t.Error("short grid accepted")
	}
	for _, o := range []AnomalyMapOptions{
		{GridW: 0, GridH: 1, OutW: 1, OutH: 1},
		{GridW: 1, GridH: 1, OutW: 1, OutH: 1, Sigma: -1},
		{GridW: 1, GridH: 1, OutW: 1, OutH: 1, Region: Rect{0.5, 0, 0.4, 1}},
		{GridW: 1, GridH: 1, OutW: 1, OutH: 1, Region: Rect{0, 0, 1, 1.5}},
	} {
		if _, err := NewAnomalyMap(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestKernelAndReflect(t *testing.T) {
	k := gaussianKernel(4)
	var sum float64
	for _, v := range k {
		sum += v
	}
	if len(k) != 33 || math.Abs(sum-1) > 1e-12 || k[16] <= k[15] || k[15] != k[17] {
		t.Fatalf("kernel for sigma 4: len %d sum %v", len(k), sum)
	}
	// torch "reflect" on 0 1 2 3: ... 2 1 | 0 1 2 3 | 2 1 0 1 ...
	want := map[int]int{-3: 3, -2: 2, -1: 1, 0: 0, 3: 3, 4: 2, 5: 1, 6: 0, 7: 1, 12: 0}
	for i, w := range want {
		if got := reflect(i, 4); got != w {
			t.Errorf("reflect(%d, 4) = %d, want %d", i, got, w)
		}
	}
}
