//go:build !amd64

package padim

// cpuHasHalf is false where there is no assembly kernel: half precision
// would only add conversions, so the scorer keeps float32.
const cpuHasHalf = false

func quadFormHalf(off *uint16, diag *float32, x *float32, d int) float64 {
	panic("padim: quadFormHalf without an assembly kernel")
}
