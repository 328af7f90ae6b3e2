package padim

import "golang.org/x/sys/cpu"

// cpuHasHalf says that quadFormHalf runs here: AVX2 and FMA (quadFormFMA's)
// and F16C's half-to-single conversion. Read-only after package
// initialization.
var cpuHasHalf = cpuHasFMA && cpu.X86.HasF16C

// quadFormHalf is quadFormFMA on a halfInv position (cpuHasHalf only): off
// points at the position's padded half-precision rows, diag at its d
// diagonal values, x at d+7 floats whose last 7 are zero; d ≥ 1.
//
//go:noescape
func quadFormHalf(off *uint16, diag *float32, x *float32, d int) float64
