package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/render"
)

// Publish policies for masks and heatmaps (config mqtt.mask / mqtt.heatmap).
const (
	PublishAnomalous = "anomalous"
	PublishAlways    = "always"
	PublishNever     = "never"
)

// Sink is where inspection results go: the MQTT publisher in the daemon.
// Its methods must not block for long; QoS 1 messages are persisted by it.
type Sink interface {
	PublishResult(r *mqttpub.Result, qos byte) error
	PublishAlarm(a *mqttpub.Alarm) error
	PublishMask(png []byte, qos byte) error
	PublishHeatmap(jpeg []byte, qos byte) error
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	Source   capture.Source
	Detector *model.Detector
	// Sink receives results; nil publishes nothing (bench).
	Sink Sink
	// HTTP receives the latest snapshot and heatmap; nil: none.
	HTTP    *httpapi.Handler
	Metrics *httpapi.Metrics
	// Queue is the bound of the queues between stages.
	Queue int
	// FreeRun drops the oldest waiting frame when the inspection stage
	// falls behind; triggered frames are never dropped.
	FreeRun bool
	// ResultQoS and ResultMaxRate shape the result topic; triggered
	// results and anomalous ones are always published.
	ResultQoS     byte
	ResultMaxRate float64
	// Mask and Heatmap say when those images are published.
	Mask, Heatmap string
	// Print writes one line per inspection (the demo); nil: none.
	Print io.Writer
	// MaxInspections stops after this many (0: run until the source ends
	// or the context is cancelled).
	MaxInspections int
	// OnInspection is called after each published inspection (bench).
	OnInspection func(*Stats)
	Logger       *slog.Logger
}

// Stats is one inspection's outcome as the publish stage saw it.
type Stats struct {
	Seq       uint64
	Anomalous bool
	Score     float64
	// Latency is from capture to published.
	Latency time.Duration
}

// slot carries one frame through the stages; slots are recycled so the
// steady state allocates no frame or mask buffers.
type slot struct {
	frame   capture.Frame
	res     mqttpub.Result
	timing  model.Timing
	mask    image.Gray
	amap    []float32
	hasMap  bool
	forHTTP bool
	w, h    int
	inspErr error
	dequeue time.Time
	done    time.Time
}

// Pipeline runs capture → inspect (preprocess, backbone, PaDiM, map) →
// publish as three goroutines joined by bounded queues.
type Pipeline struct {
	o       PipelineOptions
	log     *slog.Logger
	seq     atomic.Uint64
	drops   atomic.Uint64
	lastErr atomic.Value // string: last capture problem, for health
	lastOK  atomic.Int64 // unix nanos of the last good frame

	// publish-stage buffers
	rf          regionFinder
	pngBuf      bytes.Buffer
	jpgBuf      bytes.Buffer
	overlay     *image.RGBA
	pngEnc      png.Encoder
	lastRes     time.Time
	latency     map[string]float64
	lastInspErr string
}

// NewPipeline checks the options.
func NewPipeline(o PipelineOptions) (*Pipeline, error) {
	if o.Source == nil || o.Detector == nil {
		return nil, errors.New("pipeline: source and detector are required")
	}
	if o.Queue <= 0 {
		o.Queue = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{o: o, log: o.Logger, latency: map[string]float64{}}
	p.pngEnc.CompressionLevel = png.BestSpeed
	p.lastErr.Store("")
	return p, nil
}

// Drops is the number of free-run frames dropped because inspection fell
// behind.
func (p *Pipeline) Drops() uint64 { return p.drops.Load() }

// CameraHealth says whether frames are coming: a frame within the last few
// seconds and no capture error since.
func (p *Pipeline) CameraHealth() (bool, string) {
	last := p.lastOK.Load()
	msg, _ := p.lastErr.Load().(string)
	if last == 0 {
		if msg == "" && !p.o.FreeRun {
			return true, "waiting for the first trigger"
		}
		if msg == "" {
			msg = "no frame captured yet"
		}
		return false, msg
	}
	age := time.Since(time.Unix(0, last))
	if msg != "" {
		return false, msg
	}
	return true, fmt.Sprintf("last frame %s ago", age.Round(time.Millisecond))
}

// Run processes frames until the context ends, the source is exhausted or
// MaxInspections is reached. In-flight frames are finished before it
// returns. A capture error that the source does not recover from ends it.
func (p *Pipeline) Run(ctx context.Context) error {
	n := p.o.Queue
	pool := make(chan *slot, 2*n+3)
	for i := 0; i < cap(pool); i++ {
		pool <- &slot{}
	}
	inspectQ := make(chan *slot, n)
	publishQ := make(chan *slot, n)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var capErr, inspErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(inspectQ)
		capErr = p.captureStage(cctx, pool, inspectQ)
	}()
	go func() {
		defer wg.Done()
		defer close(publishQ)
		inspErr = p.inspectStage(inspectQ, publishQ)
	}()
	count := 0
	for s := range publishQ {
		p.publishStage(s)
		pool <- s
		count++
		if p.o.MaxInspections > 0 && count >= p.o.MaxInspections {
			stop()
		}
	}
	wg.Wait()
	if inspErr != nil {
		return inspErr
	}
	if capErr != nil && !errors.Is(capErr, context.Canceled) && !errors.Is(capErr, capture.ErrEOF) {
		return capErr
	}
	return nil
}

func (p *Pipeline) captureStage(ctx context.Context, pool chan *slot, out chan *slot) error {
	var lastLogged string
	for {
		var s *slot
		select {
		case s = <-pool:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := p.o.Source.Next(ctx, &s.frame)
		if err != nil {
			pool <- s
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var te *capture.TriggerError
			if errors.As(err, &te) {
				// The trigger sender gets an answer even without a frame.
				p.publishTriggerFailure(te)
				continue
			}
			if capture.Temporary(err) {
				p.lastErr.Store(err.Error())
				if err.Error() != lastLogged { // one line per kind of trouble, not per frame
					p.log.Warn("capture problem, retrying", "err", err)
					lastLogged = err.Error()
				}
				continue
			}
			if errors.Is(err, capture.ErrEOF) {
				return err
			}
			p.lastErr.Store(err.Error())
			return fmt.Errorf("capture: %w", err)
		}
		if lastLogged != "" {
			p.log.Info("capture recovered")
			lastLogged = ""
		}
		p.lastErr.Store("")
		p.lastOK.Store(time.Now().UnixNano())
		if p.o.Metrics != nil {
			p.o.Metrics.Frame()
		}
		if s.frame.Trigger != "" || !p.o.FreeRun {
			select { // triggered frames wait for room: never dropped
			case out <- s:
			case <-ctx.Done():
				out <- s // finish it: it was asked for
				return ctx.Err()
			}
			continue
		}
		// Free-run: when the queue is full, drop the oldest waiting frame
		// (only free-run frames reach this queue in this mode) so that
		// inspection stays on the newest frames.
		for {
			select {
			case out <- s:
			default:
				select {
				case old := <-out:
					pool <- old
					p.drops.Add(1)
					if p.o.Metrics != nil {
						p.o.Metrics.Drop("overload")
					}
				default:
				}
				continue
			}
			break
		}
	}
}

// httpEvery bounds how often the HTTP snapshot and heatmap are refreshed:
// drawing an overlay per frame would take CPU from inspection for pictures
// nobody looks at that fast.
const httpEvery = 500 * time.Millisecond

func (p *Pipeline) inspectStage(in, out chan *slot) error {
	det := p.o.Detector
	var lastHTTP time.Time
	for s := range in {
		s.dequeue = time.Now()
		r, err := det.Inspect(s.frame.Image)
		s.inspErr = err
		if err == nil {
			s.timing = r.Timing
			s.w, s.h = r.W, r.H
			s.res = mqttpub.Result{Header: mqttpub.Header{Score: r.Score, Threshold: r.Threshold, NormalizedScore: r.Normalized}, Anomalous: r.Anomalous}
			copyGray(&s.mask, r.Mask)
			s.forHTTP = p.o.HTTP != nil && (r.Anomalous || time.Since(lastHTTP) >= httpEvery)
			if s.forHTTP {
				lastHTTP = time.Now()
			}
			s.hasMap = s.forHTTP || p.wantImage(p.o.Heatmap, r.Anomalous)
			if s.hasMap {
				s.amap = append(s.amap[:0], r.Map...)
			}
		}
		s.done = time.Now()
		out <- s
	}
	return nil
}

func copyGray(dst *image.Gray, src *image.Gray) {
	n := len(src.Pix)
	if cap(dst.Pix) < n {
		dst.Pix = make([]uint8, n)
	}
	dst.Pix = dst.Pix[:n]
	copy(dst.Pix, src.Pix)
	dst.Stride, dst.Rect = src.Stride, src.Rect
}

func (p *Pipeline) wantImage(policy string, anomalous bool) bool {
	switch policy {
	case PublishAlways:
		return true
	case PublishNever:
		return false
	default:
		return anomalous
	}
}

func (p *Pipeline) publishStage(s *slot) {
	seq := p.seq.Add(1)
	f := &s.frame
	if s.inspErr != nil {
		if msg := s.inspErr.Error(); msg != p.lastInspErr { // one line per kind of failure, not per frame
			p.log.Error("inspection failed", "seq", seq, "frame", f.Seq, "name", f.Name, "err", s.inspErr)
			p.lastInspErr = msg
		}
		if p.o.Metrics != nil {
			p.o.Metrics.Drop("inspect_error")
		}
		if f.Trigger != "" {
			p.publishError(seq, f.Trigger, s.inspErr)
		}
		return
	}
	p.lastInspErr = ""
	r := &s.res
	r.Verdict = "ok"
	if r.Anomalous {
		r.Verdict = "anomalous"
	}
	r.Seq, r.FrameTime, r.TriggerID, r.ModelID = seq, f.Time, f.Trigger, p.o.Detector.Info().ID
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	clear(p.latency)
	p.latency["queue"] = ms(s.dequeue.Sub(f.Time))
	p.latency["preprocess"] = ms(s.timing.Preprocess)
	p.latency["backbone"] = ms(s.timing.Backbone)
	p.latency["padim"] = ms(s.timing.PaDiM)
	p.latency["map"] = ms(s.timing.Map)
	r.LatencyMS = p.latency
	if m := p.o.Metrics; m != nil {
		m.ObserveStage("queue", s.dequeue.Sub(f.Time))
		m.ObserveStage("preprocess", s.timing.Preprocess)
		m.ObserveStage("backbone", s.timing.Backbone)
		m.ObserveStage("padim", s.timing.PaDiM)
		m.ObserveStage("map", s.timing.Map)
		m.ObserveInspection(r.Score, r.NormalizedScore, r.Anomalous)
	}
	start := time.Now()
	if p.o.Sink != nil {
		p.publishImages(s)
		if r.Anomalous {
			a := &mqttpub.Alarm{Header: r.Header, ImageWidth: s.w, ImageHeight: s.h, Regions: p.rf.find(&s.mask)}
			if err := p.o.Sink.PublishAlarm(a); err != nil {
				p.log.Error("alarm not queued", "seq", seq, "err", err)
			}
		}
		due := p.o.ResultMaxRate <= 0 || time.Since(p.lastRes) >= time.Duration(float64(time.Second)/p.o.ResultMaxRate)
		if due || r.Anomalous || f.Trigger != "" {
			p.lastRes = time.Now()
			p.latency["publish"] = ms(time.Since(start))
			if err := p.o.Sink.PublishResult(r, p.o.ResultQoS); err != nil && !errors.Is(err, mqttpub.ErrNotConnected) {
				p.log.Warn("result not published", "seq", seq, "err", err)
			}
		}
	}
	if s.forHTTP {
		p.o.HTTP.SetSnapshot(f.Image)
		p.overlay = render.Overlay(p.overlay, f.Image, s.amap, s.w, s.h, r.Threshold)
		p.o.HTTP.SetHeatmap(p.overlay)
	}
	total := time.Since(f.Time)
	if p.o.Print != nil {
		verdict := "ok     "
		if r.Anomalous {
			verdict = "DEFECT "
		}
		extra := ""
		if f.Label != "" {
			extra = " (injected: " + f.Label + ")"
		}
		if f.Name != "" {
			extra += " " + f.Name
		}
		if f.Trigger != "" {
			extra += " trigger=" + f.Trigger
		}
		fmt.Fprintf(p.o.Print, "#%-5d %s score %6.2f / %.2f (%.2f×)  %5.1f ms%s\n", seq, verdict, r.Score, r.Threshold, r.NormalizedScore,
			ms(total), extra)
	}
	if p.o.OnInspection != nil {
		p.o.OnInspection(&Stats{Seq: seq, Anomalous: r.Anomalous, Score: r.Score, Latency: total})
	}
}

func (p *Pipeline) publishImages(s *slot) {
	r := &s.res
	if p.wantImage(p.o.Mask, r.Anomalous) {
		p.pngBuf.Reset()
		if err := p.pngEnc.Encode(&p.pngBuf, &s.mask); err == nil {
			if err := p.o.Sink.PublishMask(p.pngBuf.Bytes(), p.o.ResultQoS); err != nil && !errors.Is(err, mqttpub.ErrNotConnected) {
				p.log.Warn("mask not published", "seq", r.Seq, "err", err)
			}
		}
	}
	if p.wantImage(p.o.Heatmap, r.Anomalous) && s.hasMap {
		p.overlay = render.Overlay(p.overlay, s.frame.Image, s.amap, s.w, s.h, r.Threshold)
		p.jpgBuf.Reset()
		if err := jpeg.Encode(&p.jpgBuf, p.overlay, &jpeg.Options{Quality: 80}); err == nil {
			if err := p.o.Sink.PublishHeatmap(p.jpgBuf.Bytes(), p.o.ResultQoS); err != nil && !errors.Is(err, mqttpub.ErrNotConnected) {
				p.log.Warn("heatmap not published", "seq", r.Seq, "err", err)
			}
		}
	}
}

// publishTriggerFailure answers a trigger that got no frame with a result
// that says so, so that a PLC waiting on the id is not left hanging.
func (p *Pipeline) publishTriggerFailure(te *capture.TriggerError) {
	p.log.Warn("trigger not served", "id", te.ID, "err", te.Err)
	p.publishError(p.seq.Add(1), te.ID, te.Err)
}

// publishError answers a trigger with an error result at QoS 1. It is
// marked anomalous: failing safe rejects a part rather than passing one that
// was never inspected.
func (p *Pipeline) publishError(seq uint64, trigger string, cause error) {
	if p.o.Sink == nil {
		return
	}
	r := &mqttpub.Result{Header: mqttpub.Header{Seq: seq, FrameTime: time.Now(), TriggerID: trigger, ModelID: p.o.Detector.Info().ID},
		Anomalous: true, Verdict: "error", LatencyMS: map[string]float64{}, Error: cause.Error()}
	if err := p.o.Sink.PublishResult(r, 1); err != nil {
		p.log.Warn("error result not published", "trigger", trigger, "err", err)
	}
}
