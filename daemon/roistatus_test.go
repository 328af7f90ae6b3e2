package daemon

import (
	"context"
	"errors"
	"image"
	"testing"

	"github.com/inspectd/inspectd/capture"
)

// While every frame was refused because capture.roi does not fit in the
// frames the camera sends, the retained status said "degraded: model:
// inspections failing", where the model's /healthz entry names capture.roi
// (ddb65b9): the model inspected nothing. The status names capture.roi
// too; inspections that fail otherwise are still the model's.
func TestStatusNamesTheROIForRefusedFrames(t *testing.T) {
	if got := modelStatus(nil); got != "model: inspections failing" {
		t.Errorf("no pipeline: %q", got)
	}
	det := syntheticDetector(t)
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	src, err := capture.NewTransform(&sizeSteps{srcs: []capture.Source{syn}}, capture.TransformOptions{ROI: image.Rect(100, 50, 300, 250)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: &memSink{}, Queue: 1, MaxInspections: 5, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("pipeline stopped: %v", err)
	}
	if ok, detail := p.ModelHealth(); ok {
		t.Fatalf("model health %v %q, want bad", ok, detail)
	}
	if got, want := modelStatus(p), "capture.roi: frames refused for their size"; got != want {
		t.Errorf("status reason with every frame refused for capture.roi: %q, want %q", got, want)
	}
	// Failures of the model's own are not the roi's.
	p.refusals.Store(0)
	p.inspFails.Store(inspectionFailuresUnhealthy)
	p.lastFail.Store(errors.New("backbone failed").Error())
	if got := modelStatus(p); got != "model: inspections failing" {
		t.Errorf("status reason with inspections failing: %q", got)
	}
}
