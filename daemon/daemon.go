package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon/broker"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/daemon/sparkplug"
	"github.com/inspectd/inspectd/model"
)

// Daemon is one running inspectd. Its parts live as long as the process
// and are replaced one by one when the configuration changes (SIGHUP or a
// remote push): the embedded broker only when its own settings change, the
// MQTT connection when the MQTT settings change, the frame source when the
// capture settings change, the detector (backbone and model) when the model
// settings change — each new part built beside the old one and swapped in
// only when every new part could be built.
type Daemon struct {
	o   RunOptions
	log *slog.Logger

	// mu serializes configuration changes and guards the fields below it.
	mu       sync.Mutex
	cfg      *config.Config
	deviceID string
	clientID string
	desc     string // the frame source, for info and status
	broker   *broker.Broker
	httpSrv  *httpapi.Server
	src      *swapSource
	trig     *capture.Triggered // nil in free-run; also in trigPtr for the MQTT handler
	// folders records the files folder sources handed out, so that a
	// capture restart (restart-camera, a reload or push changing capture)
	// does not inspect them again; kept in state_dir (folderLedgerFile)
	// when the daemon starts on a folder, for a restart of the process.
	folders  *capture.FolderLedger
	pipeGen  uint64
	pipeStop context.CancelFunc
	pipeDone chan struct{}

	cfgPtr   atomic.Pointer[config.Config] // d.cfg, readable without d.mu (remote commands)
	disp     *remote.Dispatcher
	dispPtr  atomic.Pointer[remote.Dispatcher] // d.disp, for /healthz, which is served before it is made
	front    *remote.MQTT
	lock     atomic.Pointer[statelock.Lock] // the state folder's, held while the daemon runs; read without d.mu (a push's check)
	restart  func()                         // ends Run with ErrRestartRequested
	base     context.Context                // the Run context: parts live until it ends
	notifier *Notifier                      // systemd: READY, STATUS, RELOADING, STOPPING, the watchdog
	metrics  *httpapi.Metrics
	handler  *httpapi.Handler
	sink     sinkSwitch
	pipe     atomic.Pointer[Pipeline]
	trigPtr  atomic.Pointer[capture.Triggered]
	// early holds the answers to triggers refused before the first
	// pipeline exists (one the broker held for this session arrives right
	// after the connection, before the pipeline starts): the pipeline
	// publishes them when it starts, so that no trigger goes unanswered.
	earlyMu   sync.Mutex
	early     []capture.TriggerError
	triggers  *triggerIntake
	ended     chan pipelineEnd
	startedAt time.Time
	bootID    string // random per process start, beside every result's seq
	stopping  atomic.Bool
	// inspectedBefore counts the inspections of pipelines replaced by a
	// restart; rate samples the total every second; lastReloadErr is the
	// latest refused reload (a timedError), for the status command, until
	// a configuration is applied.
	inspectedBefore atomic.Uint64
	rate            rateMeter
	lastReloadErr   atomic.Value
	status          string // the retained status last set
	// lastFit is the model file the last configuration change fitted in
	// place of a missing one (nil when it fitted none), which the next
	// change removes if it undoes that one (fitRecord.undoneBy). Guarded
	// by mu.
	lastFit *fitRecord
	// cameraOpen opens a camera source's device (nil: the kernel's V4L2;
	// tests give a capture.FakeCamera's).
	cameraOpen capture.Opener
}

// ConfigRules are the checks of a configuration that need the model's or
// the capture's code, which the config package may not import: a
// model.recipe that names a recipe must read as one (model.ParseRecipe),
// and a synthetic source's size must be one it renders. Passed to config.Load and
// config.Parse, they list such a mistake with its line among the file's
// other problems, in the same run, instead of alone at the model's load.
func ConfigRules() []config.Rule { return []config.Rule{recipeRule, syntheticSizeRule} }

// syntheticSizeRule refuses a synthetic source's size that the source
// refuses: `config check` called capture.synthetic.width 10000 ok, and
// run then stopped at "synthetic source: size 10000x20: want 32..8192".
// Only the active source's section is used, so only its size is checked.
func syntheticSizeRule(c *config.Config) []*config.Problem {
	if c.Capture.Source != config.SourceSynthetic && c.Capture.Source != "" {
		return nil
	}
	var out []*config.Problem
	for _, s := range []struct {
		field string
		v     int
	}{{"capture.synthetic.width", c.Capture.Synthetic.Width}, {"capture.synthetic.height", c.Capture.Synthetic.Height}} {
		// config's own range, 1..16384, is every source's.
		if s.v < capture.SyntheticMinSide || s.v > capture.SyntheticMaxSide {
			out = append(out, &config.Problem{Field: s.field, Msg: fmt.Sprintf("%d is out of range %d..%d (the synthetic source's frame sides)", s.v, capture.SyntheticMinSide, capture.SyntheticMaxSide)})
		}
	}
	return out
}

// recipeRule refuses a model.recipe the model cannot read.
func recipeRule(c *config.Config) []*config.Problem {
	r := c.Model.Recipe
	if r == model.RecipeAuto || r == model.RecipeFixed {
		return nil
	}
	if _, err := model.ParseRecipe(r, c.Model.Taps); err != nil {
		// `recipe "v9-fit-raw": unknown backbone…` under model.recipe reads
		// as the other problems do: the value, then what is wrong.
		return []*config.Problem{{Field: "model.recipe", Msg: strings.TrimPrefix(err.Error(), "recipe ")}}
	}
	return nil
}

// WarnIgnoredSettings logs, one line each, the settings of cfg that are
// valid but that a fit leaves out (config.Config.Warnings: a context scale
// without the position z-score it needs), before a fit with cfg: the fit
// itself drops them without a word, and `config check` said so only to
// whoever ran it.
func WarnIgnoredSettings(cfg *config.Config, log *slog.Logger) {
	for _, w := range cfg.Warnings() {
		log.Warn("setting left out of the fit", "field", w.Field, "why", w.Msg)
	}
}

// pipelineEnd is a pipeline's Run returning; gen tells a restarted
// pipeline's end from the current one's.
type pipelineEnd struct {
	gen uint64
	err error
}

// start brings every part up in dependency order: the HTTP endpoint and
// the embedded broker first (a port another program holds must end the
// start before a file is inspected and its result lost, and before minutes
// of fitting; /healthz says "not started" meanwhile), then the model
// (nothing to inspect with otherwise), the frame source, the MQTT
// connection and the pipeline. On failure what was started
// is stopped again.
func start(ctx context.Context, cfg *config.Config, o RunOptions, notifier *Notifier, restart func()) (d *Daemon, err error) {
	d = &Daemon{o: o, log: o.Logger, folders: capture.NewFolderLedger(), base: ctx, ended: make(chan pipelineEnd, 4), startedAt: time.Now(), notifier: notifier,
		bootID: newBootID(), restart: restart, cameraOpen: o.cameraOpen}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	if d.deviceID, err = cfg.ResolvedDeviceID(); err != nil {
		return d, err
	}
	// In the words config check, a push and a reload use (a file in the
	// path, a folder that cannot be written, even by root): the start
	// printed the raw stat or mkdir error ("not a directory", "no such
	// file or directory" under /proc).
	if err := StateDirError(cfg.StateDir); err != nil {
		return d, err
	}
	if err := atomicfile.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return d, fmt.Errorf("state_dir: %s cannot be created: %w; set state_dir to a writable folder", cfg.StateDir, err)
	}
	lock, err := statelock.Take(cfg.StateDir)
	if err != nil {
		return d, err
	}
	d.lock.Store(lock)
	if cfg.Capture.Source == config.SourceFolder || cfg.Capture.Source == config.SourceFile {
		// Kept in the state folder: a restart of the process goes on after
		// the files a watched folder already had inspected, too.
		d.folders = capture.OpenFolderLedger(filepath.Join(cfg.StateDir, folderLedgerFile), d.log)
	}
	d.setConfig(cfg)
	d.metrics = httpapi.NewMetrics()
	d.watchMetrics()
	d.handler = httpapi.New(httpapi.Options{
		Camera:  httpapi.CheckerFunc(d.cameraHealth),
		Model:   httpapi.CheckerFunc(d.modelHealth),
		MQTT:    httpapi.CheckerFunc(d.mqttHealth),
		Metrics: d.metrics,
		Logger:  d.log,
	})
	if cfg.HTTP.Listen != "" {
		// Before anything is inspected: a port taken by another program
		// ended the start after the first file of a watched folder was
		// inspected and recorded, and its result was lost. Meanwhile
		// /healthz says "not started" with 503.
		if d.httpSrv, err = d.startHTTP(cfg.HTTP.Listen); err != nil {
			return d, err
		}
	}
	d.triggers = newTriggerIntake(d.log, d.metrics)
	d.triggers.configure(cfg.Capture.Trigger.DedupWindow.Std(), cfg.Capture.Trigger.MaxAge.Std())
	d.sink.onTriggerResult = d.triggers.answered

	mopts, err := ModelOptions(cfg, d.log)
	if err != nil {
		return d, err
	}
	if len(cfg.MQTT.Brokers) == 0 {
		// Before the model: a port another program holds ends the start
		// at once, not after minutes of fitting, and clients can connect
		// while the first fit runs.
		if d.broker, err = startBroker(cfg, d.log); err != nil {
			return d, err
		}
	}
	removeStaleModelFiles(cfg.ModelPath(), d.log)
	det, _, err := openDetector(ctx, cfg, mopts, o) // a fit at start is logged as such
	if err != nil {
		return d, err
	}
	d.logModel(det)

	base, desc, err := openCapture(cfg, d.log, sourceOpen{ledger: d.folders, reportSkips: true, cameraOpen: d.cameraOpen})
	if err != nil {
		det.Close()
		return d, err
	}
	d.src, d.desc = newSwapSource(base), desc
	if d.clientID, err = resolveClientID(cfg, d.deviceID); err != nil {
		det.Close()
		return d, err
	}
	if d.disp, err = remote.New(remote.Options{Controller: d, DeviceID: d.deviceID, StateDir: cfg.StateDir, Logger: d.log, ConfigRules: ConfigRules()}); err != nil {
		det.Close()
		return d, err
	}
	d.dispPtr.Store(d.disp)
	pub, node, noJSON, err := d.connect(cfg, d.deviceID, d.clientID, nil)
	if err != nil {
		det.Close()
		return d, err
	}
	d.sink.set(pub, node, noJSON)
	d.status = mqttpub.StatusOnline // announced by the publisher on connect
	d.startPipeline(cfg, det)
	d.publishInfo()
	d.log.Info("inspecting", "source", desc, "device_id", d.deviceID, "topics", cfg.MQTT.TopicPrefix+"/"+d.deviceID+"/#",
		"trigger", string(cfg.Capture.Trigger.Mode))
	d.ready()
	return d, nil
}

// watchMetrics exports the MQTT, Sparkplug, camera and pipeline series
// from the start, before the HTTP endpoint binds: registered once the
// start had finished, they were absent through a start's fit, and an
// absent() alert fired. Until the pipeline exists they read nothing
// connected, no camera event, and the time since the start. The source is
// read only once the pipeline is stored (d.pipe's store orders d.src's
// write before it).
func (d *Daemon) watchMetrics() {
	_ = d.metrics.WatchMQTT(func() httpapi.MQTTStats { return mqttStats(d.sink.state(), d.sink.sparkplugState().MasksTooLarge) })
	_ = d.metrics.WatchSparkplug(func() httpapi.SparkplugStats { return sparkplugMetrics(d.sink.sparkplugState()) })
	_ = d.metrics.WatchCamera(func() httpapi.CameraStats {
		if d.pipe.Load() == nil {
			return httpapi.CameraStats{}
		}
		v := d.src.Totals() // across reloads that replaced the camera
		return httpapi.CameraStats{Reopens: v.Reopens, Timeouts: v.Timeouts, DecodeErrors: v.DecodeErrors, TooLarge: v.TooLarge}
	})
	_ = d.metrics.WatchPipeline(func() httpapi.PipelineStats {
		p := d.pipe.Load()
		if p == nil {
			return httpapi.PipelineStats{LastGoodFrameAge: time.Since(d.startedAt)}
		}
		return httpapi.PipelineStats{LastGoodFrameAge: p.LastGoodFrameAge()}
	})
}

// ready tells systemd the daemon is up (again), and has the watchdog
// follow the pipeline in force.
func (d *Daemon) ready() {
	d.notifier.Ready(Liveness{
		Progress:    func() uint64 { return d.pipe.Load().Progress() },
		Idle:        func() bool { return d.pipe.Load().Idle() },
		Inspections: func() uint64 { return d.inspectedBefore.Load() + d.pipe.Load().Inspected() },
		ModelID:     d.ModelInfo().ID,
	})
}

func (d *Daemon) logModel(det *model.Detector) {
	info := det.Info()
	attrs := []any{"id", info.ID, "recipe", info.Recipe, "features", info.Features, "grid", fmt.Sprintf("%dx%d", info.GridH, info.GridW),
		"threshold", info.ImageThreshold, "accelerator", det.Backbone().Accelerator(), "precision", info.Precision}
	// The filter changes every frame the line sends, so the log says it
	// in words, not only as "-med" inside the recipe's name.
	if denoised(info) {
		attrs = append(attrs, "median_filter", "3x3")
	}
	d.log.Info("model ready", attrs...)
}

// denoised reports whether the model, or any member of an ensemble,
// filters its frames with the 3×3 median first.
func denoised(i model.Info) bool {
	if i.Denoise {
		return true
	}
	for _, m := range i.Members {
		if denoised(m) {
			return true
		}
	}
	return false
}

// portFree says whether addr (host:port) can be listened on now, by
// listening and closing at once.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

func startBroker(cfg *config.Config, log *slog.Logger) (*broker.Broker, error) {
	// Not tied to the Run context: the broker stops last, after the MQTT
	// client has said goodbye through it.
	b, err := broker.Start(context.Background(), broker.Options{Address: cfg.MQTT.EmbeddedListen, Logger: log,
		StoreDir: filepath.Join(cfg.StateDir, "mqtt-broker")})
	if err != nil {
		return nil, err // broker.Start names the embedded broker and its address
	}
	return b, nil
}

// stopHTTP shuts the HTTP endpoint down (2 s for requests in flight), if
// there is one.
func (d *Daemon) stopHTTP() {
	if d.httpSrv == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = d.httpSrv.Shutdown(sctx)
	cancel()
	d.httpSrv = nil
}

// rebindHTTP starts the endpoint again on addr, where it was before a
// move that is not kept.
func (d *Daemon) rebindHTTP(addr string) {
	var err error
	if d.httpSrv, err = d.startHTTP(addr); err != nil {
		d.log.Error("HTTP endpoint not restored", "listen", addr, "err", err)
	}
}

// samePort says whether two listen addresses name the same fixed port
// (an address with port 0 takes a free one and clashes with nothing).
func samePort(a, b string) bool {
	_, pa, errA := net.SplitHostPort(a)
	_, pb, errB := net.SplitHostPort(b)
	return errA == nil && errB == nil && pa == pb && pa != "0"
}

func (d *Daemon) startHTTP(addr string) (*httpapi.Server, error) {
	srv, err := httpapi.Start(context.Background(), addr, d.handler, d.log)
	if err != nil {
		// A FieldError, in the same words ("http.listen: ..."): a push
		// refused for an address in use names its key in the reply's
		// field, as other refused values do.
		return nil, &FieldError{Field: "http.listen", Err: err} // err names addr
	}
	d.log.Info("HTTP endpoint", "url", "http://"+srv.Addr()+"/healthz")
	return srv, nil
}

// brokerURLs are the brokers the MQTT client connects to.
func (d *Daemon) brokerURLs(cfg *config.Config) []string {
	if len(cfg.MQTT.Brokers) == 0 && d.broker != nil {
		return []string{d.broker.URL()}
	}
	return cfg.MQTT.Brokers
}

// newPublisher creates and starts the MQTT connection for cfg, with the
// trigger subscription in trigger mode, going on from what the publisher it
// replaces learned of the brokers (carry, nil at start; mqttpub keeps it
// for the same broker list only).
func (d *Daemon) newPublisher(cfg *config.Config, deviceID, clientID string, carry *mqttpub.Carry) (*mqttpub.Publisher, error) {
	m := cfg.MQTT
	if err := CheckMQTTTLS(&m); err != nil {
		return nil, err // names the mqtt.tls key, where mqttpub names its own field
	}
	pub, err := mqttpub.New(mqttpub.Options{Brokers: d.brokerURLs(cfg), ClientID: clientID, Username: m.Username, Password: m.Password,
		TLS:       tlsOptions(&m),
		KeepAlive: m.Keepalive.Std(), ConnectTimeout: m.ConnectTimeout.Std(), MaxReconnectInterval: m.MaxReconnectInterval.Std(),
		StoreDir: filepath.Join(cfg.StateDir, "mqtt-outbox"), TopicPrefix: m.TopicPrefix, DeviceID: deviceID, Logger: d.log,
		MaxPayload: int(m.MaxPayload), OutboxMaxMessages: m.OutboxMaxMessages, OutboxMaxBytes: int64(m.OutboxMaxBytes), Carry: carry})
	if err != nil {
		return nil, err
	}
	// Subscribed in both modes: in free-run a trigger is answered with an
	// error saying so, rather than left without an answer.
	if err := pub.OnTrigger(d.onTrigger); err != nil {
		return nil, err
	}
	// Command topics are subscribed before the connection starts, so that
	// requests the broker kept for this session are routed.
	fo := remote.MQTTOptions{Prefix: m.TopicPrefix, DeviceID: deviceID, Groups: m.Groups, Enabled: cfg.Remote.Enabled(), Logger: d.log}
	if d.front == nil {
		if d.front, err = remote.NewMQTT(pub, d.disp, fo); err == nil {
			err = d.front.Start()
		}
	} else {
		err = d.front.Attach(pub, fo)
		d.disp.SetDeviceID(deviceID)
	}
	if err != nil {
		return nil, err
	}
	if err := pub.Start(); err != nil {
		return nil, err
	}
	d.front.AnswerInterrupted()
	return pub, nil
}

// setConfig makes cfg the configuration in force. Called with d.mu held
// (or before the daemon is shared).
func (d *Daemon) setConfig(cfg *config.Config) {
	d.cfg = cfg
	d.cfgPtr.Store(cfg)
	d.sink.configured.Store(int64(cfg.MQTT.MaxPayload))
	if d.o.LogLevel != nil {
		d.o.LogLevel.Set(cfg.SlogLevel())
	}
}

// connect opens the MQTT connections cfg asks for: the JSON publisher
// (always: status, info, triggers and commands go over it) and, for
// mqtt.profile sparkplug or both, the Sparkplug B edge node, each going
// on from what the one it replaces knew (carry, nil at start).
func (d *Daemon) connect(cfg *config.Config, deviceID, clientID string, carry *carried) (*mqttpub.Publisher, *sparkplug.Node, bool, error) {
	if carry == nil {
		carry = &carried{}
	}
	pub, err := d.newPublisher(cfg, deviceID, clientID, carry.pub)
	if err != nil {
		return nil, nil, false, err
	}
	if !cfg.MQTT.UsesSparkplug() {
		return pub, nil, false, nil
	}
	node, err := d.newSparkplugNode(cfg, deviceID, clientID, carry.node)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = pub.Close(cctx)
		return nil, nil, false, fmt.Errorf("sparkplug: %w", err)
	}
	return pub, node, !cfg.MQTT.UsesJSON(), nil
}

// submitter is where the Sparkplug edge node hands its DCMD writes: the
// same commands as the JSON front end's. A trigger is an operational
// message, as on the JSON trigger topic, not remote control: it goes to the
// trigger intake whatever remote.trust_keys and remote.allow_unsigned say.
func (d *Daemon) submitter() remote.Submitter { return sparkplugCommands{d} }

type sparkplugCommands struct{ d *Daemon }

func (s sparkplugCommands) Submit(req remote.Request, done func(remote.Reply)) {
	if req.Name != "trigger" {
		s.d.disp.Submit(req, done)
		return
	}
	var t mqttpub.Trigger
	_ = json.Unmarshal(req.Body, &t) // the edge node built it from a checked string
	go func() {
		prev, err := s.d.Trigger(context.Background(), req.ID, t.Time)
		if err != nil {
			done(remote.Reply{ID: req.ID, Error: "trigger not taken: " + err.Error()})
			return
		}
		done(remote.Reply{ID: req.ID, OK: true, Data: remote.TriggerTaken(prev)})
	}()
}

// publishInfo sets the retained info document from what runs now.
func (d *Daemon) publishInfo() {
	p := d.pipe.Load()
	if p == nil {
		return
	}
	info := p.ModelInfo()
	doc := &mqttpub.Info{Version: d.o.Version, DeviceID: d.deviceID, ModelID: info.ID, Backbone: filepath.Base(info.Backbone),
		D: info.Features, Thresholds: mqttpub.Thresholds{Image: info.ImageThreshold, Pixel: info.PixelThreshold}, Camera: d.desc,
		StartedAt: d.startedAt.UTC(), Recipe: info.Recipe, RecipeChoice: info.RecipeChoice, RecipeFigures: info.RecipeFigures, LineNoise: info.LineNoise}
	if err := d.sink.setInfo(doc); err != nil {
		d.log.Warn("info not published", "err", err)
	}
	if err := d.sink.setNodeInfo(doc); err != nil {
		d.log.Warn("Sparkplug properties not published", "err", err)
	}
}

// startPipeline builds the source chain's trigger queue (in trigger mode)
// and runs a pipeline on it with det. Called with d.mu held (or before the
// daemon is shared).
func (d *Daemon) startPipeline(cfg *config.Config, det *model.Detector) {
	var src capture.Source = d.src
	d.trig = nil
	if cfg.Capture.Trigger.Mode == config.TriggerExternal {
		d.trig = capture.NewTriggered(d.src, triggerOptions(cfg))
		src = d.trig
	}
	d.trigPtr.Store(d.trig)
	stall := 5 * time.Second
	if cfg.Capture.Source == config.SourceCamera {
		stall = max(cfg.Capture.Camera.Timeout.Std(), time.Second)
	}
	var seq uint64
	if old := d.pipe.Load(); old != nil {
		seq = old.Seq()
	}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: &d.sink, HTTP: d.handler, Metrics: d.metrics, FirstSeq: seq, BootID: d.bootID,
		Queue: cfg.Pipeline.Queue, FreeRun: d.trig == nil, Policy: PolicyOf(cfg), StallTimeout: stall,
		Print: d.o.Print, MaxInspections: d.o.MaxInspections, Logger: d.log})
	if err != nil { // only for a nil source or detector: a bug
		panic(err)
	}
	d.pipe.Store(p)
	d.answerEarly(p)
	d.pipeGen++
	gen := d.pipeGen
	pctx, cancel := context.WithCancel(d.base)
	done := make(chan struct{})
	d.pipeStop, d.pipeDone = cancel, done
	go func() {
		defer close(done)
		err := p.Run(pctx)
		d.ended <- pipelineEnd{gen: gen, err: err}
	}()
}

// stopPipeline stops the running pipeline (in-flight frames are finished
// and published) and answers every trigger still waiting with an error
// saying why. Called with d.mu held.
func (d *Daemon) stopPipeline(why string) {
	if d.pipeStop == nil {
		return
	}
	d.pipeStop()
	<-d.pipeDone
	d.pipeStop = nil
	if d.trig != nil {
		p := d.pipe.Load()
		for _, id := range d.trig.Drain() {
			p.AnswerTriggerFailure(&capture.TriggerError{ID: id, Err: errors.New(why)})
		}
	}
}

// PolicyOf maps the mqtt section onto the publish stage's policy.
func PolicyOf(cfg *config.Config) Policy {
	m := cfg.MQTT
	return Policy{ResultQoS: byte(m.ResultQoS), ResultMaxRate: m.ResultMaxRate, Mask: string(m.Mask), Heatmap: string(m.Heatmap),
		ImageMaxSide: m.ImageMaxSide}
}

// onTrigger receives trigger requests from MQTT (see triggerIntake).
func (d *Daemon) onTrigger(m mqttpub.Message) {
	d.triggers.handle(m, d.enqueueTrigger, d.answerTrigger, d.sink.republish)
}

// Trigger queues a trigger from a remote command (the Sparkplug front end's
// Command/Trigger), as one from the trigger topic.
func (d *Daemon) Trigger(ctx context.Context, id string, sent time.Time) (*remote.AnsweredTrigger, error) {
	prev, err := d.triggers.accept(mqttpub.Trigger{ID: id, Time: sent}, false, d.enqueueTrigger, d.answerTrigger, d.sink.republish)
	if err != nil || prev == nil {
		return nil, err
	}
	return &remote.AnsweredTrigger{Seq: prev.res.Seq, Verdict: prev.res.Verdict, At: prev.at.UTC()}, nil
}

func (d *Daemon) enqueueTrigger(id string) error {
	if d.stopping.Load() {
		return errStopping
	}
	tr := d.trigPtr.Load() // not d.mu: a reload may hold it for seconds
	if tr == nil {
		if d.pipe.Load() == nil {
			return errStarting
		}
		return errFreeRun
	}
	return tr.Trigger(id)
}

// answerTrigger answers a trigger that was not inspected with an error
// result, now or, before the first pipeline exists, when it starts.
func (d *Daemon) answerTrigger(id string, err error) {
	te := capture.TriggerError{ID: id, Err: err}
	d.earlyMu.Lock()
	p := d.pipe.Load()
	if p == nil {
		if len(d.early) < maxEarlyAnswers {
			d.early = append(d.early, te)
		}
		d.earlyMu.Unlock()
		return
	}
	d.earlyMu.Unlock()
	p.AnswerTriggerFailure(&te)
}

// maxEarlyAnswers bounds the answers held until the first pipeline starts
// (a PLC retrying fast against a daemon that cannot start).
const maxEarlyAnswers = 1024

// answerEarly publishes the answers held for triggers refused before p,
// the first pipeline, was stored.
func (d *Daemon) answerEarly(p *Pipeline) {
	d.earlyMu.Lock()
	early := d.early
	d.early = nil
	d.earlyMu.Unlock()
	for i := range early {
		p.AnswerTriggerFailure(&early[i])
	}
}

var (
	errStopping = errors.New("inspectd is stopping: trigger not inspected")
	errFreeRun  = errors.New("capture.trigger.mode is free-run: triggers are not served (set it to external)")
)

func (d *Daemon) cameraHealth() (bool, string) {
	if p := d.pipe.Load(); p != nil {
		return p.CameraHealth()
	}
	return false, "not started"
}

// mqttHealth is the connections' health, and bad while results or alarms
// are refused by the publisher (an encoding failure, a full outbox).
//
// A state_dir that does not take the remote request table is reported
// here too, as an outbox that cannot write is: both are the state folder
// failing the messages that go through MQTT, and a box that refuses every
// command that changes it is not healthy.
func (d *Daemon) mqttHealth() (bool, string) {
	ok, detail := d.sink.Health()
	if disp := d.dispPtr.Load(); disp != nil {
		if why := disp.StateError(); why != "" {
			ok, detail = false, "remote request table: "+why+"; "+detail
		}
	}
	if p := d.pipe.Load(); p != nil {
		if pok, why := p.PublishHealth(); !pok {
			return false, why + "; " + detail
		}
	}
	return ok, detail
}

func (d *Daemon) modelHealth() (bool, string) {
	if p := d.pipe.Load(); p != nil {
		return p.ModelHealth()
	}
	return false, "not started"
}

// loop waits for the end: ctx (SIGTERM), the pipeline ending (a finite
// source, MaxInspections, a capture error it cannot recover from); it
// applies SIGHUP reloads and keeps the retained status up to date.
func (d *Daemon) loop(ctx context.Context, hup <-chan os.Signal) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-d.ended:
			d.mu.Lock()
			current := e.gen == d.pipeGen && d.pipeStop != nil
			d.mu.Unlock()
			if !current {
				continue // a pipeline stopped for a restart
			}
			return e.err
		case <-hup:
			if ctx.Err() != nil {
				return nil // a pending stop wins over a reload
			}
			d.reloadFile(ctx)
		case <-tick.C:
			d.updateStatus()
			if p := d.pipe.Load(); p != nil {
				d.rate.add(d.inspectedBefore.Load() + p.Inspected())
			}
		}
	}
}

// readIfLoaded is the file at path where load, its load's error, is nil;
// an error otherwise, unread.
func readIfLoaded(path string, load error) ([]byte, error) {
	if load != nil {
		return nil, load
	}
	return os.ReadFile(path)
}

// reloadFile applies the configuration file again (SIGHUP).
func (d *Daemon) reloadFile(ctx context.Context) {
	if d.o.ConfigPath == "" {
		d.log.Warn("SIGHUP ignored: running on built-in defaults, no configuration file to reload")
		return
	}
	next, err := LoadConfig(d.o.ConfigPath)
	// Read only where it loaded: a path put in its place since (a named
	// pipe) would hold the reload again.
	if data, rerr := readIfLoaded(d.o.ConfigPath, err); rerr == nil && config.Blank(data) {
		// An editor that crashed, a copy cut short: every default (another
		// device id, state folder and source) is never what was meant.
		err = fmt.Errorf("the file holds no setting; an empty configuration is not applied to a running daemon (restart it to run on the defaults)")
	}
	if err == nil {
		var changed []string
		prev := d.Config()
		changed, err = d.Apply(ctx, next)
		// Settings that take effect without restarting a part are a change
		// all the same: who may command the box, the log level.
		changed = append(changed, settingsChanged(prev, next)...)
		if err == nil {
			if len(changed) == 0 {
				d.log.Info("configuration unchanged", "file", d.o.ConfigPath)
			} else {
				d.log.Info("configuration reloaded", "file", d.o.ConfigPath, "changed", strings.Join(changed, ","), "device_id", d.deviceID)
			}
			if d.disp != nil { // a push waiting for config-confirm on a file edited since ends its wait now
				d.disp.FileReloaded()
			}
			return
		}
	}
	d.lastReloadErr.Store(timedError{msg: "configuration not reloaded: " + err.Error(), at: time.Now()})
	d.log.Error("configuration not reloaded, keeping the running one", "file", d.o.ConfigPath, "err", err)
	// Counted once told (log, status): whoever sees the count sees why.
	d.metrics.ReloadFailures.Inc()
	if d.disp != nil { // a push waiting for config-confirm is still in force: the dispatcher says so
		d.disp.FileNotReloaded(err)
	}
}

// Config returns the configuration in force. It is never modified in
// place (a change replaces it), so the caller may keep it but must not
// modify it. It never waits for a configuration change in progress.
func (d *Daemon) Config() *config.Config { return d.cfgPtr.Load() }

// folderLedgerFile, in state_dir, holds the files folder sources handed
// out (capture.OpenFolderLedger).
const folderLedgerFile = "folder-ledger.jsonl"

// changeSet is what differs between two configurations, by part.
type changeSet struct {
	model, capture, pipeline, policy, mqtt, broker, http bool
}

// settingsChanged names the sections that changed from a to b and take
// effect without restarting a part (the dispatcher and the log read the
// configuration in force): not among Apply's restarted parts, but a
// change to report in the log, such as who may command the box.
func settingsChanged(a, b *config.Config) []string {
	var n []string
	if !reflect.DeepEqual(a.Remote, b.Remote) {
		n = append(n, "remote")
	}
	if a.LogLevel != b.LogLevel {
		n = append(n, "log_level")
	}
	return n
}

// names are the parts restarted.
func (c changeSet) names() []string {
	var n []string
	for _, x := range []struct {
		on   bool
		name string
	}{{c.model, "model"}, {c.capture, "capture"}, {c.pipeline, "pipeline"}, {c.policy, "publish"}, {c.mqtt, "mqtt"},
		{c.broker, "broker"}, {c.http, "http"}} {
		if x.on {
			n = append(n, x.name)
		}
	}
	return n
}

// ownStateDirError refuses a change of state_dir to dir when dir is the
// folder this daemon holds locked (statelock.Lock.Holds) under another
// path: inForce, the state_dir in force, no longer leads there (a symlink
// re-pointed, or the folder moved, while the daemon runs), so that
// config.SamePath calls them two folders and the daemon's own lock refused
// the change as "in use by another inspectd (process <its own>)". The
// daemon cannot take up its folder again under a new path while it runs;
// a restart takes up the one state_dir names. nil for any other dir.
func (d *Daemon) ownStateDirError(dir, inForce string) error {
	if !d.lock.Load().Holds(dir) {
		return nil
	}
	now := "no longer leads there"
	then := "the folder it names then"
	if to, err := filepath.EvalSymlinks(inForce); err == nil {
		now, then = "now leads to "+to, to
	}
	return &FieldError{Field: "state_dir", Err: fmt.Errorf(
		"%s is this inspectd's own state folder, which it holds locked (its state_dir %s %s: a link re-pointed, or a folder moved, while it runs); a running inspectd cannot take up its own folder again under another path: restart inspectd to move to %s, or set state_dir %s in its configuration file and restart to keep this one",
		dir, inForce, now, then, dir)}
}

// diffConfig says which parts must change to go from a to b.
func diffConfig(a, b *config.Config, aDev, bDev string) changeSet {
	var c changeSet
	c.model = !reflect.DeepEqual(a.Model, b.Model) || a.StateDir != b.StateDir
	c.capture = !reflect.DeepEqual(a.Capture.Active(), b.Capture.Active())
	ta, tb := a.Capture.Trigger, b.Capture.Trigger
	c.pipeline = a.Pipeline != b.Pipeline || ta.Mode != tb.Mode || ta.Queue != tb.Queue || ta.MaxAge != tb.MaxAge ||
		a.Capture.Source != b.Capture.Source
	c.policy = PolicyOf(a) != PolicyOf(b)
	c.broker = (len(a.MQTT.Brokers) == 0) != (len(b.MQTT.Brokers) == 0) ||
		(len(b.MQTT.Brokers) == 0 && a.MQTT.EmbeddedListen != b.MQTT.EmbeddedListen)
	ma, mb := a.MQTT, b.MQTT
	for _, m := range []*config.MQTT{&ma, &mb} { // the parts the connection does not depend on
		m.ResultQoS, m.ResultMaxRate, m.Mask, m.Heatmap, m.ImageMaxSide, m.EmbeddedListen = 0, 0, "", "", 0, ""
	}
	spChanged := (a.MQTT.UsesSparkplug() || b.MQTT.UsesSparkplug()) && !reflect.DeepEqual(a.Sparkplug, b.Sparkplug)
	c.mqtt = !reflect.DeepEqual(ma, mb) || spChanged || aDev != bDev ||
		a.StateDir != b.StateDir || a.DeviceID != b.DeviceID || c.broker ||
		(a.MQTT.Mask == config.PublishNever) != (b.MQTT.Mask == config.PublishNever) // the edge node declares the Mask metric or not
	c.http = a.HTTP != b.HTTP
	return c
}

// Apply makes next the configuration in force, changing only the parts
// whose settings differ. Every new part (detector, source, broker, HTTP
// listener) is built first, beside the running ones; if any cannot be
// built, nothing changes and the error says why. The MQTT connection is
// replaced last; if the new one cannot be made, the old settings are
// restored. It returns the names of the parts that changed. What it did
// that next does not say (applyNoted's notes) is in the log.
func (d *Daemon) Apply(ctx context.Context, next *config.Config) (changed []string, err error) {
	changed, _, err = d.applyNoted(ctx, next)
	return changed, err
}

// applyNoted is Apply, also returning notes on what it did that next does
// not say, for a remote push's reply: a model fitted because the model
// file next names is not on the box (each also logged as a warning).
func (d *Daemon) applyNoted(ctx context.Context, next *config.Config) (changed, notes []string, err error) {
	defer func() {
		if err == nil {
			// A configuration in force again (a reload, a push, a revert,
			// also one that changed nothing): the refused reload before it
			// is no longer the status command's last_error, which an
			// operator read as a box still failing.
			d.lastReloadErr.Store(timedError{})
		}
	}()
	// A stop (SIGTERM) ends the change too: building a new detector can fit
	// a model for minutes, and stop waits for d.mu, so a remote push
	// (whose ctx is the dispatcher's, cancelled only after that) held the
	// stop until the fit was done.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.base, cancel)()
	d.mu.Lock()
	defer d.mu.Unlock()
	if ctx.Err() != nil || d.stopping.Load() {
		return nil, nil, errors.New("inspectd is stopping")
	}
	cur := d.cfg
	next = config.KeepSpelling(cur, next)
	if reflect.DeepEqual(cur, next) {
		return nil, nil, nil
	}
	d.notifier.Reloading()
	defer d.ready() // also when the change is refused: systemd waits for READY=1
	nextDev, err := next.ResolvedDeviceID()
	if err != nil {
		return nil, nil, err
	}
	ch := diffConfig(cur, next, d.deviceID, nextDev)
	var newLock *statelock.Lock
	giveBack := func() error { return nil } // leaves a refused state_dir as it was found
	if next.StateDir != cur.StateDir {
		// Refused as a dry run and a push refuse it (a state_dir under a
		// file failed on its lock file), before the claim creates anything.
		if err := StateDirError(next.StateDir); err != nil {
			return nil, nil, err
		}
		if err := d.ownStateDirError(next.StateDir, cur.StateDir); err != nil {
			return nil, nil, err
		}
		if newLock, giveBack, err = statelock.Claim(next.StateDir); err != nil {
			return nil, nil, err
		}
	} else if err := atomicfile.MkdirAll(next.StateDir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("state_dir %s: %w", next.StateDir, err)
	}

	// Build the new parts beside the running ones.
	var (
		newDet    *model.Detector
		newSrc    capture.Source
		newDesc   string
		newBroker *broker.Broker
		newHTTP   *httpapi.Server
	)
	// fittedFile is the model file this change fitted and saved in place
	// of a missing one, at a path that is not the one in force: the
	// change's own file, removed if the change is refused after the fit
	// (left there, the next start, reload or push naming the path loaded
	// it as the operator's file, without the note that says it was
	// fitted). The path in force is left alone: a refit, threshold or
	// rollback writes there.
	var fittedFile, fitRemoved string
	undo := func() {
		if newDet != nil {
			newDet.Close()
		}
		if fittedFile != "" && d.removeFitted(fittedFile, "configuration change refused") {
			fitRemoved = fittedFile
		}
		if newSrc != nil {
			_ = newSrc.Close()
		}
		if newBroker != nil {
			newBroker.Close()
		}
		if newHTTP != nil {
			_ = newHTTP.Shutdown(context.Background())
		}
		if err := giveBack(); err != nil { // last: a part closed writes no more into the folder
			d.log.Warn("state_dir change refused; not all it wrote in the folder could be removed", "error", err)
		}
	}
	// The refusal says the fit happened and its file went: the log alone
	// said it, and an operator reading the reply saw minutes of fitting
	// end in nothing on disk.
	defer func() {
		if err != nil && fitRemoved != "" {
			err = fmt.Errorf("%w (the model this change fitted at %s is removed)", err, fitRemoved)
		}
	}()
	if ch.model {
		mopts, err := ModelOptions(next, d.log)
		var fitted int
		if err == nil {
			newDet, fitted, err = openDetector(ctx, next, mopts, d.o)
		}
		if err != nil {
			undo()
			if d.base.Err() != nil {
				return nil, nil, fmt.Errorf("inspectd is stopping; not applied (model: %w)", err)
			}
			if nm, fe := (*noModelError)(nil), (*FieldError)(nil); errors.As(err, &nm) || errors.As(err, &fe) {
				return nil, nil, err // names its key already
			}
			return nil, nil, fmt.Errorf("model: %w", err)
		}
		if fitted > 0 {
			// The file named is not there (a typo, a copy not made yet):
			// the operator believes it loaded, so the reply says it did not.
			n := fittedNote(next, fitted)
			d.log.Warn("configuration change: the model file it names is not on this box; a model was fitted on synthetic frames instead", "key", modelKey(next), "model", next.ModelPath(), "frames", fitted, "remedy", fittedRemedy(next))
			notes = append(notes, n)
			if next.ModelPath() != cur.ModelPath() {
				fittedFile = next.ModelPath()
			}
		}
	}
	if ch.capture {
		if newSrc, newDesc, err = d.openChangedSource(cur, next, d.folders); err != nil {
			undo()
			return nil, nil, err
		}
		if keepsROISize(cur, next) {
			// The same camera asked for the same size, with the same roi (a
			// change of its controls, formats or max_rate): the new region
			// cutter holds the roi to the size it was given for, as the
			// running one does. A fresh one took whatever size the camera
			// sends next, and a camera back at another size since an unplug
			// had the roi cut at the same pixels from another view.
			capture.HoldSize(newSrc, d.src.Current())
		}
	}
	// A new embedded broker on the same state folder must wait for the old
	// one to let go of its store: it is started in the swap below.
	brokerInPlace := ch.broker && len(next.MQTT.Brokers) == 0 && d.broker != nil && next.StateDir == cur.StateDir
	if brokerInPlace {
		// Tried before the running broker stops: a port another program
		// holds refused the reload only after every client, inspectd's own
		// included, had been dropped by the stop and the old broker's
		// restart.
		if err := portFree(next.MQTT.EmbeddedListen); err != nil {
			undo()
			// A FieldError in the same words, for the reply's field.
			return nil, nil, &FieldError{Field: "mqtt.embedded_listen", Err: fmt.Errorf("%w (the running broker is kept)", err)}
		}
	}
	if ch.broker && len(next.MQTT.Brokers) == 0 && !brokerInPlace {
		if newBroker, err = startBroker(next, d.log); err != nil {
			undo()
			return nil, nil, err
		}
	}
	// A new address on the port the endpoint holds (127.0.0.1:9100 to
	// 0.0.0.0:9100, as the README suggests for a Prometheus on the plant
	// network) cannot be bound beside it: it is moved in the swap below.
	httpInPlace := ch.http && next.HTTP.Listen != "" && d.httpSrv != nil && samePort(d.httpSrv.Addr(), next.HTTP.Listen)
	if ch.http && next.HTTP.Listen != "" && !httpInPlace {
		if newHTTP, err = d.startHTTP(next.HTTP.Listen); err != nil {
			undo()
			return nil, nil, err
		}
	}
	clientID := d.clientID
	if ch.mqtt {
		if clientID, err = resolveClientID(next, nextDev); err != nil {
			undo()
			return nil, nil, err
		}
		// Before the running connection closes: a TLS file the new one
		// would refuse dropped it and brought it back for nothing.
		if err := CheckMQTTTLS(&next.MQTT); err != nil {
			undo()
			return nil, nil, err
		}
	}

	// Swap them in. The MQTT connection goes first so that a failure
	// there can still be undone without touching anything else.
	var oldBroker *broker.Broker
	if brokerInPlace {
		d.broker.Close()
		if newBroker, err = startBroker(next, d.log); err != nil {
			var rerr error
			if d.broker, rerr = startBroker(cur, d.log); rerr != nil {
				d.log.Error("embedded MQTT broker not restored", "err", rerr)
			}
			undo()
			return nil, nil, err
		}
		d.broker, newBroker = newBroker, nil
	}
	httpOld := "" // the endpoint's address before an in-place move
	if httpInPlace {
		httpOld = d.httpSrv.Addr()
		d.stopHTTP()
		if newHTTP, err = d.startHTTP(next.HTTP.Listen); err != nil {
			d.rebindHTTP(httpOld)
			undo()
			return nil, nil, err
		}
	}
	if ch.mqtt {
		if ch.broker && !brokerInPlace {
			oldBroker, d.broker = d.broker, newBroker
		}
		if err := d.replacePublisher(next, nextDev, clientID); err != nil {
			if ch.broker && !brokerInPlace {
				d.broker = oldBroker
			}
			undo()
			if httpOld != "" {
				d.rebindHTTP(httpOld) // undo shut the moved endpoint down
			}
			if rerr := d.replacePublisher(cur, d.deviceID, d.clientID); rerr != nil {
				d.log.Error("MQTT connection not restored", "err", rerr)
			}
			return nil, nil, fmt.Errorf("mqtt: %w (previous MQTT settings restored)", err)
		}
		newBroker = nil
	}
	d.setConfig(next)
	// A new connection said whether commands are taken; without one (a
	// change to remote.* alone) the front end says it now.
	if d.front != nil {
		d.front.SetEnabled(next.Remote.Enabled())
	}
	d.deviceID, d.clientID = nextDev, clientID
	if newLock != nil {
		d.lock.Swap(newLock).Release()
		if err := d.disp.SetStateDir(next.StateDir); err != nil {
			d.log.Error("remote request table not moved to the new state_dir: the next start will not know the requests answered and a push waiting for config-confirm", "error", err)
		}
	}
	if oldBroker != nil {
		oldBroker.Close()
	}
	if ch.http {
		d.stopHTTP()
		d.httpSrv, newHTTP = newHTTP, nil
	}
	d.triggers.configure(next.Capture.Trigger.DedupWindow.Std(), next.Capture.Trigger.MaxAge.Std())
	p := d.pipe.Load()
	det := p.Detector()
	if newDet != nil {
		det = newDet
	}
	if ch.pipeline {
		d.stopPipeline("the pipeline restarts for a configuration change: trigger not inspected")
		d.inspectedBefore.Add(p.Inspected())
		if newSrc != nil {
			_ = d.src.Swap(ctx, newSrc)
			d.desc = newDesc
		}
		old := p.Detector()
		d.startPipeline(next, det)
		if newDet != nil {
			old.Close()
		}
	} else {
		if newDet != nil {
			p.SwapDetector(newDet).Close()
			d.logModel(newDet)
		}
		if newSrc != nil {
			if err := d.src.Swap(ctx, newSrc); err != nil {
				d.log.Warn("previous frame source closed with an error", "err", err)
			}
			d.desc = newDesc
		}
		if ch.policy {
			p.SetPolicy(PolicyOf(next))
		}
	}
	// A change that undoes the one before it takes the model that one
	// fitted with it, as a refused change does (undo above): a push on
	// probation reverted at its deadline or by rollback, a config
	// rollback, a reload of the file put back. Left there, the next push
	// or start naming its path loaded it as the operator's file.
	undone := d.lastFit
	d.lastFit = nil
	if fittedFile != "" {
		if st, err := os.Stat(fittedFile); err == nil {
			d.lastFit = &fitRecord{path: fittedFile, file: st, before: cur}
		}
	}
	if undone != nil && undone.undoneBy(next) {
		if undone.unchanged() {
			d.removeFitted(undone.path, "configuration change undone")
		} else {
			d.log.Info("configuration change undone: the model it fitted in place of the missing file is kept, as it was written since (a refit, threshold or model rollback)", "model", undone.path)
		}
	}
	d.publishInfo()
	d.metrics.Reloads.Inc()
	return ch.names(), notes, nil
}

// openChangedSource opens the frame source that next, a change from cur
// (a reload, a push), names, as the change builds it beside the running
// one; ledger is the folder ledger it records in (nil: none, for a dry
// run, which must not make the ledger forget the files of a folder it
// lists). A camera source waits for its device (an unplugged camera at
// start); a change to a camera that is not there is a mistake that would
// stop inspection: refused, the running source kept. Opening a camera
// source does not open its device (capture.NewCamera opens it at its
// first frame).
func (d *Daemon) openChangedSource(cur, next *config.Config, ledger *capture.FolderLedger) (capture.Source, string, error) {
	c := next.Capture
	newDevice := c.Source == config.SourceCamera && (cur.Capture.Source != config.SourceCamera || !capture.SameDevice(cur.Capture.Camera.Device, c.Camera.Device))
	src, desc, err := openCapture(next, d.log, sourceOpen{ledger: ledger, requireDevice: newDevice, reportSkips: true, cameraOpen: d.cameraOpen})
	if errors.Is(err, capture.ErrNoDevice) {
		return nil, "", &FieldError{Field: "capture.camera.device", Err: fmt.Errorf("%w: the running frame source is kept", err)}
	}
	return src, desc, err
}

// fitRecord is a model file a configuration change fitted and saved in
// place of a missing one, at a path that was not in force: the file as
// saved, and the configuration the change replaced.
type fitRecord struct {
	path   string
	file   os.FileInfo
	before *config.Config
}

// undoneBy says whether next, applied right after the change that fitted
// the file, undoes it: next has the model settings in force before that
// change, and so no longer names the file.
func (f *fitRecord) undoneBy(next *config.Config) bool {
	return reflect.DeepEqual(f.before.Model, next.Model) && f.before.StateDir == next.StateDir && next.ModelPath() != f.path
}

// unchanged says whether the file at f.path is still the one fitted: a
// refit, threshold or model rollback since replaced it with a model of the
// operator's (each writes a new file, renamed over the path).
func (f *fitRecord) unchanged() bool {
	st, err := os.Stat(f.path)
	return err == nil && os.SameFile(st, f.file) && st.Size() == f.file.Size() && st.ModTime().Equal(f.file.ModTime())
}

// removeFitted removes the model file at path that a configuration change
// fitted and saved there because it was missing (on a synthetic line), the
// change being refused after the fit, or undone by the next (why says
// which): left there, the next start, reload or push naming the path
// loaded it as the operator's own file, without the note that says it was
// fitted. It is called only for a file the change created, so no file of
// the operator's goes.
// It reports whether it removed the file.
func (d *Daemon) removeFitted(path, why string) bool {
	switch err := os.Remove(path); {
	case err == nil:
		d.log.Info(why+": the model it fitted in place of the missing file is removed", "model", path)
		return true
	case !errors.Is(err, os.ErrNotExist):
		d.log.Warn(why+": the model it fitted in place of the missing file could not be removed", "model", path, "err", err)
	}
	return false
}

// replacePublisher closes the MQTT connections (saying offline) and opens
// the ones cfg asks for. Publishing waits meanwhile, so no alarm finds the
// connection closed. Called with d.mu held.
func (d *Daemon) replacePublisher(cfg *config.Config, deviceID, clientID string) error {
	return d.sink.replace(d.log, func(carry *carried) (*mqttpub.Publisher, *sparkplug.Node, bool, error) {
		d.deviceID = deviceID // the publisher's topics follow the device id
		return d.connect(cfg, deviceID, clientID, carry)
	})
}

// updateStatus keeps the retained status topic saying whether the
// daemon is healthy, so SCADA sees a degraded box without polling HTTP.
// The reasons are stable words (what is wrong, not for how long: /healthz
// has the detail), so the retained message changes only when the
// situation does.
func (d *Daemon) updateStatus() {
	h := d.handler.Health()
	var why []string
	if !h.Camera.OK {
		why = append(why, "camera: no good frame")
	}
	if !h.Model.OK {
		why = append(why, modelStatus(d.pipe.Load()))
	}
	// Of the MQTT problems those that do not stop messages from going out.
	if p := d.pipe.Load(); p != nil {
		if ok, _ := p.PublishHealth(); !ok {
			why = append(why, "mqtt: results or alarms not published")
		}
	}
	if st := d.sink.state(); st.StoreError != "" {
		why = append(why, "storage: alarms and results not durable")
	} else if st.ClientIDClash != "" {
		why = append(why, "mqtt: another client uses client id "+d.clientIDNow())
	}
	if disp := d.dispPtr.Load(); disp != nil && disp.StateError() != "" {
		why = append(why, "storage: remote commands not recorded")
	}
	status := mqttpub.StatusOnline
	if len(why) > 0 {
		status = "degraded: " + strings.Join(why, "; ")
	}
	if status == d.status {
		return
	}
	if err := d.sink.setStatus(status); err == nil {
		d.log.Info("status", "status", status)
		d.status = status
	}
}

// modelStatus is the status's reason while the model's health is bad.
// Frames refused because capture.roi does not apply to their size are
// named so, as the model's health entry names them (ModelHealth): the
// model inspected nothing, and "inspections failing" sent one to it.
func modelStatus(p *Pipeline) string {
	if p != nil {
		if _, _, ok := p.roiRefused(); ok {
			return "capture.roi: frames refused for their size"
		}
	}
	return "model: inspections failing"
}

// clientIDNow is the JSON connection's client id.
func (d *Daemon) clientIDNow() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.clientID
}

// stop takes everything down in the reverse order of start: the pipeline
// (in-flight frames finished, waiting triggers answered), the MQTT client
// (offline said through the broker), then the embedded broker, HTTP, the
// source and the detector.
func (d *Daemon) stop() {
	d.stopping.Store(true)
	d.notifier.Stopping()
	d.mu.Lock()
	defer d.mu.Unlock()
	var det *model.Detector
	if d.disp != nil { // a refit in progress is cancelled; its reply says so
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.disp.Close(cctx); err != nil {
			d.log.Warn("remote commands close", "err", err)
		}
		cancel()
	}
	if d.front != nil {
		d.front.Stop()
	}
	if p := d.pipe.Load(); p != nil {
		det = p.Detector()
		d.stopPipeline(errStopping.Error())
		d.log.Info("pipeline stopped", "inspections", p.Inspected(), "drops", p.Drops())
	}
	d.sink.close(d.log)
	if d.broker != nil {
		d.broker.Close()
	}
	d.stopHTTP()
	if d.src != nil {
		_ = d.src.Close()
	}
	if det != nil {
		det.Close()
	}
	_ = d.folders.Close()
	d.lock.Load().Release()
}
