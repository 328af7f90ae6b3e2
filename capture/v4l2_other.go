//go:build !linux

package capture

import (
	"errors"
	"time"
)

// OpenV4L2 reports that V4L2 cameras need Linux.
func OpenV4L2(path string) (Device, error) {
	return nil, errors.New("open " + path + ": V4L2 cameras are available on Linux only")
}

func defaultOpener() Opener { return OpenV4L2 }

// monotonicNow has no V4L2 clock to match off Linux: frames keep their
// dequeue time.
func monotonicNow() time.Duration { return 0 }
