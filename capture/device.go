package capture

import (
	"fmt"
	"strings"
	"time"
)

// FourCC is a V4L2 pixel format code.
type FourCC uint32

// Pixel formats the camera decodes.
const (
	FormatMJPEG FourCC = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	FormatJPEG  FourCC = 'J' | 'P'<<8 | 'E'<<16 | 'G'<<24
	FormatYUYV  FourCC = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24
	FormatGREY  FourCC = 'G' | 'R'<<8 | 'E'<<16 | 'Y'<<24
)

// String returns the four characters ("MJPG").
func (f FourCC) String() string {
	b := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return strings.TrimRight(string(b), " ")
}

// ParseFourCC reads a pixel format name: a four-character code ("MJPG",
// "YUYV", "GREY") or one of the aliases MJPEG, YUY2, GRAY, Y8.
func ParseFourCC(s string) (FourCC, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "MJPEG", "MJPG":
		return FormatMJPEG, nil
	case "JPEG":
		return FormatJPEG, nil
	case "YUYV", "YUY2":
		return FormatYUYV, nil
	case "GREY", "GRAY", "Y8", "Y800":
		return FormatGREY, nil
	}
	return 0, fmt.Errorf("pixel format %q: want MJPEG, YUYV or GREY", s)
}

// decodable reports whether the camera can decode frames of format f.
func (f FourCC) decodable() bool {
	switch f {
	case FormatMJPEG, FormatJPEG, FormatYUYV, FormatGREY:
		return true
	}
	return false
}

// FrameSize is a size a device offers for a format: discrete (Step 0,
// Min = Max) or a range with steps.
type FrameSize struct {
	MinWidth, MaxWidth, StepWidth    uint32
	MinHeight, MaxHeight, StepHeight uint32
}

// String formats a discrete size as 1280x720 and a range as
// [160-1920/8]x[120-1080/8].
func (s FrameSize) String() string {
	if s.MinWidth == s.MaxWidth && s.MinHeight == s.MaxHeight {
		return fmt.Sprintf("%dx%d", s.MaxWidth, s.MaxHeight)
	}
	return fmt.Sprintf("[%d-%d/%d]x[%d-%d/%d]", s.MinWidth, s.MaxWidth, s.StepWidth, s.MinHeight, s.MaxHeight, s.StepHeight)
}

// FormatDesc is a pixel format a device offers.
type FormatDesc struct {
	Format      FourCC
	Description string
}

// ControlKind is the type of a camera control.
type ControlKind string

// Control kinds: the V4L2 control types that VIDIOC_S_CTRL sets.
const (
	ControlInt  ControlKind = "int"
	ControlBool ControlKind = "bool"
	// ControlMenu takes the value of one of its Menu items (integer menus
	// too: the value is the item's index, its Name the integer).
	ControlMenu ControlKind = "menu"
	// ControlButton performs an action when set (any value but 0 presses
	// it) and has no value to read.
	ControlButton  ControlKind = "button"
	ControlBitmask ControlKind = "bitmask"
)

// MenuItem is one valid value of a menu control.
type MenuItem struct {
	Value int32
	Name  string
}

// Control is a camera control a device offers.
type Control struct {
	ID                      uint32
	Name                    string // as the driver spells it ("Exposure Time, Absolute")
	Min, Max, Step, Default int32
	Kind                    ControlKind
	// ReadOnly controls report a value but cannot be set; WriteOnly ones
	// (buttons) can be set but have no value. Inactive controls are
	// overridden for now by another one (gain while automatic gain is on).
	ReadOnly, WriteOnly, Inactive bool
	// Menu lists the valid values of a menu control.
	Menu []MenuItem
}

// PixFormat is the image format a device settled on.
type PixFormat struct {
	Format        FourCC
	Width, Height uint32
	// BytesPerLine is the row stride in bytes (0: the driver does not say).
	BytesPerLine uint32
	// SizeImage is the size of a full frame in bytes (0: not said).
	SizeImage uint32
	// Range is the quantization of Y'CbCr and luma samples; RangeDefault
	// says that the driver named none, so Range is V4L2's default
	// (limited) rather than something the driver asserted.
	Range        YUVRange
	RangeDefault bool
}

// Buffer is one filled driver buffer.
type Buffer struct {
	// Data is the frame; it stays valid until ReleaseFrame(Index).
	Data  []byte
	Index uint32
	// Error: the driver flagged the buffer as corrupt (V4L2_BUF_FLAG_ERROR).
	Error bool
	// Timestamp is when the driver captured the frame, on CLOCK_MONOTONIC;
	// 0 when the device gives no monotonic timestamp.
	Timestamp time.Duration
}

// Device is the narrow slice of a V4L2 capture device the camera uses. The
// real one drives the kernel's V4L2 ioctls (OpenV4L2); tests replay
// recorded frames through a fake. Errors from GetFrame other than EAGAIN
// mean the device is lost (unplugged) and will be reopened.
type Device interface {
	// Card and bus describe the device (VIDIOC_QUERYCAP).
	Card() string
	Bus() string
	Formats() []FormatDesc
	FrameSizes(f FourCC) []FrameSize
	// FrameRates lists the frame rates (frames per second) of a format and
	// size: every discrete rate, or a range's two ends.
	FrameRates(f FourCC, w, h uint32) []float64
	Controls() []Control
	GetControl(id uint32) (int32, error)
	SetControl(id uint32, value int32) error
	// SetFormat asks for a format and size and returns what the driver
	// chose: drivers adjust sizes they do not offer.
	SetFormat(f FourCC, w, h uint32) (PixFormat, error)
	// SetFramerate asks for a frame rate and returns the one the driver
	// chose; Framerate reads it.
	SetFramerate(fps float64) (float64, error)
	Framerate() (float64, error)
	// StartStreaming allocates n buffers (the driver may give more or
	// fewer) and starts capturing into them.
	StartStreaming(n uint32) error
	// WaitFrame waits up to timeout for a filled buffer and reports whether
	// one is ready; timeout 0 polls.
	WaitFrame(timeout time.Duration) (bool, error)
	// GetFrame dequeues a filled buffer. Its bytes stay valid until
	// ReleaseFrame(index).
	GetFrame() (Buffer, error)
	ReleaseFrame(index uint32) error
	Close() error
}

// Opener opens a capture device by path.
type Opener func(path string) (Device, error)
