package capture

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrTriggerOverrun reports a trigger refused because too many requests are
// already waiting.
var ErrTriggerOverrun = errors.New("capture: trigger queue full")

// ErrTriggerExpired reports a trigger request that waited longer than
// TriggerOptions.MaxAge before its turn; a frame taken that late would not
// show what the trigger meant.
var ErrTriggerExpired = errors.New("capture: trigger request expired")

// TriggerError is the failure of one trigger request: whoever sent it (an
// MQTT correlation id) gets an answer even when no frame comes.
type TriggerError struct {
	ID  string
	Err error
}

func (e *TriggerError) Error() string { return fmt.Sprintf("trigger %q: %v", e.ID, e.Err) }

// Unwrap returns the cause.
func (e *TriggerError) Unwrap() error { return e.Err }

// TriggerOptions configure a Triggered source.
type TriggerOptions struct {
	// Queue is the number of requests that may wait. Default 16.
	Queue int
	// MaxAge drops requests that waited longer than this for their turn
	// (answered with ErrTriggerExpired); 0 keeps them however long they wait.
	MaxAge time.Duration
	// MaxStale bounds how many frames taken before the request a source may
	// return before giving up. Default 8.
	MaxStale int
}

// TriggerCounters count trigger requests; readable from any goroutine.
type TriggerCounters struct {
	// Requests accepted into the queue.
	Requests atomic.Uint64
	// Served requests that got a frame.
	Served atomic.Uint64
	// Overruns: requests refused with ErrTriggerOverrun.
	Overruns atomic.Uint64
	// Expired requests dropped because of MaxAge.
	Expired atomic.Uint64
	// Failed requests whose capture returned an error.
	Failed atomic.Uint64
	// Stale frames skipped because they were taken before their request.
	Stale atomic.Uint64
}

type triggerRequest struct {
	id string
	at time.Time
}

// Triggered is a Source for external trigger mode: each Next waits for a
// request made with Trigger and returns the first frame captured after it,
// tagged with the request's correlation id. Trigger may be called from any
// goroutine (an MQTT handler); Next runs on the capture goroutine.
type Triggered struct {
	src      Source
	opts     TriggerOptions
	reqs     chan triggerRequest
	counters TriggerCounters
	waiting  atomic.Bool // Next is parked on an empty request queue
}

// NewTriggered wraps src.
func NewTriggered(src Source, opts TriggerOptions) *Triggered {
	if opts.Queue <= 0 {
		opts.Queue = 16
	}
	if opts.MaxStale <= 0 {
		opts.MaxStale = 8
	}
	return &Triggered{src: src, opts: opts, reqs: make(chan triggerRequest, opts.Queue)}
}

// Trigger asks for a frame captured from now on, answered by a later Next
// with f.Trigger == id. It never blocks: a full queue returns
// ErrTriggerOverrun.
func (t *Triggered) Trigger(id string) error {
	select {
	case t.reqs <- triggerRequest{id: id, at: time.Now()}:
		t.counters.Requests.Add(1)
		return nil
	default:
		t.counters.Overruns.Add(1)
		return &TriggerError{ID: id, Err: ErrTriggerOverrun}
	}
}

// Pending is the number of requests waiting.
func (t *Triggered) Pending() int { return len(t.reqs) }

// Waiting reports whether Next is parked waiting for a request (an idle
// line), as opposed to capturing a frame for one.
func (t *Triggered) Waiting() bool { return t.waiting.Load() }

// Drain removes the requests still waiting and returns their ids in
// arrival order, so that a daemon that stops can answer each of them.
func (t *Triggered) Drain() []string {
	var ids []string
	for {
		select {
		case r := <-t.reqs:
			ids = append(ids, r.id)
		default:
			return ids
		}
	}
}

// TriggerCounters returns the trigger counters.
func (t *Triggered) TriggerCounters() *TriggerCounters { return &t.counters }

// Counters forwards to the wrapped source.
func (t *Triggered) Counters() *Counters { return CountersOf(t.src) }

// Lossless forwards to the wrapped source.
func (t *Triggered) Lossless() bool { return IsLossless(t.src) }

// Next implements Source: it waits for a request, then captures. Once a
// request has been taken, every failure comes back as a *TriggerError
// carrying its id (Temporary still sees through it), and f's Trigger is
// the request's (a frame refused for its size is answered as the
// request's).
func (t *Triggered) Next(ctx context.Context, f *Frame) error {
	var req triggerRequest
	t.waiting.Store(true)
	select {
	case <-ctx.Done():
		t.waiting.Store(false)
		return ctx.Err()
	case req = <-t.reqs:
		t.waiting.Store(false)
	}
	if t.opts.MaxAge > 0 {
		if age := time.Since(req.at); age > t.opts.MaxAge {
			t.counters.Expired.Add(1)
			return &TriggerError{ID: req.id, Err: fmt.Errorf("%w after %v (limit %v)", ErrTriggerExpired, age.Round(time.Millisecond), t.opts.MaxAge)}
		}
	}
	return t.capture(ctx, req, f)
}

// NextTriggered captures for id right away, bypassing the queue: the frame
// returned was captured after the call.
func (t *Triggered) NextTriggered(ctx context.Context, id string, f *Frame) error {
	return t.capture(ctx, triggerRequest{id: id, at: time.Now()}, f)
}

func (t *Triggered) capture(ctx context.Context, req triggerRequest, f *Frame) error {
	if fl, ok := t.src.(Flusher); ok {
		fl.Flush() // frames buffered before the request are not fresh
	}
	for stale := 0; ; stale++ {
		if err := t.src.Next(ctx, f); err != nil {
			t.counters.Failed.Add(1)
			// A frame captured and refused (FrameSizeError,
			// ROIMisfitError) is answered as the request's: its Trigger
			// was whatever the reused Frame last held (an earlier
			// request's id, or none), and the request went unanswered.
			f.Trigger, f.TriggerTime = req.id, req.at
			return &TriggerError{ID: req.id, Err: err}
		}
		if !f.Time.Before(req.at) {
			break
		}
		t.counters.Stale.Add(1)
		if stale+1 >= t.opts.MaxStale {
			t.counters.Failed.Add(1)
			return &TriggerError{ID: req.id, Err: fmt.Errorf("no frame newer than the request after %d tries", stale+1)}
		}
	}
	f.Trigger, f.TriggerTime = req.id, req.at
	t.counters.Served.Add(1)
	return nil
}

// Close closes the wrapped source. Requests still queued are dropped.
func (t *Triggered) Close() error { return t.src.Close() }

// Throttle is a free-run Source that returns at most a given number of
// frames per second, each as fresh as the wrapped source allows.
type Throttle struct {
	src      Source
	interval time.Duration
	next     time.Time
	timer    *time.Timer
}

// NewThrottle wraps src so that Next returns at most maxPerSecond frames per
// second. maxPerSecond 0 means every frame: src is returned unchanged.
func NewThrottle(src Source, maxPerSecond float64) (Source, error) {
	if maxPerSecond < 0 || maxPerSecond != maxPerSecond {
		return nil, fmt.Errorf("max frames per second %v: want 0 (every frame) or more", maxPerSecond)
	}
	if maxPerSecond == 0 {
		return src, nil
	}
	return &Throttle{src: src, interval: time.Duration(float64(time.Second) / maxPerSecond)}, nil
}

// Next implements Source.
func (t *Throttle) Next(ctx context.Context, f *Frame) error {
	if wait := time.Until(t.next); wait > 0 {
		if err := sleepCtx(ctx, &t.timer, wait); err != nil {
			return err
		}
		// Frames buffered during the wait are old by now.
		if fl, ok := t.src.(Flusher); ok {
			fl.Flush()
		}
	}
	t.next = time.Now().Add(t.interval)
	return t.src.Next(ctx, f)
}

// Counters forwards to the wrapped source.
func (t *Throttle) Counters() *Counters { return CountersOf(t.src) }

// Lossless forwards to the wrapped source.
func (t *Throttle) Lossless() bool { return IsLossless(t.src) }

// Close closes the wrapped source.
func (t *Throttle) Close() error {
	if t.timer != nil {
		t.timer.Stop()
	}
	return t.src.Close()
}
