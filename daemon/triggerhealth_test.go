package daemon

import (
	"context"
	"image"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// triggerAnswers records the trigger ids of the results, in order.
type triggerAnswers struct {
	memSink
	mu  sync.Mutex
	ids []string
}

func (s *triggerAnswers) PublishResult(r *mqttpub.Result, qos byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, r.TriggerID+":"+r.Verdict)
	return nil
}

func (s *triggerAnswers) has(answer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.ids {
		if a == answer {
			return true
		}
	}
	return false
}

// A trigger-mode camera whose trigger meets one corrupt frame after a long
// idle (the trigger answered with an error once the camera's timeout
// passed) stays healthy, as a watched folder does with one corrupt file:
// its health flipped to failed, and back with the next good part. Frames
// that keep failing trigger after trigger for the stall timeout still turn
// it bad.
func TestTriggerCameraCorruptFrameAfterIdle(t *testing.T) {
	t.Parallel()
	det := syntheticDetector(t)
	fake := capture.NewFakeCamera()
	fake.Offer(capture.FormatMJPEG, 160, 120, 30)
	cam, err := capture.NewCamera(capture.CameraOptions{Device: "/dev/video-test", Formats: []capture.FourCC{capture.FormatMJPEG},
		Width: 160, Height: 120, FrameTimeout: time.Second, Open: fake.Open, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	tr := capture.NewTriggered(cam, capture.TriggerOptions{Queue: 4})
	defer tr.Close()
	sy, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 10, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var sf capture.Frame
	if err := sy.Next(context.Background(), &sf); err != nil {
		t.Fatal(err)
	}
	good, err := capture.EncodeJPEG(nil, sf.Image, 90, image.YCbCrSubsampleRatio420)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := []byte("\xff\xd8 not a JPEG after all")
	sink := &triggerAnswers{}
	const stall = time.Second // the daemon's: the camera's timeout, 1 s at least
	p, err := NewPipeline(PipelineOptions{Source: tr, Detector: det, Sink: sink, Queue: 2, StallTimeout: stall, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	}()
	// trigger asks for a part and has the camera send frame once the
	// request is being served (frames buffered before it are flushed).
	trigger := func(id string, frame []byte) {
		t.Helper()
		if err := tr.Trigger(id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		fake.Push(frame)
	}
	inspected := func(id string) { // scored: ok or anomalous, not an error
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !sink.has(id+":"+VerdictOK) && !sink.has(id+":"+VerdictAnomalous); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not inspected: %v", id, sink.ids)
			}
		}
	}
	trigger("p1", good)
	inspected("p1")

	// The line has been idle for a minute.
	p.health.lastGood.Store(time.Now().Add(-time.Minute).UnixNano())
	trigger("p2", corrupt)
	// From the corrupt frame until well past its answer (the failure
	// counts as recent for two stall timeouts), as /healthz and the
	// status loop would look.
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok, detail := p.CameraHealth(); !ok {
			t.Fatalf("one corrupt frame after an idle minute turned capture unhealthy: %s", detail)
		}
	}
	if !sink.has("p2:error") {
		t.Fatalf("the corrupt frame's trigger was not answered with an error: %v", sink.ids)
	}
	if c := capture.CountersOf(tr); c.DecodeErrors.Load() != 1 {
		t.Errorf("%d decode errors counted, want the corrupt frame", c.DecodeErrors.Load())
	}

	// Trigger after trigger meeting corrupt frames, for longer than the
	// stall timeout: unhealthy, naming the failures.
	var detail string
	failed := false
	for i := 0; i < 6 && !failed; i++ {
		id := "bad" + string(rune('a'+i))
		trigger(id, corrupt)
		for deadline := time.Now().Add(10 * time.Second); !sink.has(id + ":error"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not answered with an error: %v", id, sink.ids)
			}
			if ok, d := p.CameraHealth(); !ok && !failed {
				failed, detail = true, d
			}
		}
	}
	if !failed || !strings.Contains(detail, "capture: no good frame") {
		t.Fatalf("frames failing trigger after trigger for %v: health %v %q, want unhealthy", 6*stall, !failed, detail)
	}
	trigger("p3", good)
	inspected("p3")
	if ok, detail := p.CameraHealth(); !ok {
		t.Errorf("after a good part: unhealthy %q", detail)
	}
}
