package daemon

import (
	"context"
	"errors"
	"image"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/inspectd/inspectd/capture"
)

// tapTriggerPrefix marks the trigger requests a frame tap makes in trigger
// mode. A control character can never start an MQTT trigger id (the
// parser refuses them), so these never collide with a PLC's ids.
const tapTriggerPrefix = "\x00tap-"

// errPipelineStopped ends a NextFrame whose pipeline stopped.
var errPipelineStopped = errors.New("pipeline stopped")

// frameTaps hands copies of live frames to whoever waits for one (a refit
// collecting normal frames) without stopping inspection. In free-run the
// next good frame is copied on its way to inspection; in trigger mode a
// tap queues a trigger request of its own, whose frame is copied and not
// inspected.
type frameTaps struct {
	n       atomic.Int32 // waiting taps: the capture stage's fast check
	mu      sync.Mutex
	waiting []chan tapped
	seq     atomic.Uint64
	done    chan struct{} // closed when the pipeline's Run returns
}

func newFrameTaps() *frameTaps { return &frameTaps{done: make(chan struct{})} }

// tapped is what a waiting tap gets: a copy of a frame, or why the frame
// that came cannot be had (refused).
type tapped struct {
	img image.Image
	err error
}

// wait registers a tap and returns its channel and a function that
// withdraws it.
func (t *frameTaps) wait() (chan tapped, func()) {
	ch := make(chan tapped, 1)
	t.mu.Lock()
	t.waiting = append(t.waiting, ch)
	t.n.Add(1)
	t.mu.Unlock()
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for i, c := range t.waiting {
			if c == ch {
				t.waiting = append(t.waiting[:i], t.waiting[i+1:]...)
				t.n.Add(-1)
				return
			}
		}
	}
}

// feed gives every waiting tap its own copy of img.
func (t *frameTaps) feed(img image.Image) {
	for _, ch := range t.take() {
		ch <- tapped{img: cloneImage(img)}
	}
}

// refuse ends every waiting tap with err: the source's frames come, but
// none can be given (a camera reopened at a frame size capture.roi was
// not given for), so waiting for the next would wait for ever.
func (t *frameTaps) refuse(err error) {
	for _, ch := range t.take() {
		ch <- tapped{err: err}
	}
}

// take withdraws every waiting tap.
func (t *frameTaps) take() []chan tapped {
	if t.n.Load() == 0 {
		return nil
	}
	t.mu.Lock()
	waiting := t.waiting
	t.waiting = nil
	t.n.Store(0)
	t.mu.Unlock()
	return waiting
}

// NextFrame returns a copy of the next good frame the source delivers
// after the call (region of interest cut and rotated, as inspection sees
// it) while inspection goes on. It fails when the pipeline stops or ctx
// ends, in trigger mode when the trigger queue is full, and at once with
// the frame's *capture.FrameSizeError when the frame that came is refused
// for its size (no frame will be given until the camera is back at the
// size capture.roi was given for).
func (p *Pipeline) NextFrame(ctx context.Context, tr *capture.Triggered) (image.Image, error) {
	ch, cancel := p.taps.wait()
	if tr != nil {
		if err := tr.Trigger(tapTriggerPrefix + strconv.FormatUint(p.taps.seq.Add(1), 10)); err != nil {
			cancel()
			return nil, err
		}
	}
	select {
	case got := <-ch:
		return got.img, got.err
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	case <-p.taps.done:
		cancel()
		return nil, errPipelineStopped
	}
}

// cloneImage copies a frame of any kind the sources deliver (views,
// camera layouts) into memory the caller owns, as plain *image.RGBA or
// *image.Gray at the origin.
func cloneImage(img image.Image) image.Image { return capture.Flatten(nil, img) }
