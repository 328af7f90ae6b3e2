package padim

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas/gonum"
)

// scoreChunk is the number of consecutive positions a worker claims at a
// time: enough (≈320 KB of inverse covariance at d=100) to stream memory in
// long runs, small enough to balance the cores.
const scoreChunk = 16

// sdotMin is the row length from which gonum's SSE dot product beats the
// plain loop despite its call overhead.
const sdotMin = 16

// Scorer computes per-position Mahalanobis distances against a State with a
// persistent pool of workers. Score allocates nothing; concurrent calls are
// serialized.
type Scorer struct {
	state   *State
	workers int
	blas    gonum.Implementation
	fma     bool     // quadFormFMA instead of quadForm (cpuHasFMA)
	half    *halfInv // quadFormHalf on these instead (ScorerOptions.Half)

	mu     sync.Mutex
	start  []chan struct{}
	wg     sync.WaitGroup
	next   atomic.Int64
	dst    []float32
	emb    []float32
	xs     [][]float32 // per worker: e − μ of one position
	closed bool
}

// ScorerOptions configure a Scorer.
type ScorerOptions struct {
	// Workers is the number of goroutines scoring positions (0: GOMAXPROCS).
	Workers int
	// Half scores with the inverse covariances rounded to half precision
	// (halfInv: half the bytes streamed per frame, distances within 0.2%),
	// where HalfSupported; elsewhere it is ignored and float32 is used.
	// The State is left as it is (files and fits stay float32).
	Half bool
}

// NewScorer is NewScorerWith float32 inverse covariances and workers
// goroutines (0: GOMAXPROCS).
func NewScorer(s *State, workers int) (*Scorer, error) {
	return NewScorerWith(s, ScorerOptions{Workers: workers})
}

// NewScorerWith validates the state and starts the workers; with
// o.Half (where HalfSupported) it first makes the half-precision copy of
// the inverse covariances (one pass over them, about half their bytes
// more memory while both are held). Close stops the workers.
func NewScorerWith(s *State, o ScorerOptions) (*Scorer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	sc := &Scorer{state: s, workers: workers, xs: make([][]float32, workers), fma: cpuHasFMA}
	if o.Half && cpuHasHalf {
		sc.half = newHalfInv(s)
	}
	for i := range sc.xs {
		// quadFormHalf reads up to 7 zeros past x's d values.
		sc.xs[i] = make([]float32, s.D, s.D+8)
	}
	for w := 1; w < workers; w++ {
		c := make(chan struct{})
		sc.start = append(sc.start, c)
		go func() {
			for range c {
				sc.work(w)
				sc.wg.Done()
			}
		}()
	}
	return sc, nil
}

// Half says whether the scorer uses half-precision inverse covariances.
func (sc *Scorer) Half() bool { return sc.half != nil }

// Close stops the workers. The Scorer must not be used afterwards.
func (sc *Scorer) Close() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed {
		return
	}
	sc.closed = true
	for _, c := range sc.start {
		close(c)
	}
}

// Score writes the Mahalanobis distance of each position's embedding
// (emb, P×d as produced by Embedder.Embed) into dst (length P).
func (sc *Scorer) Score(dst, emb []float32) error {
	s := sc.state
	if len(emb) != len(s.Mean) {
		return fmt.Errorf("score: embedding has %d values, want %d (P=%d × d=%d)", len(emb), len(s.Mean), s.Positions(), s.D)
	}
	if len(dst) != s.Positions() {
		return fmt.Errorf("score: destination has %d values, want %d positions", len(dst), s.Positions())
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed {
		return errors.New("score: scorer is closed")
	}
	sc.dst, sc.emb = dst, emb
	sc.next.Store(0)
	sc.wg.Add(len(sc.start))
	for _, c := range sc.start {
		c <- struct{}{}
	}
	sc.work(0)
	sc.wg.Wait()
	sc.dst, sc.emb = nil, nil
	return nil
}

func (sc *Scorer) work(w int) {
	s := sc.state
	p := s.Positions()
	d := s.D
	tri := packedLen(d)
	x := sc.xs[w]
	for {
		lo := int(sc.next.Add(scoreChunk)) - scoreChunk
		if lo >= p {
			return
		}
		for q := lo; q < min(lo+scoreChunk, p); q++ {
			e := sc.emb[q*d : q*d+d]
			m := s.Mean[q*d : q*d+d]
			for i := range x {
				x[i] = e[i] - m[i]
			}
			var v float64
			if h := sc.half; h != nil {
				v = quadFormHalf(&h.off[q*h.stride], &h.diag[q*d], &x[0], d)
				sc.dst[q] = float32(math.Sqrt(max(v, 0)))
				continue
			}
			a := s.InvCov[q*tri : q*tri+tri]
			if sc.fma {
				v = quadFormFMA(&a[0], &x[0], d)
			} else {
				v = quadForm(sc.blas, a, x)
			}
			sc.dst[q] = float32(math.Sqrt(max(v, 0)))
		}
	}
}

// quadForm returns xᵀAx for the symmetric A given as its packed upper
// triangle: Σᵢ xᵢ (Aᵢᵢxᵢ + 2 Σ_{j>i} Aᵢⱼxⱼ). Each row is one float32 dot
// product (short, so float32 sums lose little); rows are summed in float64
// because their terms cancel.
func quadForm(impl gonum.Implementation, a, x []float32) float64 {
	d := len(x)
	var total float64
	off := 0
	for i := range d {
		n := d - i
		row := a[off : off+n : off+n]
		xr := x[i:d:d]
		var dot float32
		if n-1 >= sdotMin {
			dot = impl.Sdot(n-1, row[1:], 1, xr[1:], 1)
		} else {
			for j := 1; j < n; j++ {
				dot += row[j] * xr[j]
			}
		}
		total += float64(xr[0]) * float64(row[0]*xr[0]+2*dot)
		off += n
	}
	return total
}
