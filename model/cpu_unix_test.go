//go:build unix

package model

import (
	"time"

	"golang.org/x/sys/unix"
)

// processCPU is the CPU time of the whole process, every thread (the
// backbone's interpreter threads included): what a benchmark's stage cost
// the machine, beside its wall time.
func processCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
