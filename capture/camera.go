package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	// Controls sets camera controls by name where the camera has them
	// (see SetControls): "exposure", "gain", "white_balance", "focus" (the
	// matching automatic mode is switched off), or any control's own name
	// in lower case with '_' for spaces and punctuation
	// ("exposure_time_absolute", "brightness", "auto_exposure"). They are
	// set on every open, so they survive a replugged camera.
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
	// Color selects the frames' layout: ColorAuto keeps the camera's own
	// (MJPEG: *image.YCbCr planes, YUYV: packed *YUYV, GREY: *image.Gray),
	// which the backbone reads without conversion; ColorRGB converts to
	// *image.RGBA, ColorGray to *image.Gray.
	Color Color
	// YUVRange is the quantization of YUYV frames when the driver states
	// none (limited by default, as V4L2 defines for YUYV); a range the
	// driver states is used instead.
	YUVRange YUVRange
	// MaxPixels refuses an MJPEG frame whose SOF header declares more pixels
	// (0: DefaultMaxPixels), before decoding it.
	MaxPixels int64
	// RequireDevice makes NewCamera fail when the device node is not there
	// (ErrNoDevice) or cannot be looked at (its folder's permissions). Without it the camera waits for its device, as a
	// line that starts before its camera is plugged in needs; a running
	// line switched to a device that is not there would stop inspecting
	// while it waits, so a change of device sets it.
	RequireDevice bool
	// FailFast makes Next return, not retry, an open that fails for what
	// waiting cannot mend: a path that is no camera (ErrNotCamera), one
	// not there, or one the process may not open (permission denied). A
	// one-shot snapshot's: a line's camera keeps retrying them, since an
	// unplugged camera's node or by-id link is gone (or another node's)
	// until it is plugged back, and udev may give its permissions late.
	// A busy device, or one that is there but gone (ENODEV), is retried
	// either way.
	FailFast bool
	// Open opens the device; nil uses the kernel's V4L2 interface (OpenV4L2).
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
	// FPS is the frame rate the driver settled on (0: unknown).
	FPS float64
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
	fps           float64
	yuvRange      YUVRange
	grayLimited   bool // GREY samples the driver says are limited range
	mj            MJPEGDecoder
	seq           uint64
	closed        bool

	// streamStart is CLOCK_MONOTONIC when streaming started: driver
	// timestamps before it are not on that clock.
	streamStart    time.Duration
	badStampLogged bool
	noticesLogged  bool // what negotiation substituted, said once
	errBufLogged   bool
	errBufRun      int

	everOpened    bool
	streamedSize  image.Point // the size of the last streaming session
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

// devicePath is the path CameraOptions.Device names: a bare name is a link
// in /dev/v4l/by-id.
func devicePath(device string) string {
	if !strings.Contains(device, "/") {
		return filepath.Join("/dev/v4l/by-id", device)
	}
	return device
}

// DevicePath is the device node or link a CameraOptions.Device setting
// names, as the camera opens it: a bare name is a link in /dev/v4l/by-id
// (so that a check of the setting, such as config check's, looks where the
// camera will).
func DevicePath(device string) string { return devicePath(device) }

// SameDevice reports whether two CameraOptions.Device settings name the
// same device node: /dev/video0 and a /dev/v4l/by-id link to it are one
// camera, not a change of camera. A setting whose links cannot be followed
// (the camera is unplugged and its node and links are gone) is compared by
// its cleaned path: an unplugged camera's by-id link is not the node of
// another camera that is there. One setting is one camera, whatever its
// link resolves to: resolved on each side, it read as two cameras where
// the camera came or went between the two looks.
func SameDevice(a, b string) bool {
	pa, pb := filepath.Clean(devicePath(a)), filepath.Clean(devicePath(b))
	return pa == pb || resolveDevice(pa) == resolveDevice(pb)
}

// resolveDevice is the node the cleaned device path p leads to, or p
// where its links cannot be followed.
func resolveDevice(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// NewCamera checks the options and returns a camera; the device is opened on
// the first Next, so a camera that is not plugged in yet is not an error.
func NewCamera(opts CameraOptions) (*Camera, error) {
	if opts.Device == "" {
		return nil, errors.New("camera: no device path given")
	}
	opts.Device = devicePath(opts.Device)
	if opts.RequireDevice {
		if _, err := os.Stat(opts.Device); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("camera %s: %w", opts.Device, ErrNoDevice)
		} else if err != nil {
			return nil, fmt.Errorf("camera %s: %w", opts.Device, err) // there, but not for us (permissions)
		}
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

// FixedFrameSize implements FixedSizeSource: every frame has the size the
// camera negotiated; a reopen at another size is logged (one warning).
func (c *Camera) FixedFrameSize() bool { return true }

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
	c.status.Format, c.status.Width, c.status.Height, c.status.FPS = c.format, c.width, c.height, c.fps
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
		b, err := c.dev.GetFrame()
		if err != nil {
			if retryable(err) {
				continue
			}
			return c.lose(fmt.Errorf("dequeue frame: %w", err))
		}
		b, err = c.newest(b)
		if err != nil {
			return c.lose(fmt.Errorf("dequeue frame: %w", err))
		}
		if b.Error {
			// The driver says the data is corrupt: never inspected.
			if err := c.dev.ReleaseFrame(b.Index); err != nil {
				return c.lose(fmt.Errorf("requeue buffer %d: %w", b.Index, err))
			}
			c.errorBuffer()
			corrupt++
			lastDecodeErr = errDriverFlagged
			continue
		}
		now, mono := clockPair()
		stamp := c.frameTime(b, now, mono)
		img, reduced, derr := c.decode(f.target(), b.Data, f.Need)
		decodeTime := time.Since(now)
		if err := c.dev.ReleaseFrame(b.Index); err != nil {
			return c.lose(fmt.Errorf("requeue buffer %d: %w", b.Index, err))
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
		if c.errBufRun > 0 {
			c.log.Info("camera: good frames again", "flagged_skipped", c.errBufRun)
			c.errBufRun, c.errBufLogged = 0, false
		}
		if c.timeoutsInRow > 0 {
			c.log.Info("camera: frames resumed", "timeouts", c.timeoutsInRow)
			c.timeoutsInRow = 0
			c.setStatus(true, nil)
		}
		c.seq++
		f.setDecoded(img)
		f.Native = image.Point{}
		if reduced > 1 {
			f.Native = image.Pt(c.width, c.height)
		}
		f.Decode = decodeTime
		f.setMask(nil)
		f.Name, f.Label, f.Replay = "", "", false
		f.Seq, f.Time = c.seq, stamp
		f.Trigger, f.TriggerTime = "", time.Time{}
		c.counters.Frames.Add(1)
		return nil
	}
}

// errDriverFlagged is why a buffer flagged V4L2_BUF_FLAG_ERROR was skipped.
var errDriverFlagged = errors.New("the driver flagged the frame as corrupt (V4L2_BUF_FLAG_ERROR)")

// errorBuffer counts a buffer the driver flagged as corrupt; the first of
// a run is logged.
func (c *Camera) errorBuffer() {
	c.counters.DecodeErrors.Add(1)
	c.errBufRun++
	if !c.errBufLogged {
		c.log.Warn("camera: frame flagged as corrupt by the driver, skipped", "err", errDriverFlagged)
		c.errBufLogged = true
	}
}

// frameTime is when the frame was captured: the driver's timestamp
// (CLOCK_MONOTONIC) moved onto the wall clock, or now, the dequeue time,
// when the device gives none.
//
// A timestamp up to a second ahead of now is taken as now: drivers that
// stamp the end of the frame may stamp it before it ends (vivid adds 0.9
// of a frame period to the time it fills the buffer), and a frame cannot
// have been captured after it was dequeued. One further ahead, or from
// before streaming started, is not on the monotonic clock (vivid's
// timestamp wrap control shows such a driver): the dequeue time is used.
func (c *Camera) frameTime(b Buffer, now time.Time, mono time.Duration) time.Time {
	if b.Timestamp <= 0 {
		return now
	}
	if mono <= 0 || b.Timestamp > mono+time.Second || b.Timestamp < c.streamStart-time.Second {
		if !c.badStampLogged {
			c.log.Warn("camera: driver timestamps are not on the monotonic clock; frames are timed when dequeued",
				"timestamp", b.Timestamp, "monotonic_now", mono, "stream_start", c.streamStart)
			c.badStampLogged = true
		}
		return now
	}
	if b.Timestamp >= mono {
		return now
	}
	// Time.Add keeps the monotonic reading, shifted by the same amount, so
	// latencies measured from the frame time stay exact.
	return now.Add(-(mono - b.Timestamp))
}

// retryable reports dequeue errors that mean "no buffer right now".
func retryable(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
}

// clockPair reads the wall clock and CLOCK_MONOTONIC at one instant (to
// within 50µs, unless the thread keeps being preempted between the reads),
// so that driver timestamps convert with that precision.
func clockPair() (time.Time, time.Duration) {
	var now time.Time
	var mono time.Duration
	for range 3 {
		m1 := monotonicNow()
		now = time.Now()
		m2 := monotonicNow()
		mono = m1 + (m2-m1)/2
		if m2-m1 <= 50*time.Microsecond {
			break
		}
	}
	return now, mono
}

// newest keeps dequeuing while more filled buffers are ready, requeuing the
// older ones, so the caller gets the most recent frame instead of one that
// waited in the queue. A newer buffer the driver flagged as corrupt is
// counted and requeued; the good one in hand is kept.
func (c *Camera) newest(b Buffer) (Buffer, error) {
	for {
		ready, err := c.dev.WaitFrame(0)
		if err != nil || !ready {
			return b, nil // a real failure shows up on the next wait
		}
		b2, err := c.dev.GetFrame()
		if err != nil {
			if retryable(err) {
				return b, nil
			}
			return Buffer{}, err
		}
		if b2.Error && !b.Error {
			if err := c.dev.ReleaseFrame(b2.Index); err != nil {
				return Buffer{}, err
			}
			c.errorBuffer()
			continue
		}
		if err := c.dev.ReleaseFrame(b.Index); err != nil {
			return Buffer{}, err
		}
		if b.Error {
			c.errorBuffer()
		} else {
			c.counters.Dropped.Add(1)
		}
		b = b2
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
		b, err := c.dev.GetFrame()
		if err != nil {
			return
		}
		if c.dev.ReleaseFrame(b.Index) != nil {
			return
		}
		if b.Error {
			c.errorBuffer()
		} else {
			c.counters.Dropped.Add(1)
		}
	}
}

// decode turns a driver buffer into an image in dst's buffers, reduced by
// the returned factor (MJPEG at a reduced scale, as need allows) or at full
// resolution (1). With ColorAuto frames keep the camera's layout: MJPEG's
// Y'CbCr planes, YUYV packed, GREY as gray.
func (c *Camera) decode(dst image.Image, buf []byte, need NeedFunc) (image.Image, int, error) {
	switch c.format {
	case FormatMJPEG, FormatJPEG:
		return c.mj.DecodeScaled(dst, buf, c.opts.Color, need)
	case FormatYUYV:
		var img image.Image
		var err error
		switch c.opts.Color {
		case ColorGray:
			img, err = DecodeYUYVGray(dst, buf, c.width, c.height, c.yuvRange)
		case ColorRGB:
			img, err = DecodeYUYV(dst, buf, c.width, c.height, c.yuvRange)
		default:
			img, err = decodeYUYVPacked(dst, buf, c.width, c.height, c.yuvRange)
		}
		return img, 1, err
	case FormatGREY:
		img, err := DecodeGrey(dst, buf, c.width, c.height, !c.opts.Color.gray(true))
		if err == nil && c.grayLimited {
			expandLimited(img)
		}
		return img, 1, err
	}
	return nil, 1, fmt.Errorf("pixel format %s cannot be decoded", c.format)
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
		if c.opts.FailFast && (errors.Is(err, ErrNotCamera) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission)) {
			c.setStatus(false, err)
			return err
		}
		if c.backoff == 0 {
			c.backoff = c.opts.ReopenMin
		} else {
			c.backoff = min(2*c.backoff, c.opts.ReopenMax)
		}
		c.retryAt = time.Now().Add(c.backoff)
		werr := &RetryError{Err: fmt.Errorf("%w: %w", ErrUnavailable, err), Next: c.backoff}
		if !c.downLogged {
			c.log.Warn("camera: unavailable, retrying with backoff", "err", err)
			c.downLogged = true
		}
		c.setStatus(false, werr)
		return werr
	}
	c.dev = dev
	size := image.Pt(c.width, c.height)
	if c.everOpened {
		c.counters.Reopens.Add(1)
		if size != c.streamedSize {
			// Said once per change, not per frame: what negotiation
			// substituted at the first open is said by configure.
			c.log.Warn("camera: reopened at another frame size", "old_size", fmt.Sprintf("%dx%d", c.streamedSize.X, c.streamedSize.Y),
				"new_size", fmt.Sprintf("%dx%d", size.X, size.Y), "format", c.format.String(),
				"meaning", "pixel coordinates now refer to the new size: frames with a region of interest in pixels (capture.roi) are refused, "+
					"not cut at another part of the view, until the camera streams at old_size again; without one, frames are inspected "+
					"at new_size, which the model was not fitted on (scores may shift: reopen at old_size, or refit)")
		}
	}
	c.streamedSize = size
	c.everOpened = true
	c.backoff, c.retryAt, c.downLogged = 0, time.Time{}, false
	attrs := []any{"card", dev.Card(), "format", c.format.String(), "width", c.width, "height", c.height,
		"fps", c.fps, "buffers", c.opts.Buffers}
	if c.format == FormatMJPEG || c.format == FormatJPEG {
		attrs = append(attrs, "decoder", JPEGDecoderName()) // which one this build has
	}
	c.log.Info("camera: streaming", attrs...)
	c.setStatus(true, nil)
	return nil
}

// configError is a configuration the camera cannot satisfy; reopening does
// not help, so it is not Temporary.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// configure negotiates format, size and frame rate, applies controls and
// starts streaming. Whatever differs from what was asked (a format the
// camera lacks, a size or rate it does not offer) is logged with what was
// chosen instead.
func (c *Camera) configure(dev Device) error {
	notify := !c.noticesLogged
	c.noticesLogged = true
	offered := dev.Formats()
	var format FourCC
	for _, want := range c.opts.Formats {
		if slices.ContainsFunc(offered, func(d FormatDesc) bool { return d.Format == want }) {
			format = want
			break
		}
	}
	var have []string
	for _, d := range offered {
		have = append(have, d.Format.String())
	}
	var want []string
	for _, f := range c.opts.Formats {
		want = append(want, f.String())
	}
	if format == 0 {
		return &configError{fmt.Sprintf("camera %s offers none of the pixel formats %s (it has %s)",
			c.opts.Device, strings.Join(want, ", "), strings.Join(have, ", "))}
	}
	if format != c.opts.Formats[0] && notify {
		c.log.Info("camera: preferred pixel format not offered, using the next one", "wanted", strings.Join(want, ","),
			"using", format.String(), "offered", strings.Join(have, ","))
	}
	w, h := nearestSize(dev.FrameSizes(format), uint32(c.opts.Width), uint32(c.opts.Height))
	pf, err := dev.SetFormat(format, w, h)
	if err != nil {
		return fmt.Errorf("set format %s %dx%d: %w", format, w, h, err)
	}
	got, gw, gh := pf.Format, pf.Width, pf.Height
	if got != format && !got.decodable() {
		return &configError{fmt.Sprintf("camera %s switched to pixel format %s, which cannot be decoded", c.opts.Device, got)}
	}
	if gw == 0 || gh == 0 {
		return &configError{fmt.Sprintf("camera %s: the driver set a frame size of %dx%d", c.opts.Device, gw, gh)}
	}
	if gw%2 != 0 && got == FormatYUYV {
		return &configError{fmt.Sprintf("camera %s: YUYV width %d is odd", c.opts.Device, gw)}
	}
	if (gw != uint32(c.opts.Width) || gh != uint32(c.opts.Height)) && notify {
		c.log.Warn("camera: frame size not offered, using the nearest", "wanted", fmt.Sprintf("%dx%d", c.opts.Width, c.opts.Height),
			"using", fmt.Sprintf("%dx%d", gw, gh), "format", got.String())
	}
	c.format, c.width, c.height = got, int(gw), int(gh)
	c.yuvRange = c.opts.YUVRange
	if !pf.RangeDefault {
		c.yuvRange = pf.Range
	}
	// GREY cameras mostly send full-range samples without saying so; only
	// a driver that states limited range gets its samples expanded.
	c.grayLimited = !pf.RangeDefault && pf.Range == YUVLimited
	c.fps = 0
	if c.opts.FPS > 0 {
		rates := dev.FrameRates(got, gw, gh)
		ask := nearestRate(rates, c.opts.FPS)
		fps, err := dev.SetFramerate(ask)
		switch {
		case err != nil:
			c.log.Warn("camera: frame rate not set", "fps", c.opts.FPS, "err", err)
			fps, _ = dev.Framerate()
		case !sameRate(fps, c.opts.FPS) && notify:
			c.log.Warn("camera: frame rate not offered, using the nearest", "wanted", c.opts.FPS, "using", fps,
				"offered", formatRates(rates), "format", got.String(), "size", fmt.Sprintf("%dx%d", gw, gh))
		}
		c.fps = fps
	} else {
		c.fps, _ = dev.Framerate()
	}
	SetControls(dev, c.opts.Controls, c.log)
	c.streamStart = monotonicNow()
	if err := dev.StartStreaming(uint32(c.opts.Buffers)); err != nil {
		return fmt.Errorf("start streaming: %w", err)
	}
	return nil
}

// nearestRate picks the offered frame rate closest to fps (ties go to the
// faster one). With nothing offered it asks for fps and lets the driver
// choose.
func nearestRate(rates []float64, fps float64) float64 {
	best := fps
	bd := -1.0
	for _, r := range rates {
		d := math.Abs(r - fps)
		if bd < 0 || d < bd-1e-9 || (math.Abs(d-bd) <= 1e-9 && r > best) {
			best, bd = r, d
		}
	}
	return best
}

// sameRate compares frame rates to the precision drivers keep (intervals in
// whole microseconds or small fractions).
func sameRate(a, b float64) bool { return math.Abs(a-b) <= 0.005*max(a, b) }

func formatRates(rates []float64) string {
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = strconv.FormatFloat(r, 'g', 4, 64)
	}
	return strings.Join(parts, ",")
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

// Close implements Source.
func (c *Camera) Close() error {
	c.closed = true
	c.mj.Close()
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

// expandLimited maps limited-range luma (16..235) onto 0..255 in place, as
// DecodeYUYVGray does for YUYV.
func expandLimited(img image.Image) {
	switch m := img.(type) {
	case *image.Gray:
		for i, v := range m.Pix {
			m.Pix[i] = clamp16((int32(v)-limYOff)*limYMul + limRound)
		}
	case *image.RGBA:
		for i := 0; i+3 < len(m.Pix); i += 4 {
			v := clamp16((int32(m.Pix[i])-limYOff)*limYMul + limRound)
			m.Pix[i], m.Pix[i+1], m.Pix[i+2] = v, v, v
		}
	}
}
