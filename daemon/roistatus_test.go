package daemon

import (
	"context"
	"errors"
	"image"
	"path/filepath"
	"testing"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
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
	// What the daemon's status loop sets: the retained status itself.
	d := statusDaemon(t, p)
	d.updateStatus()
	if got, want := d.status, "degraded: capture.roi: frames refused for their size"; got != want {
		t.Errorf("retained status with every frame refused for capture.roi: %q, want %q", got, want)
	}
	// Failures of the model's own are not the roi's.
	p.refusals.Store(0)
	p.inspFails.Store(inspectionFailuresUnhealthy)
	p.lastFail.Store(errors.New("backbone failed").Error())
	if got := modelStatus(p); got != "model: inspections failing" {
		t.Errorf("status reason with inspections failing: %q", got)
	}
	d.updateStatus()
	if got, want := d.status, "degraded: model: inspections failing"; got != want {
		t.Errorf("retained status with inspections failing: %q, want %q", got, want)
	}
}

// statusDaemon is the part of a daemon updateStatus works on: p's health
// behind the HTTP handler, and a publisher connected to a real mosquitto
// for the retained status it sets.
func statusDaemon(t *testing.T, p *Pipeline) *Daemon {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{})
	d := &Daemon{log: testLogger(t)}
	d.pipe.Store(p)
	d.handler = httpapi.New(httpapi.Options{
		Camera: httpapi.CheckerFunc(func() (bool, string) { return true, "ok" }),
		Model:  httpapi.CheckerFunc(d.modelHealth),
		MQTT:   httpapi.CheckerFunc(func() (bool, string) { return true, "ok" }),
		Logger: d.log,
	})
	pub, err := mqttpub.New(mqttpub.Options{Brokers: []string{b.URL}, ClientID: "inspectd-status-test",
		StoreDir: filepath.Join(t.TempDir(), "mqtt-outbox"), DeviceID: "statustest", Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	d.sink.set(pub, nil, false)
	t.Cleanup(func() { d.sink.close(d.log) })
	return d
}
