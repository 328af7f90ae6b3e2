//go:build !linux

package capture

import "errors"

// OpenV4L2 reports that V4L2 cameras need Linux.
func OpenV4L2(path string) (Device, error) {
	return nil, errors.New("open " + path + ": V4L2 cameras are available on Linux only")
}

func defaultOpener() Opener { return OpenV4L2 }
