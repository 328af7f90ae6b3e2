package align

import "testing"

// benchRegistrar is a registrar to the rigid reference of a w×h part
// (synthetic, see scene).
func benchRegistrar(b *testing.B, w, h int) *Registrar {
	ref := scene(w, h, Transform{}, 1)
	bl, _ := NewBuilder(Rigid)
	bl.Add(ref)
	bl.Add(ref)
	r, _, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	return NewRegistrar(r)
}

// benchmarkRegister registers a frame turned by angle (radians) and
// shifted, the search reaching ±maxDeg degrees.
func benchmarkRegister(b *testing.B, w, h int, maxDeg, angle float64) {
	g := benchRegistrar(b, w, h)
	g.SetMaxAngle(maxDeg)
	frame := scene(w, h, Transform{Angle: angle, DX: float64(w) * 0.05, DY: -float64(h) * 0.04}, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := g.Register(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegister640x480(b *testing.B)  { benchmarkRegister(b, 640, 480, 0, 0.06) }
func BenchmarkRegister1280x720(b *testing.B) { benchmarkRegister(b, 1280, 720, 0, 0.06) }

// Parts lying at any angle (max angle 180°, 12 start angles), the frame
// turned by 100°.
func BenchmarkRegisterAnyAngle640x480(b *testing.B)  { benchmarkRegister(b, 640, 480, 180, 1.745) }
func BenchmarkRegisterAnyAngle1280x720(b *testing.B) { benchmarkRegister(b, 1280, 720, 180, 1.745) }

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
