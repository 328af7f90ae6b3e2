package daemon_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
)

// wedgingSource is a camera that delivers frames and then hangs in a read
// that never returns (a driver stuck in DQBUF), until ctx ends.
type wedgingSource struct {
	capture.Source
	left atomic.Int32
}

func (w *wedgingSource) Next(ctx context.Context, f *capture.Frame) error {
	if w.left.Add(-1) < 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	return w.Source.Next(ctx, f)
}

func smallDetector(t *testing.T) *model.Detector {
	t.Helper()
	cfg := config.Default()
	cfg.StateDir = t.TempDir() // not the machine's /var/lib/inspectd
	opts, err := daemon.ModelOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Features, opts.MinFeatures = 16, 16
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 96, Height: 72, Seed: 7, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	det, _, err := model.Fit(context.Background(), opts, daemon.FrameSource(syn, 12), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	return det
}

// TestWatchdogFollowsThePipeline wires a real pipeline to the systemd
// notifier: the watchdog is pinged while frames flow, the pings stop once
// the camera read hangs (so systemd restarts the service), and an idle
// trigger-mode line waiting for triggers keeps being pinged.
func TestWatchdogFollowsThePipeline(t *testing.T) {
	sock := newNotifySocket(t)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", "")
	det := smallDetector(t)
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 96, Height: 72, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	src := &wedgingSource{Source: syn}
	src.left.Store(1 << 30)
	p, err := daemon.NewPipeline(daemon.PipelineOptions{Source: src, Detector: det, FreeRun: true})
	if err != nil {
		t.Fatal(err)
	}
	n := daemon.NewNotifier(daemon.NotifierOptions{})
	defer n.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	n.Ready(daemon.Liveness{Progress: p.Progress, Idle: p.Idle, Inspections: p.Inspected})
	time.Sleep(1500 * time.Millisecond)
	flowing := time.Now()
	if got := len(sock.pings(flowing.Add(-time.Second), flowing)); got < 3 {
		t.Fatalf("%d watchdog pings in a second of frames flowing, want a ping every quarter period", got)
	}
	src.left.Store(0) // the camera read hangs from now on
	time.Sleep(2 * time.Second)
	wedged := time.Now()
	if got := sock.pings(wedged.Add(-time.Second), wedged); len(got) != 0 {
		t.Errorf("%d watchdog pings while the camera read hung: systemd would never restart it", len(got))
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	// Trigger mode, no triggers: idle, not wedged.
	syn2, _ := capture.NewSynthetic(capture.SyntheticOptions{Width: 96, Height: 72, Seed: 9})
	tr := capture.NewTriggered(syn2, capture.TriggerOptions{})
	p2, err := daemon.NewPipeline(daemon.PipelineOptions{Source: tr, Detector: det})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { _ = p2.Run(ctx2) }()
	n.Ready(daemon.Liveness{Progress: p2.Progress, Idle: p2.Idle, Inspections: p2.Inspected})
	time.Sleep(1500 * time.Millisecond)
	idle := time.Now()
	if got := len(sock.pings(idle.Add(-time.Second), idle)); got < 3 {
		t.Errorf("%d watchdog pings in a second of an idle trigger-mode line, want them to go on", got)
	}
}
