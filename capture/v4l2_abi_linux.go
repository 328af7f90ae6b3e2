//go:build linux

package capture

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The V4L2 ABI that the camera uses, from <linux/videodev2.h>. The layouts
// are those of 64-bit Linux (amd64, arm64), the platforms inspectd builds
// for; TestV4L2ABI pins every size and ioctl number to the values the
// kernel header gives there.

const (
	v4l2BufTypeVideoCapture = 1
	v4l2MemoryMMAP          = 1
	v4l2FieldAny            = 0

	v4l2CapVideoCapture = 0x00000001
	v4l2CapStreaming    = 0x04000000
	v4l2CapDeviceCaps   = 0x80000000

	v4l2FrmSizeDiscrete   = 1
	v4l2FrmSizeContinuous = 2
	v4l2FrmSizeStepwise   = 3

	v4l2FrmIvalDiscrete   = 1
	v4l2FrmIvalContinuous = 2
	v4l2FrmIvalStepwise   = 3

	v4l2BufFlagError              = 0x00000040
	v4l2BufFlagTimestampMask      = 0x0000e000
	v4l2BufFlagTimestampMonotonic = 0x00002000

	v4l2CtrlFlagDisabled  = 0x0001
	v4l2CtrlFlagReadOnly  = 0x0004
	v4l2CtrlFlagInactive  = 0x0010
	v4l2CtrlFlagWriteOnly = 0x0040
	v4l2CtrlFlagNextCtrl  = 0x80000000

	v4l2CtrlTypeInteger     = 1
	v4l2CtrlTypeBoolean     = 2
	v4l2CtrlTypeMenu        = 3
	v4l2CtrlTypeButton      = 4
	v4l2CtrlTypeBitmask     = 8
	v4l2CtrlTypeIntegerMenu = 9

	v4l2QuantizationFullRange = 1
	v4l2QuantizationLimRange  = 2
	v4l2ColorspaceJPEG        = 7
)

type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

type v4l2Fmtdesc struct {
	Index       uint32
	Type        uint32
	Flags       uint32
	Description [32]byte
	PixelFormat uint32
	MbusCode    uint32
	Reserved    [3]uint32
}

type v4l2PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YcbcrEnc     uint32
	Quantization uint32
	XferFunc     uint32
}

// v4l2Format is struct v4l2_format: the union is 200 bytes, 8-byte aligned
// because some of its members hold pointers.
type v4l2Format struct {
	Type uint32
	_    uint32
	Pix  v4l2PixFormat
	_    [200 - 48]byte
}

type v4l2RequestBuffers struct {
	Count        uint32
	Type         uint32
	Memory       uint32
	Capabilities uint32
	Flags        uint8
	Reserved     [3]uint8
}

type v4l2Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	_         uint32
	Timestamp unix.Timeval
	Timecode  v4l2Timecode
	Sequence  uint32
	Memory    uint32
	Offset    uint64 // union m: the mmap offset for V4L2_MEMORY_MMAP
	Length    uint32
	Reserved2 uint32
	RequestFD int32
	_         uint32
}

type v4l2Fract struct {
	Numerator   uint32
	Denominator uint32
}

type v4l2CaptureParm struct {
	Capability   uint32
	CaptureMode  uint32
	TimePerFrame v4l2Fract
	ExtendedMode uint32
	ReadBuffers  uint32
	Reserved     [4]uint32
}

type v4l2Streamparm struct {
	Type    uint32
	Capture v4l2CaptureParm
	_       [200 - 40]byte
}

type v4l2Queryctrl struct {
	ID           uint32
	Type         uint32
	Name         [32]byte
	Minimum      int32
	Maximum      int32
	Step         int32
	DefaultValue int32
	Flags        uint32
	Reserved     [2]uint32
}

// v4l2Querymenu is the packed struct v4l2_querymenu; the union holds the
// item's name (menus) or its 64-bit value (integer menus).
type v4l2Querymenu struct {
	ID       uint32
	Index    uint32
	Name     [32]byte
	Reserved uint32
}

type v4l2Control struct {
	ID    uint32
	Value int32
}

type v4l2Frmsizeenum struct {
	Index       uint32
	PixelFormat uint32
	Type        uint32
	// Discrete: width, height. Stepwise: min/max/step width, min/max/step height.
	U        [6]uint32
	Reserved [2]uint32
}

type v4l2Frmivalenum struct {
	Index       uint32
	PixelFormat uint32
	Width       uint32
	Height      uint32
	Type        uint32
	// Discrete: one fraction. Stepwise: min, max, step.
	U        [3]v4l2Fract
	Reserved [2]uint32
}

// ioctl request numbers: _IOC(dir, 'V', nr, size).
func iocV(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'V'<<8 | nr }

const (
	iocWrite = 1
	iocRead  = 2
	iocRW    = iocRead | iocWrite
)

var (
	vidiocQuerycap           = iocV(iocRead, 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocEnumFmt            = iocV(iocRW, 2, unsafe.Sizeof(v4l2Fmtdesc{}))
	vidiocGFmt               = iocV(iocRW, 4, unsafe.Sizeof(v4l2Format{}))
	vidiocSFmt               = iocV(iocRW, 5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqbufs            = iocV(iocRW, 8, unsafe.Sizeof(v4l2RequestBuffers{}))
	vidiocQuerybuf           = iocV(iocRW, 9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQbuf               = iocV(iocRW, 15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocDqbuf              = iocV(iocRW, 17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamon           = iocV(iocWrite, 18, unsafe.Sizeof(int32(0)))
	vidiocStreamoff          = iocV(iocWrite, 19, unsafe.Sizeof(int32(0)))
	vidiocGParm              = iocV(iocRW, 21, unsafe.Sizeof(v4l2Streamparm{}))
	vidiocSParm              = iocV(iocRW, 22, unsafe.Sizeof(v4l2Streamparm{}))
	vidiocGCtrl              = iocV(iocRW, 27, unsafe.Sizeof(v4l2Control{}))
	vidiocSCtrl              = iocV(iocRW, 28, unsafe.Sizeof(v4l2Control{}))
	vidiocQueryctrl          = iocV(iocRW, 36, unsafe.Sizeof(v4l2Queryctrl{}))
	vidiocQuerymenu          = iocV(iocRW, 37, unsafe.Sizeof(v4l2Querymenu{}))
	vidiocEnumFramesizes     = iocV(iocRW, 74, unsafe.Sizeof(v4l2Frmsizeenum{}))
	vidiocEnumFrameintervals = iocV(iocRW, 75, unsafe.Sizeof(v4l2Frmivalenum{}))
)

// ioctl runs one V4L2 request, retrying when a signal interrupts it.
func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// cString returns a NUL-terminated C string from a fixed array.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
