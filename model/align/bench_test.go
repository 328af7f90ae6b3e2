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

// benchmarkRegisterAnyAngle: parts lying at any angle (max angle 180°,
// 12 start angles), the frame turned by 100°.
func benchmarkRegisterAnyAngle(b *testing.B, w, h int) {
	g, _ := benchRegistrar(b, w, h)
	g.SetMaxAngle(180)
	frame := scene(w, h, Transform{Angle: 1.745, DX: float64(w) * 0.05, DY: -float64(h) * 0.04}, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := g.Register(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegisterAnyAngle640x480(b *testing.B)  { benchmarkRegisterAnyAngle(b, 640, 480) }
func BenchmarkRegisterAnyAngle1280x720(b *testing.B) { benchmarkRegisterAnyAngle(b, 1280, 720) }

func benchmarkWarp(b *testing.B, w, h int) {
	frame := scene(w, h, Transform{Angle: 0.06, DX: 10}, 1)
	scale := max(1, float64(min(w, h))/448)
	var wp Warper
	tr := Transform{Angle: 0.06, DX: 10}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		wp.Apply(frame, tr, scale)
	}
}

func benchmarkWarpBack(b *testing.B, w, h int) {
	scale := max(1, float64(min(w, h))/448)
	vw, vh := ViewSize(w, h, scale)
	view := make([]float32, vw*vh)
	dst := make([]float32, w*h)
	tr := Transform{Angle: 0.06, DX: 10}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		dst, _ = WarpBack(dst, w, h, view, vw, vh, tr)
	}
}

func BenchmarkWarp640x480(b *testing.B)      { benchmarkWarp(b, 640, 480) }
func BenchmarkWarp1280x720(b *testing.B)     { benchmarkWarp(b, 1280, 720) }
func BenchmarkWarpBack640x480(b *testing.B)  { benchmarkWarpBack(b, 640, 480) }
func BenchmarkWarpBack1280x720(b *testing.B) { benchmarkWarpBack(b, 1280, 720) }
