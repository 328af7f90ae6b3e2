//go:build linux

package capture

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// v4l2Device is a V4L2 capture node driven through its ioctls with mmap
// streaming. It reads what the camera path needs and generic V4L2 libraries
// do not give: each buffer's flags (V4L2_BUF_FLAG_ERROR) and timestamp, the
// size and frame rate the driver settled on, and every control type that
// can be set with VIDIOC_S_CTRL, buttons included.
type v4l2Device struct {
	fd        int
	path      string
	card, bus string
	fds       []unix.PollFd
	bufs      [][]byte // mmap'ed driver buffers while streaming
	streaming bool
}

// OpenV4L2 opens a V4L2 video capture node (a /dev/videoN node or a stable
// /dev/v4l/by-id/... link). Nodes that cannot capture video or stream (UVC
// metadata nodes, output nodes) are refused with an error that says so.
func OpenV4L2(path string) (Device, error) {
	// What is not a character device is no camera, and is not opened (a
	// named pipe, a regular file): its open's error, or the ioctl's
	// ENOTTY, said less. A path not there is left to the open.
	if kind := NotCharDevice(path); kind != "" {
		return nil, &notCameraError{msg: fmt.Sprintf("open %s: is %s, not a V4L2 device", path, kind)}
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var c v4l2Capability
	if err := ioctl(fd, vidiocQuerycap, unsafe.Pointer(&c)); err != nil {
		unix.Close(fd)
		return nil, &notCameraError{msg: fmt.Sprintf("open %s: not a V4L2 device (VIDIOC_QUERYCAP: %v)", path, err), err: err}
	}
	caps := c.Capabilities
	if caps&v4l2CapDeviceCaps != 0 {
		caps = c.DeviceCaps // this node's, not the whole device's
	}
	if caps&v4l2CapVideoCapture == 0 {
		unix.Close(fd)
		return nil, &notCameraError{msg: fmt.Sprintf("open %s: not a video capture device", path)}
	}
	if caps&v4l2CapStreaming == 0 {
		unix.Close(fd)
		return nil, &notCameraError{msg: fmt.Sprintf("open %s: the device cannot stream (no V4L2 streaming I/O)", path)}
	}
	return &v4l2Device{fd: fd, path: path, card: cString(c.Card[:]), bus: cString(c.BusInfo[:]),
		fds: []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}}, nil
}

func (d *v4l2Device) Card() string { return d.card }
func (d *v4l2Device) Bus() string  { return d.bus }

func (d *v4l2Device) Formats() []FormatDesc {
	var out []FormatDesc
	for i := uint32(0); ; i++ {
		fd := v4l2Fmtdesc{Index: i, Type: v4l2BufTypeVideoCapture}
		if ioctl(d.fd, vidiocEnumFmt, unsafe.Pointer(&fd)) != nil {
			break
		}
		out = append(out, FormatDesc{Format: FourCC(fd.PixelFormat), Description: cString(fd.Description[:])})
	}
	return out
}

func (d *v4l2Device) FrameSizes(f FourCC) []FrameSize {
	var out []FrameSize
	for i := uint32(0); ; i++ {
		e := v4l2Frmsizeenum{Index: i, PixelFormat: uint32(f)}
		if ioctl(d.fd, vidiocEnumFramesizes, unsafe.Pointer(&e)) != nil {
			break
		}
		u := e.U
		switch e.Type {
		case v4l2FrmSizeDiscrete:
			out = append(out, FrameSize{MinWidth: u[0], MaxWidth: u[0], MinHeight: u[1], MaxHeight: u[1]})
		case v4l2FrmSizeStepwise, v4l2FrmSizeContinuous:
			sw, sh := u[2], u[5]
			if e.Type == v4l2FrmSizeContinuous || sw == 0 || sh == 0 {
				sw, sh = 1, 1
			}
			out = append(out, FrameSize{MinWidth: u[0], MaxWidth: u[1], StepWidth: sw, MinHeight: u[3], MaxHeight: u[4], StepHeight: sh})
			return out // a range is the only entry
		}
	}
	return out
}

func (d *v4l2Device) FrameRates(f FourCC, w, h uint32) []float64 {
	var out []float64
	for i := uint32(0); ; i++ {
		e := v4l2Frmivalenum{Index: i, PixelFormat: uint32(f), Width: w, Height: h}
		if ioctl(d.fd, vidiocEnumFrameintervals, unsafe.Pointer(&e)) != nil {
			break
		}
		// Frame intervals are seconds per frame: fps = den/num.
		switch e.Type {
		case v4l2FrmIvalDiscrete:
			if r := fractRate(e.U[0]); r > 0 {
				out = append(out, r)
			}
		case v4l2FrmIvalStepwise, v4l2FrmIvalContinuous:
			// The longest interval is the slowest rate.
			for _, r := range []float64{fractRate(e.U[1]), fractRate(e.U[0])} {
				if r > 0 {
					out = append(out, r)
				}
			}
			return out
		}
	}
	return out
}

func fractRate(f v4l2Fract) float64 {
	if f.Numerator == 0 || f.Denominator == 0 {
		return 0
	}
	return float64(f.Denominator) / float64(f.Numerator)
}

func (d *v4l2Device) Controls() []Control {
	var out []Control
	id := uint32(0)
	for {
		q := v4l2Queryctrl{ID: id | v4l2CtrlFlagNextCtrl}
		if ioctl(d.fd, vidiocQueryctrl, unsafe.Pointer(&q)) != nil {
			break
		}
		id = q.ID
		if q.Flags&v4l2CtrlFlagDisabled != 0 {
			continue
		}
		c := Control{ID: q.ID, Name: cString(q.Name[:]), Min: q.Minimum, Max: q.Maximum, Step: q.Step,
			Default: q.DefaultValue, ReadOnly: q.Flags&v4l2CtrlFlagReadOnly != 0,
			WriteOnly: q.Flags&v4l2CtrlFlagWriteOnly != 0, Inactive: q.Flags&v4l2CtrlFlagInactive != 0}
		switch q.Type {
		case v4l2CtrlTypeInteger:
			c.Kind = ControlInt
		case v4l2CtrlTypeBoolean:
			c.Kind = ControlBool
		case v4l2CtrlTypeMenu, v4l2CtrlTypeIntegerMenu:
			c.Kind = ControlMenu
			c.Menu = d.menu(q)
		case v4l2CtrlTypeButton:
			c.Kind = ControlButton
			c.WriteOnly = true
		case v4l2CtrlTypeBitmask:
			c.Kind = ControlBitmask
		default:
			// 64-bit, string and compound controls need VIDIOC_S_EXT_CTRLS,
			// and control class headings are not controls.
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Control) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// menu lists a menu control's items (the first 1024); indexes the driver
// skips are not valid values.
func (d *v4l2Device) menu(q v4l2Queryctrl) []MenuItem {
	var out []MenuItem
	for i := max(q.Minimum, 0); i <= q.Maximum && i-q.Minimum < 1024; i++ {
		m := v4l2Querymenu{ID: q.ID, Index: uint32(i)}
		if ioctl(d.fd, vidiocQuerymenu, unsafe.Pointer(&m)) != nil {
			continue
		}
		name := cString(m.Name[:])
		if q.Type == v4l2CtrlTypeIntegerMenu {
			name = fmt.Sprint(int64(binary.LittleEndian.Uint64(m.Name[:8])))
		}
		out = append(out, MenuItem{Value: i, Name: name})
		if i == q.Maximum {
			break // i++ would wrap at MaxInt32
		}
	}
	return out
}

func (d *v4l2Device) GetControl(id uint32) (int32, error) {
	c := v4l2Control{ID: id}
	if err := ioctl(d.fd, vidiocGCtrl, unsafe.Pointer(&c)); err != nil {
		return 0, fmt.Errorf("VIDIOC_G_CTRL %#x: %w", id, err)
	}
	return c.Value, nil
}

func (d *v4l2Device) SetControl(id uint32, v int32) error {
	c := v4l2Control{ID: id, Value: v}
	if err := ioctl(d.fd, vidiocSCtrl, unsafe.Pointer(&c)); err != nil {
		return fmt.Errorf("VIDIOC_S_CTRL %#x=%d: %w", id, v, err)
	}
	return nil
}

func (d *v4l2Device) SetFormat(f FourCC, w, h uint32) (PixFormat, error) {
	v := v4l2Format{Type: v4l2BufTypeVideoCapture,
		Pix: v4l2PixFormat{Width: w, Height: h, PixelFormat: uint32(f), Field: v4l2FieldAny}}
	if err := ioctl(d.fd, vidiocSFmt, unsafe.Pointer(&v)); err != nil {
		return PixFormat{}, fmt.Errorf("VIDIOC_S_FMT %s %dx%d: %w", f, w, h, err)
	}
	// The driver writes back what it chose: the size may differ.
	p := v.Pix
	out := PixFormat{Format: FourCC(p.PixelFormat), Width: p.Width, Height: p.Height,
		BytesPerLine: p.BytesPerLine, SizeImage: p.SizeImage}
	switch {
	case p.Quantization == v4l2QuantizationFullRange:
		out.Range = YUVFull
	case p.Quantization == v4l2QuantizationLimRange:
		out.Range = YUVLimited
	case p.Colorspace == v4l2ColorspaceJPEG:
		out.Range = YUVFull // V4L2's default for the JPEG colorspace
	default:
		out.Range = YUVLimited // V4L2's default for Y'CbCr
		out.RangeDefault = true
	}
	return out, nil
}

func (d *v4l2Device) SetFramerate(fps float64) (float64, error) {
	p := v4l2Streamparm{Type: v4l2BufTypeVideoCapture}
	// timeperframe = 1/fps, kept exact for rates like 12.5 and 29.97.
	p.Capture.TimePerFrame = v4l2Fract{Numerator: 1000, Denominator: uint32(fps*1000 + 0.5)}
	if err := ioctl(d.fd, vidiocSParm, unsafe.Pointer(&p)); err != nil {
		return 0, fmt.Errorf("VIDIOC_S_PARM %g fps: %w", fps, err)
	}
	if r := fractRate(p.Capture.TimePerFrame); r > 0 {
		return r, nil
	}
	return d.Framerate()
}

func (d *v4l2Device) Framerate() (float64, error) {
	p := v4l2Streamparm{Type: v4l2BufTypeVideoCapture}
	if err := ioctl(d.fd, vidiocGParm, unsafe.Pointer(&p)); err != nil {
		return 0, fmt.Errorf("VIDIOC_G_PARM: %w", err)
	}
	return fractRate(p.Capture.TimePerFrame), nil
}

// StartStreaming asks for n mmap buffers, maps and queues them and turns
// the stream on.
func (d *v4l2Device) StartStreaming(n uint32) error {
	if d.streaming {
		return errors.New("already streaming")
	}
	req := v4l2RequestBuffers{Count: n, Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMMAP}
	if err := ioctl(d.fd, vidiocReqbufs, unsafe.Pointer(&req)); err != nil {
		return fmt.Errorf("VIDIOC_REQBUFS %d: %w", n, err)
	}
	if req.Count == 0 {
		return errors.New("VIDIOC_REQBUFS: the driver gave no buffers")
	}
	for i := uint32(0); i < req.Count; i++ {
		b := v4l2Buffer{Index: i, Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMMAP}
		if err := ioctl(d.fd, vidiocQuerybuf, unsafe.Pointer(&b)); err != nil {
			d.unmap()
			return fmt.Errorf("VIDIOC_QUERYBUF %d: %w", i, err)
		}
		m, err := unix.Mmap(d.fd, int64(b.Offset), int(b.Length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			d.unmap()
			return fmt.Errorf("mmap buffer %d: %w", i, err)
		}
		d.bufs = append(d.bufs, m)
	}
	for i := range d.bufs {
		if err := d.ReleaseFrame(uint32(i)); err != nil {
			d.unmap()
			return err
		}
	}
	typ := int32(v4l2BufTypeVideoCapture)
	if err := ioctl(d.fd, vidiocStreamon, unsafe.Pointer(&typ)); err != nil {
		d.unmap()
		return fmt.Errorf("VIDIOC_STREAMON: %w", err)
	}
	d.streaming = true
	return nil
}

// unmap releases the buffers and hands them back to the driver.
func (d *v4l2Device) unmap() {
	for _, b := range d.bufs {
		_ = unix.Munmap(b)
	}
	d.bufs = nil
	req := v4l2RequestBuffers{Count: 0, Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMMAP}
	_ = ioctl(d.fd, vidiocReqbufs, unsafe.Pointer(&req)) // best effort: the device may be gone
}

func (d *v4l2Device) WaitFrame(timeout time.Duration) (bool, error) {
	ms := int((timeout + time.Millisecond - 1) / time.Millisecond) // a wait under 1ms is not a poll
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

func (d *v4l2Device) GetFrame() (Buffer, error) {
	b := v4l2Buffer{Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMMAP}
	if err := ioctl(d.fd, vidiocDqbuf, unsafe.Pointer(&b)); err != nil {
		return Buffer{}, fmt.Errorf("VIDIOC_DQBUF: %w", err)
	}
	if int(b.Index) >= len(d.bufs) {
		return Buffer{}, fmt.Errorf("VIDIOC_DQBUF: buffer index %d of %d", b.Index, len(d.bufs))
	}
	data := d.bufs[b.Index]
	out := Buffer{Data: data[:min(int(b.BytesUsed), len(data))], Index: b.Index,
		Error: b.Flags&v4l2BufFlagError != 0}
	if b.Flags&v4l2BufFlagTimestampMask == v4l2BufFlagTimestampMonotonic {
		out.Timestamp = time.Duration(b.Timestamp.Sec)*time.Second + time.Duration(b.Timestamp.Usec)*time.Microsecond
	}
	return out, nil
}

func (d *v4l2Device) ReleaseFrame(i uint32) error {
	b := v4l2Buffer{Index: i, Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMMAP}
	if err := ioctl(d.fd, vidiocQbuf, unsafe.Pointer(&b)); err != nil {
		return fmt.Errorf("VIDIOC_QBUF %d: %w", i, err)
	}
	return nil
}

func (d *v4l2Device) Close() error {
	if d.fd < 0 {
		return fmt.Errorf("close %s: %w", d.path, unix.EBADF)
	}
	if d.streaming {
		typ := int32(v4l2BufTypeVideoCapture)
		_ = ioctl(d.fd, vidiocStreamoff, unsafe.Pointer(&typ)) // fails with ENODEV on an unplugged camera
		d.streaming = false
	}
	if d.bufs != nil {
		d.unmap()
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return fmt.Errorf("close %s: %w", d.path, err)
	}
	return nil
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of V4L2 buffer timestamps
// (and of Go's monotonic time readings).
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// defaultOpener is the real V4L2 device.
func defaultOpener() Opener { return OpenV4L2 }
