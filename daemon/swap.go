package daemon

import (
	"context"
	"errors"
	"sync"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/model"
)

// errSourceSwapped interrupts a source's Next when a new source replaces it.
var errSourceSwapped = errors.New("frame source replaced")

// swapSource is a capture.Source whose underlying source can be replaced
// while the pipeline runs (a configuration push that changes the camera, a
// restart-camera command), so that wrappers in front of it (the trigger
// queue) and the pipeline itself survive the change. Next and Close are
// called from the capture goroutine as capture.Source requires; Swap may be
// called from any goroutine.
type swapSource struct {
	mu      sync.Mutex
	cur     capture.Source
	running bool               // cur.Next is in progress
	pending capture.Source     // replaces cur once the running Next returns
	parent  context.Context    // the ctx the running Nexts derive from
	ctx     context.Context    // child of parent, cancelled by a swap
	cancel  context.CancelFunc // cancels ctx
	retired chan error         // receives the old source's Close error after a deferred swap
	closed  bool
	// carried sums the counters of the sources swapped out: the exported
	// counters must not fall when a reload replaces the camera.
	carried capture.CounterValues
}

func newSwapSource(src capture.Source) *swapSource { return &swapSource{cur: src} }

// Next implements capture.Source: it calls the current source's Next and,
// when a swap interrupts it, the new source's.
func (s *swapSource) Next(ctx context.Context, f *capture.Frame) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return errors.New("frame source closed")
		}
		if s.pending != nil {
			s.finishSwapLocked()
		}
		if s.parent != ctx || s.ctx.Err() != nil {
			// Cached while the caller keeps passing the same context, so
			// that steady-state frames allocate no context.
			if s.cancel != nil {
				s.cancel()
			}
			s.parent = ctx
			s.ctx, s.cancel = context.WithCancel(ctx)
		}
		src, nctx := s.cur, s.ctx
		s.running = true
		s.mu.Unlock()

		err := src.Next(nctx, f)

		s.mu.Lock()
		s.running = false
		swapped := s.pending != nil
		s.mu.Unlock()
		if swapped && err != nil && ctx.Err() == nil {
			continue // interrupted by a swap: take the new source
		}
		return err
	}
}

// finishSwapLocked closes the replaced source and installs the pending one.
func (s *swapSource) finishSwapLocked() {
	old := s.cur
	s.cur, s.pending = s.pending, nil
	err := old.Close()
	s.carryLocked(old)
	if s.retired != nil {
		s.retired <- err
		s.retired = nil
	}
}

// Swap replaces the source. When no Next is running the old source is
// closed at once; otherwise the running Next is interrupted and the old
// source is closed on the capture goroutine before the new one is used.
// Swap waits for that until ctx ends, and returns the old source's Close
// error.
func (s *swapSource) Swap(ctx context.Context, src capture.Source) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = src.Close()
		return errors.New("frame source closed")
	}
	if s.pending != nil { // a swap not yet taken up: the newer one wins
		_ = s.pending.Close()
		s.pending = nil
	}
	if !s.running {
		old := s.cur
		s.cur = src
		s.mu.Unlock()
		err := old.Close()
		s.mu.Lock()
		s.carryLocked(old)
		s.mu.Unlock()
		return err
	}
	done := make(chan error, 1)
	if s.retired != nil {
		close(s.retired)
	}
	s.pending, s.retired = src, done
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the swap still happens at the next Next
	}
}

// Current returns the source in use (for counters and status).
func (s *swapSource) Current() capture.Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != nil {
		return s.pending
	}
	return s.cur
}

// Counters forwards to the current source.
func (s *swapSource) Counters() *capture.Counters { return capture.CountersOf(s.Current()) }

// carryLocked adds a source's counters, once it is closed, to those
// carried over.
func (s *swapSource) carryLocked(old capture.Source) {
	c := capture.CountersOf(old)
	if c == nil {
		return
	}
	v := c.Snapshot()
	t := &s.carried
	t.Frames, t.Dropped, t.Timeouts = t.Frames+v.Frames, t.Dropped+v.Dropped, t.Timeouts+v.Timeouts
	t.Reopens, t.DecodeErrors, t.TooLarge = t.Reopens+v.Reopens, t.DecodeErrors+v.DecodeErrors, t.TooLarge+v.TooLarge
}

// Totals are the counters of every source this one has used: those
// swapped out and the current one's.
func (s *swapSource) Totals() capture.CounterValues {
	s.mu.Lock()
	t, cur := s.carried, s.cur
	s.mu.Unlock()
	if c := capture.CountersOf(cur); c != nil {
		v := c.Snapshot()
		t.Frames, t.Dropped, t.Timeouts = t.Frames+v.Frames, t.Dropped+v.Dropped, t.Timeouts+v.Timeouts
		t.Reopens, t.DecodeErrors, t.TooLarge = t.Reopens+v.Reopens, t.DecodeErrors+v.DecodeErrors, t.TooLarge+v.TooLarge
	}
	return t
}

// Flush forwards to the current source when it buffers frames.
func (s *swapSource) Flush() {
	if f, ok := s.Current().(capture.Flusher); ok {
		f.Flush()
	}
}

// Lossless reports whether the current source's frames are parts that
// must all be inspected (folders, files) rather than a live view.
func (s *swapSource) Lossless() bool { return capture.IsLossless(s.Current()) }

// Close closes the current (and any pending) source.
func (s *swapSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	if s.pending != nil {
		_ = s.pending.Close()
		s.pending = nil
	}
	if s.retired != nil {
		close(s.retired)
		s.retired = nil
	}
	return s.cur.Close()
}

// detectorSlot holds the detector the pipeline inspects with and replaces
// it between two frames: Use holds it for one whole inspection, Swap waits
// for the inspection in progress, so no frame is ever scored by a
// half-swapped model.
type detectorSlot struct {
	mu  sync.RWMutex
	det *model.Detector
}

// Use runs f with the current detector, which stays in place until f returns.
func (d *detectorSlot) Use(f func(*model.Detector)) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	f(d.det)
}

// Get returns the current detector; it may be swapped out (and closed by
// whoever swapped it), or its thresholds changed (modify), at any time
// after: read its description with Info instead.
func (d *detectorSlot) Get() *model.Detector {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.det
}

// Info is the current detector's Info, read under the slot's lock: a
// threshold command changes it in place (modify).
func (d *detectorSlot) Info() model.Info {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.det.Info()
}

// modify runs f with the detector while no inspection uses it (to change
// its thresholds between two frames).
func (d *detectorSlot) modify(f func(*model.Detector) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return f(d.det)
}

// Swap installs det once no inspection uses the old one, and returns the
// old one for the caller to close.
func (d *detectorSlot) Swap(det *model.Detector) *model.Detector {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.det
	d.det = det
	return old
}
