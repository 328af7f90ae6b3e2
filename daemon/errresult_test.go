package daemon

import (
	"context"
	"encoding/json"
	"image"
	"log/slog"
	"strings"
	"sync"
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

// resizedSource hands out its source's frames stamped at base + n ms;
// from frame from on it refuses each as a Transform does for a camera
// reopened at another size (the frame captured, its region not cut).
type resizedSource struct {
	capture.Source
	base time.Time
	from uint64
	n    uint64
}

func (r *resizedSource) Next(ctx context.Context, f *capture.Frame) error {
	if err := r.Source.Next(ctx, f); err != nil {
		return err
	}
	r.n++
	f.Seq, f.Time = r.n, r.base.Add(time.Duration(r.n)*time.Millisecond)
	if r.n >= r.from {
		return &capture.FrameSizeError{ROI: image.Rect(8, 8, 40, 40), Was: image.Pt(160, 120), Now: image.Pt(64, 48)}
	}
	return nil
}

// A frame whose region of interest no longer applies (a camera reopened at
// another size) is answered as a failed inspection with the reason, at its
// frame's time, and counted; the pipeline goes on (it stopped with a
// capture error, or, where the region still fitted, inspected another part
// of the view). A camera's failures are published once a second.
func TestFrameOfAnotherSizeAnsweredAsError(t *testing.T) {
	det := syntheticDetector(t)
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	src := &resizedSource{Source: syn, base: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC), from: 2}
	var got []mqttpub.Result
	sink := &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: sink, Queue: 4, MaxInspections: 4, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("pipeline stopped: %v", err)
	}
	if len(got) != 2 || got[0].Verdict == VerdictError {
		t.Fatalf("results %+v, want the first frame's and one error (a camera's failures: once a second)", got)
	}
	e := got[1]
	if e.Verdict != VerdictError || !e.Anomalous || e.Seq != 2 || !e.FrameTime.Equal(src.base.Add(2*time.Millisecond)) ||
		!strings.Contains(e.Error, "64x48") || !strings.Contains(e.Error, "160x120") || !strings.Contains(e.Error, "roi") || e.ModelID == "" {
		t.Errorf("refused frame answered %+v, want verdict error, seq 2, its frame's time, the sizes and the roi named", e)
	}
	if p.failed.Load() != 3 || p.Inspected() != 4 {
		t.Errorf("%d failed of %d, want 3 of 4: each refused frame is a failed inspection", p.failed.Load(), p.Inspected())
	}
}

// oneSize is a source whose frames keep one size, as a camera's do
// (capture.FixedSizeSource): a region of interest is held to it.
type oneSize struct{ capture.Source }

func (oneSize) FixedFrameSize() bool { return true }

// A camera first opened at a frame size capture.roi does not fit in keeps
// the pipeline running, as a camera not there at start does and as a
// reopen at another size does: its frames are answered as failed
// inspections naming the size and the region, said in one log line, and
// health turns bad (the pipeline stopped with a capture error, which ended
// the daemon: a restart loop under systemd).
func TestCameraFirstOpenedWhereROIDoesNotFit(t *testing.T) {
	det := syntheticDetector(t)
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	src, err := capture.NewTransform(oneSize{syn}, capture.TransformOptions{ROI: image.Rect(100, 50, 300, 250)})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	var got []mqttpub.Result
	sink := &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: sink, Queue: 2, MaxInspections: 5, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("pipeline stopped: %v", err)
	}
	if p.Inspected() != 5 || p.failed.Load() != 5 {
		t.Errorf("%d failed of %d answered, want 5 of 5", p.failed.Load(), p.Inspected())
	}
	if len(got) == 0 {
		t.Fatal("no result: the refused frames were not answered")
	}
	for _, r := range got {
		if r.Verdict != VerdictError || !r.Anomalous || !strings.Contains(r.Error, "160x120") || !strings.Contains(r.Error, "roi x=100 y=50 200x200") {
			t.Errorf("answered %+v, want verdict error naming the frame size and the roi", r)
		}
	}
	if ok, detail := p.ModelHealth(); ok || !strings.Contains(detail, "160x120") {
		t.Errorf("health %v %q, want bad, naming the frame size", ok, detail)
	}
	l := logs.String()
	if n := strings.Count(l, "frames refused: capture.roi does not apply"); n != 1 {
		t.Errorf("%d log lines for the refused frames, want 1:\n%s", n, l)
	}
	for _, want := range []string{"level=ERROR", "frame_size=160x120", `roi_wants="a size the roi fits in"`} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}

// heldAlarmSink records the seqs of the results in the order it is handed
// them; the first alarm is held until release is closed (a slow outbox).
type heldAlarmSink struct {
	memSink
	alarming, release chan struct{}
	once              sync.Once
	mu                sync.Mutex
	seqs              []uint64
}

func (s *heldAlarmSink) PublishAlarm(*mqttpub.Alarm) error {
	s.once.Do(func() {
		close(s.alarming)
		<-s.release
	})
	return nil
}

func (s *heldAlarmSink) PublishResult(r *mqttpub.Result, qos byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, r.Seq)
	return nil
}

// A trigger answered without a frame while an inspection's result is on
// its way (its alarm still being published) takes the seq after it and is
// published after it: it took the next seq and went out first, and a
// consumer of the results topic saw seq go backwards.
func TestErrorAnswerNeverOvertakesAnInspection(t *testing.T) {
	det := syntheticDetector(t)
	if err := det.SetThresholds(1e-6, 1e-6); err != nil { // every part flagged: its alarm goes first
		t.Fatal(err)
	}
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	sink := &heldAlarmSink{alarming: make(chan struct{}), release: make(chan struct{})}
	p, err := NewPipeline(PipelineOptions{Source: syn, Detector: det, Sink: sink, Queue: 1, FreeRun: true, MaxInspections: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case <-sink.alarming:
	case err := <-done:
		t.Fatalf("the pipeline ended before its alarm: %v", err)
	}
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		p.AnswerTriggerFailure(&capture.TriggerError{ID: "part-9", Err: capture.ErrTriggerOverrun})
	}()
	time.Sleep(300 * time.Millisecond) // the answer's chance to overtake
	close(sink.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-answered
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.seqs) != 2 || sink.seqs[0] != 1 || sink.seqs[1] != 2 {
		t.Errorf("results published in seq order %v, want [1 2]: seq never goes backwards on the results topic", sink.seqs)
	}
}
