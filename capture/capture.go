// Package capture produces frames for inspection: V4L2 cameras (kernel
// ioctls, mmap streaming), image folders, single image files and a
// seeded synthetic inspection scene with ground-truth defect masks.
//
// Every source implements Source. Frames are written into buffers the caller
// owns and reuses, so a steady capture loop allocates nothing per frame. A
// caller may alternate between several Frames (double buffering): a source
// never keeps a reference to a Frame's buffers after Next returns.
//
// Wrappers add what a line needs on top of any source: Transform (region of
// interest and rotation), Throttle (free-run at most N frames per second) and
// Triggered (external trigger with a correlation id).
package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// Frame is one captured image written into reusable buffers.
type Frame struct {
	// Seq is the per-source sequence number, starting at 1.
	Seq uint64
	// Time is the capture time on the wall clock, with a monotonic reading
	// so that latencies can be measured against it. Cameras give the
	// driver's buffer timestamp (CLOCK_MONOTONIC, moved onto the wall
	// clock: when the driver captured the frame, start of exposure or end
	// of frame as the driver stamps it), or the time the frame was dequeued
	// where the driver gives none, stamps ahead of the dequeue, or uses
	// another clock. Other sources give the time the frame was read.
	Time time.Time
	// Image is the frame as its consumer sees it: *image.RGBA or
	// *image.Gray, or as a camera delivers it (ColorAuto) *image.YCbCr
	// (MJPEG: the JPEG's own planes) or *YUYV (packed 4:2:2); a region of
	// interest is a view into it (Bounds need not start at 0,0; a *Region
	// when its edges fall between the pixels of a reduced frame) and a
	// rotation a *Rotated view. Flatten copies any of them into
	// *image.RGBA or *image.Gray. The source reuses the buffers behind it
	// across frames when their size fits.
	Image image.Image
	// Native is the size of Image at the source's full resolution when the
	// source delivered it reduced (an MJPEG camera decoding at 1/2, 1/4 or
	// 1/8 scale because Need allowed it); zero when Image is at full
	// resolution. Coordinates in Image scale by Native.X/Image width.
	Native image.Point
	// Need is set by the caller of Next to say how much resolution it
	// uses; sources that can deliver frames reduced for free (MJPEG
	// cameras, in the DCT domain) deliver them at the largest reduction
	// that keeps it, and set Native. nil: full resolution.
	Need NeedFunc
	// Mask is the ground-truth defect mask (255 = defect) for sources that
	// know it (synthetic), else nil.
	Mask *image.Gray
	// Name is the file name for folder and file sources, "" otherwise.
	Name string
	// Replay says that the file Name is played again as the source read
	// it in an earlier pass: a looped folder or file after its first pass.
	// A new file, or a new version of one (a watched folder reads a file
	// again only once it changed), is no replay; nor is any camera or
	// synthetic frame.
	Replay bool
	// Label names the injected defect kind of a synthetic frame ("" when the
	// frame is normal or the source does not know).
	Label string
	// Trigger is the correlation id of the trigger request this frame
	// answers ("" in free-run).
	Trigger string
	// TriggerTime is when that request was made (zero in free-run).
	TriggerTime time.Time
	// Decode is how long the source took to turn the driver's buffer into
	// Image (cameras; zero for other sources).
	Decode time.Duration

	// buf and maskBuf are the full decoded image and mask that Image and
	// Mask may be views or copies of (Transform): sources decode into
	// them, so that a view never makes a source allocate anew.
	buf     image.Image
	maskBuf *image.Gray
	views   *frameViews
}

// target is the image a source decodes the next frame into.
func (f *Frame) target() image.Image {
	if f.buf != nil {
		return f.buf
	}
	return f.Image
}

// setDecoded stores a frame a source decoded into its buffers.
func (f *Frame) setDecoded(img image.Image) { f.buf, f.Image = img, img }

// maskTarget is the mask a source writes the next frame's mask into.
func (f *Frame) maskTarget() *image.Gray {
	if f.maskBuf != nil {
		return f.maskBuf
	}
	return f.Mask
}

// setMask stores a mask a source wrote into its buffer (nil: none).
func (f *Frame) setMask(m *image.Gray) { f.maskBuf, f.Mask = m, m }

// NeedFunc says how much resolution a consumer of frames uses: for an
// image of w×h pixels at the source's full resolution (after the region
// of interest and rotation), the smallest width and height it may be
// delivered at without losing anything the consumer looks at. A network
// that squashes the image onto a 224×224 input needs min(w,224)×min(h,224).
type NeedFunc func(w, h int) (minW, minH int)

// Reductions are the scales a source may reduce frames by (libjpeg-turbo's
// DCT-domain scaling of 8×8 blocks to 4×4, 2×2 and 1×1).
var Reductions = [...]int{2, 4, 8}

// reduction is the largest of Reductions that keeps need for a w×h frame
// (a frame reduced by r is ceil(w/r)×ceil(h/r)); 1 without need.
//
// 1/8 needs twice as much: it keeps one pixel per 8×8 block (the block's
// mean), a box filter aligned to the blocks, whose edges show unless the
// consumer's own antialiasing still averages two or more of its pixels
// (measured on real frames: 2 levels off the full-resolution path on
// average, 11 at the 99th percentile, against 0.7 and 4 at 1/4). 1/2 and
// 1/4 invert each block's DCT at 4×4 and 2×2, low-pass filters of their
// own.
func reduction(w, h int, need NeedFunc) int {
	if need == nil || w <= 0 || h <= 0 {
		return 1
	}
	nw, nh := need(w, h)
	r := 1
	for _, s := range Reductions {
		k := 1
		if s == 8 {
			k = 2
		}
		if (w+s-1)/s < k*nw || (h+s-1)/s < k*nh {
			break
		}
		r = s
	}
	return r
}

// Source produces frames. Next blocks until a frame is available, ctx is
// done, or an error. Next writes into f, reusing f's buffers when their size
// fits (no allocation per frame in steady state). Next and Close must not be
// called concurrently; cancel Next's context before closing.
type Source interface {
	Next(ctx context.Context, f *Frame) error
	Close() error
}

// ErrEOF reports that a finite source (a folder without watch or loop, a
// single file) is exhausted. errors.Is(err, io.EOF) holds for it too.
var ErrEOF = fmt.Errorf("capture: source exhausted: %w", io.EOF)

// ErrTimeout reports that no frame arrived within the frame timeout. The
// source stays usable: the next call waits again (and reopens a camera after
// repeated timeouts).
var ErrTimeout = errors.New("capture: frame timeout")

// ErrUnavailable reports that the device is gone or cannot be opened right
// now (unplugged, busy). The source keeps retrying with backoff on later calls.
var ErrUnavailable = errors.New("capture: device unavailable")

// RetryError is a temporary error (Err) with the wait before the source
// tries again, which grows with each failure: a caller that logs each kind
// of trouble once compares Err, not the message, which changes with Next.
type RetryError struct {
	Err  error
	Next time.Duration
}

func (e *RetryError) Error() string { return fmt.Sprintf("%v (next try in %v)", e.Err, e.Next) }

// Unwrap returns Err.
func (e *RetryError) Unwrap() error { return e.Err }

// ErrNotCamera is matched by the error for a device path that is there
// but is no V4L2 video capture node: not a character device (a regular
// file, a folder, a named pipe), a device that answers no V4L2 query
// (ENOTTY: /dev/null), or a V4L2 node that cannot capture or stream (a
// UVC metadata node). A camera retries it as any failed open, since a
// node may be another's until the camera is plugged back, unless
// CameraOptions.FailFast is set.
var ErrNotCamera = errors.New("capture: not a V4L2 video capture device")

// NotCharDevice words what is at path when it is there but is not a
// character device, which no camera's node is: "a regular file", "a
// folder", "a named pipe", "a block device"; "" for a character device
// or a path that cannot be looked at (not there: the open says so). A
// link is followed. OpenV4L2 refuses such a path unopened, and config
// check names it before a start that would wait for it for good.
func NotCharDevice(path string) string {
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeCharDevice != 0 {
		return ""
	}
	switch m := st.Mode(); {
	case m.IsRegular():
		return "a regular file"
	case m&os.ModeDevice != 0:
		return "a block device"
	default:
		return fileKind(m)
	}
}

// notCameraError is an open's refusal of a node that is no camera, in
// its own words; it matches ErrNotCamera and the system's error, if any.
type notCameraError struct {
	msg string
	err error
}

func (e *notCameraError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrNotCamera) hold.
func (e *notCameraError) Is(target error) bool { return target == ErrNotCamera }

// Unwrap returns the system's error (nil: none).
func (e *notCameraError) Unwrap() error { return e.err }

// ErrNoDevice is wrapped by NewCamera's error when the device node is not
// there and CameraOptions.RequireDevice is set.
var ErrNoDevice = errors.New("capture: no such device")

// Temporary reports whether err is one a source recovers from by itself, so
// that the caller should log it, count it and call Next again.
func Temporary(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTriggerExpired)
}

// Counters count what a source did. Every field may be read at any time from
// any goroutine.
type Counters struct {
	// Frames delivered by Next.
	Frames atomic.Uint64
	// Dropped frames: buffered frames skipped because a newer one was ready
	// or a fresh frame was asked for.
	Dropped atomic.Uint64
	// Timeouts: waits that ended without a frame.
	Timeouts atomic.Uint64
	// Reopens of the device after it was lost or stalled, and of a
	// watched folder listed again after it could not be: the trouble
	// reported before is over.
	Reopens atomic.Uint64
	// DecodeErrors: corrupt frames or files that were skipped.
	DecodeErrors atomic.Uint64
	// TooLarge: images and MJPEG frames skipped, unread, because their
	// header declares more pixels than the limit (ErrImageTooLarge); not
	// counted in DecodeErrors.
	TooLarge atomic.Uint64
}

// CounterValues is a copy of Counters at one moment.
type CounterValues struct {
	Frames, Dropped, Timeouts, Reopens, DecodeErrors, TooLarge uint64
}

// Snapshot reads all counters.
func (c *Counters) Snapshot() CounterValues {
	return CounterValues{
		Frames:       c.Frames.Load(),
		Dropped:      c.Dropped.Load(),
		Timeouts:     c.Timeouts.Load(),
		Reopens:      c.Reopens.Load(),
		DecodeErrors: c.DecodeErrors.Load(),
		TooLarge:     c.TooLarge.Load(),
	}
}

// Counted is implemented by sources that keep Counters; wrappers forward to
// the source they wrap.
type Counted interface {
	Counters() *Counters
}

// CountersOf returns src's counters, or nil when it keeps none.
func CountersOf(src Source) *Counters {
	if c, ok := src.(Counted); ok {
		return c.Counters()
	}
	return nil
}

// LosslessSource is implemented by sources that say whether a frame may be
// dropped, and forwarded by wrappers the way Counters are. A lossless
// source's frames each stand for a part (a file in a folder that a
// line-scan system dropped there): the consumer must take every one, and
// apply back-pressure instead of dropping. A live camera is not lossless:
// it produces frames whether or not they are taken, and an old frame is
// worth less than a fresh one.
type LosslessSource interface {
	Lossless() bool
}

// IsLossless reports whether src's frames must never be dropped; false for
// sources that do not say.
func IsLossless(src Source) bool {
	l, ok := src.(LosslessSource)
	return ok && l.Lossless()
}

// Flusher is implemented by live sources that buffer frames (cameras). Flush
// drops what is buffered so that the next frame is captured after the call.
type Flusher interface {
	Flush()
}

// Color selects the pixel layout a source writes.
type Color int

const (
	// ColorAuto keeps gray sources gray (*image.Gray); cameras deliver
	// colour frames in their own layout (*image.YCbCr, *YUYV), files and
	// synthetic frames as *image.RGBA.
	ColorAuto Color = iota
	// ColorRGB always writes *image.RGBA.
	ColorRGB
	// ColorGray always writes *image.Gray.
	ColorGray
)

// String returns the name ParseColor accepts.
func (c Color) String() string {
	switch c {
	case ColorAuto:
		return "auto"
	case ColorRGB:
		return "rgb"
	case ColorGray:
		return "gray"
	}
	return fmt.Sprintf("Color(%d)", int(c))
}

// ParseColor reads "auto", "rgb" or "gray" ("" is auto).
func ParseColor(s string) (Color, error) {
	switch s {
	case "", "auto":
		return ColorAuto, nil
	case "rgb", "color":
		return ColorRGB, nil
	case "gray", "grey":
		return ColorGray, nil
	}
	return 0, fmt.Errorf("color %q: want auto, rgb or gray", s)
}

// gray reports whether a source whose native data is gray (native) writes
// *image.Gray under this setting.
func (c Color) gray(native bool) bool {
	return c == ColorGray || (c == ColorAuto && native)
}

// sleepCtx waits for d or until ctx is done, reusing t (created on first use)
// so that waiting allocates nothing in steady state.
func sleepCtx(ctx context.Context, t **time.Timer, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	select {
	case <-ctx.Done():
		(*t).Stop()
		return ctx.Err()
	case <-(*t).C:
		return nil
	}
}
