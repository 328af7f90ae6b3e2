package backbone

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/modeltest"
)

// BenchmarkOptimized times the default backbone pruned to the PaDiM taps on
// TFLite's builtin uint8 kernels (the baseline) and as each optimized
// variant on XNNPACK, invoking all three in turn on the same frame so that
// machine noise hits each alike, at 1 and 2 threads. The speedups are
// builtin time / variant time.
func BenchmarkOptimized(b *testing.B) {
	img := loadPNG(b, filepath.Join(modeltest.GoTFLiteDir(b), "_example", "label_image", "peacock.png"))
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			all := []*Backbone{
				open(b, Options{Threads: threads}),
				open(b, Options{Threads: threads, Optimize: OptimizeInt8}),
				open(b, Options{Threads: threads, Optimize: OptimizeFloat}),
			}
			for _, m := range all {
				if _, _, err := m.Extract(img); err != nil { // also warms caches and threads
					b.Fatal(err)
				}
				if m != all[0] && m.Accelerator() != "xnnpack" {
					b.Fatalf("%s runs on %s", m.Variant(), m.Accelerator())
				}
			}
			var t [3]time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k, m := range all {
					s := time.Now()
					if err := m.Invoke(); err != nil {
						b.Fatal(err)
					}
					t[k] += time.Since(s)
				}
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(ms(t[0]), "builtin-ms/frame")
			b.ReportMetric(ms(t[1]), "int8-ms/frame")
			b.ReportMetric(ms(t[2]), "float32-ms/frame")
			b.ReportMetric(float64(t[0])/float64(t[1]), "int8-speedup")
			b.ReportMetric(float64(t[0])/float64(t[2]), "float32-speedup")
		})
	}
}
