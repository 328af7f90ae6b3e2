package daemon

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// imageSink records alarms and images; publishing an image takes delay.
type imageSink struct {
	memSink
	delay            time.Duration
	mu               sync.Mutex
	alarms           []mqttpub.Alarm
	masks, heatmaps  [][]byte
	results, flagged int
	seqs             map[uint64]bool // the results' seqs
}

func (s *imageSink) PublishResult(r *mqttpub.Result, qos byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results++
	if s.seqs == nil {
		s.seqs = map[uint64]bool{}
	}
	s.seqs[r.Seq] = true
	if r.Anomalous {
		s.flagged++
	}
	return nil
}

func (s *imageSink) PublishAlarm(a *mqttpub.Alarm) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *a
	c.Regions = append([]mqttpub.Region(nil), a.Regions...)
	s.alarms = append(s.alarms, c)
	return nil
}

func (s *imageSink) PublishMask(_ uint64, b []byte, qos byte) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.masks = append(s.masks, append([]byte(nil), b...))
	return nil
}

func (s *imageSink) PublishHeatmap(b []byte, qos byte) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heatmaps = append(s.heatmaps, append([]byte(nil), b...))
	return nil
}

// nativeProbe records how the source delivered each frame.
type nativeProbe struct {
	capture.Source
	mu      sync.Mutex
	native  []image.Point
	decoded []image.Rectangle
}

func (p *nativeProbe) Next(ctx context.Context, f *capture.Frame) error {
	err := p.Source.Next(ctx, f)
	if err == nil {
		p.mu.Lock()
		p.native = append(p.native, f.Native)
		p.decoded = append(p.decoded, f.Image.Bounds())
		p.mu.Unlock()
	}
	return err
}

// A camera sending 1280×720 MJPEG: the pipeline has the frames decoded
// reduced for the detector (DCT-domain scaling), the region of interest a
// view; alarms still give the region's size and the defects' boxes in the
// camera's own pixels, and the published mask and heatmap are bounded by
// mqtt.image_max_side.
func TestPipelineCameraFramesReduced(t *testing.T) {
	det := syntheticDetector(t)
	fake := capture.NewFakeCamera()
	fake.Offer(capture.FormatMJPEG, 1280, 720, 30)
	cam, err := capture.NewCamera(capture.CameraOptions{Device: "/dev/video-test", Formats: []capture.FourCC{capture.FormatMJPEG},
		Width: 1280, Height: 720, FrameTimeout: 300 * time.Millisecond, Open: fake.Open, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	roi := image.Rect(160, 40, 1120, 680) // 960×640
	tr, err := capture.NewTransform(cam, capture.TransformOptions{ROI: roi})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Frames of the synthetic scene with defects, as a camera sends them.
	sy, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 1280, Height: 720, Seed: 5, DefectRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for range 4 {
		var f capture.Frame
		if err := sy.Next(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
		j, err := capture.EncodeJPEG(nil, f.Image, 85, image.YCbCrSubsampleRatio420)
		if err != nil {
			t.Fatal(err)
		}
		if j, err = capture.StripHuffmanTables(nil, j); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, j)
	}
	probe := &nativeProbe{Source: tr}
	sink := &imageSink{}
	const n = 6
	p, err := NewPipeline(PipelineOptions{Source: probe, Detector: det, Sink: sink, MaxInspections: n,
		Policy: Policy{Mask: PublishAlways, Heatmap: PublishAlways, ImageMaxSide: 200}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		// One frame at a time, each once the previous one was taken.
		for i := 0; ctx.Err() == nil; i++ {
			fake.Push(frames[i%len(frames)])
			time.Sleep(30 * time.Millisecond)
		}
	}()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	probe.mu.Lock()
	defer probe.mu.Unlock()
	// Reduced, but no further than the detector's input needs.
	w, h := det.SourceNeed(960, 640)
	for i, nat := range probe.native {
		if nat != image.Pt(960, 640) {
			t.Fatalf("frame %d: native size %v, want the region's 960x640", i, nat)
		}
		if b := probe.decoded[i]; b.Dx() >= 960 || b.Dx() < w || b.Dy() < h {
			t.Fatalf("frame %d decoded as %v: want it reduced, keeping the detector's %dx%d", i, b, w, h)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	inspected := int(p.Inspected())
	if inspected < n || sink.results != inspected {
		t.Fatalf("%d results for %d inspections, want one each and at least %d", sink.results, inspected, n)
	}
	if len(sink.alarms) == 0 {
		t.Fatal("no alarm for frames with defects")
	}
	for _, a := range sink.alarms {
		if a.ImageWidth != 960 || a.ImageHeight != 640 {
			t.Errorf("alarm for a %dx%d image, want the region's 960x640", a.ImageWidth, a.ImageHeight)
		}
		for _, r := range a.Regions {
			if r.X < 0 || r.Y < 0 || r.X+r.W > 960 || r.Y+r.H > 640 || r.Area > r.W*r.H {
				t.Errorf("region %+v outside the 960x640 image", r)
			}
		}
	}
	if len(sink.masks) == 0 || len(sink.heatmaps) == 0 {
		t.Fatalf("%d masks and %d heatmaps for %d inspections", len(sink.masks), len(sink.heatmaps), inspected)
	}
	for _, m := range sink.masks {
		cfg, err := png.DecodeConfig(bytes.NewReader(m))
		if err != nil || max(cfg.Width, cfg.Height) != 200 {
			t.Errorf("mask %dx%d (%v), want its longer side at mqtt.image_max_side (200)", cfg.Width, cfg.Height, err)
		}
	}
}

// An anomalous burst while images are slow to go out (a slow broker, large
// heatmaps): results and alarms go out for every frame, images are skipped
// and counted while the publish stage is behind, instead of inspection
// waiting for them.
func TestPipelineImagesSkippedWhilePublishIsBehind(t *testing.T) {
	// Not parallel: it needs the publish stage to fall behind the inspect
	// stage, which a loaded race run with other tests beside it did not
	// (16 of 16 heatmaps published, load 15).
	m := httpapi.NewMetrics()
	sink := &imageSink{delay: 150 * time.Millisecond}
	const n = 16
	p := runImagePipeline(t, sink, m, 2, n)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	inspected := int(p.Inspected())
	if inspected < n || sink.results != inspected {
		t.Fatalf("%d results for %d inspections, want one each and at least %d", sink.results, inspected, n)
	}
	if len(sink.alarms) != sink.flagged || sink.flagged == 0 {
		t.Errorf("%d alarms for %d anomalous results", len(sink.alarms), sink.flagged)
	}
	skipped := inspected - len(sink.heatmaps)
	if skipped == 0 || len(sink.heatmaps) == 0 {
		t.Fatalf("%d of %d heatmaps published: want some, and some skipped while the publish stage was behind", len(sink.heatmaps), inspected)
	}
	var mf strings.Builder
	for _, f := range gather(t, m) {
		mf.WriteString(f)
	}
	if !strings.Contains(mf.String(), `inspectd_images_skipped_total{kind="heatmap"}`) {
		t.Errorf("skipped heatmaps not counted:\n%s", mf.String())
	}
	// With images skipped, their order no longer says which result they
	// belong to: each says it itself, mask and heatmap alike.
	for k, imgs := range [][][]byte{sink.masks, sink.heatmaps} {
		var last uint64
		for _, b := range imgs {
			seq := readImageTag(t, b).Seq
			if !sink.seqs[seq] || seq <= last {
				t.Fatalf("image kind %d tagged seq %d (previous %d): want a result's seq, increasing", k, seq, last)
			}
			last = seq
		}
	}
}

// noHeatmapSink is an imageSink whose topics carry no heatmap, as with
// mqtt.profile sparkplug (sinkSwitch.CarriesHeatmaps).
type noHeatmapSink struct{ imageSink }

func (*noHeatmapSink) CarriesHeatmaps() bool { return false }

// TestPipelineEncodesNoHeatmapNobodyGets: with mqtt.profile sparkplug no
// topic carries a heatmap; one was encoded for every anomalous part all
// the same, and logged as not published when over the payload limit.
func TestPipelineEncodesNoHeatmapNobodyGets(t *testing.T) {
	m := httpapi.NewMetrics()
	sink := &noHeatmapSink{}
	runImagePipeline(t, sink, m, 0, 4)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.heatmaps) != 0 || len(sink.masks) == 0 {
		t.Errorf("%d heatmaps and %d masks handed to a sink that carries no heatmap; want none and some", len(sink.heatmaps), len(sink.masks))
	}
	for _, f := range gather(t, m) {
		if strings.Contains(f, `inspectd_images_skipped_total{kind="heatmap"} `) && !strings.Contains(f, `inspectd_images_skipped_total{kind="heatmap"} 0`) {
			t.Errorf("heatmaps counted as skipped where none is wanted: %s", f)
		}
	}
}

// runImagePipeline runs a pipeline over n anomalous synthetic parts that
// publishes every mask and heatmap to sink (queue: the frame queue, 0 the
// default) and returns it once done.
func runImagePipeline(t *testing.T, sink Sink, m *httpapi.Metrics, queue, n int) *Pipeline {
	t.Helper()
	src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 8, DefectRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: m, Queue: queue,
		MaxInspections: n, Policy: Policy{Mask: PublishAlways, Heatmap: PublishAlways}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}
