package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// resultLog records the results a pipeline publishes.
type resultLog struct {
	mu  sync.Mutex
	got []mqttpub.Result
}

func (l *resultLog) sink() *memSink {
	return &memSink{onResult: func(r *mqttpub.Result) {
		l.mu.Lock()
		l.got = append(l.got, *r)
		l.mu.Unlock()
	}}
}

func (l *resultLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var e []string
	for _, r := range l.got {
		if r.Verdict == VerdictError {
			e = append(e, r.Error)
		}
	}
	return e
}

// In trigger mode a frame refused for its size answers its own trigger,
// each one: the answer carried the trigger id of whatever the reused frame
// held before (none here), so the first went out with no trigger_id and
// later ones, taken for a camera's free-run failures, not at all.
func TestRefusedFrameAnswersItsTrigger(t *testing.T) {
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	// Every frame refused, each captured after the requests.
	tr := capture.NewTriggered(&resizedSource{Source: syn, base: time.Now().Add(time.Minute), from: 1}, capture.TriggerOptions{Queue: 4})
	var results resultLog
	p, err := NewPipeline(PipelineOptions{Source: tr, Detector: syntheticDetector(t), Sink: results.sink(), Queue: 2, MaxInspections: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	for _, id := range []string{"p1", "p2", "p3"} {
		if err := tr.Trigger(id); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not finish 3 triggers")
	}
	results.mu.Lock()
	defer results.mu.Unlock()
	var got []string
	for _, r := range results.got {
		got = append(got, r.TriggerID+":"+r.Verdict)
	}
	if len(got) != 3 || got[0] != "p1:error" || got[1] != "p2:error" || got[2] != "p3:error" {
		t.Errorf("answers %q, want p1, p2 and p3 each answered with an error", got)
	}
}
