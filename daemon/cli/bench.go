package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/daemon/broker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
)

// paperImagesPerSecond is PaDiM-R18-Rd100's CPU throughput in the paper
// (0.23 s per image on an i7-4710HQ), the baseline bench reports against.
const paperImagesPerSecond = 1 / 0.23

func cmdBench() *Command {
	return &Command{
		Name:    "bench",
		Summary: "measure end-to-end inspections/s, latency percentiles and memory of the whole pipeline",
		Usage:   "[--data DIR | --camera-replay FILE.mjpeg|FILE.yuyv|DIR [--fps N] [--size WxH]] [--model FILE] [--count N] [--config FILE]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "bench")
			data := fs.String("data", "", "image folder to replay in a loop (MVTec AD layout: its test images; default: the synthetic source)")
			modelPath := fs.String("model", "", "fitted model (default: fit one on --data's train/good or on synthetic frames)")
			count := fs.Int("count", 1000, "inspections to run")
			cfgPath := fs.String("config", "", "configuration file (default: built-in defaults)")
			noMQTT := fs.Bool("no-mqtt", false, "do not publish (measure capture and inspection alone)")
			rate := fs.Float64("rate", 0, "frames per second offered, like a line's camera (0: as fast as the pipeline takes them, which measures throughput; queueing then dominates latency)")
			replay := fs.String("camera-replay", "", "recorded camera frames (an MJPEG stream, raw YUYV frames, or a folder of them; see capture encode) replayed through the camera path at --fps")
			fps := fs.Float64("fps", 30, "with --camera-replay: the camera's frame rate")
			size := fs.String("size", "", "with --camera-replay of raw YUYV frames: their size, WIDTHxHEIGHT")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if err := noArgs(fs); err != nil {
				return err
			}
			if *count <= 0 {
				return usagef("--count %d: want a positive number of inspections", *count)
			}
			var sz image.Point
			if *replay != "" {
				if *data != "" || *rate != 0 {
					return usagef("--camera-replay replays a camera at --fps: --data and --rate do not apply")
				}
				if !(*fps > 0 && *fps <= 1000) {
					return usagef("--fps %v: want a frame rate above 0, up to 1000", *fps)
				}
				if *size != "" {
					var err error
					if sz, err = parseSize(*size); err != nil {
						return usagef("--size: %v", err)
					}
				}
			}
			if *modelPath != "" {
				if err := daemon.ModelLinkLoopError(*modelPath); err != nil {
					return fmt.Errorf("--model: %w", err)
				}
			}
			cfg, err := daemon.LoadConfig(*cfgPath)
			if err != nil {
				return err
			}
			daemon.TuneGC() // as inspectd run does
			tmp, err := os.MkdirTemp("", "inspectd-bench")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			cfg.StateDir = tmp
			newSink := func() (daemon.Sink, func(), error) { return benchSink(ctx, env, tmp, *noMQTT) }
			if *replay != "" {
				return replayBench(ctx, env, cfg, replayOptions{path: *replay, size: sz, fps: *fps, count: *count,
					modelPath: *modelPath}, newSink)
			}
			mopts, err := benchOptions(cfg, env, *modelPath)
			if err != nil {
				return err
			}
			var det *model.Detector
			var src capture.Source
			switch {
			case *data != "":
				if err := benchBrokenTest(*data); err != nil {
					return err
				}
				folder := *data
				if st, err := os.Stat(filepath.Join(*data, "test")); err == nil && st.IsDir() {
					folder = filepath.Join(*data, "test", "good")
				}
				maxPixels := int64(cfg.Capture.MaxPixels)
				if src, err = capture.NewFolder(capture.FolderOptions{Dir: folder, Loop: true, MaxPixels: maxPixels, Log: env.Log}); err != nil {
					return err
				}
				if *modelPath == "" {
					paths, err := normalImages(*data)
					if err != nil {
						return err
					}
					sk := newSkipped(cfg.Capture.MaxPixels)
					fit := imageFiles{paths: admitImages(paths, maxPixels, env.Log, sk), maxPixels: maxPixels}
					var rep model.FitReport
					if det, rep, err = model.Fit(ctx, mopts, fit, progressBar(env.Stderr, "fit")); err != nil {
						return err
					}
					if sk.count() > 0 {
						fmt.Fprintln(env.Stdout, sk)
					}
					fmt.Fprintf(env.Stdout, "fitted on %d images in %s\n", rep.Images, rep.Wall.Round(time.Millisecond))
				}
			default:
				s := cfg.Capture.Synthetic
				if src, err = capture.NewSynthetic(capture.SyntheticOptions{Width: s.Width, Height: s.Height, Seed: uint64(s.Seed), DefectRate: s.DefectRate}); err != nil {
					return err
				}
				if *modelPath == "" {
					syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: s.Width, Height: s.Height, Seed: uint64(s.Seed) + 7, NormalOnly: true})
					if err != nil {
						return err
					}
					if det, _, err = model.Fit(ctx, mopts, daemon.FrameSource(syn, 120), progressBar(env.Stderr, "fit")); err != nil {
						return err
					}
				}
			}
			defer src.Close()
			if src, err = capture.NewThrottle(src, *rate); err != nil {
				return usagef("--rate: %v", err)
			}
			if det != nil {
				// As inspectd run does with a model it fits: saved, and
				// loaded back from the file (daemon.SaveAndReload).
				if det, err = daemon.SaveAndReload(det, filepath.Join(tmp, "model.safetensors"), mopts); err != nil {
					return err
				}
			}
			if det == nil {
				if det, err = model.Load(*modelPath, mopts); err != nil {
					return err
				}
			}
			defer det.Close()
			sink, closeSink, err := newSink()
			if err != nil {
				return err
			}
			defer closeSink()
			return runBench(ctx, env, cfg, det, src, sink, *count)
		},
	}
}

// benchBrokenTest refuses a data set dir with entries of test/ that are
// links leading nowhere (to nothing, or round in a loop), naming each and
// where it leads (dataset.BrokenLink), as eval refuses them
// (dataset.Set.BrokenTest): bench left such a test/<label> out without a
// word. nil when there are none, or dir has no test/ to read.
func benchBrokenTest(dir string) error {
	broken := dataset.BrokenTestLinks(dir)
	return brokenLinks(dir, broken, "test/",
		"its test images would be left out of the bench: restore what it leads to, or remove the link to bench without it",
		"their test images would be left out of the bench: restore what they lead to, or remove the links to bench without them")
}

// benchSink publishes to an embedded broker on loopback, alarms on disk
// in tmp, as a line's box does; nil with noMQTT.
func benchSink(ctx context.Context, env *Env, tmp string, noMQTT bool) (daemon.Sink, func(), error) {
	if noMQTT {
		return nil, func() {}, nil
	}
	addr, err := freeLoopback()
	if err != nil {
		return nil, nil, err
	}
	b, err := broker.Start(ctx, broker.Options{Address: addr, Logger: env.Log})
	if err != nil {
		return nil, nil, err
	}
	pub, err := mqttpub.New(mqttpub.Options{Brokers: []string{b.URL()}, DeviceID: "bench", StoreDir: filepath.Join(tmp, "outbox"), Logger: env.Log})
	if err == nil {
		if err = pub.Start(); err == nil {
			if err = pub.WaitConnected(ctx); err != nil {
				pub.Close(context.Background())
			}
		}
	}
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return jsonSink{pub}, func() {
		pub.Close(context.Background())
		b.Close()
	}, nil
}

// jsonSink is the JSON publisher as the pipeline's Sink: a mask's PNG names
// its inspection in its tag, so the topic needs no sequence number beside it.
type jsonSink struct{ *mqttpub.Publisher }

// PublishMask implements daemon.Sink.
func (s jsonSink) PublishMask(_ uint64, png []byte, qos byte) error {
	return s.Publisher.PublishMask(png, qos)
}

func runBench(ctx context.Context, env *Env, cfg *config.Config, det *model.Detector, src capture.Source, sink daemon.Sink, count int) error {
	lat := make([]time.Duration, 0, count)
	var rss []float64
	var fails failures
	step := max(count/10, 1)
	var start time.Time
	var cpu0 time.Duration
	warm := min(20, count/10)
	p, err := daemon.NewPipeline(daemon.PipelineOptions{Source: src, Detector: det, Sink: sink, Queue: cfg.Pipeline.Queue,
		FreeRun: false, Policy: daemon.PolicyOf(cfg),
		MaxInspections: count + warm, Logger: env.Log,
		OnInspection: func(s *daemon.Stats) {
			if int(s.Seq) == warm {
				runtime.GC()
				start, cpu0 = time.Now(), processCPU()
			}
			if int(s.Seq) <= warm {
				return
			}
			if s.Err != nil {
				fails.add(s.Err)
				return
			}
			lat = append(lat, s.Latency)
			if (int(s.Seq)-warm)%step == 0 {
				rss = append(rss, rssMB())
			}
		}})
	if err != nil {
		return err
	}
	if err := p.Run(ctx); err != nil {
		return err
	}
	el, cpu := time.Since(start), processCPU()-cpu0
	if len(lat) == 0 {
		return fails.none("bench: no inspections")
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(int(q*float64(len(lat))), len(lat)-1)] }
	rate := float64(len(lat)) / el.Seconds()
	info := det.Info()
	ctxDesc := ""
	if info.ContextPool > 0 {
		ctxDesc = fmt.Sprintf(", context grid %dx%d d=%d weight %g", info.ContextGridH, info.ContextGridW, info.ContextFeatures, info.ContextWeight)
	}
	fmt.Fprintf(env.Stdout, "inspections        %d (after %d warm-up), d=%d, grid %dx%d%s, %s\n", len(lat), warm, info.Features, info.GridH, info.GridW, ctxDesc, det.Backbone().Accelerator())
	fmt.Fprintf(env.Stdout, "throughput         %.1f inspections/s (%.1f× the paper's PaDiM-R18-Rd100 CPU figure of %.1f/s)\n", rate, rate/paperImagesPerSecond, paperImagesPerSecond)
	fmt.Fprintf(env.Stdout, "latency            p50 %.1f ms, p99 %.1f ms, max %.1f ms (capture to published)\n",
		ms(pct(0.5)), ms(pct(0.99)), ms(lat[len(lat)-1]))
	// CPU per inspection varies less than throughput on a shared machine:
	// another job's load stretches wall time, not the work done.
	fmt.Fprintf(env.Stdout, "CPU                %.1f ms per inspection (%.2f of %d cores busy)\n",
		ms(cpu)/float64(len(lat)), cpu.Seconds()/el.Seconds(), runtime.GOMAXPROCS(0))
	var sb strings.Builder
	for _, v := range rss {
		sb.WriteString(strconv.FormatFloat(v, 'f', 0, 64) + " ")
	}
	fmt.Fprintf(env.Stdout, "RSS (MB) every %d  %s\n", step, sb.String())
	fmt.Fprintf(env.Stdout, "peak RSS           %.0f MB, frames dropped %d\n", peakRSSMB(), p.Drops())
	fmt.Fprint(env.Stdout, fails.line())
	return nil
}

// failures tallies the frames a bench saw answered with verdict error
// (registration refused, a frame that could not be inspected), by reason,
// for its report: they are not inspections, and a run where every frame
// fails says so instead of reporting nothing.
type failures struct {
	n     int
	kinds map[string]int
	first string
}

func (f *failures) add(err error) {
	f.n++
	k := err.Error()
	if r, ok := errors.AsType[*model.RegistrationError](err); ok {
		k = "registration " + r.Kind
	}
	if f.kinds == nil {
		f.kinds = map[string]int{}
	}
	f.kinds[k]++
	if f.first == "" {
		f.first = err.Error()
	}
}

// summary is the count by reason and the first error, "" without failures.
func (f *failures) summary() string {
	if f.n == 0 {
		return ""
	}
	kinds := make([]string, 0, len(f.kinds))
	for k := range f.kinds {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return cmp.Or(f.kinds[b]-f.kinds[a], strings.Compare(a, b)) })
	var sb strings.Builder
	for i, k := range kinds {
		if i == 4 {
			fmt.Fprintf(&sb, ", …")
			break
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s: %d", k, f.kinds[k])
	}
	return fmt.Sprintf("%d frames answered with verdict error (%s); the first: %s", f.n, sb.String(), f.first)
}

// line is the report's line of failures, "" without any.
func (f *failures) line() string {
	if f.n == 0 {
		return ""
	}
	return "errors             " + f.summary() + "\n"
}

// none is the error of a run with no inspection: msg, and why when every
// frame failed.
func (f *failures) none(msg string) error {
	if f.n == 0 {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: every frame was answered with verdict error: %s", msg, f.summary())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// rssMB reads the current resident set size.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize()) / (1 << 20)
}

// benchOptions are the model options of a bench (or its camera replay)
// that loads modelPath, or fits a model where it is "": a load runs no
// recipe search, so bundled backbones missing here are not logged as left
// out of one (daemon.LoadOptions), as a fit, which may search, logs them.
// The backbone variant's choice is not cached in a state_dir the daemon
// would not create (uncachedWhereRefused).
func benchOptions(cfg *config.Config, env *Env, modelPath string) (opts model.Options, err error) {
	if modelPath != "" {
		opts, err = daemon.LoadOptions(cfg, env.Log)
	} else {
		opts, err = daemon.ModelOptions(cfg, env.Log)
	}
	uncachedWhereRefused(&opts, env.Log)
	return opts, err
}
