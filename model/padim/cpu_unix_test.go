//go:build unix

package padim

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used: on a shared machine it
// shows the work a benchmark did even when other load stretches wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
