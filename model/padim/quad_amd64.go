package padim

// quadFormFMA is quadForm in one AVX2/FMA call (cpuHasFMA only): a points
// at d(d+1)/2 packed floats, x at d; d ≥ 1.
//
//go:noescape
func quadFormFMA(a *float32, x *float32, d int) float64
