//go:build !amd64

package padim

// cpuHasFMA is false where there is no assembly kernel: gonum's Dgemv does the
// update.
const cpuHasFMA = false

func syrkRowFMA(acc *float64, n int, x *float32, stride int, k int) {
	panic("padim: syrkRowFMA without an assembly kernel")
}
