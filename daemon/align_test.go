package daemon

import (
	"context"
	"image"
	"image/draw"
	"log/slog"
	"math"
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

// fitRegistered fits a model with rigid registration (bounds 0.15 of the
// frame, 10°) on the first 24 frames of a 160×120 synthetic scene.
func fitRegistered(t *testing.T, so capture.SyntheticOptions) (*model.Detector, *capture.Synthetic) {
	t.Helper()
	cfg := testDefaults(t)
	cfg.Model.Recipe = "fixed"
	cfg.Capture.Align = config.Align{Mode: config.AlignRigid, MaxShift: 0.15, MaxAngle: 10}
	opts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.Features, opts.MinFeatures = 32, 32
	so.Width, so.Height = 160, 120
	syn, err := capture.NewSynthetic(so)
	if err != nil {
		t.Fatal(err)
	}
	det, _, err := model.Fit(context.Background(), opts, FrameSource(syn, 24), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	return det, syn
}

// TestRegistrationInResults: with a model fitted with registration (the
// configuration's capture.align), every result carries the frame's shift,
// angle and confidence, and a part further off than capture.align.max_shift
// is answered with verdict "error" naming the reason and the estimate,
// never scored unaligned; the metrics count it.
func TestRegistrationInResults(t *testing.T) {
	t.Parallel()
	det, syn := fitRegistered(t, capture.SyntheticOptions{Seed: 99, NormalOnly: true})
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
	for _, want := range []string{`inspectd_registration_failures_total{reason="shift"} 2`, `inspectd_last_registration_confidence `,
		`inspectd_stage_latency_seconds_count{stage="align"} 1`} {
		if !strings.Contains(mf.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// toYUYV encodes img as a camera's packed YUYV frame, BT.601 studio range
// (each pair's chroma from its left pixel).
func toYUYV(img image.Image) *capture.YUYV {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &capture.YUYV{Pix: make([]byte, 2*w*h), Stride: 2 * w, Rect: image.Rect(0, 0, w, h)}
	q := func(v float64) byte { return byte(math.Round(min(max(v, 0), 255))) }
	for y := range h {
		for x := range w {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			R, G, B := float64(r>>8), float64(g>>8), float64(bl>>8)
			o := y*2*w + 2*x
			out.Pix[o] = q(16 + (65.481*R+128.553*G+24.966*B)/255)
			if x%2 == 0 {
				out.Pix[o+1] = q(128 + (-37.797*R-74.203*G+112*B)/255)
				out.Pix[o+3] = q(128 + (112*R-93.786*G-18.214*B)/255)
			}
		}
	}
	return out
}

// TestRegistrationYUYVFrames: a V4L2 camera's packed YUYV frame (studio
// range) is registered and scored as its RGBA conversion is: the aligned
// view keeps its samples and the backbone converts them with the studio
// matrix.
func TestRegistrationYUYVFrames(t *testing.T) {
	t.Parallel()
	det, syn := fitRegistered(t, capture.SyntheticOptions{Seed: 7})
	src := FrameSource(syn, 40)
	var diff float64
	n := 0
	for i := 24; i < 40; i++ {
		img, err := src.Image(i)
		if err != nil {
			t.Fatal(err)
		}
		// The same picture both ways: the YUYV frame, and its conversion
		// to RGBA by capture.YUYV (what the warp read before).
		yuyv := toYUYV(img)
		rgba := image.NewRGBA(yuyv.Rect)
		draw.Draw(rgba, rgba.Rect, yuyv, image.Point{}, draw.Src)
		a, err := det.Inspect(rgba)
		if err != nil {
			t.Fatalf("frame %d as RGBA: %v", i, err)
		}
		ra, sa, anomA := a.Registration, a.Score, a.Anomalous
		b, err := det.Inspect(yuyv)
		if err != nil {
			t.Fatalf("frame %d as YUYV: %v", i, err)
		}
		rb := b.Registration
		if math.Abs(ra.Angle-rb.Angle) > 0.1 || math.Abs(ra.ShiftX-rb.ShiftX) > 0.3 || math.Abs(ra.ShiftY-rb.ShiftY) > 0.3 {
			t.Errorf("frame %d: registered %+v as YUYV, %+v as RGBA", i, rb, ra)
		}
		if b.Anomalous != anomA {
			t.Errorf("frame %d: anomalous %v as YUYV (score %.3f), %v as RGBA (%.3f), threshold %.3f", i, b.Anomalous, b.Score, anomA, sa, b.Threshold)
		}
		diff += math.Abs(b.Score-sa) / b.Threshold
		n++
	}
	// A one-level change of the input moves these scores by about 3% of
	// the threshold on average (a small model, 32 features): a frame read
	// wrongly (another layout, colours off) moves them far more.
	if mean := diff / float64(n); mean > 0.1 {
		t.Errorf("YUYV frames' scores differ from their RGBA conversions' by %.3f of the threshold on average, want ≤ 0.1", mean)
	}
}
