package model

import (
	"context"
	"image"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/inspectd/inspectd/model/backbone"
)

// runFamilies fits every family of candidates and returns each one's
// candidates or error, in the families' order. One family alone leaves a
// core idle about a third of the time (its backbone runs on one thread
// between the parallel accumulation and scoring: 1.3 of 2 cores busy on
// kolektorsdd), so after the first family the rest
// run SearchOptions.Parallel at a time, as far as the memory gate lets
// them. The first runs alone because it reads every image the others read
// (a live refit source collects its frames then) and opens the first
// backbone; the other backbones are opened once each before the rest
// start, so that a variant measurement (model.optimize: auto) is never
// taken beside another family's work. Every family computes exactly what
// it would alone: the choice does not depend on the parallelism.
func runFamilies(ctx context.Context, opts Options, families [][]Recipe, src ImageSource, fit, loo []int, v *validation, pc *progressCounter) ([][]Candidate, []error) {
	results := make([][]Candidate, len(families))
	errs := make([]error, len(families))
	if len(families) == 0 {
		return results, errs
	}
	src = &lockedSource{src: src}
	opts.Search.OnFamily = serialized(opts.Search.OnFamily)
	mem := newMemGate(opts.MemoryBudget)
	results[0], errs[0] = runFamily(ctx, opts, families[0], src, fit, loo, v, pc, mem)
	workers := min(opts.Search.Parallel, len(families)-1)
	if workers > 1 {
		openBackbones(opts, families[1:])
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for i := range next {
				results[i], errs[i] = runFamily(ctx, opts, families[i], src, fit, loo, v, pc, mem)
			}
		})
	}
	for i := 1; i < len(families) && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return results, errs
}

// openBackbones opens and closes each distinct backbone of the families
// once, so that any variant measurement it needs is taken (and cached)
// while nothing else runs. Errors are left to the family that meets them.
func openBackbones(opts Options, families [][]Recipe) {
	seen := map[string]bool{}
	for _, fam := range families {
		r := fam[0]
		k := r.Backbone + "|" + strings.Join(r.Taps, ",")
		if seen[k] {
			continue
		}
		seen[k] = true
		bo, err := opts.backboneFor(r)
		if err != nil {
			continue
		}
		if bb, err := backbone.Open(bo); err == nil {
			bb.Close()
		}
	}
}

// defaultSearchParallel is the number of families fitted at once: two
// where there are two cores to share.
func defaultSearchParallel() int { return min(2, runtime.GOMAXPROCS(0)) }

// lockedSource serializes reads of a source that the families fitted at
// once share: sources need not be safe for concurrent use. The images it
// returns are only read.
type lockedSource struct {
	mu  sync.Mutex
	src ImageSource
}

func (s *lockedSource) Len() int { return s.src.Len() }

func (s *lockedSource) Image(i int) (image.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src.Image(i)
}

// ImageName names image i as the wrapped source does ("" if it does not).
func (s *lockedSource) ImageName(i int) string {
	if n, ok := s.src.(ImageNamer); ok {
		return n.ImageName(i)
	}
	return ""
}

// serialized wraps f so that calls from families fitted at once run one at
// a time (nil stays nil).
func serialized(f func(*Family) error) func(*Family) error {
	if f == nil {
		return nil
	}
	var mu sync.Mutex
	return func(fam *Family) error {
		mu.Lock()
		defer mu.Unlock()
		return f(fam)
	}
}

// memGate bounds the memory of the families fitted at once: their sums and
// states together stay within the scoring-state budget
// (Options.MemoryBudget, itself a share of the available memory), so a box
// that has room for one family's fit but not two runs them one after the
// other. nil: unbounded.
type memGate struct {
	sem *semaphore.Weighted
	cap int64
}

func newMemGate(budget int64) *memGate {
	if budget <= 0 {
		return nil
	}
	return &memGate{sem: semaphore.NewWeighted(budget), cap: budget}
}

// acquire waits until n more bytes fit (at most the whole gate, so one
// family always runs) and returns the function that gives them back.
func (g *memGate) acquire(ctx context.Context, n int64) (func(), error) {
	if g == nil {
		return func() {}, nil
	}
	n = min(max(n, 1), g.cap)
	if err := g.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() { g.sem.Release(n) }, nil
}

// fitBytes estimates a family's peak memory while it is fitted: each
// scale's float64 sums (twice its float32 state) and the state finalized
// from them while they are still held (the search scores in float32).
func (d *Detector) fitBytes() int64 {
	var n int64
	for _, s := range d.scales {
		n += 3 * s.bytes()
	}
	return n
}
