package daemon

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/broker"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
)

// RunOptions configure Run.
type RunOptions struct {
	// ConfigPath is the YAML file; empty runs on the defaults. SIGHUP
	// reloads it.
	ConfigPath string
	// Config, when set, is used instead of reading ConfigPath (the demo).
	Config *config.Config
	// Print writes one line per inspection; nil: none.
	Print io.Writer
	// Progress draws the fit progress when a model has to be fitted first.
	Progress model.Progress
	// FitFrames is how many normal synthetic frames are fitted on when no
	// model exists and the source is synthetic (0: 200, so that 20 are held
	// out: enough for the position z-score and the context scale).
	FitFrames int
	// MaxInspections stops after that many (0: run until stopped).
	MaxInspections int
	// Version is reported in the info topic.
	Version string
	Logger  *slog.Logger
}

// Run is `inspectd run`: it starts everything the configuration asks for
// and inspects frames until ctx ends (SIGTERM/SIGINT), finishing in-flight
// frames and publishing "offline" before it returns. SIGHUP reloads the
// configuration file; an invalid one is reported and the daemon keeps
// running on its last good configuration.
func Run(ctx context.Context, o RunOptions) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cfg := o.Config
	if cfg == nil {
		var err error
		if cfg, err = LoadConfig(o.ConfigPath); err != nil {
			return err
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		rctx, cancel := context.WithCancel(ctx)
		next := make(chan *config.Config, 1)
		go func() {
			for {
				select {
				case <-rctx.Done():
					return
				case <-hup:
					if o.ConfigPath == "" {
						o.Logger.Warn("SIGHUP ignored: running on built-in defaults, no configuration file to reload")
						continue
					}
					nc, err := config.Load(o.ConfigPath)
					if err != nil {
						o.Logger.Error("configuration not reloaded, keeping the running one", "file", o.ConfigPath, "err", err)
						continue
					}
					if reflect.DeepEqual(nc, cfg) {
						o.Logger.Info("configuration unchanged", "file", o.ConfigPath)
						continue
					}
					o.Logger.Info("configuration reloaded, restarting the pipeline", "file", o.ConfigPath)
					next <- nc
					cancel()
					return
				}
			}
		}()
		err := runOnce(rctx, cfg, o)
		cancel()
		select {
		case nc := <-next:
			if err != nil {
				o.Logger.Warn("pipeline stopped for reload with an error", "err", err)
			}
			cfg = nc
			continue
		default:
		}
		if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
			return nil
		}
		return err
	}
}

func runOnce(ctx context.Context, cfg *config.Config, o RunOptions) (err error) {
	log := o.Logger
	deviceID, err := cfg.ResolvedDeviceID()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state_dir %s: %w (set state_dir to a writable folder)", cfg.StateDir, err)
	}

	// Model first: without one there is nothing to inspect with.
	mopts, err := ModelOptions(cfg, log)
	if err != nil {
		return err
	}
	det, err := openDetector(ctx, cfg, mopts, o)
	if err != nil {
		return err
	}
	defer det.Close()
	info := det.Info()
	log.Info("model ready", "id", info.ID, "features", info.Features, "grid", fmt.Sprintf("%dx%d", info.GridH, info.GridW),
		"threshold", info.ImageThreshold, "accelerator", det.Backbone().Accelerator())

	brokers := cfg.MQTT.Brokers
	if len(brokers) == 0 {
		b, err := broker.Start(ctx, broker.Options{Address: cfg.MQTT.EmbeddedListen, Logger: log})
		if err != nil {
			return fmt.Errorf("embedded MQTT broker: %w", err)
		}
		defer b.Close()
		brokers = []string{b.URL()}
		log.Info("embedded MQTT broker started", "url", b.URL())
	}

	src, trig, desc, err := OpenSource(cfg, log)
	if err != nil {
		return err
	}
	defer src.Close()

	clientID, err := cfg.ResolvedClientID()
	if err != nil {
		return err
	}
	pub, err := mqttpub.New(mqttpub.Options{Brokers: brokers, ClientID: clientID, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
		TLS: mqttpub.TLSOptions{CAFile: cfg.MQTT.TLS.CA, CertFile: cfg.MQTT.TLS.Cert, KeyFile: cfg.MQTT.TLS.Key,
			ServerName: cfg.MQTT.TLS.ServerName, InsecureSkipVerify: cfg.MQTT.TLS.InsecureSkipVerify},
		KeepAlive: cfg.MQTT.Keepalive.Std(), ConnectTimeout: cfg.MQTT.ConnectTimeout.Std(), MaxReconnectInterval: cfg.MQTT.MaxReconnectInterval.Std(),
		StoreDir: filepath.Join(cfg.StateDir, "mqtt-outbox"), TopicPrefix: cfg.MQTT.TopicPrefix, DeviceID: deviceID, Logger: log})
	if err != nil {
		return err
	}
	if trig != nil {
		if err := pub.OnTrigger(func(m mqttpub.Message) {
			t, err := mqttpub.ParseTrigger(m.Topic, m.Payload)
			if err != nil {
				log.Warn("trigger refused", "err", err)
				return
			}
			if err := trig.Trigger(t.ID); err != nil {
				log.Warn("trigger refused", "id", t.ID, "err", err)
			}
		}); err != nil {
			return err
		}
	}
	if err := pub.Start(); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cerr := pub.Close(cctx); cerr != nil {
			log.Warn("MQTT close", "err", cerr)
		}
	}()
	if err := pub.SetInfo(&mqttpub.Info{Version: o.Version, DeviceID: deviceID, ModelID: info.ID, Backbone: filepath.Base(info.Backbone),
		D: info.Features, Thresholds: mqttpub.Thresholds{Image: info.ImageThreshold, Pixel: info.PixelThreshold}, Camera: desc,
		StartedAt: time.Now().UTC()}); err != nil {
		log.Warn("info not published", "err", err)
	}

	metrics := httpapi.NewMetrics()
	var pipe *Pipeline
	handler := httpapi.New(httpapi.Options{
		Camera:  httpapi.CheckerFunc(func() (bool, string) { return pipe.CameraHealth() }),
		Model:   httpapi.CheckerFunc(func() (bool, string) { return true, "model " + info.ID + " loaded" }),
		MQTT:    pub,
		Metrics: metrics,
		Logger:  log,
	})
	_ = metrics.WatchMQTT(func() httpapi.MQTTStats {
		s := pub.State()
		return httpapi.MQTTStats{Connected: s.Connected, Reconnects: s.Reconnects, Queued: s.Queued}
	})
	if c := capture.CountersOf(src); c != nil {
		_ = metrics.WatchCamera(func() httpapi.CameraStats {
			v := c.Snapshot()
			return httpapi.CameraStats{Reopens: v.Reopens, Timeouts: v.Timeouts, DecodeErrors: v.DecodeErrors}
		})
	}
	pipe, err = NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: pub, HTTP: handler, Metrics: metrics,
		Queue: cfg.Pipeline.Queue, FreeRun: trig == nil,
		ResultQoS: byte(cfg.MQTT.ResultQoS), ResultMaxRate: cfg.MQTT.ResultMaxRate,
		Mask: string(cfg.MQTT.Mask), Heatmap: string(cfg.MQTT.Heatmap), Print: o.Print,
		MaxInspections: o.MaxInspections, Logger: log})
	if err != nil {
		return err
	}
	if cfg.HTTP.Listen != "" {
		srv, err := httpapi.Start(ctx, cfg.HTTP.Listen, handler, log)
		if err != nil {
			return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("HTTP endpoint", "url", "http://"+srv.Addr()+"/healthz")
	}
	log.Info("inspecting", "source", desc, "device_id", deviceID, "topics", cfg.MQTT.TopicPrefix+"/"+deviceID+"/#",
		"trigger", string(cfg.Capture.Trigger.Mode))
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
	stopWatchdog := watchdog(ctx, pipe)
	defer stopWatchdog()
	err = pipe.Run(ctx)
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	log.Info("pipeline stopped", "drops", pipe.Drops(), "err", err)
	return err
}

// watchdog pings systemd's watchdog while frames keep coming, so a stuck
// pipeline is restarted by systemd rather than silently going blind.
func watchdog(ctx context.Context, p *Pipeline) func() {
	interval, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(interval / 3)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				// A camera that is unplugged is handled by the capture
				// reopen loop; the watchdog only guards a hung process.
				_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			}
		}
	}()
	return cancel
}

// openDetector loads the model file, or fits one on normal synthetic
// frames when the file is missing and the source is synthetic (the demo on
// a bare machine).
func openDetector(ctx context.Context, cfg *config.Config, mopts model.Options, o RunOptions) (*model.Detector, error) {
	path := cfg.ModelPath()
	if _, err := os.Stat(path); err == nil {
		return model.Load(path, mopts)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if cfg.Capture.Source != config.SourceSynthetic {
		return nil, fmt.Errorf("no model at %s: fit one first with 'inspectd fit --data DIR --out %s' (DIR holds normal images, or train/good)", path, path)
	}
	n := o.FitFrames
	if n <= 0 {
		n = 200
	}
	s := cfg.Capture.Synthetic
	// A different seed from the inspected frames: the model must not have
	// seen the frames it is later judged on.
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: s.Width, Height: s.Height, Seed: uint64(s.Seed) + 1_000_003, NormalOnly: true})
	if err != nil {
		return nil, err
	}
	o.Logger.Info("no model yet: fitting on normal synthetic frames", "frames", n, "model", path)
	det, rep, err := model.Fit(ctx, mopts, FrameSource(syn, n), o.Progress)
	if err != nil {
		return nil, err
	}
	if err := det.Save(path); err != nil {
		det.Close()
		return nil, err
	}
	debug.FreeOSMemory() // the fit's accumulators (about 150 MB at d=100) are garbage now
	o.Logger.Info("model fitted and saved", "model", path, "images", rep.Images, "held_out", rep.HeldOut, "wall", rep.Wall.Round(time.Millisecond))
	return det, nil
}

// FrameSource adapts n frames of a capture source to model.ImageSource for
// fitting. Frames are taken in order, whatever index is asked for: each
// index is asked for once.
func FrameSource(src capture.Source, n int) model.ImageSource { return &frameSource{src: src, n: n} }

type frameSource struct {
	src capture.Source
	n   int
}

func (f *frameSource) Len() int { return f.n }

func (f *frameSource) Image(i int) (image.Image, error) {
	var fr capture.Frame // a fresh buffer per image: Fit decodes ahead
	if err := f.src.Next(context.Background(), &fr); err != nil {
		return nil, err
	}
	return fr.Image, nil
}
