package daemon

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/render"
)

// Publish policies for masks and heatmaps (config mqtt.mask / mqtt.heatmap).
const (
	PublishAnomalous = "anomalous"
	PublishAlways    = "always"
	PublishNever     = "never"
)

// Verdicts of a result.
const (
	VerdictOK        = "ok"
	VerdictAnomalous = "anomalous"
	VerdictError     = "error"
)

// Sink is where inspection results go: the MQTT publisher in the daemon.
// Its methods must not block for long; QoS 1 messages are persisted by it.
type Sink interface {
	PublishResult(r *mqttpub.Result, qos byte) error
	PublishAlarm(a *mqttpub.Alarm) error
	// PublishMask is called after PublishResult for the same inspection
	// (seq), when the mask is published at all.
	PublishMask(seq uint64, png []byte, qos byte) error
	PublishHeatmap(jpeg []byte, qos byte) error
}

// Policy says what the publish stage sends; it can change while the
// pipeline runs (SetPolicy).
type Policy struct {
	// ResultQoS and ResultMaxRate shape the result topic; triggered
	// results (always QoS 1) and anomalous ones are always published.
	ResultQoS     byte
	ResultMaxRate float64
	// Mask and Heatmap say when those images are published.
	Mask, Heatmap string
	// ImageMaxSide bounds the longer side of a published heatmap and
	// mask, in pixels (0: the frame's size).
	ImageMaxSide int
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	Source   capture.Source
	Detector *model.Detector
	// Sink receives results; nil publishes nothing (bench).
	Sink Sink
	// HTTP receives the latest snapshot and heatmap; nil: none.
	HTTP *httpapi.Handler
	// HTTPEvery bounds how often HTTP's images are refreshed (0:
	// httpEvery); an anomalous frame, and the last part before the
	// source goes quiet, are always shown.
	HTTPEvery time.Duration
	Metrics   *httpapi.Metrics
	// Queue is the bound of the queues between stages.
	Queue int
	// FreeRun drops the oldest waiting frame when the inspection stage
	// falls behind on a live source; triggered frames and frames of
	// lossless sources (folders, files: each frame is a part) are never
	// dropped.
	FreeRun bool
	// Policy shapes what is published.
	Policy Policy
	// StallTimeout is how long capture may go without a good frame, while
	// frames fail to arrive or decode, before health turns bad (0: 5 s).
	StallTimeout time.Duration
	// Print writes one line per inspection (the demo); nil: none.
	Print io.Writer
	// MaxInspections stops after this many (0: run until the source ends
	// or the context is cancelled).
	MaxInspections int
	// OnInspection is called after each published inspection (bench),
	// failed ones included (Stats.Err).
	OnInspection func(*Stats)
	// FirstSeq is the seq of the first result minus one: a pipeline that
	// replaces another (a configuration change) continues its numbering.
	FirstSeq uint64
	// CPUClock, when set, is read around the publish stage and its CPU
	// time given in Stats (bench: the process's CPU clock, meaningful when
	// one frame is in flight at a time).
	CPUClock func() time.Duration
	// BootID is put beside every seq (see mqttpub.Header.BootID).
	BootID string
	Logger *slog.Logger
}

// Stats is one inspection's outcome as the publish stage saw it.
type Stats struct {
	Seq       uint64
	Anomalous bool
	Score     float64
	// Latency is from capture to published.
	Latency time.Duration
	// Dequeued is when the source took the frame off the driver's queue
	// (before its decode); Published when its result was published.
	Dequeued, Published time.Time
	// Decode, Timing and Publish are the stages' wall times; PublishCPU
	// the publish stage's CPU time with PipelineOptions.CPUClock
	// (Timing.CPU: the detector's stages', with its own clock).
	Decode     time.Duration
	Timing     model.Timing
	Publish    time.Duration
	PublishCPU time.Duration
	// Err is why the frame could not be inspected (it was answered with
	// verdict error): Anomalous, Score and the stage times are then zero.
	Err error
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
	images  bool // the publish queue had room: masks and heatmaps may go
	w, h    int
	inspErr error
	// skipped is set for a file the source skipped: answered with an
	// error result in its place, never inspected.
	skipped *capture.SkippedFileError
	// refused is set for a frame captured but not to be inspected (a
	// camera reopened at another size, whose frames the region of interest
	// does not apply to; a file the region does not fit in): answered as a
	// failed inspection, with the reason.
	refused  error
	modelID  string
	captured time.Time // when the source returned it
	dequeue  time.Time
	done     time.Time
}

// Pipeline runs capture → inspect (preprocess, backbone, PaDiM, map) →
// publish as three goroutines joined by bounded queues. The detector and
// the publish policy can be replaced while it runs; the source can be
// replaced through a swapping source in front of it.
type Pipeline struct {
	o   PipelineOptions
	log *slog.Logger
	det detectorSlot
	// inputWarned is the model whose frames were last found unlike its
	// training images and the kinds of difference warned of for it (the
	// inspect stage's own): one warning per model and kind, not per frame,
	// and a second kind coming later is warned of too.
	inputWarned struct {
		id    string
		kinds model.Mismatch
	}
	policy   atomic.Pointer[Policy]
	lossless bool
	started  time.Time

	seq atomic.Uint64
	// answerMu is held from taking a seq to handing its result to the
	// sink, by the publish stage and by AnswerTriggerFailure (any
	// goroutine): results reach the sink in seq order. A trigger answered
	// without a frame took the next seq while an inspection's result,
	// numbered before it, was still on its way (its alarm being
	// published), and went out first: seq went backwards on the topic.
	answerMu  sync.Mutex
	drops     atomic.Uint64
	progress  atomic.Uint64 // frames taken or trigger waits finished: the watchdog's pulse
	inflight  atomic.Int32  // frames handed to inspection and not yet published
	inspected atomic.Uint64
	failed    atomic.Uint64
	health    captureHealth
	taps      *frameTaps
	inspectQ  chan *slot // for queue depths; set by Run
	publishQ  chan *slot
	queuesMu  sync.Mutex
	inspFails atomic.Int64 // consecutive failed inspections
	lastFail  atomic.Value // string: the latest inspection failure
	lastErr   atomic.Value // timedError: the latest capture or inspection error
	pubFail   atomic.Value // timedError: the latest result or alarm lost by the publisher
	pubOK     atomic.Int64 // unix nanos of the latest result or alarm the publisher took

	// refusals counts the frames in a row refused for a frame size that
	// capture.roi does not apply to, lastRefusal the latest: the model's
	// health names the roi and the size then, not the model.
	refusals    atomic.Int64
	lastRefusal atomic.Pointer[capture.FrameSizeError]

	need capture.NeedFunc // p.sourceNeed, bound once
	// maps are anomaly-map copies for frames whose heatmap is drawn (a few
	// in flight), recycled by the publish stage instead of one per slot.
	maps chan []float32

	// publish-stage state
	rf          regionFinder
	img         imageEncoder
	lastRes     time.Time
	lastErrRes  time.Time
	latency     map[string]float64
	lastInspErr string
	// pubLogged are the kinds of publish failure logged since the last
	// publish of their kind that went through: one line each per outage,
	// however the alarms and results of anomalous parts alternate.
	pubLogged map[pubFailure]bool
}

// pubFailure is a kind of publish failure: what was not published
// ("result", "alarm") and why (a PublishFailure reason).
type pubFailure struct{ kind, reason string }

// NewPipeline checks the options.
func NewPipeline(o PipelineOptions) (*Pipeline, error) {
	if o.Source == nil || o.Detector == nil {
		return nil, errors.New("pipeline: source and detector are required")
	}
	if o.Queue <= 0 {
		o.Queue = 4
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{o: o, log: o.Logger, latency: map[string]float64{}, lossless: capture.IsLossless(o.Source), started: time.Now()}
	p.det.det = o.Detector
	p.seq.Store(o.FirstSeq)
	p.taps = newFrameTaps()
	pol := o.Policy
	p.policy.Store(&pol)
	p.lastFail.Store("")
	// A trigger-mode line is idle between parts as a watched folder is:
	// one bad frame after a long wait is a bad part, not a failing camera.
	p.health.init(o.Source, p.lossless, p.lossless || !o.FreeRun)
	p.health.onError = p.noteError
	p.need = p.sourceNeed
	p.maps = make(chan []float32, 3)
	return p, nil
}

// takeMap returns a buffer of n floats for an anomaly-map copy, a recycled
// one when it fits.
func (p *Pipeline) takeMap(n int) []float32 {
	select {
	case b := <-p.maps:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]float32, n)
}

// giveMap recycles a map copy once its pictures are drawn.
func (p *Pipeline) giveMap(b []float32) {
	select {
	case p.maps <- b:
	default: // enough kept: the collector takes this one
	}
}

// sourceNeed is the resolution the detector in use needs of a frame
// (capture.NeedFunc): a camera decodes an MJPEG frame reduced as far as
// that allows. It reads only the detector's fixed geometry.
func (p *Pipeline) sourceNeed(w, h int) (int, int) { return p.det.Get().SourceNeed(w, h) }

// cpu reads PipelineOptions.CPUClock (0 without one).
func (p *Pipeline) cpu() time.Duration {
	if p.o.CPUClock == nil {
		return 0
	}
	return p.o.CPUClock()
}

// Drops is the number of free-run frames dropped because inspection fell
// behind.
func (p *Pipeline) Drops() uint64 { return p.drops.Load() }

// Inspected is the number of inspections published, failed ones included.
func (p *Pipeline) Inspected() uint64 { return p.inspected.Load() }

// Seq is the seq of the latest result.
func (p *Pipeline) Seq() uint64 { return p.seq.Load() }

// PublishHealth says whether results and alarms reach the publisher: bad
// while the latest one it refused (not merely kept in memory: lost) is
// newer than the latest it took.
func (p *Pipeline) PublishHealth() (bool, string) {
	e, ok := p.pubFail.Load().(timedError)
	if !ok || e.at.UnixNano() < p.pubOK.Load() {
		return true, ""
	}
	return false, e.msg
}

// LastError is the latest capture or inspection error and when it
// happened ("" when there was none).
func (p *Pipeline) LastError() (string, time.Time) {
	e, _ := p.lastErr.Load().(timedError)
	return e.msg, e.at
}

func (p *Pipeline) noteError(err error) {
	p.lastErr.Store(timedError{msg: err.Error(), at: time.Now()})
}

// QueueDepths is how many frames wait before inspection and before
// publishing.
func (p *Pipeline) QueueDepths() map[string]int {
	p.queuesMu.Lock()
	defer p.queuesMu.Unlock()
	if p.inspectQ == nil {
		return nil
	}
	return map[string]int{"inspect": len(p.inspectQ), "publish": len(p.publishQ)}
}

// Progress advances whenever the pipeline moves: a frame captured or a
// trigger wait that ended. The systemd watchdog is fed only while it moves.
func (p *Pipeline) Progress() uint64 { return p.progress.Load() }

// Idle reports whether the pipeline waits for a trigger with nothing in
// flight: an idle line, not a wedged one (the watchdog's view).
func (p *Pipeline) Idle() bool {
	tr, ok := p.o.Source.(*capture.Triggered)
	return ok && tr.Waiting() && p.inflight.Load() == 0
}

// Detector returns the detector in use (for its Info; it may be swapped).
func (p *Pipeline) Detector() *model.Detector { return p.det.Get() }

// ModelInfo describes the detector in force (read under the slot's lock,
// which a threshold change takes).
func (p *Pipeline) ModelInfo() model.Info { return p.det.Info() }

// SwapDetector replaces the detector between two frames and returns the
// old one, which the caller closes. No frame is scored by a mix of both.
func (p *Pipeline) SwapDetector(det *model.Detector) *model.Detector { return p.det.Swap(det) }

// SetPolicy changes what the publish stage sends, from the next frame on.
func (p *Pipeline) SetPolicy(pol Policy) { p.policy.Store(&pol) }

// CameraHealth says whether good frames are coming (see captureHealth).
func (p *Pipeline) CameraHealth() (bool, string) {
	// A live free-running source must deliver; a trigger-mode line or a
	// folder waiting for files may be idle.
	return p.health.check(p.o.FreeRun && !p.lossless, p.o.StallTimeout, p.started)
}

// LastGoodFrameAge is the time since the last frame that was captured and
// decoded, or since the pipeline started when there was none.
func (p *Pipeline) LastGoodFrameAge() time.Duration { return p.health.age(p.started) }

// inspectionFailuresUnhealthy is how many inspections in a row must fail
// before health turns bad: one failure is logged and answered, a run of
// them means the model or the backbone is broken.
const inspectionFailuresUnhealthy = 3

// ModelHealth says whether inspections succeed. Frames refused because
// capture.roi does not apply to their size are said to be that, naming the
// roi and the size: the model loaded is not at fault, and its entry read as
// if it were ("model X: 3 inspections in a row failed").
func (p *Pipeline) ModelHealth() (bool, string) {
	id := p.det.Info().ID
	if n, fse, ok := p.roiRefused(); ok {
		return false, roiRefusalHealth(id, n, fse)
	}
	if n := p.inspFails.Load(); n >= inspectionFailuresUnhealthy {
		return false, fmt.Sprintf("model %s: %d inspections in a row failed, last: %s", id, n, p.lastFail.Load().(string))
	}
	return true, "model " + id + " loaded"
}

// roiRefused says whether the frames are refused because capture.roi
// does not apply to their size, as the model's health and the status
// judge it: n in a row (at least inspectionFailuresUnhealthy), fse the
// latest refusal. The count is loaded once, so that the verdict and the
// number said with it agree (a frame inspected between two loads read
// "0 in a row refused").
func (p *Pipeline) roiRefused() (n int64, fse *capture.FrameSizeError, ok bool) {
	fse, n = p.lastRefusal.Load(), p.refusals.Load()
	if fse == nil || n < inspectionFailuresUnhealthy {
		return 0, nil, false
	}
	return n, fse, true
}

// roiRefusalHealth is the model's health detail while the camera's frames
// are refused for their size (fse, the latest; n in a row): what
// capture.roi wants, the size the camera sends, and what to do.
func roiRefusalHealth(id string, n int64, fse *capture.FrameSizeError) string {
	roi := capture.DescribeROI(fse.ROI)
	if fse.Was == (image.Point{}) {
		return fmt.Sprintf("model %s loaded, but no frame inspected: capture.roi (%s) does not fit in the %dx%d frames the camera sends, %d in a row refused; "+
			"set capture.camera.width and height to the size the roi was given for, or give capture.roi for %dx%d and reload",
			id, roi, fse.Now.X, fse.Now.Y, n, fse.Now.X, fse.Now.Y)
	}
	return fmt.Sprintf("model %s loaded, but no frame inspected: the camera now sends %dx%d frames, not the %dx%d capture.roi (%s) was given for, %d in a row refused; "+
		"open the camera at %dx%d again, or give capture.roi for %dx%d and reload",
		id, fse.Now.X, fse.Now.Y, fse.Was.X, fse.Was.Y, roi, n, fse.Was.X, fse.Was.Y, fse.Now.X, fse.Now.Y)
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
	p.queuesMu.Lock()
	p.inspectQ, p.publishQ = inspectQ, publishQ
	p.queuesMu.Unlock()
	defer close(p.taps.done)
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
		inspected := s.skipped == nil
		p.publishStage(s)
		if s.amap != nil {
			p.giveMap(s.amap)
			s.amap = nil
		}
		p.inflight.Add(-1)
		pool <- s
		if !inspected {
			continue
		}
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
	var loggedAt uint64 // the source's reopens when lastLogged was logged
	reopens := func() uint64 {
		if c := capture.CountersOf(p.o.Source); c != nil {
			return c.Reopens.Load()
		}
		return 0
	}
	taken := 0
	for {
		if p.o.MaxInspections > 0 && taken >= p.o.MaxInspections {
			return nil // enough frames are on their way: MaxInspections means that many, not a few more
		}
		var s *slot
		select {
		case s = <-pool:
		case <-ctx.Done():
			return ctx.Err()
		}
		// Frames are decoded no larger than the detector needs, except
		// while a frame tap (a refit) waits: a model fitted on them may
		// need more than the one in use.
		s.frame.Need = p.need
		if p.taps.n.Load() > 0 {
			s.frame.Need = nil
		}
		err := p.o.Source.Next(ctx, &s.frame)
		s.captured = time.Now()
		p.progress.Add(1)
		s.skipped, s.refused = nil, nil
		if fse := (*capture.FrameSizeError)(nil); err != nil && errors.As(err, &fse) && ctx.Err() == nil {
			// A frame the region of interest no longer applies to: never
			// cut at another part of the view, nor dropped unanswered. It
			// goes on as a frame whose inspection failed, for the reason.
			s.refused, err = err, nil
		}
		if me := (*capture.ROIMisfitError)(nil); err != nil && errors.As(err, &me) && ctx.Err() == nil {
			// A file the region of interest does not fit in (a stray
			// thumbnail in a watched folder): a part answered as a failed
			// inspection, naming it; the next file is read as ever. It
			// ended the pipeline, and the daemon with it.
			s.refused, err = err, nil
		}
		if te := (*capture.TriggerError)(nil); err != nil && errors.As(err, &s.skipped) && !errors.As(err, &te) && ctx.Err() == nil {
			// A file the folder source could not read is a part without
			// a verdict: answered in its place among the results, never
			// inspected (its counters and log line are the source's).
			p.inflight.Add(1) // not taken: MaxInspections counts inspections
			select {
			case out <- s:
			case <-ctx.Done():
				out <- s
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			pool <- s
			var te *capture.TriggerError
			if ctx.Err() != nil {
				if errors.As(err, &te) { // taken from the queue, then stopped: still answered
					p.AnswerTriggerFailure(&capture.TriggerError{ID: te.ID, Err: errStopping})
				}
				return ctx.Err()
			}
			if errors.As(err, &te) {
				// The trigger sender gets an answer even without a frame.
				switch {
				case errors.Is(err, capture.ErrTriggerOverrun), errors.Is(err, capture.ErrTriggerExpired):
				case errors.Is(err, capture.ErrTimeout), errors.As(err, new(*capture.SkippedFileError)):
					// No good frame in time (corrupt ones, or none), or a
					// folder's file skipped (one corrupt part): the source
					// counted it, and those counts are judged by the run
					// rule (captureHealth.byRun), not at once. Set as an
					// error only a good frame clears, one bad part left an
					// idle line unhealthy for good.
					p.health.frameFailed(err)
				default:
					p.health.failed(err)
				}
				if p.o.Metrics != nil {
					p.o.Metrics.Trigger(triggerOutcome(te.Err))
				}
				p.AnswerTriggerFailure(te)
				continue
			}
			if capture.Temporary(err) {
				p.health.failed(err)
				kind := err.Error()
				if re := (*capture.RetryError)(nil); errors.As(err, &re) {
					kind = re.Err.Error() // not the growing backoff
				}
				// One line per kind of trouble and outage, not per frame or
				// per try: a source back in between (a watched folder listed
				// again, with no file to say so) starts a new outage (a
				// trial: the second outage logged no line).
				if r := reopens(); kind != lastLogged || r != loggedAt {
					p.log.Warn("capture problem, retrying", "err", err)
					lastLogged, loggedAt = kind, r
				}
				continue
			}
			if errors.Is(err, capture.ErrEOF) {
				return err
			}
			p.health.failed(err)
			return fmt.Errorf("capture: %w", err)
		}
		if lastLogged != "" {
			p.log.Info("capture recovered")
			lastLogged = ""
		}
		switch {
		case errors.As(s.refused, new(*capture.ROIMisfitError)):
			// Read, but nothing to inspect: no good frame. A looped folder
			// of such files alone is as stuck as one of undecodable files,
			// and health says so by the same rule (one stray file is not).
			p.health.misfit()
		case s.refused != nil || model.CheckFrameSize(s.frame.Image.Bounds().Dx(), s.frame.Image.Bounds().Dy()) != nil:
			// Refused for its size (FrameSizeError: a camera at a size
			// capture.roi does not apply to), or cut under the model's
			// smallest frame: nothing will be inspected, so no good frame
			// either. A camera sending only such frames read healthy.
			p.health.sizeRefused()
		default:
			p.health.good()
		}
		switch {
		case s.refused == nil:
			p.taps.feed(s.frame.Image)
		case errors.As(s.refused, new(*capture.FrameSizeError)):
			// A refit never collects a frame that was not cut, and must
			// not wait for one that will not come: it fails with why.
			p.taps.refuse(s.refused)
		}
		// A file the region does not fit in is not collected either; the
		// next file may fit, so a refit waits for it.
		if strings.HasPrefix(s.frame.Trigger, tapTriggerPrefix) {
			pool <- s // asked for by a frame tap, not by a PLC: not inspected
			continue
		}
		if p.o.Metrics != nil {
			p.o.Metrics.Frame()
			if s.refused != nil && s.frame.Trigger != "" {
				// Its trigger got no frame it could be inspected on, as
				// one that got no frame at all: counted with those
				// (answered below as a failed inspection, not here).
				p.o.Metrics.Trigger(triggerOutcome(s.refused))
			}
		}
		p.inflight.Add(1)
		taken++
		if s.frame.Trigger != "" || !p.o.FreeRun || p.lossless {
			select { // triggered frames and parts from files wait for room: never dropped
			case out <- s:
			case <-ctx.Done():
				out <- s // finish it: it was asked for
				return ctx.Err()
			}
			continue
		}
		// Free-run on a live source: when the queue is full, drop the
		// oldest waiting frame so that inspection stays on the newest.
		for {
			select {
			case out <- s:
			default:
				select {
				case old := <-out:
					pool <- old
					p.inflight.Add(-1)
					taken--
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
	var lastHTTP time.Time
	every := p.o.HTTPEvery
	if every <= 0 {
		every = httpEvery
	}
	for s := range in {
		s.dequeue = time.Now()
		if s.skipped != nil { // nothing to inspect
			s.done = s.dequeue
			out <- s
			continue
		}
		if s.refused != nil { // not inspected: answered as a failed inspection
			s.inspErr, s.modelID = s.refused, p.det.Info().ID
			s.done = s.dequeue
			out <- s
			continue
		}
		p.det.Use(func(det *model.Detector) {
			s.modelID = det.ID()
			r, err := det.Inspect(s.frame.Image)
			if err == nil && (!finite(r.Score) || !finite(r.Normalized)) {
				// Inspect checks too; a part nobody could judge is never a good one.
				err = fmt.Errorf("%w: image score %v, normalized %v", model.ErrNonFinite, r.Score, r.Normalized)
			}
			s.inspErr = err
			if err != nil {
				return
			}
			p.warnMismatch(s.modelID, r)
			s.timing = r.Timing
			s.w, s.h = r.W, r.H
			s.res = mqttpub.Result{Header: mqttpub.Header{Score: r.Score, Threshold: r.Threshold, NormalizedScore: r.Normalized}, Anomalous: r.Anomalous,
				Registration: registration(r.Registration, "")}
			copyGray(&s.mask, r.Mask)
			// Parts (files, triggers) that stop coming leave the last one
			// shown, not the one before it (a trial: an idle folder's
			// /heatmap.jpg stayed on the part before the last for good).
			last := (p.lossless || !p.o.FreeRun) && len(in) == 0
			s.forHTTP = p.o.HTTP != nil && (r.Anomalous || last || time.Since(lastHTTP) >= every)
			if s.forHTTP {
				lastHTTP = time.Now()
			}
			// Images wait for the publish stage; while it is behind (an
			// anomalous burst), inspection goes on and the images are
			// skipped (counted), results and alarms never.
			s.images = len(out) < cap(out)
			s.hasMap = s.forHTTP || s.images && wantImage(p.policy.Load().Heatmap, r.Anomalous)
			if s.hasMap {
				s.amap = p.takeMap(len(r.Map))
				copy(s.amap, r.Map)
			}
		})
		s.done = time.Now()
		out <- s
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func copyGray(dst *image.Gray, src *image.Gray) {
	n := len(src.Pix)
	if cap(dst.Pix) < n {
		dst.Pix = make([]uint8, n)
	}
	dst.Pix = dst.Pix[:n]
	copy(dst.Pix, src.Pix)
	dst.Stride, dst.Rect = src.Stride, src.Rect
}

func wantImage(policy string, anomalous bool) bool {
	switch policy {
	case PublishAlways:
		return true
	case PublishNever:
		return false
	default:
		return anomalous
	}
}

// errorResultEvery bounds how often a failing free-run inspection is
// reported on MQTT: each failure is counted, one result a second says so.
const errorResultEvery = time.Second

func (p *Pipeline) publishStage(s *slot) {
	cpu0 := p.cpu()
	p.answerMu.Lock() // released once the result is with the sink (or not to be sent)
	seq := p.seq.Add(1)
	f := &s.frame
	if sf := s.skipped; sf != nil {
		p.publishError(seq, f, time.Time{}, p.det.Info().ID, sf) // every one: each is a file, said once; no frame was read from it
		p.answerMu.Unlock()
		if p.o.Metrics != nil {
			p.o.Metrics.NoScore() // a part, answered without a score
		}
		p.printLine(seq, f, "SKIPPED", 0, 0, 0, time.Since(f.Time), " ("+sf.Reason+")")
		return
	}
	p.inspected.Add(1)
	pol := p.policy.Load()
	if s.inspErr != nil {
		p.failed.Add(1)
		misfit := (*capture.ROIMisfitError)(nil)
		if !errors.Is(s.inspErr, model.ErrFrameTooSmall) && !errors.As(s.inspErr, &misfit) {
			// A thumbnail dropped into a folder says nothing of the model,
			// with a region of interest or without: a run of them must
			// not turn its health bad.
			p.inspFails.Add(1)
		}
		if fse := (*capture.FrameSizeError)(nil); errors.As(s.inspErr, &fse) {
			p.lastRefusal.Store(fse)
			p.refusals.Add(1)
		} else if misfit == nil && !errors.Is(s.inspErr, model.ErrFrameTooSmall) {
			p.refusals.Store(0)
		}
		p.lastFail.Store(s.inspErr.Error())
		p.noteError(s.inspErr)
		var rerr *model.RegistrationError
		isReg := errors.As(s.inspErr, &rerr)
		msg := s.inspErr.Error()
		if isReg {
			msg = "registration: " + rerr.Kind // its message carries each frame's estimate
		}
		// One line per kind of failure, not per frame; and one per file too
		// small for the roi, each version of it: a file written again under
		// its name is a new part (a watched folder reads it again only
		// once it changed), a looped folder's replay is not, whatever was
		// logged last (two such files alternate: each replay was logged).
		logIt := msg != p.lastInspErr
		if misfit != nil {
			logIt = !f.Replay
		}
		if logIt {
			if fse := (*capture.FrameSizeError)(nil); errors.As(s.inspErr, &fse) {
				// The camera's doing, not the model's: say what it sends
				// and what capture.roi wants, once per size.
				want := "a size the roi fits in"
				if fse.Was != (image.Point{}) {
					want = fmt.Sprintf("%dx%d", fse.Was.X, fse.Was.Y)
				}
				p.log.Error("frames refused: capture.roi does not apply to the camera's frame size; answered as failed inspections until it does",
					"seq", seq, "frame", f.Seq, "frame_size", fmt.Sprintf("%dx%d", fse.Now.X, fse.Now.Y), "roi_wants", want,
					"roi", capture.DescribeROI(fse.ROI), "err", s.inspErr)
			} else if misfit != nil {
				// The file's doing: one line per file (its name is in msg),
				// as for a file that cannot be read.
				p.log.Warn("file not inspected: capture.roi does not fit in its image", "seq", seq, "file", misfit.Name,
					"image_size", fmt.Sprintf("%dx%d", misfit.Size.X, misfit.Size.Y), "roi", capture.DescribeROI(misfit.ROI),
					"err", s.inspErr)
			} else {
				p.log.Error("inspection failed", "seq", seq, "frame", f.Seq, "name", f.Name, "err", s.inspErr)
			}
			p.lastInspErr = msg
		}
		if p.o.Metrics != nil {
			p.o.Metrics.InspectionError()
			if isReg {
				p.o.Metrics.RegistrationFailure(rerr.Kind)
			}
		}
		// A part nobody could judge is never reported as good: triggered
		// ones and files (each one a part a line tracks by name) are
		// answered each, a camera's free-run failures once a second.
		if f.Trigger != "" || p.lossless || time.Since(p.lastErrRes) >= errorResultEvery {
			p.lastErrRes = time.Now()
			p.publishError(seq, f, f.Time, s.modelID, s.inspErr)
		}
		p.answerMu.Unlock()
		p.printLine(seq, f, "ERROR  ", 0, 0, 0, time.Since(f.Time), " "+s.inspErr.Error())
		if p.o.OnInspection != nil {
			now := time.Now()
			p.o.OnInspection(&Stats{Seq: seq, Latency: now.Sub(f.Time), Dequeued: s.captured.Add(-f.Decode), Published: now,
				Decode: f.Decode, Err: s.inspErr})
		}
		return
	}
	p.inspFails.Store(0)
	p.refusals.Store(0)
	p.lastInspErr = ""
	r := &s.res
	r.Verdict = VerdictOK
	if r.Anomalous {
		r.Verdict = VerdictAnomalous
	}
	r.Seq, r.BootID, r.FrameTime, r.TriggerID, r.ModelID = seq, p.o.BootID, f.Time, f.Trigger, s.modelID
	r.SetFile(f.Name)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	clear(p.latency)
	p.latency["queue"] = ms(s.dequeue.Sub(f.Time))
	if f.Decode > 0 {
		p.latency["decode"] = ms(f.Decode)
	}
	if r.Registration != nil {
		p.latency["align"] = ms(s.timing.Align)
	}
	p.latency["preprocess"] = ms(s.timing.Preprocess)
	p.latency["backbone"] = ms(s.timing.Backbone)
	p.latency["padim"] = ms(s.timing.PaDiM)
	p.latency["map"] = ms(s.timing.Map)
	r.LatencyMS = p.latency
	if m := p.o.Metrics; m != nil {
		m.ObserveStage("queue", s.dequeue.Sub(f.Time))
		if f.Decode > 0 {
			m.ObserveStage("decode", f.Decode)
		}
		if g := r.Registration; g != nil {
			m.ObserveStage("align", s.timing.Align)
			m.ObserveRegistration(g.ShiftX, g.ShiftY, g.AngleDeg, g.Confidence)
		}
		m.ObserveStage("preprocess", s.timing.Preprocess)
		m.ObserveStage("backbone", s.timing.Backbone)
		m.ObserveStage("padim", s.timing.PaDiM)
		m.ObserveStage("map", s.timing.Map)
		m.ObserveInspection(r.Score, r.NormalizedScore, r.Anomalous)
	}
	start := time.Now()
	if p.o.Sink != nil {
		// Alarm and result first: an image never delays or shares the fate
		// of the verdict.
		if r.Anomalous {
			// Regions in the frame's own pixels, also when the source
			// delivered it reduced.
			a := &mqttpub.Alarm{Header: r.Header, ImageWidth: s.w, ImageHeight: s.h, Regions: p.rf.find(&s.mask)}
			if n := f.Native; n != (image.Point{}) {
				a.ImageWidth, a.ImageHeight = n.X, n.Y
				scaleRegions(a.Regions, s.w, s.h, n)
			}
			if err := p.o.Sink.PublishAlarm(a); err != nil {
				p.publishFailed("alarm", seq, err)
			} else {
				p.published("alarm")
			}
		}
		due := pol.ResultMaxRate <= 0 || time.Since(p.lastRes) >= time.Duration(float64(time.Second)/pol.ResultMaxRate)
		if due || r.Anomalous || f.Trigger != "" {
			p.lastRes = time.Now()
			p.latency["publish"] = ms(time.Since(start))
			qos := pol.ResultQoS
			if f.Trigger != "" {
				qos = 1 // a PLC waits for this answer: it goes through the outbox
			}
			switch err := p.o.Sink.PublishResult(r, qos); {
			case err == nil:
				if qos > 0 {
					p.published("result")
				} else {
					p.pubOK.Store(time.Now().UnixNano())
				}
			case errors.Is(err, mqttpub.ErrNotConnected): // QoS 0 while offline, or the edge node without a session: dropped
				if p.o.Metrics != nil {
					p.o.Metrics.PublishFailure("result", resultNotSentReason(err))
				}
			default:
				p.publishFailed("result", seq, err)
			}
		}
		p.answerMu.Unlock() // the images of this seq may follow a later answer: another topic
		p.publishImages(s, pol)
	} else {
		p.answerMu.Unlock()
	}
	if s.forHTTP {
		pic := p.img.picture(f.Image)
		p.o.HTTP.SetSnapshot(pic)
		p.img.overlay = render.Overlay(p.img.overlay, pic, s.amap, s.w, s.h, r.Threshold)
		p.o.HTTP.SetHeatmap(p.img.overlay, tagOf(&r.Header))
	}
	published := time.Now()
	total := published.Sub(f.Time)
	verdict := "ok     "
	if r.Anomalous {
		verdict = "DEFECT "
	}
	p.printLine(seq, f, verdict, r.Score, r.Threshold, r.NormalizedScore, total, "")
	if p.o.OnInspection != nil {
		st := &Stats{Seq: seq, Anomalous: r.Anomalous, Score: r.Score, Latency: total,
			Dequeued: s.captured.Add(-f.Decode), Published: published, Decode: f.Decode, Timing: s.timing,
			Publish: published.Sub(start), PublishCPU: p.cpu() - cpu0}
		p.o.OnInspection(st)
	}
}

// scaleRegions moves regions found on a w×h image into the pixels of the
// frame it was reduced from (native).
func scaleRegions(rs []mqttpub.Region, w, h int, native image.Point) {
	for i := range rs {
		r := &rs[i]
		x0, y0 := r.X*native.X/w, r.Y*native.Y/h
		x1, y1 := ((r.X+r.W)*native.X+w-1)/w, ((r.Y+r.H)*native.Y+h-1)/h
		r.X, r.Y, r.W, r.H = x0, y0, min(x1, native.X)-x0, min(y1, native.Y)-y0
		r.Area = int(float64(r.Area) * float64(native.X) * float64(native.Y) / float64(w*h))
	}
}

// published notes a result or alarm (kind) the publisher took: a failure
// of that kind after it is a new outage, logged again. Only the same
// kind's: a QoS 0 result is taken while the outbox that QoS 1 alarms go
// through still cannot write, and must not re-arm the alarm's line.
func (p *Pipeline) published(kind string) {
	p.pubOK.Store(time.Now().UnixNano())
	for key := range p.pubLogged {
		if key.kind == kind {
			delete(p.pubLogged, key)
		}
	}
}

// publishFailed counts a result or alarm the publisher refused or could
// not make durable, and logs it once per kind of failure: an alarm kept in
// memory is not an alarm lost, and must not read like one.
func (p *Pipeline) publishFailed(kind string, seq uint64, err error) {
	reason := "other"
	switch {
	case errors.Is(err, mqttpub.ErrNotDurable):
		reason = "not_durable"
	case errors.Is(err, mqttpub.ErrOutboxFull):
		reason = "outbox_full"
	case errors.Is(err, mqttpub.ErrPayloadTooLarge):
		reason = "too_large"
	}
	if p.o.Metrics != nil {
		p.o.Metrics.PublishFailure(kind, reason)
	}
	if reason != "not_durable" { // lost, not merely kept in memory
		p.pubFail.Store(timedError{msg: kind + " not published: " + err.Error(), at: time.Now()})
	}
	if key := (pubFailure{kind, reason}); !p.pubLogged[key] {
		if p.pubLogged == nil {
			p.pubLogged = map[pubFailure]bool{}
		}
		p.pubLogged[key] = true
		switch reason {
		case "not_durable":
			p.log.Warn(kind+" not durable: held in memory and delivered while inspectd runs, lost if it stops first", "seq", seq, "err", err)
		case "outbox_full":
			p.log.Error(kind+" refused: the MQTT outbox is full", "seq", seq, "err", err)
		default:
			p.log.Error(kind+" not published", "seq", seq, "err", err)
		}
	}
}

// resultNotSentReason is the publish_failures_total reason of a result
// that went to no consumer because a connection was not up. The edge
// node's ErrOffline wraps mqttpub.ErrNotConnected (for the callers that
// only ask "dropped for being offline?"), but with mqtt.profile sparkplug
// the JSON connection may well be up: "not_connected" there sent a plant
// looking at a working broker connection while the Sparkplug side waited
// for its primary host. With profile both the JSON error wins (sinkSwitch.out),
// so a result the JSON topics took never comes here.
func resultNotSentReason(err error) string {
	if errors.Is(err, sparkplug.ErrOffline) {
		return "sparkplug_offline"
	}
	return "not_connected"
}

func (p *Pipeline) printLine(seq uint64, f *capture.Frame, verdict string, score, threshold, norm float64, total time.Duration, extra string) {
	if p.o.Print == nil {
		return
	}
	if f.Label != "" {
		extra += " (injected: " + f.Label + ")"
	}
	if f.Name != "" {
		extra += " " + f.Name
	}
	if f.Trigger != "" {
		extra += " trigger=" + f.Trigger
	}
	if !(threshold > 0) { // not scored (verdict error): no score to show
		fmt.Fprintf(p.o.Print, "#%-5d %s not scored  %5.1f ms%s\n", seq, verdict, float64(total.Microseconds())/1e3, extra)
		return
	}
	// Two decimals, unless they would show a score and a threshold that
	// differ as equal (a trial read "14.24 / 14.24 (1.00×)" as a defect
	// beside the same line as ok).
	sf, tf, nf := "%6.2f", "%.2f", "%.2f"
	if score != threshold && fmt.Sprintf("%.2f", score) == fmt.Sprintf("%.2f", threshold) {
		sf, tf, nf = "%.9g", "%.9g", "%.6f"
	}
	fmt.Fprintf(p.o.Print, "#%-5d %s score "+sf+" / "+tf+" ("+nf+"×)  %5.1f ms%s\n", seq, verdict, score, threshold, norm,
		float64(total.Microseconds())/1e3, extra)
}

func (p *Pipeline) publishImages(s *slot, pol *Policy) {
	r := &s.res
	wantHeatmap := wantImage(pol.Heatmap, r.Anomalous)
	if c, ok := p.o.Sink.(interface{ CarriesHeatmaps() bool }); ok && wantHeatmap && !c.CarriesHeatmaps() {
		wantHeatmap = false // mqtt.profile sparkplug: no topic carries it, nothing to encode
	}
	if !s.images {
		if wantImage(pol.Mask, r.Anomalous) {
			p.sendImage("mask", r.Seq, nil, errPublishBehind, nil)
		}
		if wantHeatmap {
			p.sendImage("heatmap", r.Seq, nil, errPublishBehind, nil)
		}
		return
	}
	mask, heatmap := wantImage(pol.Mask, r.Anomalous), wantHeatmap && s.hasMap
	if !mask && !heatmap {
		return // most frames of a line: no tag to build, no limit to read
	}
	limit := 0
	if m, ok := p.o.Sink.(interface{ MaxPayload() int }); ok {
		limit = m.MaxPayload() // under the sink's lock: only for a frame that has images
	}
	tag := tagOf(&r.Header)
	if mask {
		data, err := p.img.mask(&s.mask, pol.ImageMaxSide, limit, tag)
		p.sendImage("mask", r.Seq, data, err, func(b []byte) error { return p.o.Sink.PublishMask(r.Seq, b, pol.ResultQoS) })
	}
	if heatmap {
		data, err := p.img.heatmap(s.frame.Image, s.amap, s.w, s.h, r.Threshold, pol.ImageMaxSide, limit, tag)
		p.sendImage("heatmap", r.Seq, data, err, func(b []byte) error { return p.o.Sink.PublishHeatmap(b, pol.ResultQoS) })
	}
}

// sendImage publishes one encoded image, or counts and logs (once per
// kind of failure) why it was not.
func (p *Pipeline) sendImage(kind string, seq uint64, data []byte, err error, publish func([]byte) error) {
	if err == nil {
		err = publish(data)
		if errors.Is(err, mqttpub.ErrNotConnected) {
			return
		}
	}
	if err == nil {
		return
	}
	if p.o.Metrics != nil {
		p.o.Metrics.ImageSkipped(kind)
	}
	// Once per kind and cause: an image over the payload limit is so part
	// after part, each of another size (two lines per part before).
	msg := err.Error()
	var tl *tooLargeError
	if errors.As(err, &tl) {
		msg = "too large"
	}
	if p.img.lastErr[kind] != msg {
		p.log.Warn("image not published", "kind", kind, "seq", seq, "err", err)
		if p.img.lastErr == nil {
			p.img.lastErr = map[string]string{}
		}
		p.img.lastErr[kind] = msg
	}
}

// errPublishBehind is why an image was skipped: the publish stage was
// still busy with earlier frames when the frame was inspected.
var errPublishBehind = errors.New("skipped: the publish stage is behind (an anomalous burst); results and alarms go out, images wait for it to catch up")

// AnswerTriggerFailure answers a trigger that got no frame (queue full,
// stale, capture failed) with an error result that says why, so that a PLC
// waiting on the id is not left hanging. Safe from any goroutine.
func (p *Pipeline) AnswerTriggerFailure(te *capture.TriggerError) {
	if strings.HasPrefix(te.ID, tapTriggerPrefix) {
		return // a frame tap's own request: its NextFrame sees the failure
	}
	err := te.Err
	if errors.Is(err, capture.ErrTriggerExpired) && !errors.Is(err, errStaleTrigger) {
		err = fmt.Errorf("%w: %w", errStaleTrigger, err)
	}
	p.log.Warn("trigger not served", "id", te.ID, "err", err)
	// No frame: the result has no frame_time (it said the answer's time,
	// which a consumer reads as a capture). Its seq is taken, and its
	// result sent, after any result whose seq was taken before. A folder's
	// file that was skipped is the part this trigger took: its result
	// names it, as a free-run one does (it had no "file").
	f := &capture.Frame{Trigger: te.ID}
	if sf := (*capture.SkippedFileError)(nil); errors.As(err, &sf) {
		f.Name = sf.Name
	}
	p.answerMu.Lock()
	defer p.answerMu.Unlock()
	p.publishError(p.seq.Add(1), f, time.Time{}, p.det.Info().ID, err)
}

// publishError reports an inspection that could not be made with a result
// at QoS 1 marked anomalous: failing safe rejects a part rather than
// passing one that was never inspected. frameTime is the capture time of
// the frame that failed, zero when there was no frame (a trigger that got
// none, a file that could not be read): the result then has no
// frame_time. The result's seq is taken like any inspection's: errors are
// numbered in the one sequence of answers.
func (p *Pipeline) publishError(seq uint64, f *capture.Frame, frameTime time.Time, modelID string, cause error) {
	if p.o.Sink == nil {
		return
	}
	r := &mqttpub.Result{Header: mqttpub.Header{Seq: seq, BootID: p.o.BootID, FrameTime: frameTime, TriggerID: f.Trigger, ModelID: modelID},
		Anomalous: true, Verdict: VerdictError, LatencyMS: map[string]float64{}, Error: cause.Error()}
	r.SetFile(f.Name)
	// The threshold in force, as on every result: a consumer dividing by it
	// (or plotting it) must not meet 0 on the frames that failed.
	r.Threshold = p.det.Info().ImageThreshold
	if rerr := (*model.RegistrationError)(nil); errors.As(cause, &rerr) {
		r.Registration = registration(rerr.Registration, rerr.Kind)
		if r.Registration == nil {
			r.Registration = &mqttpub.Registration{Failure: rerr.Kind}
		}
	}
	if err := p.o.Sink.PublishResult(r, 1); err != nil {
		p.log.Warn("error result not published", "trigger", f.Trigger, "err", err)
	}
}

// registration is a result's registration from the model's (nil for a
// model without registration); failure names why the frame was refused.
func registration(g model.Registration, failure string) *mqttpub.Registration {
	if g.Mode == "" {
		return nil
	}
	return &mqttpub.Registration{Mode: string(g.Mode), ShiftX: g.ShiftX, ShiftY: g.ShiftY, AngleDeg: g.Angle, Confidence: g.Confidence, Failure: failure}
}

// warnMismatch warns that frames are unlike model modelID's training
// images, once per model and kind of difference (MismatchInput,
// MismatchAspect): every frame of such a line would say it, but a kind
// that shows up later (a camera switched to GREY on a line already warned
// of its frames' shape) is news. Called by the inspect stage only.
func (p *Pipeline) warnMismatch(modelID string, r *model.Inspection) {
	if r.Mismatch == 0 {
		return
	}
	w := &p.inputWarned
	if w.id != modelID {
		w.id, w.kinds = modelID, 0
	}
	if r.Mismatch&^w.kinds == 0 {
		return
	}
	w.kinds |= r.Mismatch
	p.log.Warn("frames unlike the training images: scores are not comparable, good parts may be flagged and defective ones passed; refit on this camera's frames, or set the camera's format and size (or capture.roi) to those the model was fitted on",
		"model", modelID, "frame", r.InputMismatch)
}

// failureCounts lists the frame failures since the last good frame for
// a health detail (", 3 undecodable frames, ..."; "" when none).
func failureCounts(undecodable, tooLarge, timeouts, misfits, sized uint64) string {
	var b strings.Builder
	for _, c := range []struct {
		n              uint64
		one, many, why string
	}{
		{undecodable, "undecodable frame", "undecodable frames", ""},
		{tooLarge, "frame too large", "frames too large", " (over capture.max_pixels)"},
		{timeouts, "frame timeout", "frame timeouts", ""},
		{misfits, "file too small for capture.roi", "files too small for capture.roi", ""},
		{sized, "frame refused for its size", "frames refused for their size", ""},
	} {
		switch {
		case c.n == 1:
			fmt.Fprintf(&b, ", 1 %s%s", c.one, c.why)
		case c.n > 1:
			fmt.Fprintf(&b, ", %d %s%s", c.n, c.many, c.why)
		}
	}
	return b.String()
}

// triggerOutcome names a trigger failure for the triggers_total metric.
func triggerOutcome(err error) string {
	switch {
	case errors.Is(err, capture.ErrTriggerOverrun):
		return "queue_full"
	case errors.Is(err, capture.ErrTriggerExpired), errors.Is(err, errStaleTrigger):
		return "stale"
	default:
		return "no_frame"
	}
}

// captureHealth tracks whether good frames arrive. Capture is unhealthy
// when the source reports an error that no good frame has cleared yet, or
// when frames keep failing (decode errors, images over the pixel limit,
// timeouts, a folder's files that capture.roi does not fit in, frames
// refused for their size) and the last good frame is older than the stall
// timeout. An idle line (a watched folder with no new files, a trigger-mode
// camera waiting for a trigger) stays healthy: nothing failed.
//
// A source of files (folder, file) skips a bad file by itself and goes on;
// its last good frame may be old only because the line was idle. One
// corrupt file dropped into an idle watched folder is a bad part, not a
// failing source, so for such a source the failures must also form a run
// that lasted the stall timeout: failures seen at least that far apart
// with no good frame and no pause of two stall timeouts between them.
// A trigger-mode camera is idle between triggers in the same way, and one
// corrupt frame after a long wait (its trigger answered with an error)
// flipped its health to failed and back: it gets the same rule (byRun),
// its timeouts judged by the counters, not as an error that only a good
// frame clears. A free-running camera counts a timeout only after waiting
// the stall timeout, and its frames keep coming, so it keeps the plain
// rule.
type captureHealth struct {
	src      capture.Source
	perFile  bool         // the source skips bad files itself (capture.IsLossless)
	byRun    bool         // failures count once they form a run (perFile, or a trigger-mode line)
	lastGood atomic.Int64 // unix nanos; 0 before the first
	lastErr  atomic.Value // string; "" once a good frame came
	badSince atomic.Uint64
	// misfits counts the files read that capture.roi does not fit in
	// (capture.ROIMisfitError): read, but no good frame, as an
	// undecodable file is none. The pipeline counts them, not the source.
	misfits atomic.Uint64
	// sized counts the frames refused for their size: a camera's that
	// capture.roi does not apply to (capture.FrameSizeError), and frames
	// cut under the model's smallest (model.ErrFrameTooSmall). Nothing is
	// inspected on them; the pipeline counts them, not the source.
	sized atomic.Uint64
	// counter totals at the last good frame: a rise means frames failed since.
	decodeAtGood, tooLargeAtGood, timeoutAtGood, misfitAtGood, sizedAtGood atomic.Uint64
	// countersAtGood are the source counters those totals were read from.
	// A reload or restart-camera that replaces the source under a running
	// pipeline brings counters of its own, starting from zero: measured
	// against the old source's totals they wrapped round (a trial's health
	// said 18446744073709551611 undecodable frames). The new source's
	// failures all came after the last good frame, so they count whole.
	countersAtGood atomic.Pointer[capture.Counters]
	// reopensAtErr is the source's reopen count when lastErr was set: a
	// per-file source that reopened since (a watched folder listed again)
	// is over that trouble though no file came to say so.
	reopensAtErr atomic.Uint64
	// countersAtErr are the source counters in use when lastErr was set:
	// a reload or restart-camera that replaced that source since put the
	// error behind it (a watched folder that could not be listed, swapped
	// for an empty one, left /healthz 503 naming the old folder until a
	// part came).
	countersAtErr atomic.Pointer[capture.Counters]
	onError       func(error)
	// failSeen is the failure counters' total at the check that last saw
	// it change, at failAt; runFrom is when the check first saw the run of
	// failures that failAt continues.
	mu       sync.Mutex
	failSeen uint64
	failAt   time.Time
	runFrom  time.Time
	// seenSrc are the source counters the check read last; seenBase sums
	// the failures of the sources replaced before them, seenLast their own
	// at that check, so that failSeen's total never falls when a source
	// is replaced (a fall was taken for a new failure).
	seenSrc            *capture.Counters
	seenBase, seenLast uint64
}

func (h *captureHealth) init(src capture.Source, perFile, byRun bool) {
	h.src, h.perFile, h.byRun = src, perFile, byRun
	h.lastErr.Store("")
}

// counters are the source's failure totals, the files capture.roi did
// not fit in and the frames refused for their size. Images over the pixel
// limit are kept apart from undecodable ones: their header decoded, and
// the remedy (capture.max_pixels, the camera's size) is not a corrupt
// file's; so are files too small for the roi, whose remedy is the roi or
// the files, and frames refused for their size, whose remedy is the roi
// or the camera's size.
// The last is the source counters they were read from (nil for a source
// that keeps none).
func (h *captureHealth) counters() (undecodable, tooLarge, timeouts, misfits, sized uint64, src *capture.Counters) {
	misfits, sized = h.misfits.Load(), h.sized.Load()
	if c := capture.CountersOf(h.src); c != nil {
		return c.DecodeErrors.Load(), c.TooLarge.Load(), c.Timeouts.Load(), misfits, sized, c
	}
	return 0, 0, 0, misfits, sized, nil
}

func (h *captureHealth) good() {
	h.lastGood.Store(time.Now().UnixNano())
	if h.lastErr.Load().(string) != "" {
		h.lastErr.Store("")
	}
	d, l, t, m, z, c := h.counters()
	h.countersAtGood.Store(c)
	h.decodeAtGood.Store(d)
	h.tooLargeAtGood.Store(l)
	h.timeoutAtGood.Store(t)
	h.misfitAtGood.Store(m)
	h.sizedAtGood.Store(z)
	h.badSince.Store(0)
}

// misfit notes a file read that capture.roi does not fit in: a failure
// judged by the run rule as an undecodable file is, never a good frame.
func (h *captureHealth) misfit() { h.misfits.Add(1) }

// sizeRefused notes a frame refused for its size: a failure judged as an
// undecodable frame is, never a good frame.
func (h *captureHealth) sizeRefused() { h.sized.Add(1) }

func (h *captureHealth) failed(err error) {
	if h.onError != nil {
		h.onError(err)
	}
	c := capture.CountersOf(h.src)
	if c != nil {
		h.reopensAtErr.Store(c.Reopens.Load()) // before lastErr: check reads them the other way round
	}
	h.countersAtErr.Store(c)
	h.lastErr.Store(err.Error())
	h.badSince.Add(1)
}

// frameFailed notes a failure that the source's counters already hold (a
// trigger's frame that timed out): the latest error, not a state that
// only a good frame clears.
func (h *captureHealth) frameFailed(err error) {
	if h.onError != nil {
		h.onError(err)
	}
}

func (h *captureHealth) age(started time.Time) time.Duration {
	if t := h.lastGood.Load(); t != 0 {
		return time.Since(time.Unix(0, t))
	}
	return time.Since(started)
}

func (h *captureHealth) check(live bool, stall time.Duration, started time.Time) (bool, string) {
	age := h.age(started).Round(time.Second)
	msg := h.lastErr.Load().(string)
	if c := capture.CountersOf(h.src); msg != "" && h.perFile && c != nil && c.Reopens.Load() > h.reopensAtErr.Load() {
		// A camera says it is back with a frame; a watched folder that can
		// be listed again may wait hours for its next file. Its failed
		// files are judged by the counters below, as ever.
		h.lastErr.CompareAndSwap(msg, "")
		msg = ""
	}
	if c := capture.CountersOf(h.src); msg != "" && c != nil && c != h.countersAtErr.Load() {
		// The source that failed was replaced since: its error is not
		// the one in use's.
		h.lastErr.CompareAndSwap(msg, "")
		msg = ""
	}
	d, l, t, m, z, c := h.counters()
	undecodable, tooLarge, timeouts := d, l, t
	if c == h.countersAtGood.Load() { // else a source put in since: all its failures are since
		undecodable -= h.decodeAtGood.Load()
		tooLarge -= h.tooLargeAtGood.Load()
		timeouts -= h.timeoutAtGood.Load()
	}
	misfits := m - h.misfitAtGood.Load()
	sized := z - h.sizedAtGood.Load()
	// Failures count while they keep coming: one bad file at the end of a
	// watched folder does not leave the line unhealthy for good.
	now := time.Now()
	last := h.lastGood.Load()
	h.mu.Lock()
	if c != h.seenSrc {
		h.seenBase += h.seenLast
		h.seenSrc = c
	}
	h.seenLast = d + l + t
	total := h.seenBase + h.seenLast + m + z
	if total != h.failSeen {
		// A new failure continues the run unless a good frame came since
		// the run began or the failures had stopped for a while. Failures
		// that the counters at the last good frame already hold came
		// before it, though this check is the first to see them: they
		// start no run (a run begun here made the next corrupt file,
		// alone after the good frame, one that lasted).
		switch {
		case undecodable+tooLarge+timeouts+misfits+sized == 0:
			h.runFrom = time.Time{}
		case h.runFrom.IsZero() || h.runFrom.UnixNano() < last || now.Sub(h.failAt) >= 2*stall:
			h.runFrom = now
		}
		h.failSeen, h.failAt = total, now
	}
	recent := now.Sub(h.failAt) < 2*stall
	lasted := !h.byRun || h.failAt.Sub(h.runFrom) >= stall
	h.mu.Unlock()
	failing := msg != "" || ((undecodable > 0 || tooLarge > 0 || timeouts > 0 || misfits > 0 || sized > 0) && recent && lasted)
	switch {
	case failing && age > stall:
		detail := fmt.Sprintf("capture: no good frame for %s", age)
		if last == 0 {
			detail = fmt.Sprintf("capture: no good frame since the start %s ago", age)
		}
		detail += failureCounts(undecodable, tooLarge, timeouts, misfits, sized)
		if msg != "" {
			detail += "; last error: " + msg
		}
		return false, detail
	case last == 0 && live && age > stall:
		return false, fmt.Sprintf("capture: no frame captured in the %s since the start", age)
	case last == 0:
		if f := failureCounts(undecodable, tooLarge, timeouts, misfits, sized); f != "" || msg != "" {
			// Within the stall timeout still, but not waiting: a trial
			// read "waiting" with a hundred files already failed.
			if msg != "" {
				f += "; last error: " + msg
			}
			return true, "no good frame yet" + f
		}
		if !live {
			return true, "waiting for the first frame (trigger or file)"
		}
		return true, "starting"
	case msg != "":
		// A recent problem the source is retrying; still within the stall timeout.
		return true, fmt.Sprintf("last good frame %s ago; retrying: %s", age, msg)
	}
	return true, fmt.Sprintf("last good frame %s ago", age)
}
