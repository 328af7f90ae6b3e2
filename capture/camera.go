package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CameraOptions configure a V4L2 camera. Zero fields take the defaults
// noted on each.
type CameraOptions struct {
	// Device is a path (/dev/video0), a stable link (/dev/v4l/by-id/...) or
	// the bare name of a link in /dev/v4l/by-id. Required.
	Device string
	// Formats is the pixel format preference order; the first one the camera
	// offers is used. Default MJPEG, YUYV, GREY.
	Formats []FourCC
	// Width and Height are the wanted frame size; the nearest size the camera
	// offers for the chosen format is used. Default 1280×720.
	Width, Height int
	// FPS asks for a frame rate; 0 keeps the driver's.
	FPS float64
	// Buffers is the number of driver buffers. Few buffers keep latency low.
	// Default 3.
	Buffers int
	// Controls sets camera controls by name where the camera has them:
	// "exposure", "gain", "white_balance", "focus" (the matching automatic
	// mode is switched off), or any control's own name in lower case with
	// '_' for spaces and punctuation ("exposure_time_absolute",
	// "brightness", "auto_exposure").
	Controls map[string]int32
	// FrameTimeout bounds the wait for one good frame. Default 2s.
	FrameTimeout time.Duration
	// ReopenAfterTimeouts is the number of timeouts in a row after which the
	// device is closed and reopened, which unsticks stalled USB cameras.
	// Default 3.
	ReopenAfterTimeouts int
	// ReopenMin and ReopenMax bound the exponential backoff between attempts
	// to reopen a lost device. Defaults 250ms and 5s.
	ReopenMin, ReopenMax time.Duration
	// Color selects RGBA or gray frames; ColorAuto keeps GREY cameras gray.
	Color Color
	// YUVRange is the quantization of YUYV frames (limited by default, as
	// V4L2 defines for YUYV).
	YUVRange YUVRange
	// MaxPixels refuses an MJPEG frame whose SOF header declares more pixels
	// (0: DefaultMaxPixels), before decoding it.
	MaxPixels int64
	// Open opens the device; nil uses V4L2 through github.com/blackjack/webcam.
	Open Opener
	// Log receives one line per event (opened, lost, timeouts, corrupt
	// frames); nil uses slog.Default().
	Log *slog.Logger
}

// CameraStatus says what the camera is doing, for health reports.
type CameraStatus struct {
	Device    string
	Connected bool
	Format    FourCC
	Width     int
	Height    int
	// LastError is the most recent reason frames did not arrive ("" when
	// the last frame was good).
	LastError string
	// Since is when Connected last changed.
	Since time.Time
}

// Camera is a Source reading a V4L2 camera. Next returns the newest frame:
// frames that waited in the driver's queue while the caller was busy are
// dropped. A timeout or an unplugged camera is returned as a Temporary error
// (ErrTimeout, ErrUnavailable); the next call waits again or reopens the
// device with backoff, so the process never has to restart. Corrupt frames
// are counted and skipped.
type Camera struct {
	opts     CameraOptions
	log      *slog.Logger
	counters Counters

	dev           Device
	format        FourCC
	width, height int
	mj            MJPEGDecoder
	seq           uint64
	closed        bool

	everOpened    bool
	backoff       time.Duration
	retryAt       time.Time
	timer         *time.Timer
	timeoutsInRow int
	downLogged    bool
	corruptLogged bool
	corruptRun    int

	mu     sync.Mutex
	status CameraStatus
}

// waitSlice bounds one wait on the device so that a cancelled context is
// noticed promptly.
const waitSlice = 100 * time.Millisecond

// NewCamera checks the options and returns a camera; the device is opened on
// the first Next, so a camera that is not plugged in yet is not an error.
func NewCamera(opts CameraOptions) (*Camera, error) {
	if opts.Device == "" {
		return nil, errors.New("camera: no device path given")
	}
	if !strings.Contains(opts.Device, "/") {
		// A bare by-id name.
		opts.Device = filepath.Join("/dev/v4l/by-id", opts.Device)
	}
	if len(opts.Formats) == 0 {
		opts.Formats = []FourCC{FormatMJPEG, FormatYUYV, FormatGREY}
	}
	for _, f := range opts.Formats {
		if !f.decodable() {
			return nil, fmt.Errorf("camera %s: pixel format %s: want MJPEG, YUYV or GREY", opts.Device, f)
		}
	}
	if opts.Width < 0 || opts.Height < 0 || opts.FPS < 0 || opts.Buffers < 0 {
		return nil, fmt.Errorf("camera %s: negative width, height, fps or buffers", opts.Device)
	}
	if opts.Width == 0 || opts.Height == 0 {
		opts.Width, opts.Height = 1280, 720
	}
	if opts.Buffers == 0 {
		opts.Buffers = 3
	}
	if opts.FrameTimeout <= 0 {
		opts.FrameTimeout = 2 * time.Second
	}
	if opts.ReopenAfterTimeouts <= 0 {
		opts.ReopenAfterTimeouts = 3
	}
	if opts.ReopenMin <= 0 {
		opts.ReopenMin = 250 * time.Millisecond
	}
	if opts.ReopenMax < opts.ReopenMin {
		opts.ReopenMax = max(5*time.Second, opts.ReopenMin)
	}
	if opts.Open == nil {
		opts.Open = defaultOpener()
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	c := &Camera{opts: opts, log: log.With("device", opts.Device)}
	c.mj.MaxPixels = opts.MaxPixels
	c.status = CameraStatus{Device: opts.Device, Since: time.Now()}
	return c, nil
}

// Counters returns the camera's counters.
func (c *Camera) Counters() *Counters { return &c.counters }

// Lossless implements LosslessSource: a live camera's frames may be
// dropped; the newest one is worth more than an old one.
func (c *Camera) Lossless() bool { return false }

// Status returns what the camera is doing; safe from any goroutine.
func (c *Camera) Status() CameraStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Camera) setStatus(connected bool, lastErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if connected != c.status.Connected {
		c.status.Since = time.Now()
	}
	c.status.Connected = connected
	c.status.Format, c.status.Width, c.status.Height = c.format, c.width, c.height
	c.status.LastError = ""
	if lastErr != nil {
		c.status.LastError = lastErr.Error()
	}
}

// Next implements Source.
func (c *Camera) Next(ctx context.Context, f *Frame) error {
	if c.closed {
		return fmt.Errorf("camera %s: closed", c.opts.Device)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.dev == nil {
		if err := c.open(ctx); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(c.opts.FrameTimeout)
	corrupt := 0
	var lastDecodeErr error
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		remain := time.Until(deadline)
		if remain <= 0 {
			return c.timedOut(corrupt, lastDecodeErr)
		}
		ready, err := c.dev.WaitFrame(min(remain, waitSlice))
		if err != nil {
			return c.lose(fmt.Errorf("wait for frame: %w", err))
		}
		if !ready {
			continue
		}
		buf, idx, err := c.dev.GetFrame()
		if err != nil {
			if retryable(err) {
				continue
			}
			return c.lose(fmt.Errorf("dequeue frame: %w", err))
		}
		buf, idx, err = c.newest(buf, idx)
		if err != nil {
			return c.lose(fmt.Errorf("dequeue frame: %w", err))
		}
		now := time.Now()
		img, derr := c.decode(f.Image, buf)
		if err := c.dev.ReleaseFrame(idx); err != nil {
			return c.lose(fmt.Errorf("requeue buffer %d: %w", idx, err))
		}
		if derr != nil {
			if errors.Is(derr, ErrImageTooLarge) {
				c.counters.TooLarge.Add(1)
			} else {
				c.counters.DecodeErrors.Add(1)
			}
			corrupt++
			c.corruptRun++
			lastDecodeErr = derr
			if !c.corruptLogged {
				c.log.Warn("camera: corrupt frame skipped", "format", c.format.String(), "err", derr)
				c.corruptLogged = true
			}
			continue
		}
		if c.corruptRun > 0 {
			c.log.Info("camera: good frames again", "corrupt_skipped", c.corruptRun)
			c.corruptRun, c.corruptLogged = 0, false
		}
		if c.timeoutsInRow > 0 {
			c.log.Info("camera: frames resumed", "timeouts", c.timeoutsInRow)
			c.timeoutsInRow = 0
			c.setStatus(true, nil)
		}
		c.seq++
		f.Image = img
		f.Mask, f.Name, f.Label = nil, "", ""
		f.Seq, f.Time = c.seq, now
		f.Trigger, f.TriggerTime = "", time.Time{}
		c.counters.Frames.Add(1)
		return nil
	}
}

// retryable reports dequeue errors that mean "no buffer right now".
func retryable(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
}

// newest keeps dequeuing while more filled buffers are ready, requeuing the
// older ones, so the caller gets the most recent frame instead of one that
// waited in the queue.
func (c *Camera) newest(buf []byte, idx uint32) ([]byte, uint32, error) {
	for {
		ready, err := c.dev.WaitFrame(0)
		if err != nil || !ready {
			return buf, idx, nil // a real failure shows up on the next wait
		}
		b2, i2, err := c.dev.GetFrame()
		if err != nil {
			if retryable(err) {
				return buf, idx, nil
			}
			return nil, 0, err
		}
		if err := c.dev.ReleaseFrame(idx); err != nil {
			return nil, 0, err
		}
		c.counters.Dropped.Add(1)
		buf, idx = b2, i2
	}
}

// Flush implements Flusher: it drops every buffered frame so that the next
// frame returned was captured after the call.
func (c *Camera) Flush() {
	if c.dev == nil {
		return
	}
	for {
		ready, err := c.dev.WaitFrame(0)
		if err != nil || !ready {
			return
		}
		_, idx, err := c.dev.GetFrame()
		if err != nil {
			return
		}
		if c.dev.ReleaseFrame(idx) != nil {
			return
		}
		c.counters.Dropped.Add(1)
	}
}

func (c *Camera) decode(dst image.Image, buf []byte) (image.Image, error) {
	switch c.format {
	case FormatMJPEG, FormatJPEG:
		return c.mj.Decode(dst, buf, c.opts.Color)
	case FormatYUYV:
		if c.opts.Color.gray(false) {
			return DecodeYUYVGray(dst, buf, c.width, c.height, c.opts.YUVRange)
		}
		return DecodeYUYV(dst, buf, c.width, c.height, c.opts.YUVRange)
	case FormatGREY:
		return DecodeGrey(dst, buf, c.width, c.height, !c.opts.Color.gray(true))
	}
	return nil, fmt.Errorf("pixel format %s cannot be decoded", c.format)
}

// timedOut counts a timeout and, after several in a row, closes the device
// so that the next call reopens it.
func (c *Camera) timedOut(corrupt int, lastDecodeErr error) error {
	c.counters.Timeouts.Add(1)
	c.timeoutsInRow++
	err := fmt.Errorf("%w: no frame from %s within %v", ErrTimeout, c.opts.Device, c.opts.FrameTimeout)
	if corrupt > 0 {
		err = fmt.Errorf("%w: no good frame from %s within %v: %d corrupt frames skipped, last: %v",
			ErrTimeout, c.opts.Device, c.opts.FrameTimeout, corrupt, lastDecodeErr)
	}
	if c.timeoutsInRow == 1 {
		c.log.Warn("camera: frame timeout", "timeout", c.opts.FrameTimeout, "corrupt_skipped", corrupt)
	}
	c.setStatus(true, err)
	if c.timeoutsInRow%c.opts.ReopenAfterTimeouts == 0 {
		c.log.Warn("camera: stalled, reopening", "timeouts_in_row", c.timeoutsInRow)
		c.closeDevice()
		c.retryAt = time.Time{}
	}
	return err
}

// lose closes a device that failed and schedules its reopening.
func (c *Camera) lose(cause error) error {
	c.closeDevice()
	c.backoff = c.opts.ReopenMin
	c.retryAt = time.Now().Add(c.backoff)
	err := fmt.Errorf("%w: %s: %w", ErrUnavailable, c.opts.Device, cause)
	c.log.Warn("camera: lost, reopening with backoff", "err", cause)
	c.downLogged = true
	c.setStatus(false, err)
	return err
}

func (c *Camera) closeDevice() {
	if c.dev != nil {
		_ = c.dev.Close() // the device may already be gone
		c.dev = nil
	}
}

// open waits out the backoff, then opens and configures the device.
func (c *Camera) open(ctx context.Context) error {
	if wait := time.Until(c.retryAt); wait > 0 {
		if err := sleepCtx(ctx, &c.timer, wait); err != nil {
			return err
		}
	}
	dev, err := c.opts.Open(c.opts.Device)
	if err == nil {
		if err = c.configure(dev); err != nil {
			_ = dev.Close()
		}
	}
	if err != nil {
		var cfg *configError
		if errors.As(err, &cfg) {
			c.setStatus(false, err)
			return err // retrying cannot help
		}
		if c.backoff == 0 {
			c.backoff = c.opts.ReopenMin
		} else {
			c.backoff = min(2*c.backoff, c.opts.ReopenMax)
		}
		c.retryAt = time.Now().Add(c.backoff)
		werr := fmt.Errorf("%w: %w (next try in %v)", ErrUnavailable, err, c.backoff)
		if !c.downLogged {
			c.log.Warn("camera: unavailable, retrying with backoff", "err", err)
			c.downLogged = true
		}
		c.setStatus(false, werr)
		return werr
	}
	c.dev = dev
	if c.everOpened {
		c.counters.Reopens.Add(1)
	}
	c.everOpened = true
	c.backoff, c.retryAt, c.downLogged = 0, time.Time{}, false
	c.log.Info("camera: streaming", "card", dev.Card(), "format", c.format.String(),
		"width", c.width, "height", c.height, "fps", c.opts.FPS, "buffers", c.opts.Buffers)
	c.setStatus(true, nil)
	return nil
}

// configError is a configuration the camera cannot satisfy; reopening does
// not help, so it is not Temporary.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// configure negotiates format and size, applies controls and starts
// streaming.
func (c *Camera) configure(dev Device) error {
	offered := dev.Formats()
	var format FourCC
	for _, want := range c.opts.Formats {
		if slices.ContainsFunc(offered, func(d FormatDesc) bool { return d.Format == want }) {
			format = want
			break
		}
	}
	if format == 0 {
		var have []string
		for _, d := range offered {
			have = append(have, d.Format.String())
		}
		var want []string
		for _, f := range c.opts.Formats {
			want = append(want, f.String())
		}
		return &configError{fmt.Sprintf("camera %s offers none of the pixel formats %s (it has %s)",
			c.opts.Device, strings.Join(want, ", "), strings.Join(have, ", "))}
	}
	w, h := nearestSize(dev.FrameSizes(format), uint32(c.opts.Width), uint32(c.opts.Height))
	got, gw, gh, err := dev.SetFormat(format, w, h)
	if err != nil {
		return fmt.Errorf("set format %s %dx%d: %w", format, w, h, err)
	}
	if got != format && !got.decodable() {
		return &configError{fmt.Sprintf("camera %s switched to pixel format %s, which cannot be decoded", c.opts.Device, got)}
	}
	if gw%2 != 0 && got == FormatYUYV {
		return &configError{fmt.Sprintf("camera %s: YUYV width %d is odd", c.opts.Device, gw)}
	}
	c.format, c.width, c.height = got, int(gw), int(gh)
	if c.opts.FPS > 0 {
		if err := dev.SetFramerate(c.opts.FPS); err != nil {
			c.log.Warn("camera: frame rate not set", "fps", c.opts.FPS, "err", err)
		}
	}
	c.applyControls(dev)
	if err := dev.SetBufferCount(uint32(c.opts.Buffers)); err != nil {
		return fmt.Errorf("set %d buffers: %w", c.opts.Buffers, err)
	}
	if err := dev.StartStreaming(); err != nil {
		return fmt.Errorf("start streaming: %w", err)
	}
	return nil
}

// nearestSize picks the offered size closest to w×h (sum of the width and
// height differences; ties go to the larger size). With nothing offered it
// asks for w×h and lets the driver adjust.
func nearestSize(sizes []FrameSize, w, h uint32) (uint32, uint32) {
	bw, bh := w, h
	best := int64(-1)
	for _, s := range sizes {
		cw := fitRange(w, s.MinWidth, s.MaxWidth, s.StepWidth)
		ch := fitRange(h, s.MinHeight, s.MaxHeight, s.StepHeight)
		d := absDiff(cw, w) + absDiff(ch, h)
		if best < 0 || d < best || (d == best && uint64(cw)*uint64(ch) > uint64(bw)*uint64(bh)) {
			best, bw, bh = d, cw, ch
		}
	}
	return bw, bh
}

func fitRange(v, lo, hi, step uint32) uint32 {
	if hi < lo {
		lo, hi = hi, lo
	}
	v = min(max(v, lo), hi)
	if step > 0 {
		v = lo + (v-lo+step/2)/step*step
		for v > hi {
			v -= step
		}
	}
	return v
}

func absDiff(a, b uint32) int64 {
	if a > b {
		return int64(a - b)
	}
	return int64(b - a)
}

// controlKey normalizes a control name: "Exposure Time, Absolute" becomes
// "exposure_time_absolute".
func controlKey(name string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	return b.String()
}

// controlAlias maps the friendly names to the driver names that implement
// them and to the automatic mode that must be off for a manual value to
// stick (with the value that means "manual").
func controlAlias(key string) (names, autos []string, manual int32) {
	switch key {
	case "exposure":
		return []string{"exposure_time_absolute", "exposure_absolute", "exposure"}, []string{"auto_exposure", "exposure_auto"}, 1
	case "gain":
		return []string{"gain", "analogue_gain", "analog_gain"}, []string{"gain_automatic", "autogain", "auto_gain"}, 0
	case "white_balance":
		return []string{"white_balance_temperature", "white_balance"}, []string{"white_balance_automatic", "white_balance_temperature_auto", "auto_white_balance"}, 0
	case "focus":
		return []string{"focus_absolute", "focus"}, []string{"focus_automatic_continuous", "focus_auto", "auto_focus"}, 0
	}
	return []string{key}, nil, 0
}

// applyControls sets the configured controls. Automatic modes go first, as
// cameras reject manual values while automatic mode is on. Controls the
// camera lacks are logged and skipped.
func (c *Camera) applyControls(dev Device) {
	if len(c.opts.Controls) == 0 {
		return
	}
	byKey := map[string]Control{}
	for _, ctl := range dev.Controls() {
		byKey[controlKey(ctl.Name)] = ctl
	}
	keys := make([]string, 0, len(c.opts.Controls))
	explicit := map[string]bool{}
	for k := range c.opts.Controls {
		keys = append(keys, k)
		explicit[controlKey(k)] = true
	}
	isAuto := func(k string) bool { return strings.Contains(controlKey(k), "auto") }
	slices.SortFunc(keys, func(a, b string) int {
		if isAuto(a) != isAuto(b) {
			if isAuto(a) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	set := func(ctl Control, v int32, asked string) {
		if v < ctl.Min || v > ctl.Max {
			nv := min(max(v, ctl.Min), ctl.Max)
			c.log.Warn("camera: control value clamped", "control", asked, "value", v, "min", ctl.Min, "max", ctl.Max, "used", nv)
			v = nv
		}
		if err := dev.SetControl(ctl.ID, v); err != nil {
			c.log.Warn("camera: control not set", "control", asked, "driver_name", ctl.Name, "value", v, "err", err)
		}
	}
	for _, k := range keys {
		names, autos, manual := controlAlias(controlKey(k))
		ctl, ok := Control{}, false
		for _, n := range names {
			if ctl, ok = byKey[n]; ok {
				break
			}
		}
		if !ok {
			c.log.Warn("camera: no such control on this camera", "control", k)
			continue
		}
		for _, a := range autos {
			if explicit[a] {
				break
			}
			if actl, ok := byKey[a]; ok {
				set(actl, manual, a)
				break
			}
		}
		set(ctl, c.opts.Controls[k], k)
	}
}

// Close implements Source.
func (c *Camera) Close() error {
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.dev == nil {
		return nil
	}
	err := c.dev.Close()
	c.dev = nil
	c.setStatus(false, nil)
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close camera %s: %w", c.opts.Device, err)
	}
	return nil
}
