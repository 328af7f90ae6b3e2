package padim

import "golang.org/x/sys/cpu"

// cpuHasFMA selects the AVX2/FMA kernel for the fit's accumulation, the
// fit's inner loop: gonum's float64 matrix-vector assembly handles two
// doubles per instruction without fused multiply-add, the kernel eight
// floats. Read-only after package initialization.
var cpuHasFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// syrkRowFMA adds Σ_b x[b*stride]·x[b*stride+j] (summed in float32) to
// acc[j] for j < n over k rows; it reads and writes nothing beyond acc[n-1]
// and x[b*stride+n-1].
//
//go:noescape
func syrkRowFMA(acc *float64, n int, x *float32, stride int, k int)
