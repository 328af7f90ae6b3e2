package daemon

import (
	"context"
	"image"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/capture"
)

// sizeSteps is a camera whose frames keep one size (capture.FixedSizeSource)
// until it is reopened at another: frame i comes from srcs[i], the last
// source's frames thereafter.
type sizeSteps struct {
	srcs []capture.Source
	i    int
}

func (s *sizeSteps) Next(ctx context.Context, f *capture.Frame) error {
	src := s.srcs[min(s.i, len(s.srcs)-1)]
	s.i++
	return src.Next(ctx, f)
}

func (s *sizeSteps) Close() error       { return nil }
func (*sizeSteps) FixedFrameSize() bool { return true }

// With camera frames that capture.roi does not apply to (the roi outside
// the frames the camera first sends, or a camera back at another size),
// the model's health entry read "model X: 3 inspections in a row failed",
// blaming the model loaded, which inspected nothing. It now names
// capture.roi and the frame size (and stays bad: no part is inspected),
// and turns healthy again with the first frame inspected.
func TestModelHealthNamesTheROIForRefusedFrames(t *testing.T) {
	det := syntheticDetector(t)
	id := det.Info().ID
	for _, c := range []struct {
		name  string
		roi   image.Rectangle
		sizes []image.Point // each frame's, in turn
		want  string        // "" for healthy
	}{
		{"roi outside the frames", image.Rect(100, 50, 300, 250), []image.Point{{160, 120}},
			"model " + id + " loaded, but no frame inspected: capture.roi (x=100 y=50 200x200) does not fit in the 160x120 frames the camera sends, 5 in a row refused; " +
				"set capture.camera.width and height to the size the roi was given for, or give capture.roi for 160x120 and reload"},
		{"camera back at another size", image.Rect(8, 8, 48, 40), []image.Point{{160, 120}, {64, 48}},
			"model " + id + " loaded, but no frame inspected: the camera now sends 64x48 frames, not the 160x120 capture.roi (x=8 y=8 40x32) was given for, 4 in a row refused; " +
				"open the camera at 160x120 again, or give capture.roi for 64x48 and reload"},
		{"camera at its size again", image.Rect(8, 8, 48, 40), []image.Point{{160, 120}, {64, 48}, {64, 48}, {64, 48}, {160, 120}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			steps := &sizeSteps{}
			for i, sz := range c.sizes {
				syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: sz.X, Height: sz.Y, Seed: uint64(i + 1)})
				if err != nil {
					t.Fatal(err)
				}
				steps.srcs = append(steps.srcs, syn)
			}
			src, err := capture.NewTransform(steps, capture.TransformOptions{ROI: c.roi})
			if err != nil {
				t.Fatal(err)
			}
			n := max(5, len(c.sizes))
			p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: &memSink{}, Queue: 1, MaxInspections: n, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatalf("pipeline stopped: %v", err)
			}
			ok, detail := p.ModelHealth()
			if c.want == "" {
				if !ok || detail != "model "+id+" loaded" {
					t.Errorf("model health %v %q, want healthy", ok, detail)
				}
				return
			}
			if ok || detail != c.want || strings.Contains(detail, "inspections in a row failed") {
				t.Errorf("model health %v %q\nwant bad, %q", ok, detail, c.want)
			}
		})
	}
}
