package align

import (
	"image"
	"testing"
)

// benchFrame renders a w×h RGBA frame of a part (synthetic, see scene)
// shifted and rotated against the reference.
func benchRegistrar(b *testing.B, w, h int) (*Registrar, image.Image) {
	ref := scene(w, h, Transform{}, 1)
	frame := scene(w, h, Transform{Angle: 0.06, DX: float64(w) * 0.05, DY: -float64(h) * 0.04}, 1)
	bl, _ := NewBuilder(Rigid)
	bl.Add(ref)
	bl.Add(ref)
	r, _, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	return NewRegistrar(r), frame
}

func benchmarkRegister(b *testing.B, w, h int) {
	g, frame := benchRegistrar(b, w, h)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := g.Register(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegister640x480(b *testing.B)  { benchmarkRegister(b, 640, 480) }
func BenchmarkRegister1280x720(b *testing.B) { benchmarkRegister(b, 1280, 720) }
