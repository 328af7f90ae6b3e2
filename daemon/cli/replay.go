package cli

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/backbone"
)

// processCPU is the CPU time this process has used, all threads.
func processCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// loadAverage is the machine's one-minute load average, as /proc says.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// replayCamera is a recording played through the fake V4L2 camera that the
// capture tests use, into the real Camera code: driver buffers, newest
// frame, decode, requeue; then the configured region of interest.
type replayCamera struct {
	rec  *recording
	fake *capture.FakeCamera
	cam  *capture.Camera
	src  capture.Source // cam behind the configured ROI and rotation
}

func newReplayCamera(cfg *config.Config, env *Env, rec *recording, fps float64) (*replayCamera, error) {
	fake := capture.NewFakeCamera()
	fake.Offer(rec.format, rec.width, rec.height, fps)
	cam, err := capture.NewCamera(capture.CameraOptions{Device: "/dev/video-replay", Formats: []capture.FourCC{rec.format},
		Width: rec.width, Height: rec.height, FPS: fps, Buffers: cfg.Capture.Camera.Buffers,
		MaxPixels: int64(cfg.Capture.MaxPixels), FrameTimeout: time.Second, Open: fake.Open, Log: env.Log})
	if err != nil {
		return nil, err
	}
	src, err := capture.NewTransform(cam, daemon.TransformOptions(cfg))
	if err != nil {
		return nil, err
	}
	return &replayCamera{rec: rec, fake: fake, cam: cam, src: src}, nil
}

// start opens the camera and waits until it streams: frames captured
// before are lost, as on a real camera.
func (r *replayCamera) start(ctx context.Context, f *capture.Frame) error {
	var err error
	for range 20 {
		r.fake.Push(r.rec.frames[0])
		if err = r.src.Next(ctx, f); err == nil || !capture.Temporary(err) {
			return err
		}
	}
	return fmt.Errorf("the replay camera did not start: %w", err)
}

// pullSource hands the recording's frames through the camera one at a
// time, on demand: each Next captures the next frame (after a token on
// gate, when there is one) and takes it from the camera. It fits models and
// times the stages with one frame in flight.
type pullSource struct {
	r    *replayCamera
	i    int
	gate chan struct{}
	// cpu is the process CPU time the last Next took from the frame's
	// capture to its return (dequeue, decode, region).
	cpu time.Duration
}

func (s *pullSource) Next(ctx context.Context, f *capture.Frame) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c0 := processCPU()
	s.r.fake.Push(s.r.rec.frames[s.i%len(s.r.rec.frames)])
	s.i++
	err := s.r.src.Next(ctx, f)
	s.cpu = processCPU() - c0
	return err
}

func (s *pullSource) Close() error { return nil }

// recordingImages adapts the first n frames of the recording to
// model.ImageSource for fitting: image i is recording frame i (modulo its
// length) pushed through the camera and taken from it at full resolution,
// the same every time it is asked for, as a fit needs.
type recordingImages struct {
	mu sync.Mutex // one push and its dequeue at a time
	r  *replayCamera
	n  int
}

func (s *recordingImages) Len() int { return s.n }

func (s *recordingImages) Image(i int) (image.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f capture.Frame // a fresh buffer per image: Fit decodes ahead
	s.r.fake.Push(s.r.rec.frames[i%len(s.r.rec.frames)])
	if err := s.r.src.Next(context.Background(), &f); err != nil {
		return nil, fmt.Errorf("recording frame %d: %w", i%len(s.r.rec.frames), err)
	}
	return f.Image, nil
}

// percentile of sorted durations.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(int(q*float64(len(d))), len(d)-1)]
}

// replayOptions are bench --camera-replay's settings.
type replayOptions struct {
	path      string
	size      image.Point
	fps       float64
	count     int
	modelPath string
}

// replayBench runs `inspectd bench --camera-replay`: the recording played
// at the camera's frame rate through the whole camera path and the
// pipeline as a line runs it, then once more one frame at a time to give
// each stage's CPU time, and the frames through today's path and the
// pre-fused path for the frame-to-tensor figure.
func replayBench(ctx context.Context, env *Env, cfg *config.Config, o replayOptions, newSink func() (daemon.Sink, func(), error)) error {
	rec, err := loadRecording(o.path, o.size)
	if err != nil {
		return fmt.Errorf("--camera-replay: %w", err)
	}
	if len(rec.skipped) > 0 {
		env.Log.Warn("--camera-replay: files of the recording folder skipped: only regular files are read",
			"folder", o.path, "skipped", strings.Join(rec.skipped, ", "))
	}
	out := env.Stdout
	load0 := loadAverage()
	fmt.Fprintf(out, "recording          %s: %d %s frames %dx%d", o.path, len(rec.frames), rec.format, rec.width, rec.height)
	if rec.format != capture.FormatYUYV {
		fmt.Fprintf(out, " (%s, %d KB per frame)", rec.subsampling, rec.meanBytes()/1024)
	}
	fmt.Fprintf(out, ", replayed at %g fps through the fake V4L2 camera; MJPEG decoder %s\n", o.fps, capture.JPEGDecoderName())

	rc, err := newReplayCamera(cfg, env, rec, o.fps)
	if err != nil {
		return err
	}
	defer rc.src.Close()
	var first capture.Frame
	if err := rc.start(ctx, &first); err != nil {
		return err
	}
	mopts, err := benchOptions(cfg, env, o.modelPath)
	if err != nil {
		return err
	}
	var det *model.Detector
	if o.modelPath != "" {
		det, err = model.Load(o.modelPath, mopts)
	} else {
		// Fitted on the recording's frames as the camera path delivers
		// them, at full resolution (a refit collects them so), each once:
		// a frame repeated would stay in its own leave-one-out model.
		n := min(len(rec.frames), 300)
		det, _, err = model.Fit(ctx, mopts, &recordingImages{r: rc, n: n}, progressBar(env.Stderr, "fit"))
		if err == nil {
			det, err = daemon.SaveAndReload(det, filepath.Join(cfg.StateDir, "model.safetensors"), mopts)
		}
	}
	if err != nil {
		return err
	}
	defer det.Close()
	info := det.Info()
	fmt.Fprintf(out, "model              d=%d, grid %dx%d, resize %s, median filter %v, standardize %v, backbone on %s\n",
		info.Features, info.GridH, info.GridW, info.Resize, info.Denoise, info.Standardize, det.Backbone().Accelerator())

	sink, closeSink, err := newSink()
	if err != nil {
		return err
	}
	defer closeSink()
	if err := replayRealTime(ctx, env, cfg, rc, det, sink, o); err != nil {
		return err
	}
	if err := replayProfile(ctx, out, cfg, rc, det, sink, min(o.count, 200)); err != nil {
		return err
	}
	if err := frameToTensor(ctx, out, rc, det, min(len(rec.frames), 60)); err != nil {
		return err
	}
	fmt.Fprintf(out, "machine            %d CPUs, load average %s at the start, %s at the end (other jobs share them)\n",
		runtime.NumCPU(), load0, loadAverage())
	return nil
}

// replayRealTime plays the recording at its frame rate into a free-running
// pipeline and reports what a line would see.
func replayRealTime(ctx context.Context, env *Env, cfg *config.Config, rc *replayCamera, det *model.Detector, sink daemon.Sink, o replayOptions) error {
	out := env.Stdout
	warm := max(int(o.fps*2), 10) // XNNPACK and the caches warm up
	var (
		mu             sync.Mutex
		lat, full      []time.Duration
		cpu0           time.Duration
		t0             time.Time
		drops0, lost0  uint64
		skipped0       uint64
		rss            []float64
		seen           int
		fails          failures
		p              *daemon.Pipeline
		started        = make(chan struct{})
		decodedW, natW int
	)
	counters := capture.CountersOf(rc.src)
	p, err := daemon.NewPipeline(daemon.PipelineOptions{Source: rc.src, Detector: det, Sink: sink, Queue: cfg.Pipeline.Queue,
		FreeRun: true, Policy: daemon.PolicyOf(cfg), MaxInspections: warm + o.count, Logger: env.Log,
		OnInspection: func(s *daemon.Stats) {
			mu.Lock()
			defer mu.Unlock()
			seen++
			if seen == warm {
				cpu0, t0 = processCPU(), time.Now()
				drops0, lost0, skipped0 = p.Drops(), rc.fake.Lost(), counters.Dropped.Load()
				close(started)
				return
			}
			if seen < warm {
				return
			}
			if s.Err != nil {
				fails.add(s.Err)
				return
			}
			lat = append(lat, s.Published.Sub(s.Dequeued))
			full = append(full, s.Latency)
			if n := seen - warm; n%max(o.count/10, 1) == 0 {
				rss = append(rss, rssMB())
			}
		}})
	if err != nil {
		return err
	}
	// What the camera decodes for this model: one frame, as the pipeline
	// asks for it.
	probe := capture.Frame{Need: det.SourceNeed}
	if err := (&pullSource{r: rc}).Next(ctx, &probe); err == nil {
		decodedW, natW = probe.Image.Bounds().Dx(), probe.Native.X
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var pushed int
	done := make(chan struct{})
	go func() {
		defer close(done)
		pushed = rc.fake.Replay(rctx, rc.rec.frames, o.fps, 0)
	}()
	runErr := p.Run(ctx)
	t1, cpu1 := time.Now(), processCPU()
	stop()
	<-done
	if runErr != nil {
		return runErr
	}
	select {
	case <-started:
	default:
		return errors.New("bench: no inspection after the warm-up")
	}
	mu.Lock()
	defer mu.Unlock()
	wall := t1.Sub(t0)
	n := len(lat)
	if n == 0 {
		return fails.none("bench: no inspection after the warm-up")
	}
	overload, lost, skipped := p.Drops()-drops0, rc.fake.Lost()-lost0, counters.Dropped.Load()-skipped0
	slices.Sort(lat)
	slices.Sort(full)
	used := (cpu1 - cpu0).Seconds() / wall.Seconds() / float64(runtime.NumCPU())
	if natW > 0 && decodedW > 0 {
		fmt.Fprintf(out, "decode             the region of interest decoded at 1/%d of its %d pixels' width (%d), DCT-domain scaling\n",
			(natW+decodedW/2)/decodedW, natW, decodedW)
	} else {
		fmt.Fprintf(out, "decode             at full resolution\n")
	}
	fmt.Fprintf(out, "frames             %d inspected in %.1f s after %d warm-up: %.1f inspections/s at %g fps offered; dropped %d (lost by the driver %d, older frames skipped %d, inspection overload %d); %d pushed in all\n",
		n, wall.Seconds(), warm, float64(n)/wall.Seconds(), o.fps, lost+skipped+overload, lost, skipped, overload, pushed)
	fmt.Fprint(out, fails.line())
	fmt.Fprintf(out, "latency            dequeue to published: p50 %.1f ms, p99 %.1f ms, max %.1f ms; capture to published: p50 %.1f ms, p99 %.1f ms\n",
		ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(lat[n-1]), ms(percentile(full, 0.5)), ms(percentile(full, 0.99)))
	fmt.Fprintf(out, "CPU                %.2f of %d cores busy: %.1f%% used, %.1f%% idle; %.1f ms CPU per frame\n",
		used*float64(runtime.NumCPU()), runtime.NumCPU(), 100*used, 100*(1-used), ms(cpu1-cpu0)/float64(n))
	var sb strings.Builder
	for _, v := range rss {
		fmt.Fprintf(&sb, "%.0f ", v)
	}
	fmt.Fprintf(out, "RSS (MB)           %s\n", sb.String())
	return nil
}

// replayProfile runs the pipeline once more with one frame in flight at a
// time, so that the process's CPU time between two points of a stage is
// that stage's, and prints each stage's CPU time per frame.
func replayProfile(ctx context.Context, out io.Writer, cfg *config.Config, rc *replayCamera, det *model.Detector, sink daemon.Sink, frames int) error {
	const warm = 5
	gate := make(chan struct{}, 1)
	gate <- struct{}{}
	var (
		sum            [7]time.Duration // capture, align, preprocess, backbone, PaDiM, map, publish
		seen, failed   int
		cpu0, cpu1     time.Duration
		decode, wallPP time.Duration
	)
	det.SetCPUClock(processCPU)
	defer det.SetCPUClock(nil)
	src := &pullSource{r: rc, gate: gate}
	p, err := daemon.NewPipeline(daemon.PipelineOptions{Source: src, Detector: det, Sink: sink,
		Queue: cfg.Pipeline.Queue, Policy: daemon.PolicyOf(cfg), MaxInspections: warm + frames, CPUClock: processCPU,
		OnInspection: func(s *daemon.Stats) {
			if s.Err != nil {
				// Answered with verdict error: not profiled, but the next
				// frame may go.
				failed++
				gate <- struct{}{}
				return
			}
			seen++
			switch {
			case seen == warm:
				cpu0 = processCPU()
			case seen > warm:
				c := s.Timing.CPU
				// The frame's capture ran before its inspection and the
				// next one waits for this callback: src.cpu is this frame's.
				for i, d := range []time.Duration{src.cpu, c.Align, c.Preprocess, c.Backbone, c.PaDiM, c.Map, s.PublishCPU} {
					sum[i] += d
				}
				decode += s.Decode
				wallPP += s.Timing.Preprocess
				cpu1 = processCPU()
			}
			gate <- struct{}{}
		}})
	if err != nil {
		return err
	}
	if err := p.Run(ctx); err != nil {
		return err
	}
	n := seen - warm
	if n <= 0 {
		if failed > 0 {
			return fmt.Errorf("bench: no frame in the stage profile: %d of its frames were answered with verdict error", failed)
		}
		return errors.New("bench: no frame in the stage profile")
	}
	per := func(d time.Duration) float64 { return ms(d) / float64(n) }
	total := per(cpu1 - cpu0)
	fmt.Fprintf(out, "stage CPU per frame (a second pass, one frame in flight at a time: %d frames profiled; ms):\n", n)
	if failed > 0 {
		fmt.Fprintf(out, "  (%d frames of this pass answered with verdict error, left out; their CPU counts in other)\n", failed)
	}
	names := []string{"dequeue, decode, ROI", "align", "preprocess", "backbone", "PaDiM", "map", "publish"}
	var stages float64
	for i, name := range names {
		fmt.Fprintf(out, "  %-20s %6.2f\n", name, per(sum[i]))
		stages += per(sum[i])
	}
	fmt.Fprintf(out, "  %-20s %6.2f (GC, the fake camera's clock; the MQTT client and broker when publishing)\n", "other", total-stages)
	fmt.Fprintf(out, "  %-20s %6.2f (decode wall %.2f ms, preprocess wall %.2f ms)\n", "total", total, per(decode), per(wallPP))
	return nil
}

// frameToTensor times camera frame → backbone input tensor over frames of
// the recording, interleaved frame by frame: the camera path (dequeue,
// DCT-scaled decode, ROI view, fused preprocess) against the path before
// it (image/jpeg at full resolution, RGBA, the region copied, the
// reference preprocess with standardization on the full-resolution copy).
// A model's median filter (Recipe.Denoise) is timed in both paths, as the
// detector applies it before the standardization.
func frameToTensor(ctx context.Context, out io.Writer, rc *replayCamera, det *model.Detector, frames int) error {
	bb, std, med := det.Backbone(), det.Standardizer(), det.Denoiser()
	src := &pullSource{r: rc}
	var f capture.Frame
	f.Need = det.SourceNeed
	std0 := capture.MJPEGDecoder{Std: true}
	topts := rc.roi()
	var img, flat image.Image
	var now, before time.Duration
	n := 0
	for i := -3; i < frames; i++ { // three to warm up
		c0 := processCPU()
		if err := src.Next(ctx, &f); err != nil {
			return err
		}
		in := f.Image
		if med != nil {
			in = med.Apply(in)
		}
		var ph backbone.Photometric
		if std != nil {
			ph = std.Measure(in)
		}
		if _, err := bb.SetInputWith(in, ph); err != nil {
			return err
		}
		c1 := processCPU()
		frame := rc.rec.frames[(src.i-1)%len(rc.rec.frames)]
		var err error
		if rc.rec.format == capture.FormatYUYV {
			img, err = capture.DecodeYUYV(img, frame, rc.rec.width, rc.rec.height, capture.YUVLimited)
		} else {
			img, err = std0.Decode(img, frame, capture.ColorRGB)
		}
		if err != nil {
			return err
		}
		flat = capture.Flatten(flat, topts.view(img))
		in = flat
		if med != nil {
			in = med.Apply(in)
		}
		if _, err := bb.SetInputReference(in, std); err != nil {
			return err
		}
		c2 := processCPU()
		if i >= 0 {
			now += c1 - c0
			before += c2 - c1
			n++
		}
	}
	fmt.Fprintf(out, "frame to tensor    %.2f ms CPU per frame; the path before (image/jpeg, RGBA, copied region, float resample over every row): %.2f ms, %.1fx (%d frames, interleaved)\n",
		ms(now)/float64(n), ms(before)/float64(n), float64(before)/float64(now), n)
	return nil
}

// roiView cuts and rotates a full-resolution image as the configured
// region of interest, for the path before views: Flatten then copies it.
type roiView struct{ opts capture.TransformOptions }

func (r *replayCamera) roi() roiView {
	t, ok := r.src.(*capture.Transform)
	if !ok {
		return roiView{}
	}
	return roiView{opts: t.Options()}
}

func (v roiView) view(img image.Image) image.Image {
	b := img.Bounds()
	roi := v.opts.Region(b.Dx(), b.Dy()).Add(b.Min)
	if roi != b {
		img = img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(roi)
	}
	if v.opts.Rotate != 0 {
		img = &capture.Rotated{Src: img, Deg: v.opts.Rotate}
	}
	return img
}
