package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestAUROCByHand(t *testing.T) {
	for _, tc := range []struct {
		s    []float64
		l    []bool
		want float64
	}{
		{[]float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75}, // scikit-learn's example
		{[]float64{1, 2, 3, 4}, []bool{false, false, true, true}, 1},
		{[]float64{4, 3, 2, 1}, []bool{false, false, true, true}, 0},
		{[]float64{5, 5, 5, 5}, []bool{false, true, false, true}, 0.5},
		{[]float64{1, 2, 2, 3}, []bool{false, false, true, true}, 0.875}, // one tied pair counts half
	} {
		got, err := AUROC(tc.s, tc.l)
		if err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("AUROC(%v, %v) = %v %v, want %v", tc.s, tc.l, got, err, tc.want)
		}
	}
	if _, err := AUROC([]float64{1, 2}, []bool{true, true}); err == nil {
		t.Error("one class accepted")
	}
	if _, err := AUROC([]float64{1}, []bool{true, false}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := AUROC([]float64{1, math.NaN()}, []bool{true, false}); err == nil {
		t.Error("NaN accepted")
	}
}

func TestROCAndF1Max(t *testing.T) {
	s := []float64{0.9, 0.8, 0.7, 0.1}
	l := []bool{true, false, true, false}
	pts, err := ROC(s, l)
	if err != nil {
		t.Fatal(err)
	}
	want := []ROCPoint{{0, 0, math.Inf(1)}, {0, 0.5, 0.9}, {0.5, 0.5, 0.8}, {0.5, 1, 0.7}, {1, 1, 0.1}}
	if !slices.Equal(pts, want) {
		t.Fatalf("ROC %v, want %v", pts, want)
	}
	// Thresholds 0.9, 0.8, 0.7, 0.1 give F1 2/3, 1/2, 4/5, 2/3.
	f1, th, err := F1Max(s, l)
	if err != nil || math.Abs(f1-0.8) > 1e-12 || th != 0.7 {
		t.Fatalf("F1Max = %v at %v (%v), want 0.8 at 0.7", f1, th, err)
	}
}

// Binned pixel AUROC against the exact rank statistic.
func TestPixelAUROCMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := NewPixels()
	var all []float64
	var labels []bool
	const w, h = 64, 48
	for img := range 12 {
		amap := make([]float32, w*h)
		mask := make([]uint8, w*h)
		for i := range amap {
			v := r.NormFloat64()*3 + 10
			if img%3 == 0 && (i%w) > 20 && (i%w) < 30 && i/w > 10 && i/w < 25 {
				mask[i] = 255
				v += 4
			}
			amap[i] = float32(v)
			all = append(all, float64(amap[i]))
			labels = append(labels, mask[i] != 0)
		}
		if err := p.Add(amap, mask, w, h); err != nil {
			t.Fatal(err)
		}
	}
	exact, _ := AUROC(all, labels)
	got, err := p.AUROC()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-exact) > 1e-4 {
		t.Fatalf("binned %v, exact %v", got, exact)
	}
	if p.Regions() != 4 {
		t.Fatalf("%d regions, want 4", p.Regions())
	}
	pts, _ := p.ROC(50)
	if len(pts) != 50 || pts[0] != (ROCPoint{0, 0, math.Inf(1)}) || pts[49].FPR != 1 || pts[49].TPR != 1 {
		t.Fatalf("thinned ROC: %d points, ends %v %v", len(pts), pts[0], pts[len(pts)-1])
	}
}

func TestBinsPreserveOrder(t *testing.T) {
	vals := []float32{float32(math.Inf(-1)), -1e30, -3, -1, -1e-30, 0, 1e-30, 0.5, 1, 1.001, 3, 1e30, float32(math.Inf(1))}
	for i := 1; i < len(vals); i++ {
		if binOf(vals[i-1]) > binOf(vals[i]) {
			t.Errorf("bin(%v) > bin(%v)", vals[i-1], vals[i])
		}
		if k := binOf(vals[i]); binValue(k) > float64(vals[i]) || binOf(float32(binValue(k))) != k {
			t.Errorf("bin %d of %v starts at %v", k, vals[i], binValue(k))
		}
	}
	if binOf(1) == binOf(1.001) {
		t.Error("0.1% apart share a bin")
	}
}

func TestPROPerfectAndRandom(t *testing.T) {
	const w, h = 100, 100
	perfect, random := NewPixels(), NewPixels()
	r := rand.New(rand.NewPCG(3, 4))
	for img := range 20 {
		mask := make([]uint8, w*h)
		// Regions of very different sizes: PRO weighs them equally.
		for y := 10; y < 10+img+1; y++ {
			for x := 10; x < 60; x++ {
				mask[y*w+x] = 255
			}
		}
		for y := 80; y < 85; y++ {
			for x := 80; x < 85; x++ {
				mask[y*w+x] = 255
			}
		}
		pm := make([]float32, w*h)
		rm := make([]float32, w*h)
		for i := range pm {
			if mask[i] != 0 {
				pm[i] = 1
			}
			rm[i] = r.Float32()
		}
		_ = perfect.Add(pm, mask, w, h)
		_ = random.Add(rm, mask, w, h)
	}
	if got, err := perfect.PRO(0.3); err != nil || math.Abs(got-1) > 1e-9 {
		t.Errorf("perfect map: PRO %v %v, want 1", got, err)
	}
	if got, _ := perfect.AUROC(); got != 1 {
		t.Errorf("perfect map: AUROC %v", got)
	}
	// A random map's overlap equals its FPR: ∫₀^0.3 x dx / 0.3 = 0.15.
	if got, _ := random.PRO(0.3); math.Abs(got-0.15) > 0.01 {
		t.Errorf("random map: PRO %v, want ≈ 0.15", got)
	}
	if got, _ := random.AUROC(); math.Abs(got-0.5) > 0.01 {
		t.Errorf("random map: AUROC %v, want ≈ 0.5", got)
	}
}

// PRO by hand, and 8-connectivity: pixels (0,0) and (1,1) touch diagonally
// and form one region; (5,5) is another. The map finds only (0,0), above
// every normal pixel: overlaps ½ and 0, so PRO = ¼ over the whole FPR range
// (with 4-connectivity it would be ⅓).
func TestPROByHand(t *testing.T) {
	const w, h = 8, 8
	mask := make([]uint8, w*h)
	amap := make([]float32, w*h)
	for i := range amap {
		amap[i] = 0.5
	}
	for _, xy := range [][2]int{{0, 0}, {1, 1}, {5, 5}} {
		mask[xy[1]*w+xy[0]] = 1
		amap[xy[1]*w+xy[0]] = 0
	}
	amap[0] = 1
	p := NewPixels()
	if err := p.Add(amap, mask, w, h); err != nil {
		t.Fatal(err)
	}
	if p.Regions() != 2 {
		t.Fatalf("%d regions, want 2", p.Regions())
	}
	if got, _ := p.PRO(0.3); math.Abs(got-0.25) > 1e-12 {
		t.Fatalf("PRO %v, want 0.25", got)
	}
	if d, n := p.Counts(); d != 3 || n != 61 {
		t.Fatalf("counts %d %d", d, n)
	}
	if err := p.Add(amap[:3], mask, w, h); err == nil {
		t.Error("short map accepted")
	}
	amap[3] = float32(math.NaN())
	if err := p.Add(amap, mask, w, h); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := NewPixels().PRO(0.3); err == nil {
		t.Error("PRO without regions")
	}
	if _, err := p.PRO(0); err == nil {
		t.Error("max FPR 0 accepted")
	}
}

// BenchmarkPixelsAdd is one 200k-pixel image into the pixel metrics (400 of
// them make an MVTec-sized test set).
func BenchmarkPixelsAdd(b *testing.B) {
	const w, h = 500, 400
	r := rand.New(rand.NewPCG(1, 1))
	amap := make([]float32, w*h)
	mask := make([]uint8, w*h)
	for i := range amap {
		amap[i] = r.Float32() * 20
		if (i%w-250)*(i%w-250)+(i/w-200)*(i/w-200) < 900 {
			mask[i] = 255
		}
	}
	p := NewPixels()
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Add(amap, mask, w, h)
	}
}

// Two classes with different separations: each class's AUROC must equal the
// exact AUROC of its defect pixels against every normal pixel.
func TestClassAUROCMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := NewPixels()
	const w, h = 40, 30
	var negs []float64
	pos := map[string][]float64{}
	for img := range 10 {
		class := []string{"good", "weak", "strong"}[img%3]
		shift := map[string]float64{"good": 0, "weak": 1, "strong": 5}[class]
		amap := make([]float32, w*h)
		mask := make([]uint8, w*h)
		for i := range amap {
			v := r.NormFloat64()
			if class != "good" && i%w < 10 && i/w < 10 {
				mask[i] = 255
				v += shift
			}
			amap[i] = float32(v)
			if mask[i] != 0 {
				pos[class] = append(pos[class], float64(amap[i]))
			} else {
				negs = append(negs, float64(amap[i]))
			}
		}
		if err := p.AddLabeled(class, amap, mask, w, h); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Classes(); !slices.Equal(got, []string{"strong", "weak"}) {
		t.Fatalf("classes %v, want [strong weak] (good has no defect pixels)", got)
	}
	for _, c := range []string{"weak", "strong"} {
		s := append(append([]float64(nil), pos[c]...), negs...)
		l := make([]bool, len(s))
		for i := range pos[c] {
			l[i] = true
		}
		exact, _ := AUROC(s, l)
		got, err := p.ClassAUROC(c)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-exact) > 1e-3 {
			t.Fatalf("%s: binned %v, exact %v", c, got, exact)
		}
	}
	if _, err := p.ClassAUROC("good"); err == nil {
		t.Fatal("class without defect pixels: no error")
	}
}
