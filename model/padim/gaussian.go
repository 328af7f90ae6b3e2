package padim

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// DefaultEps is the ridge added to every covariance before inversion, as in
// the PaDiM paper.
const DefaultEps = 0.01

// batch is how many images Add stages before the O(d²) accumulation pass:
// the float64 accumulators (P×d(d+1)/2×8 bytes, 127 MB at d=100 on 56×56)
// then stream through memory once per batch instead of once per image, and
// the update becomes a matrix-vector product per row. 32 measured no faster
// in a whole fit (BenchmarkAccumulate: 1.3 against 1.6 ms per image) and
// stages twice the memory.
const batch = 16

// State is the fitted scoring state: per grid position, the mean embedding
// and the packed upper triangle of the inverse covariance, both float32.
type State struct {
	GridH, GridW int
	D            int
	// Mean holds P×D values: Mean[p*D+i].
	Mean []float32
	// InvCov holds P×D(D+1)/2 values: for position p, row i of the upper
	// triangle (columns i..D-1) starts at p*D(D+1)/2 + i*D - i*(i-1)/2.
	InvCov []float32
}

// Positions is GridH×GridW.
func (s *State) Positions() int { return s.GridH * s.GridW }

// Validate checks that the slices match the grid and d.
func (s *State) Validate() error {
	if s.GridH <= 0 || s.GridW <= 0 || s.D <= 0 {
		return fmt.Errorf("padim state: grid %dx%d, d=%d, want positive", s.GridH, s.GridW, s.D)
	}
	p := s.Positions()
	if len(s.Mean) != p*s.D {
		return fmt.Errorf("padim state: mean has %d values, want %d (P=%d × d=%d)", len(s.Mean), p*s.D, p, s.D)
	}
	if want := p * packedLen(s.D); len(s.InvCov) != want {
		return fmt.Errorf("padim state: inverse covariance has %d values, want %d (P=%d × d(d+1)/2=%d)", len(s.InvCov), want, p, packedLen(s.D))
	}
	return nil
}

func packedLen(d int) int { return d * (d + 1) / 2 }

// AccumulatorOptions configures an Accumulator.
type AccumulatorOptions struct {
	// GridH, GridW and D describe the embeddings Add receives (those of the
	// Embedder).
	GridH, GridW, D int
	// Workers is the number of goroutines per accumulation pass (0: GOMAXPROCS).
	Workers int
}

// Accumulator fits one Gaussian per grid position in a single streaming pass:
// per position it keeps float64 sums of the embeddings and of their outer
// products (packed upper triangle), both taken relative to the first image to
// avoid cancellation, so its memory does not grow with the number of images.
// It is not safe for concurrent use.
type Accumulator struct {
	gridH, gridW, d int
	workers         int
	n               int
	shift           []float32 // first embedding
	sum             []float64 // P×d
	outer           []float64 // P×d(d+1)/2
	staged          []float32 // batch × P×d raw embeddings
	nStaged         int
	scratch         []scratch // per worker
	blas            gonum.Implementation
	fma             bool // use the assembly kernel (cpuHasFMA)
}

// FitBytes is the memory an Accumulator holds for P positions at dimension d:
// the float64 accumulators plus the staging buffers.
func FitBytes(positions, d int) int64 {
	p, dd := int64(positions), int64(d)
	return p*(dd*(dd+1)/2+dd)*8 + p*dd*4*(batch+1)
}

// NewAccumulator allocates the accumulators (FitBytes of them).
func NewAccumulator(opts AccumulatorOptions) (*Accumulator, error) {
	if opts.GridH <= 0 || opts.GridW <= 0 || opts.D <= 0 {
		return nil, fmt.Errorf("accumulator: grid %dx%d, d=%d, want positive", opts.GridH, opts.GridW, opts.D)
	}
	w := opts.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	p := opts.GridH * opts.GridW
	a := &Accumulator{
		gridH: opts.GridH, gridW: opts.GridW, d: opts.D,
		workers: w,
		shift:   make([]float32, p*opts.D),
		sum:     make([]float64, p*opts.D),
		outer:   make([]float64, p*packedLen(opts.D)),
		staged:  make([]float32, batch*p*opts.D),
		scratch: make([]scratch, w),
		fma:     cpuHasFMA,
	}
	for i := range a.scratch {
		a.scratch[i] = scratch{x32: make([]float32, opts.D*batch), x64: make([]float64, opts.D*batch)}
	}
	return a, nil
}

// Count is the number of images added.
func (a *Accumulator) Count() int { return a.n }

// Add accumulates one image's embedding (length P×d). Every batch-th call
// runs the accumulation pass on all workers; the others only copy.
func (a *Accumulator) Add(embedding []float32) error {
	if len(embedding) != len(a.shift) {
		return fmt.Errorf("accumulator: embedding has %d values, want %d", len(embedding), len(a.shift))
	}
	if a.n == 0 {
		copy(a.shift, embedding)
	}
	sz := len(a.shift)
	copy(a.staged[a.nStaged*sz:(a.nStaged+1)*sz], embedding)
	a.nStaged++
	a.n++
	if a.nStaged == batch {
		a.flush()
	}
	return nil
}

// flush folds the staged images into the accumulators, in parallel over
// positions.
func (a *Accumulator) flush() {
	if a.nStaged == 0 {
		return
	}
	p := a.gridH * a.gridW
	var next atomic.Int64
	const chunk = 16
	run := func(w int) {
		st := &a.scratch[w]
		for {
			lo := int(next.Add(chunk)) - chunk
			if lo >= p {
				return
			}
			for q := lo; q < min(lo+chunk, p); q++ {
				a.accumulate(q, st)
			}
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < a.workers; w++ {
		wg.Go(func() { run(w) })
	}
	run(0)
	wg.Wait()
	a.nStaged = 0
}

// accumulate is the rank-k update (k ≤ batch staged images) of one
// position. st receives the images' values minus the shift, image-major
// (st[b*d+i]); then row i of the packed upper triangle gains
// Σ_b x_b[i]·x_b[i:] (syrkRows32 or syrkRows64), so each accumulator is
// loaded and stored once per batch.
func (a *Accumulator) accumulate(q int, st *scratch) {
	d := a.d
	sz := len(a.shift)
	sh := a.shift[q*d : q*d+d]
	sum := a.sum[q*d : q*d+d]
	k := a.nStaged
	for b := range k {
		e := a.staged[b*sz+q*d : b*sz+q*d+d]
		if a.fma {
			x := st.x32[b*d : b*d+d]
			for i := range x {
				x[i] = e[i] - sh[i]
				sum[i] += float64(x[i])
			}
		} else {
			x := st.x64[b*d : b*d+d]
			for i := range x {
				x[i] = float64(e[i]) - float64(sh[i])
				sum[i] += x[i]
			}
		}
	}
	tri := packedLen(d)
	if a.fma {
		syrkRows32(a.outer[q*tri:q*tri+tri], st.x32, k, d)
	} else {
		syrkRows64(a.outer[q*tri:q*tri+tri], st.x64, k, d, &a.blas)
	}
}

// scratch holds one worker's batch×d shifted values of one position,
// image-major: float32 for the assembly kernel, float64 for gonum.
type scratch struct {
	x32 []float32
	x64 []float64
}

// FinalizeOptions configures Finalize.
type FinalizeOptions struct {
	// Eps is added to the diagonal of every covariance (0: DefaultEps).
	Eps float64
	// MaxRegularization is how many times a position whose covariance is not
	// positive definite is retried with ten times more ridge before Finalize
	// gives up naming it (0: 6, i.e. up to Eps×10⁶; negative: never retry).
	MaxRegularization int
	// Logger receives one line summarising any extra regularization (nil:
	// silent).
	Logger *slog.Logger
	// Workers is the number of goroutines (0: the Accumulator's).
	Workers int
	// Context cancels a long inversion (nil: never).
	Context context.Context
}

// Finalize turns the sums into the scoring state: mean, covariance
// (unbiased, as torch.cov) + Eps·I, inverted through a Cholesky
// factorization, stored as float32 packed upper triangles. The Accumulator
// stays usable: more images may be added and Finalize called again.
func (a *Accumulator) Finalize(opts FinalizeOptions) (*State, error) {
	if a.n < 2 {
		return nil, fmt.Errorf("finalize: %d images accumulated, need at least 2", a.n)
	}
	eps := opts.Eps
	if eps == 0 {
		eps = DefaultEps
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("finalize: eps=%g, want a positive finite number", eps)
	}
	steps := opts.MaxRegularization
	if steps == 0 {
		steps = 6
	}
	steps = max(steps, 0)
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = a.workers
	}
	a.flush()

	d := a.d
	p := a.gridH * a.gridW
	tri := packedLen(d)
	s := &State{
		GridH: a.gridH, GridW: a.gridW, D: d,
		Mean:   make([]float32, p*d),
		InvCov: make([]float32, p*tri),
	}
	var (
		next     atomic.Int64
		failed   atomic.Bool
		mu       sync.Mutex
		firstErr error
		nReg     int
		maxEps   float64
		firstReg = -1
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		failed.Store(true)
	}
	run := func() {
		cov := make([]float64, d*d)
		work := make([]float64, d*d)
		for !failed.Load() {
			q := int(next.Add(1)) - 1
			if q >= p {
				return
			}
			if q%64 == 0 && ctx.Err() != nil {
				fail(fmt.Errorf("finalize: %w", ctx.Err()))
				return
			}
			usedEps, err := a.invert(q, eps, steps, cov, work, s)
			if err != nil {
				fail(err)
				return
			}
			if usedEps != eps {
				mu.Lock()
				nReg++
				maxEps = max(maxEps, usedEps)
				if firstReg < 0 || q < firstReg {
					firstReg = q
				}
				mu.Unlock()
			}
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(run)
	}
	run()
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if nReg > 0 && opts.Logger != nil {
		opts.Logger.Warn("padim: covariance not positive definite, added extra regularization",
			"positions", nReg, "max_eps", maxEps, "eps", eps,
			"first_y", firstReg/a.gridW, "first_x", firstReg%a.gridW)
	}
	return s, nil
}

// invert computes position q's mean and packed float32 inverse covariance
// into s, returning the ridge it needed.
//
// The inversion calls LAPACK's Cholesky routines (gonum's potrf and potri)
// in place on work (d×d, upper triangle) rather than through mat.Cholesky,
// whose factorization also estimates the condition number: a fifth of the
// inversion time, and the ridge already bounds it.
func (a *Accumulator) invert(q int, eps float64, steps int, cov, work []float64, s *State) (float64, error) {
	d := a.d
	tri := packedLen(d)
	n := float64(a.n)
	sum := a.sum[q*d : q*d+d]
	acc := a.outer[q*tri : q*tri+tri]
	sh := a.shift[q*d : q*d+d]
	mean := s.Mean[q*d : q*d+d]
	for i := range d {
		m := float64(sh[i]) + sum[i]/n
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return 0, fmt.Errorf("finalize: position (y=%d, x=%d) channel %d: mean is %g (non-finite features)", q/a.gridW, q%a.gridW, i, m)
		}
		mean[i] = float32(m)
	}
	// Shifted sums: cov = (Σ xxᵀ − (Σx)(Σx)ᵀ/n) / (n−1), x relative to the
	// first image, so the subtraction cancels little.
	off := 0
	for i := range d {
		for j := i; j < d; j++ {
			c := (acc[off+j-i] - sum[i]*sum[j]/n) / (n - 1)
			cov[i*d+j] = c
			cov[j*d+i] = c
		}
		off += d - i
	}
	used := eps
	sym := blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: work}
	for step := 0; ; step++ {
		copy(work, cov)
		for i := range d {
			work[i*d+i] += used
		}
		if t, ok := lapack64.Potrf(sym); ok {
			if _, ok := lapack64.Potri(t); ok {
				break
			}
		}
		if step >= steps {
			return 0, fmt.Errorf("finalize: covariance at position (y=%d, x=%d) is not positive definite even with eps=%g", q/a.gridW, q%a.gridW, used)
		}
		used *= 10
	}
	dst := s.InvCov[q*tri : q*tri+tri]
	off = 0
	for i := range d {
		r := work[i*d+i : i*d+d]
		for j, v := range r {
			dst[off+j] = float32(v)
		}
		off += d - i
	}
	return used, nil
}
