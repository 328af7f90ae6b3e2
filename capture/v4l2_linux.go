//go:build linux

package capture

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"syscall"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// v4l2Device adapts *webcam.Webcam to Device.
type v4l2Device struct {
	cam  *webcam.Webcam
	path string
	// fds polls the device with millisecond timeouts; webcam.WaitForFrame
	// only takes whole seconds. nil when the descriptor could not be found,
	// and then WaitForFrame is used.
	fds []unix.PollFd
}

// OpenV4L2 opens a V4L2 capture device (a /dev/videoN node or a stable
// /dev/v4l/by-id/... link) through github.com/blackjack/webcam.
func OpenV4L2(path string) (Device, error) {
	cam, err := webcam.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d := &v4l2Device{cam: cam, path: path}
	// webcam keeps its descriptor unexported; reading the field (read-only,
	// through reflect) lets us poll it with a millisecond timeout.
	if f := reflect.ValueOf(cam).Elem().FieldByName("fd"); f.IsValid() && f.Kind() == reflect.Uintptr {
		d.fds = []unix.PollFd{{Fd: int32(f.Uint()), Events: unix.POLLIN}}
	}
	return d, nil
}

func (d *v4l2Device) Card() string { s, _ := d.cam.GetName(); return s }
func (d *v4l2Device) Bus() string  { s, _ := d.cam.GetBusInfo(); return s }

func (d *v4l2Device) Formats() []FormatDesc {
	var out []FormatDesc
	for f, desc := range d.cam.GetSupportedFormats() {
		out = append(out, FormatDesc{Format: FourCC(f), Description: desc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Format.String() < out[j].Format.String() })
	return out
}

func (d *v4l2Device) FrameSizes(f FourCC) []FrameSize {
	var out []FrameSize
	for _, s := range d.cam.GetSupportedFrameSizes(webcam.PixelFormat(f)) {
		if s.MaxWidth == 0 || s.MaxHeight == 0 {
			continue // continuous ranges come back empty from webcam v0.6.1
		}
		out = append(out, FrameSize{MinWidth: s.MinWidth, MaxWidth: s.MaxWidth, StepWidth: s.StepWidth,
			MinHeight: s.MinHeight, MaxHeight: s.MaxHeight, StepHeight: s.StepHeight})
	}
	return out
}

func (d *v4l2Device) FrameRates(f FourCC, w, h uint32) []float64 {
	var out []float64
	for _, r := range d.cam.GetSupportedFramerates(webcam.PixelFormat(f), w, h) {
		// Frame intervals are seconds per frame: fps = den/num.
		if r.MinNumerator > 0 {
			out = append(out, float64(r.MinDenominator)/float64(r.MinNumerator))
		}
		if (r.StepNumerator != 0 || r.StepDenominator != 0) && r.MaxNumerator > 0 {
			out = append(out, float64(r.MaxDenominator)/float64(r.MaxNumerator))
		}
	}
	return out
}

func (d *v4l2Device) Controls() []Control {
	var out []Control
	for id, c := range d.cam.GetControls() {
		kind := "int"
		switch c.Type {
		case 1:
			kind = "bool"
		case 2:
			kind = "menu"
		}
		out = append(out, Control{ID: uint32(id), Name: c.Name, Min: c.Min, Max: c.Max, Step: c.Step, Kind: kind})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (d *v4l2Device) GetControl(id uint32) (int32, error) {
	return d.cam.GetControl(webcam.ControlID(id))
}

func (d *v4l2Device) SetControl(id uint32, v int32) error {
	return d.cam.SetControl(webcam.ControlID(id), v)
}

func (d *v4l2Device) SetFormat(f FourCC, w, h uint32) (FourCC, uint32, uint32, error) {
	pf, gw, gh, err := d.cam.SetImageFormat(webcam.PixelFormat(f), w, h)
	return FourCC(pf), gw, gh, err
}

func (d *v4l2Device) SetFramerate(fps float64) error { return d.cam.SetFramerate(float32(fps)) }
func (d *v4l2Device) SetBufferCount(n uint32) error  { return d.cam.SetBufferCount(n) }
func (d *v4l2Device) StartStreaming() error          { return d.cam.StartStreaming() }

func (d *v4l2Device) WaitFrame(timeout time.Duration) (bool, error) {
	if d.fds == nil {
		secs := uint32((timeout + time.Second - 1) / time.Second)
		err := d.cam.WaitForFrame(secs)
		var t *webcam.Timeout
		if errors.As(err, &t) {
			return false, nil
		}
		return err == nil, err
	}
	ms := int(timeout / time.Millisecond)
	for {
		d.fds[0].Revents = 0
		n, err := unix.Poll(d.fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll %s: %w", d.path, err)
		}
		if n == 0 {
			return false, nil
		}
		if r := d.fds[0].Revents; r&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 && r&unix.POLLIN == 0 {
			// An unplugged camera reports an error condition instead of data.
			return false, fmt.Errorf("poll %s: device error (revents %#x): %w", d.path, r, syscall.ENODEV)
		}
		return true, nil
	}
}

func (d *v4l2Device) GetFrame() ([]byte, uint32, error) { return d.cam.GetFrame() }
func (d *v4l2Device) ReleaseFrame(i uint32) error       { return d.cam.ReleaseFrame(i) }
func (d *v4l2Device) Close() error                      { return d.cam.Close() }

// defaultOpener is the real V4L2 device.
func defaultOpener() Opener { return OpenV4L2 }
