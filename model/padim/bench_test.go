package padim

import (
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// randomState fills a state of the given size with arbitrary values:
// scoring speed does not depend on them, and fitting 56×56 at d=550 would
// take minutes.
func randomState(gh, gw, d int) *State {
	s := &State{GridH: gh, GridW: gw, D: d,
		Mean:   make([]float32, gh*gw*d),
		InvCov: make([]float32, gh*gw*packedLen(d)),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range s.Mean {
		s.Mean[i] = r.Float32()
	}
	for i := range s.InvCov {
		s.InvCov[i] = r.Float32() - 0.5
	}
	return s
}

// streamFloor reads every float32 of a once with the given number of
// goroutines: the memory-bandwidth floor for a pass over the inverse
// covariances.
func streamFloor(a []float32, workers int, sink []float32) {
	var wg sync.WaitGroup
	chunk := (len(a) + workers - 1) / workers
	for w := range workers {
		lo, hi := min(len(a), w*chunk), min(len(a), (w+1)*chunk)
		wg.Go(func() {
			s := a[lo:hi]
			var a0, a1, a2, a3, a4, a5, a6, a7 float32
			i := 0
			for ; i+8 <= len(s); i += 8 {
				a0 += s[i]
				a1 += s[i+1]
				a2 += s[i+2]
				a3 += s[i+3]
				a4 += s[i+4]
				a5 += s[i+5]
				a6 += s[i+6]
				a7 += s[i+7]
			}
			for ; i < len(s); i++ {
				a0 += s[i]
			}
			sink[w] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
		})
	}
	wg.Wait()
}

// BenchmarkScore times one frame's scoring on a 56×56 grid and, interleaved
// in the same run, one streaming pass over as many bytes as the inverse
// covariances occupy. ns/op is the scoring; floor-ns/op the stream;
// score/floor their ratio; cpu-ns/op the process's CPU time per frame
// (all workers). kernel=gonum is the portable quadForm (one gonum Sdot per
// row), the baseline for kernel=fma (quadFormFMA, where the CPU has AVX2
// and FMA) and kernel=half (quadFormHalf on half-precision inverse
// covariances, where it also has F16C; the floor stays the float32 bytes).
func BenchmarkScore(b *testing.B) {
	workers := runtime.GOMAXPROCS(0)
	kernels := []string{"gonum"}
	if cpuHasFMA {
		kernels = append(kernels, "fma")
	}
	if cpuHasHalf {
		kernels = append(kernels, "half")
	}
	for _, d := range []int{100, 200, 550} {
		for _, k := range kernels {
			b.Run(fmt.Sprintf("d=%d/kernel=%s", d, k), func(b *testing.B) { benchmarkScore(b, d, workers, k) })
		}
	}
}

func benchmarkScore(b *testing.B, d, workers int, kernel string) {
	s := randomState(56, 56, d)
	sc, err := NewScorerWith(s, ScorerOptions{Workers: workers, Half: kernel == "half"})
	if err != nil {
		b.Fatal(err)
	}
	sc.fma = kernel != "gonum"
	defer sc.Close()
	emb := make([]float32, len(s.Mean))
	dist := make([]float32, s.Positions())
	sink := make([]float32, workers)
	b.SetBytes(int64(len(s.InvCov)) * 4)
	b.ReportAllocs()
	b.ResetTimer()
	var tScore, tFloor, cpu time.Duration
	for b.Loop() {
		c0 := processCPU()
		t0 := time.Now()
		_ = sc.Score(dist, emb)
		t1 := time.Now()
		cpu += processCPU() - c0
		b.StopTimer()
		streamFloor(s.InvCov, workers, sink)
		tFloor += time.Since(t1)
		tScore += t1.Sub(t0)
		b.StartTimer()
	}
	b.ReportMetric(float64(tFloor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(tScore)/float64(tFloor), "score/floor")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(StateBytes(s.Positions(), d))/1e6, "state-MB")
}

// nominalBackbone is the backbone time per image the fit budget is set
// against (MobileNet v1 quant on two cores).
const nominalBackbone = 60 * time.Millisecond

// BenchmarkAccumulate is the fit's per-image cost at d=100 on 56×56: one
// Add (a copy, and every 16th call the batched O(d²) pass on all cores),
// with the rank-k update in the assembly kernel (kernel=fma, where the CPU
// has AVX2 and FMA) and in gonum's Dgemv (kernel=gonum, the baseline in the
// same run). %fit is its share of a fit's wall time next to a 60 ms
// backbone.
func BenchmarkAccumulate(b *testing.B) {
	kernels := []struct {
		name string
		fma  bool
	}{{"gonum", false}}
	if cpuHasFMA {
		kernels = append(kernels, struct {
			name string
			fma  bool
		}{"fma", true})
	}
	const gh, gw, d = 56, 56, 100
	g := newFeatureGen(gh*gw, d, 1)
	embs := make([][]float32, batch)
	for i := range embs {
		embs[i] = make([]float32, gh*gw*d)
		g.next(embs[i], 0)
	}
	for _, k := range kernels {
		b.Run("kernel="+k.name, func(b *testing.B) {
			acc, err := NewAccumulator(AccumulatorOptions{GridH: gh, GridW: gw, D: d})
			if err != nil {
				b.Fatal(err)
			}
			acc.fma = k.fma
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			cpu := processCPU()
			for b.Loop() {
				_ = acc.Add(embs[i%len(embs)])
				i++
			}
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(100*per/(per+float64(nominalBackbone.Nanoseconds())), "%fit")
		})
	}
}

// BenchmarkFinalize is the inversion of 56×56 covariances at d=100.
// %fit700 is its share of a 700-image fit with a 60 ms backbone.
func BenchmarkFinalize(b *testing.B) {
	const gh, gw, d = 56, 56, 100
	acc, err := NewAccumulator(AccumulatorOptions{GridH: gh, GridW: gw, D: d})
	if err != nil {
		b.Fatal(err)
	}
	g := newFeatureGen(gh*gw, d, 1)
	e := make([]float32, gh*gw*d)
	for range 40 {
		g.next(e, 0)
		_ = acc.Add(e)
	}
	b.ResetTimer()
	cpu := processCPU()
	for b.Loop() {
		if _, err := acc.Finalize(FinalizeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(100*per/(per+700*float64(nominalBackbone.Nanoseconds())), "%fit700")
}

// BenchmarkAnomalyMap renders one distance grid into a blurred anomaly map
// (σ = 4 at 224 px, scaled) at typical output sizes.
func BenchmarkAnomalyMap(b *testing.B) {
	for _, tc := range []struct{ g, w, h int }{{28, 224, 224}, {56, 224, 224}, {56, 640, 480}} {
		b.Run(fmt.Sprintf("%dx%d-to-%dx%d", tc.g, tc.g, tc.w, tc.h), func(b *testing.B) {
			m, err := NewAnomalyMap(AnomalyMapOptions{GridW: tc.g, GridH: tc.g, OutW: tc.w, OutH: tc.h, Sigma: DefaultSigma})
			if err != nil {
				b.Fatal(err)
			}
			dist := make([]float32, tc.g*tc.g)
			r := rand.New(rand.NewPCG(1, 1))
			for i := range dist {
				dist[i] = r.Float32()
			}
			dst := make([]float32, tc.w*tc.h)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = m.Render(dst, dist)
			}
		})
	}
}

// BenchmarkEmbed is one frame's embedding from MobileNet v1's taps
// Conv2d_3/5/9 (56², 28², 14²): the patch scale (d=100, no pooling, the
// baseline in the same run) and context scales at d=300 with cells of 8
// (whole tap positions) and of 6 (one and a half 14×14 positions, weighted).
func BenchmarkEmbed(b *testing.B) {
	taps := []TapShape{{H: 56, W: 56, C: 128}, {H: 28, W: 28, C: 256}, {H: 14, W: 14, C: 512}}
	r := rand.New(rand.NewPCG(3, 4))
	maps := make([]FeatureMap, len(taps))
	for i, t := range taps {
		maps[i] = FeatureMap{H: t.H, W: t.W, C: t.C, Data: make([]float32, t.H*t.W*t.C)}
		for j := range maps[i].Data {
			maps[i].Data[j] = 6 * r.Float32()
		}
	}
	for _, c := range []struct {
		name    string
		d, pool int
	}{{"patch/d=100", 100, 0}, {"context/cells=8/d=300", 300, 8}, {"context/cells=6/d=300", 300, 6}} {
		b.Run(c.name, func(b *testing.B) {
			e, err := NewEmbedder(EmbedderOptions{Taps: taps, D: c.d, Seed: 1, Pool: c.pool})
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]float32, e.Len())
			b.ReportAllocs()
			for b.Loop() {
				if err := e.Embed(dst, maps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFiniteCheck times what the NaN/Inf checks add: at load, one
// pass over a d=100 56×56 model's 64.6 MB of floats against the CRC-32C
// pass over the same bytes (finite/crc); per frame, one pass over the
// 3136 distances against that frame's scoring (frame/score).
func BenchmarkFiniteCheck(b *testing.B) {
	s := randomState(56, 56, 100)
	all := append(append([]float32(nil), s.Mean...), s.InvCov...)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(all))), 4*len(all))
	sc, err := NewScorer(s, runtime.GOMAXPROCS(0))
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	emb := make([]float32, len(s.Mean))
	dist := make([]float32, s.Positions())
	var finite, crc, frame, score time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if FirstNonFinite(all) >= 0 {
			b.Fatal("non-finite")
		}
		t1 := time.Now()
		crc32.Update(0, castagnoli, raw)
		t2 := time.Now()
		if err := sc.Score(dist, emb); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		for range 100 {
			if FirstNonFinite(dist) >= 0 {
				b.Fatal("non-finite")
			}
		}
		t4 := time.Now()
		finite, crc, score, frame = finite+t1.Sub(t0), crc+t2.Sub(t1), score+t3.Sub(t2), frame+t4.Sub(t3)/100
	}
	n := float64(b.N)
	b.ReportMetric(float64(finite.Nanoseconds())/n, "finite-ns/op")
	b.ReportMetric(float64(crc.Nanoseconds())/n, "crc-ns/op")
	b.ReportMetric(float64(finite)/float64(crc), "finite/crc")
	b.ReportMetric(float64(frame.Nanoseconds())/n, "frame-ns/op")
	b.ReportMetric(float64(frame)/float64(score), "frame/score")
}

// BenchmarkThresholdRegions draws the mask of a flagged 1280×720 map whose
// defect regions cover two fifths of it (a part the line judges bad all
// over), the hysteresis growing them from their peaks.
func BenchmarkThresholdRegions(b *testing.B) {
	const w, h = 1280, 720
	amap := make([]float32, w*h)
	for y := range h {
		for x := range w {
			// Blobs on a 160-pixel lattice, 6 at their centres, 0 far away.
			dx, dy := float64(x%160-80), float64(y%160-80)
			amap[y*w+x] = float32(6 * math.Exp(-(dx*dx+dy*dy)/(2*40*40)))
		}
	}
	th := Thresholds{Image: 5, Pixel: 2}
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		if err := th.Inspect(&r, amap, w, h, 6); err != nil {
			b.Fatal(err)
		}
	}
}
