//go:build linux && (amd64 || arm64)

package capture

import (
	"strings"
	"testing"
	"unsafe"
)

// TestV4L2ABI pins the struct layouts and ioctl numbers to the values of
// <linux/videodev2.h> on 64-bit Linux (printed by a C program with sizeof,
// offsetof and the VIDIOC_* macros).
func TestV4L2ABI(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof v4l2_capability", unsafe.Sizeof(v4l2Capability{}), 104},
		{"sizeof v4l2_fmtdesc", unsafe.Sizeof(v4l2Fmtdesc{}), 64},
		{"sizeof v4l2_format", unsafe.Sizeof(v4l2Format{}), 208},
		{"offsetof v4l2_format.fmt", unsafe.Offsetof(v4l2Format{}.Pix), 8},
		{"sizeof v4l2_pix_format", unsafe.Sizeof(v4l2PixFormat{}), 48},
		{"sizeof v4l2_requestbuffers", unsafe.Sizeof(v4l2RequestBuffers{}), 20},
		{"sizeof v4l2_buffer", unsafe.Sizeof(v4l2Buffer{}), 88},
		{"offsetof v4l2_buffer.timestamp", unsafe.Offsetof(v4l2Buffer{}.Timestamp), 24},
		{"offsetof v4l2_buffer.sequence", unsafe.Offsetof(v4l2Buffer{}.Sequence), 56},
		{"offsetof v4l2_buffer.m", unsafe.Offsetof(v4l2Buffer{}.Offset), 64},
		{"offsetof v4l2_buffer.length", unsafe.Offsetof(v4l2Buffer{}.Length), 72},
		{"sizeof v4l2_streamparm", unsafe.Sizeof(v4l2Streamparm{}), 204},
		{"offsetof v4l2_streamparm.parm", unsafe.Offsetof(v4l2Streamparm{}.Capture), 4},
		{"sizeof v4l2_queryctrl", unsafe.Sizeof(v4l2Queryctrl{}), 68},
		{"sizeof v4l2_querymenu", unsafe.Sizeof(v4l2Querymenu{}), 44},
		{"offsetof v4l2_querymenu.name", unsafe.Offsetof(v4l2Querymenu{}.Name), 8},
		{"sizeof v4l2_frmsizeenum", unsafe.Sizeof(v4l2Frmsizeenum{}), 44},
		{"offsetof v4l2_frmsizeenum.discrete", unsafe.Offsetof(v4l2Frmsizeenum{}.U), 12},
		{"sizeof v4l2_frmivalenum", unsafe.Sizeof(v4l2Frmivalenum{}), 52},
		{"offsetof v4l2_frmivalenum.discrete", unsafe.Offsetof(v4l2Frmivalenum{}.U), 20},
		{"sizeof v4l2_control", unsafe.Sizeof(v4l2Control{}), 8},
		{"VIDIOC_QUERYCAP", vidiocQuerycap, 0x80685600},
		{"VIDIOC_ENUM_FMT", vidiocEnumFmt, 0xc0405602},
		{"VIDIOC_G_FMT", vidiocGFmt, 0xc0d05604},
		{"VIDIOC_S_FMT", vidiocSFmt, 0xc0d05605},
		{"VIDIOC_REQBUFS", vidiocReqbufs, 0xc0145608},
		{"VIDIOC_QUERYBUF", vidiocQuerybuf, 0xc0585609},
		{"VIDIOC_QBUF", vidiocQbuf, 0xc058560f},
		{"VIDIOC_DQBUF", vidiocDqbuf, 0xc0585611},
		{"VIDIOC_STREAMON", vidiocStreamon, 0x40045612},
		{"VIDIOC_STREAMOFF", vidiocStreamoff, 0x40045613},
		{"VIDIOC_G_PARM", vidiocGParm, 0xc0cc5615},
		{"VIDIOC_S_PARM", vidiocSParm, 0xc0cc5616},
		{"VIDIOC_G_CTRL", vidiocGCtrl, 0xc008561b},
		{"VIDIOC_S_CTRL", vidiocSCtrl, 0xc008561c},
		{"VIDIOC_QUERYCTRL", vidiocQueryctrl, 0xc0445624},
		{"VIDIOC_QUERYMENU", vidiocQuerymenu, 0xc02c5625},
		{"VIDIOC_ENUM_FRAMESIZES", vidiocEnumFramesizes, 0xc02c564a},
		{"VIDIOC_ENUM_FRAMEINTERVALS", vidiocEnumFrameintervals, 0xc034564b},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// OpenV4L2 names what is wrong with a node that is not a camera.
func TestOpenV4L2NotACamera(t *testing.T) {
	if _, err := OpenV4L2("/dev/null"); err == nil || !strings.Contains(err.Error(), "/dev/null: not a V4L2 device") {
		t.Errorf("/dev/null: %v", err)
	}
	if _, err := OpenV4L2(t.TempDir() + "/video9"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing node: %v", err)
	}
}
