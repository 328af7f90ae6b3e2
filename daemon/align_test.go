package daemon

import (
	"context"
	"image"
	"image/draw"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
)

// frames is a capture.Source over frames in memory (the camera is the
// hardware edge).
type frames struct {
	imgs []image.Image
	n    int
}

func (s *frames) Next(ctx context.Context, f *capture.Frame) error {
	if s.n == len(s.imgs) {
		return capture.ErrEOF
	}
	s.n++
	f.Seq, f.Time, f.Image = uint64(s.n), time.Now(), s.imgs[s.n-1]
	return nil
}

func (s *frames) Close() error { return nil }

// shifted is img moved right by dx pixels, the uncovered strip repeating
// the left column.
func shifted(img image.Image, dx int) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(b)
	draw.Draw(out, b, img, b.Min, draw.Src)
	draw.Draw(out, image.Rect(dx, 0, b.Dx(), b.Dy()), img, b.Min, draw.Src)
	for x := 0; x < dx; x++ {
		draw.Draw(out, image.Rect(x, 0, x+1, b.Dy()), img, image.Pt(0, 0), draw.Src)
	}
	return out
}

// TestRegistrationInResults: with a model fitted with registration (the
// configuration's capture.align), every result carries the frame's shift,
// angle and confidence, and a part further off than capture.align.max_shift
// is answered with verdict "error" naming the reason and the estimate,
// never scored unaligned; the metrics count it.
func TestRegistrationInResults(t *testing.T) {
	cfg := config.Default()
	cfg.Model.Recipe = "fixed"
	cfg.Capture.Align = config.Align{Mode: config.AlignRigid, MaxShift: 0.15, MaxAngle: 10}
	opts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.Features, opts.MinFeatures = 32, 32
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 99, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	det, _, err := model.Fit(context.Background(), opts, FrameSource(syn, 24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	good, err := FrameSource(syn, 25).Image(24)
	if err != nil {
		t.Fatal(err)
	}
	keep := image.NewRGBA(good.Bounds())
	draw.Draw(keep, keep.Rect, good, image.Point{}, draw.Src)
	var got []mqttpub.Result
	sink := &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}
	m := httpapi.NewMetrics()
	var logs syncBuffer
	p, err := NewPipeline(PipelineOptions{Source: &frames{imgs: []image.Image{keep, shifted(keep, 40), shifted(keep, 44)}}, Detector: det, Sink: sink, Metrics: m,
		Queue: 1, FreeRun: false, MaxInspections: 3, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 { // the second refusal within a second is counted, not published
		t.Fatalf("%d results, want 2: %+v", len(got), got)
	}
	if n := strings.Count(logs.String(), "inspection failed"); n != 1 {
		t.Errorf("%d log lines for two refusals of one kind, want 1:\n%s", n, logs.String())
	}
	r := got[0]
	if r.Verdict == VerdictError || r.Registration == nil || r.Registration.Mode != "rigid" || r.Registration.Confidence < 0.5 || r.Registration.Failure != "" {
		t.Errorf("good frame: %+v (registration %+v), want a verdict with the registration", r, r.Registration)
	}
	if _, ok := r.LatencyMS["align"]; !ok {
		t.Errorf("latency %v has no align stage", r.LatencyMS)
	}
	r = got[1]
	if r.Verdict != VerdictError || !r.Anomalous || !strings.Contains(r.Error, "registration failed") || r.Registration == nil ||
		r.Registration.Failure != "shift" || r.Registration.ShiftX < 30 {
		t.Errorf("frame shifted by 40 px (bound 24): %+v (registration %+v), want verdict error for its shift", r, r.Registration)
	}
	var mf strings.Builder
	for _, f := range gather(t, m) {
		mf.WriteString(f)
	}
	for _, want := range []string{`inspectd_registration_failures_total{reason="shift"} 2`, `inspectd_last_registration{quantity="confidence"}`,
		`inspectd_stage_latency_seconds_count{stage="align"} 1`} {
		if !strings.Contains(mf.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
