package daemon

import (
	"context"
	"encoding/json"
	"image"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// stampedSource stamps every frame of its source with at, so that a test
// can tell a frame's capture time from the time its answer was made.
type stampedSource struct {
	capture.Source
	at time.Time
}

func (s *stampedSource) Next(ctx context.Context, f *capture.Frame) error {
	err := s.Source.Next(ctx, f)
	f.Time = s.at
	return err
}

// An error result carries frame_time only when there was a frame: a failed
// inspection says when its frame was captured (not when the answer was
// made), a trigger answered without a frame says no frame_time at all (it
// said the answer's time, which a consumer took for a capture); and errors
// are numbered in the one sequence of answers, each taking the next seq.
func TestErrorResultFrameTime(t *testing.T) {
	det := syntheticDetector(t)
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 64, Height: 64, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	src, err := capture.NewTransform(syn, capture.TransformOptions{ROI: image.Rect(0, 0, 8, 8)}) // too small to inspect
	if err != nil {
		t.Fatal(err)
	}
	captured := time.Date(2026, 12, 3, 9, 0, 0, 123000000, time.UTC)
	var got []mqttpub.Result
	sink := &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}
	p, err := NewPipeline(PipelineOptions{Source: &stampedSource{Source: src, at: captured}, Detector: det, Sink: sink, Queue: 1,
		FreeRun: true, MaxInspections: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.AnswerTriggerFailure(&capture.TriggerError{ID: "part-7", Err: capture.ErrTriggerExpired})
	if len(got) != 2 {
		t.Fatalf("%d results, want the failed inspection's and the trigger's", len(got))
	}
	failed, unserved := got[0], got[1]
	if failed.Verdict != VerdictError || !failed.FrameTime.Equal(captured) {
		t.Errorf("failed inspection: verdict %q, frame_time %v, want error at its frame's capture time %v", failed.Verdict, failed.FrameTime, captured)
	}
	if unserved.Verdict != VerdictError || unserved.TriggerID != "part-7" || !unserved.FrameTime.IsZero() {
		t.Errorf("trigger without a frame: verdict %q, trigger %q, frame_time %v, want error without a frame time",
			unserved.Verdict, unserved.TriggerID, unserved.FrameTime)
	}
	b, err := json.Marshal(unserved)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m["frame_time"]; ok {
		t.Errorf("trigger without a frame: JSON has frame_time %v, want none: %s", v, b)
	}
	if failed.Seq != 1 || unserved.Seq != 2 || p.Seq() != 2 {
		t.Errorf("seqs %d, %d (latest %d), want 1, 2: every answer, an error too, takes the next seq", failed.Seq, unserved.Seq, p.Seq())
	}
}
