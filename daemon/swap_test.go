package daemon

import (
	"context"
	"testing"

	"github.com/inspectd/inspectd/capture"
)

// countedSource is a frame source that only keeps counters.
type countedSource struct{ c capture.Counters }

func (s *countedSource) Next(ctx context.Context, _ *capture.Frame) error {
	<-ctx.Done()
	return ctx.Err()
}
func (s *countedSource) Close() error                { return nil }
func (s *countedSource) Counters() *capture.Counters { return &s.c }

// The exported camera counters add up over the sources a reload swapped
// out: a new user's trial saw decode errors fall from 8 to 0 after a
// SIGHUP that rebuilt the capture.
func TestSwapSourceCarriesCounters(t *testing.T) {
	a, b := &countedSource{}, &countedSource{}
	a.c.DecodeErrors.Add(8)
	a.c.TooLarge.Add(4)
	a.c.Reopens.Add(1)
	s := newSwapSource(a)
	if err := s.Swap(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	b.c.DecodeErrors.Add(2)
	if v := s.Totals(); v.DecodeErrors != 10 || v.TooLarge != 4 || v.Reopens != 1 {
		t.Errorf("totals %+v, want 10 decode errors, 4 too large, 1 reopen", v)
	}
	if v := s.Counters().Snapshot(); v.DecodeErrors != 2 {
		t.Errorf("current source's own counters %+v, want its 2 decode errors", v)
	}
}
