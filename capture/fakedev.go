package capture

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"syscall"
	"time"
)

// FakeCamera is the hardware edge where there is no camera: a V4L2 camera
// that can be plugged and unplugged, replaying queued frames through the
// Devices it opens (Open is a CameraOptions.Open). The capture tests drive
// it, and `inspectd bench --camera-replay` replays recorded frames through
// it at a camera's rate, so that the real Camera code (dequeue, newest
// frame, decode, requeue) runs as on a line.
//
// It behaves as the kernel's vivid driver was seen to (capture/vivid): the
// driver picks the size and frame rate it offers, buffers carry
// CLOCK_MONOTONIC timestamps and may be flagged as errors, buttons have no
// value, a buffer's bytes are overwritten once it is requeued.
type FakeCamera struct {
	mu       sync.Mutex
	present  bool
	opens    int
	formats  []FormatDesc
	sizes    map[FourCC][]FrameSize
	rates    []float64
	rate     float64
	rng      YUVRange
	rngSaid  bool
	controls []Control
	values   map[uint32]int32
	sets     []string // "id=value" in the order they were set
	feed     []fakeEvent
	// oneAtATime makes polls (timeout 0) report nothing, so every queued
	// frame is delivered instead of only the newest.
	oneAtATime bool
	// startErrs fails that many StartStreaming calls, as vivid's "Inject
	// VIDIOC_STREAMON Error" button does once.
	startErrs int
	// noStamps delivers buffers without timestamps.
	noStamps bool
	outMax   int // most buffers the camera held at once
	// bounded makes the feed hold at most as many frames as the driver has
	// buffers not held by the camera; a frame captured while they are all
	// full is lost, as a driver loses it (counted in lost).
	bounded bool
	lost    uint64
	wake    chan struct{} // signalled by every push
	cur     *fakeDevice
}

type fakeEvent struct {
	frame   []byte
	unplug  bool
	errFlag bool
	stamp   time.Duration // CLOCK_MONOTONIC capture time; 0: none
}

// NewFakeCamera returns a plugged-in fake camera offering YUYV (64×48 and
// 640×480) and MJPEG (48×32) at 5, 15 and 30 fps, with a few controls of
// each kind; Offer replaces what it offers.
func NewFakeCamera() *FakeCamera {
	return &FakeCamera{
		present: true,
		formats: []FormatDesc{{FormatYUYV, "YUYV 4:2:2"}, {FormatMJPEG, "Motion-JPEG"}},
		sizes: map[FourCC][]FrameSize{
			FormatYUYV:  {{MinWidth: 64, MaxWidth: 64, MinHeight: 48, MaxHeight: 48}, {MinWidth: 640, MaxWidth: 640, MinHeight: 480, MaxHeight: 480}},
			FormatMJPEG: {{MinWidth: 48, MaxWidth: 48, MinHeight: 32, MaxHeight: 32}},
		},
		rates: []float64{5, 15, 30},
		rate:  5,
		controls: []Control{
			{ID: 1, Name: "Brightness", Min: 0, Max: 255, Step: 1, Default: 128, Kind: ControlInt},
			{ID: 2, Name: "Auto Exposure", Min: 0, Max: 3, Step: 1, Default: 3, Kind: ControlMenu,
				Menu: []MenuItem{{1, "Manual Mode"}, {3, "Aperture Priority Mode"}}},
			{ID: 3, Name: "Exposure Time, Absolute", Min: 3, Max: 2047, Step: 1, Default: 250, Kind: ControlInt},
			{ID: 4, Name: "Gain", Min: 0, Max: 255, Step: 1, Kind: ControlInt},
			{ID: 5, Name: "Disconnect", Kind: ControlButton, WriteOnly: true},
			{ID: 6, Name: "Read-Only Integer 32 Bits", Max: 255, Step: 1, Kind: ControlInt, ReadOnly: true},
		},
		values: map[uint32]int32{},
		wake:   make(chan struct{}, 1),
	}
}

// Offer makes the camera offer only format at w×h and the given frame
// rates (the first is the rate it starts at), with buffers holding at most
// what a driver's buffers hold (frames captured while the camera holds
// them all are lost, see Lost).
func (w *FakeCamera) Offer(format FourCC, width, height int, fps ...float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.formats = []FormatDesc{{format, format.String()}}
	w.sizes = map[FourCC][]FrameSize{format: {{MinWidth: uint32(width), MaxWidth: uint32(width), MinHeight: uint32(height), MaxHeight: uint32(height)}}}
	if len(fps) > 0 {
		w.rates, w.rate = slices.Clone(fps), fps[0]
	}
	w.bounded = true
}

// Open opens the camera's device node (any path), as OpenV4L2 would; it
// fails with ENOENT while the camera is unplugged.
func (w *FakeCamera) Open(path string) (Device, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.present {
		return nil, &fs.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
	}
	w.opens++
	w.cur = &fakeDevice{w: w, bufs: make([][]byte, 4), held: map[uint32]bool{}}
	return w.cur, nil
}

// Push queues frames captured now (the bytes are kept, not copied).
func (w *FakeCamera) Push(frames ...[]byte) {
	now := monotonicNow()
	for _, f := range frames {
		w.pushEvent(fakeEvent{frame: f, stamp: now})
	}
}

// pushEvent queues one event as given.
func (w *FakeCamera) pushEvent(ev fakeEvent) {
	w.mu.Lock()
	if w.bounded && !ev.unplug {
		// A driver fills only the buffers the camera has queued; a frame
		// captured while none is free is lost (vb2 drops the new one).
		if w.cur == nil || !w.cur.streaming || len(w.feed) >= len(w.cur.bufs)-len(w.cur.held) {
			w.lost++
			w.mu.Unlock()
			return
		}
	}
	w.feed = append(w.feed, ev)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Unplug makes the device vanish once the camera has read what was queued
// before: it then answers ENODEV, and opening fails until SetPresent.
func (w *FakeCamera) Unplug() { w.pushEvent(fakeEvent{unplug: true}) }

// SetPresent plugs the camera in (true) or takes it away (false).
func (w *FakeCamera) SetPresent(p bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.present = p
}

// Lost is the number of frames lost because every buffer was full (only
// after Offer, whose buffers are bounded as a driver's are).
func (w *FakeCamera) Lost() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// Replay pushes frames, in a loop, at fps frames per second, each stamped
// with the time it is pushed, until count frames have been pushed (0: until
// ctx ends). It returns the number pushed. The frames' bytes are not
// copied.
func (w *FakeCamera) Replay(ctx context.Context, frames [][]byte, fps float64, count int) int {
	if len(frames) == 0 || fps <= 0 {
		return 0
	}
	period := time.Duration(float64(time.Second) / fps)
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	n := 0
	for count <= 0 || n < count {
		// Frames are due at fixed times from the start, so a late wake-up
		// does not slow the rate down.
		if wait := time.Until(start.Add(time.Duration(n) * period)); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return n
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return n
		}
		w.Push(frames[n%len(frames)])
		n++
	}
	return n
}

// poisonBytes is how much of each end of a requeued buffer is overwritten.
const poisonBytes = 4096

type fakeDevice struct {
	w         *FakeCamera
	dead      bool
	closed    bool
	streaming bool
	format    FourCC
	bufs      [][]byte
	held      map[uint32]bool
	next      uint32
	timer     *time.Timer
}

func (d *fakeDevice) Card() string { return "Fake Cam" }
func (d *fakeDevice) Bus() string  { return "usb-fake-1" }
func (d *fakeDevice) Formats() []FormatDesc {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	return d.w.formats
}
func (d *fakeDevice) FrameSizes(f FourCC) []FrameSize {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	return d.w.sizes[f]
}
func (d *fakeDevice) FrameRates(f FourCC, w, h uint32) []float64 {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	return d.w.rates
}
func (d *fakeDevice) Controls() []Control { return d.w.controls }
func (d *fakeDevice) control(id uint32) (Control, bool) {
	for _, c := range d.w.controls {
		if c.ID == id {
			return c, true
		}
	}
	return Control{}, false
}
func (d *fakeDevice) GetControl(id uint32) (int32, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	c, ok := d.control(id)
	switch {
	case !ok:
		return 0, syscall.EINVAL
	case c.WriteOnly:
		return 0, syscall.EACCES // as V4L2 answers for buttons
	}
	if v, ok := d.w.values[id]; ok {
		return v, nil
	}
	return c.Default, nil
}
func (d *fakeDevice) SetControl(id uint32, v int32) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	c, ok := d.control(id)
	switch {
	case !ok:
		return syscall.EINVAL
	case c.ReadOnly:
		return syscall.EACCES
	case c.Kind != ControlButton && c.Kind != ControlBitmask && (v < c.Min || v > c.Max):
		return syscall.ERANGE
	}
	d.w.sets = append(d.w.sets, fmt.Sprintf("%d=%d", id, v))
	if c.Kind != ControlButton {
		d.w.values[id] = v
	}
	return nil
}

// SetFormat settles on the offered size nearest to the one asked for, as
// V4L2 drivers do.
func (d *fakeDevice) SetFormat(f FourCC, w, h uint32) (PixFormat, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	sizes := d.w.sizes[f]
	if len(sizes) == 0 {
		return PixFormat{}, syscall.EINVAL
	}
	best, bd := sizes[0], int64(-1)
	for _, s := range sizes {
		dd := absDiff(s.MaxWidth, w) + absDiff(s.MaxHeight, h)
		if bd < 0 || dd < bd {
			best, bd = s, dd
		}
	}
	d.format = f
	return PixFormat{Format: f, Width: best.MaxWidth, Height: best.MaxHeight, BytesPerLine: 2 * best.MaxWidth,
		Range: d.w.rng, RangeDefault: !d.w.rngSaid}, nil
}

// SetFramerate takes the slowest offered rate at or above the one asked
// for (the fastest when none is), as vivid does.
func (d *fakeDevice) SetFramerate(fps float64) (float64, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	rates := slices.Sorted(slices.Values(d.w.rates))
	d.w.rate = rates[len(rates)-1]
	for _, r := range rates {
		if r >= fps-1e-9 {
			d.w.rate = r
			break
		}
	}
	return d.w.rate, nil
}
func (d *fakeDevice) Framerate() (float64, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	return d.w.rate, nil
}
func (d *fakeDevice) StartStreaming(n uint32) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.w.startErrs > 0 {
		d.w.startErrs--
		return fmt.Errorf("VIDIOC_STREAMON: %w", syscall.EINVAL)
	}
	if n > 0 {
		d.bufs = make([][]byte, n)
	}
	d.streaming = true
	return nil
}

// WaitFrame waits until a frame is queued (woken by the push) or the
// timeout passes, as poll(2) does on a real device.
func (d *fakeDevice) WaitFrame(timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		d.w.mu.Lock()
		if d.closed {
			d.w.mu.Unlock()
			return false, errors.New("fake: wait on a closed device")
		}
		if d.dead {
			d.w.mu.Unlock()
			return false, syscall.ENODEV
		}
		ready := len(d.w.feed) > 0 && !(timeout == 0 && d.w.oneAtATime)
		d.w.mu.Unlock()
		remain := time.Until(deadline)
		if ready || timeout == 0 || remain <= 0 {
			return ready, nil
		}
		if d.timer == nil {
			d.timer = time.NewTimer(remain)
		} else {
			d.timer.Reset(remain)
		}
		select {
		case <-d.w.wake:
			d.timer.Stop()
		case <-d.timer.C:
		}
	}
}

func (d *fakeDevice) GetFrame() (Buffer, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.dead {
		return Buffer{}, syscall.ENODEV
	}
	if !d.streaming {
		return Buffer{}, errors.New("fake: dequeue while not streaming")
	}
	if len(d.w.feed) == 0 {
		return Buffer{}, syscall.EAGAIN
	}
	ev := d.w.feed[0]
	// Shifted down, not resliced, so that the queue's array is reused and
	// pushing allocates nothing in steady state.
	n := copy(d.w.feed, d.w.feed[1:])
	d.w.feed[n] = fakeEvent{}
	d.w.feed = d.w.feed[:n]
	if ev.unplug {
		d.dead = true
		d.w.present = false
		return Buffer{}, syscall.ENODEV
	}
	idx := d.next % uint32(len(d.bufs))
	d.next++
	if d.held[idx] {
		return Buffer{}, fmt.Errorf("fake: buffer %d dequeued twice", idx)
	}
	// Like mmap buffers: the camera must decode before releasing.
	d.bufs[idx] = append(d.bufs[idx][:0], ev.frame...)
	d.held[idx] = true
	d.w.outMax = max(d.w.outMax, len(d.held))
	b := Buffer{Data: d.bufs[idx], Index: idx, Error: ev.errFlag, Timestamp: ev.stamp}
	if d.w.noStamps {
		b.Timestamp = 0
	}
	return b, nil
}

func (d *fakeDevice) ReleaseFrame(idx uint32) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.dead {
		return syscall.ENODEV
	}
	if !d.held[idx] {
		return fmt.Errorf("fake: buffer %d released but not held", idx)
	}
	delete(d.held, idx)
	// Overwrite the ends, so that a camera that kept using released bytes
	// would see junk where every frame format keeps its headers and first
	// rows (the whole buffer would cost the replay bench a pass per frame).
	b := d.bufs[idx]
	for i := range b[:min(len(b), poisonBytes)] {
		b[i] = 0xee
	}
	for i := range b[max(len(b)-poisonBytes, 0):] {
		b[max(len(b)-poisonBytes, 0)+i] = 0xee
	}
	return nil
}

func (d *fakeDevice) Close() error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.closed {
		return errors.New("fake: closed twice")
	}
	d.closed = true
	return nil
}
