//go:build !amd64

package padim

func quadFormFMA(a *float32, x *float32, d int) float64 {
	panic("padim: quadFormFMA without an assembly kernel")
}
