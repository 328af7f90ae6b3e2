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
	"runtime/debug"
	"syscall"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/model"
)

// RunOptions configure Run.
type RunOptions struct {
	// ConfigPath is the YAML file; empty runs on the defaults. SIGHUP
	// reloads it.
	ConfigPath string
	// Config, when set, is used instead of reading ConfigPath (the demo).
	// Leave it nil when there is a file: Run loads it, and a file that does
	// not load is then checked for a push waiting for config-confirm that
	// was edited on the box into it (reverted for the next start).
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
	// OnStarted, when set, is called once everything is up with the running
	// daemon (tests and embedding programs).
	OnStarted func(*Daemon)
	// LogLevel, when set, is the level of Logger's handler: the daemon sets
	// it to log_level at start and on every configuration change.
	LogLevel *slog.LevelVar
	// cameraOpen opens a camera source's device (nil: the kernel's V4L2):
	// the package's tests run the whole daemon on a capture.FakeCamera.
	cameraOpen capture.Opener
}

// Run is `inspectd run`: it starts everything the configuration asks for
// and inspects frames until ctx ends (SIGTERM/SIGINT), finishing in-flight
// frames, answering waiting triggers and publishing "offline" before it
// returns. SIGHUP reloads the configuration file in place: the new parts are
// built beside the running ones and swapped in only when all of them could
// be built, so an invalid file, a broken backbone or a corrupt model file is
// reported (one log line, reload_failures_total) and the daemon keeps
// running on its last good state.
func Run(ctx context.Context, o RunOptions) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	TuneGC()
	cfg := o.Config
	if cfg == nil {
		var err error
		if cfg, err = LoadConfig(o.ConfigPath); err != nil {
			return revertBrokenEdit(o, err)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	notifier := NewNotifier(NotifierOptions{Logger: o.Logger})
	defer notifier.Close()
	outer := ctx
	ctx, restart := context.WithCancelCause(ctx)
	defer restart(nil)
	startHUP := watchStartHUP(hup, o.Logger, o.ConfigPath)
	d, err := start(ctx, cfg, o, notifier, func() { restart(ErrRestartRequested) })
	reload := startHUP()
	if err != nil && outer.Err() != nil && errors.Is(err, context.Canceled) {
		// A stop (SIGTERM, Ctrl-C) during the start, most often during the
		// first fit: a stop as asked, not a failure (systemd marked the unit
		// failed, the CLI said only "context canceled").
		o.Logger.Info("stopped during the start: nothing inspected; a model being fitted is not saved, and the next start fits again", "state_dir", cfg.StateDir)
		return nil
	}
	if err != nil {
		var inUse *statelock.InUseError
		if st, serr := os.Stat(cfg.StateDir); o.ConfigPath != "" && serr == nil && st.IsDir() && !errors.As(err, &inUse) { // else no request table, or another inspectd's: nothing to revert
			// A configuration pushed on probation that cannot even start
			// is never confirmed: the one before it is put back for the
			// next start (systemd restarts the service).
			return revertPush(o, cfg.StateDir, err, false)
		}
		return err
	}
	d.disp.Started()
	if o.OnStarted != nil {
		o.OnStarted(d)
	}
	if reload && ctx.Err() == nil { // a stop that came meanwhile wins, as in loop
		d.reloadFile(ctx)
	}
	err = d.loop(ctx, hup)
	d.stop()
	if errors.Is(context.Cause(ctx), ErrRestartRequested) && outer.Err() == nil {
		return ErrRestartRequested
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// revertBrokenEdit is Run's answer to a configuration file that does not
// load (err): when a push waiting for config-confirm was edited on the box
// into it, the configuration the push replaced is put back for the next
// start, the broken edit kept as .prev (remote.RevertUnstartable). The
// request table is looked for in the state_dir of that previous
// configuration, the only one that can be read. It returns err, told of
// the revert when there was one.
func revertBrokenEdit(o RunOptions, err error) error {
	if o.ConfigPath == "" {
		return err
	}
	// Without the rules of a push, for its state_dir alone: a .prev they
	// refuse is RevertUnstartable's to report (once: the wait ends).
	prev, perr := config.LoadPrevious(o.ConfigPath)
	if perr != nil {
		return err // no previous file, or one that does not load either: nothing to put back
	}
	if st, serr := os.Stat(prev.StateDir); serr != nil || !st.IsDir() {
		return err
	}
	return revertPush(o, prev.StateDir, err, true)
}

// revertPush has remote.RevertUnstartable put back, for the next start,
// the configuration a push waiting for config-confirm replaced, its table
// in stateDir, the start having failed with err (broken: on a file edited
// on the box into one that does not load, kept as .prev); it says the
// outcome once and returns err, told of the revert when there was one.
func revertPush(o RunOptions, stateDir string, err error, broken bool) error {
	why := "does not start"
	if broken {
		why = "was edited on the box into a file that does not load"
	}
	var inUse *statelock.InUseError
	switch id, rerr := remote.RevertUnstartable(o.ConfigPath, stateDir, err, time.Now(), o.Logger, ConfigRules()...); {
	case errors.As(rerr, &inUse):
		// The push and the file are the running daemon's: its reload to
		// fail, its deadline to revert.
		o.Logger.Warn("remote: a configuration push waiting for config-confirm cannot run here, and another inspectd runs on its state_dir: nothing reverted (that daemon keeps its push and its last good configuration)",
			"why", why, "file", o.ConfigPath, "error", rerr)
	case errors.Is(rerr, remote.ErrPreviousRefused):
		// Said once: the wait is ended, the next start does not try.
		o.Logger.Error("remote: a configuration push waiting for config-confirm cannot run, and the configuration before it is refused: nothing reverted, the wait ended",
			"why", why, "file", o.ConfigPath, "error", rerr)
	case rerr != nil:
		// The request table could not be read (most often for the
		// start's own reason, a state_dir that is a file), or a push
		// found could not be put back.
		o.Logger.Warn("remote: could not check for, or revert, a configuration push waiting for config-confirm",
			"why", why, "push", id, "file", o.ConfigPath, "state_dir", stateDir, "error", rerr)
	case id != "" && broken:
		return fmt.Errorf("%w (configuration push %q, which waited for config-confirm, is reverted and the file that does not load kept as %s: start again to run on the configuration before the push)", err, id, config.PreviousPath(o.ConfigPath))
	case id != "":
		o.Logger.Error("remote: configuration push waiting for config-confirm does not start; reverted for the next start, which publishes config-revert", "push", id, "error", err)
		return fmt.Errorf("%w (configuration push %q, which waited for config-confirm, is reverted: start again to run on the configuration before it)", err, id)
	}
	return err
}

// watchStartHUP takes the SIGHUPs that come during the start, which can
// last minutes (the first fit), and says each at once: they waited in hup,
// unsaid, until the loop applied them after the start, and whoever sent
// one could not tell it was taken. A reload cannot be applied during the
// start (the parts it would replace do not exist yet); the start goes on
// with the file as it was read. The returned function ends the watch and
// says whether a reload is due: applied by Run once the start is done. A
// signal that comes as the watch ends stays in hup, for the loop.
func watchStartHUP(hup <-chan os.Signal, log *slog.Logger, path string) (end func() (reload bool)) {
	quit, due := make(chan struct{}), make(chan bool, 1)
	go func() {
		reload := false
		for {
			select {
			case <-hup:
				if path == "" {
					log.Warn("SIGHUP during the start ignored: running on built-in defaults, no configuration file to reload")
					continue
				}
				reload = true
				log.Info("SIGHUP during the start: the configuration file is reloaded once the start is done",
					"file", path, "why", "the start (the first fit, when there is no model yet) goes on with the file as it was read; a reload replaces parts that do not exist yet")
			case <-quit:
				due <- reload
				return
			}
		}
	}()
	return func() bool {
		close(quit)
		return <-due
	}
}

// ErrRestartRequested ends Run when a SCADA host asked for a reboot
// (Sparkplug Node Control/Reboot): the process exits with a failure status
// so that its service manager (systemd's Restart=) starts it again.
var ErrRestartRequested = errors.New("restart requested by the SCADA host (Sparkplug Node Control/Reboot): exiting for the service manager to start inspectd again")

// noModelError is a model file that is not there, named by the key that
// names it (model.path, or state_dir when the model lives there).
type noModelError struct{ key, path string }

func (e *noModelError) Error() string {
	return fmt.Sprintf("%s: no model at %s: fit one first with 'inspectd fit --data DIR --out %s' (DIR holds normal images, or train/good)", e.key, e.path, e.path)
}

// modelKey is the configuration key that names cfg's model file:
// model.path, or state_dir when the model lives there.
func modelKey(cfg *config.Config) string {
	if cfg.Model.Path == "" {
		return "state_dir"
	}
	return "model.path"
}

// fittedNote says that a configuration applied to a running daemon named a
// model file that is not there, so that a model was fitted on n synthetic
// frames and saved there in its place (what a start does on a synthetic
// line): the operator who named a file believes that file is in force.
// It says how to put that file in force: the model file in force is read
// again only at a start or when a change of the model settings opens it
// (a reload or a push of the same settings changes nothing), while a
// rollback loads the file kept as PreviousModelPath.
func fittedNote(cfg *config.Config, n int) string {
	return fmt.Sprintf("%s: no model file at %s on this box, so none was loaded: a new model was fitted on %d normal synthetic frames (capture.source synthetic) and saved there instead; %s",
		modelKey(cfg), cfg.ModelPath(), n, fittedRemedy(cfg))
}

// fittedRemedy is how to put in force the file the operator meant, where a
// model was fitted at cfg's model path in its place: fittedNote's last
// words, and the remedy of the fit's log line (a reload's fit is told in
// the log alone).
func fittedRemedy(cfg *config.Config) string {
	path := cfg.ModelPath()
	return fmt.Sprintf("to run your file, copy it to %s and send rollback with target model, which loads it and keeps the fitted model as %s (a file copied over %s is not loaded by a reload or by pushing the path again, only at the next start)",
		PreviousModelPath(path), PreviousModelPath(path), path)
}

// fitPlanned is what openDetector would do about cfg's model file without
// doing it: 0 when the file is there (or the source is not synthetic, which
// openDetector refuses with a noModelError), else the number of synthetic
// frames it would fit on. The folder the fitted model is saved in is
// checked first (modelFolderError): one that is not there or cannot be
// written failed only after the whole fit, so it is refused at once.
func fitPlanned(cfg *config.Config, o RunOptions) (int, error) {
	if err := modelFolderError(cfg); err != nil {
		return 0, err
	}
	if _, err := os.Stat(cfg.ModelPath()); !errors.Is(err, os.ErrNotExist) || cfg.Capture.Source != config.SourceSynthetic {
		return 0, nil
	}
	if o.FitFrames > 0 {
		return o.FitFrames, nil
	}
	return 200, nil
}

// plannedFitNote is fittedNote for a dry run: what applying cfg would do.
func plannedFitNote(cfg *config.Config, n int) string {
	return fmt.Sprintf("%s: no model file at %s on this box: applying this would fit a new model on %d normal synthetic frames (capture.source synthetic) and save it there",
		modelKey(cfg), cfg.ModelPath(), n)
}

// budgetError files a model load refused for its size under the key that
// decides it, model.memory_budget, with what to do: the file is sound, and
// "fit one" alone would not help. m is the configuration's model section
// the budget was resolved from: an auto budget is model.memory_fraction of
// the available memory, which the advice then names (it said only "raise
// model.memory_budget", which is "auto" and has nothing to raise). Other
// errors come back as they are.
func budgetError(m config.Model, err error) error {
	if !errors.Is(err, model.ErrOverBudget) {
		return err
	}
	raise := "raise model.memory_budget for this box"
	if m.MemoryBudget.Auto {
		raise = fmt.Sprintf("raise model.memory_fraction (%g: model.memory_budget auto is that share of the available memory), or set model.memory_budget to a size, for this box", m.MemoryFraction)
	}
	return &FieldError{Field: "model.memory_budget", Err: fmt.Errorf("%w; %s, or fit the model here ('inspectd fit' chooses the features d to fit the budget, down to model.min_features)", err, raise)}
}

// openDetector loads the model file, or fits one on normal synthetic
// frames when the file is missing and the source is synthetic (the demo on
// a bare machine). fitted is the number of frames fitted on (0: the file
// was loaded), for a reload or push to say so.
func openDetector(ctx context.Context, cfg *config.Config, mopts model.Options, o RunOptions) (det *model.Detector, fitted int, err error) {
	path := cfg.ModelPath()
	if _, err := os.Stat(path); err == nil {
		// A folder or a device is refused before it is opened (a named
		// pipe's open would wait for a writer), and a file that is no model
		// once the load fails, naming the key that sets the path and what
		// it takes, in config check's words (it said "load model /x: not a
		// regular file").
		if ferr := modelFileError(cfg, false); ferr != nil {
			return nil, 0, ferr
		}
		det, err := model.Load(path, mopts)
		if err != nil {
			return nil, 0, loadRefusal(cfg, err)
		}
		if err := ConfigThreshold(cfg, det, path, o.Logger); err != nil {
			det.Close()
			return nil, 0, err
		}
		return det, 0, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		if ferr := modelFolderError(cfg); ferr != nil {
			return nil, 0, ferr // a file where its folder should be: named as the key and the folder
		}
		return nil, 0, fmt.Errorf("model %s: %w", path, err)
	}
	if cfg.Capture.Source != config.SourceSynthetic {
		return nil, 0, &noModelError{key: modelKey(cfg), path: path}
	}
	n, err := fitPlanned(cfg, o)
	if err != nil {
		return nil, 0, err
	}
	s := cfg.Capture.Synthetic
	// A different seed from the inspected frames: the model must not have
	// seen the frames it is later judged on.
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: s.Width, Height: s.Height, Seed: uint64(s.Seed) + 1_000_003, NormalOnly: true})
	if err != nil {
		return nil, 0, err
	}
	o.Logger.Info("no model yet: fitting on normal synthetic frames", "frames", n, "model", path)
	WarnIgnoredSettings(cfg, o.Logger)
	det, rep, err := model.Fit(ctx, mopts, FrameSource(syn, n), o.Progress)
	if err != nil {
		return nil, 0, err
	}
	if det, err = SaveAndReload(det, path, mopts); err != nil {
		return nil, 0, err
	}
	o.Logger.Info("model fitted and saved", "model", path, "images", rep.Images, "held_out", rep.HeldOut, "wall", rep.Wall.Round(time.Millisecond))
	return det, n, nil
}

// ConfigThreshold applies model.threshold.value, when set, to det, a model
// loaded from path: the value is the line's threshold, not only the next
// fit's (a push of it answered "applied" while the loaded model kept its
// fitted threshold). The pixel threshold keeps its ratio to the image
// threshold, as with the threshold command. log may be nil. It fails,
// naming the key and path, when det refuses the thresholds.
func ConfigThreshold(cfg *config.Config, det *model.Detector, path string, log *slog.Logger) error {
	v := cfg.Model.Threshold.Value
	info := det.Info()
	if v <= 0 && info.ThresholdImages == 0 && info.HeldOut == 0 && log != nil {
		// Fitted with a value: there is no threshold from good images to
		// go back to (a trial expected 0 to bring one).
		log.Warn("model.threshold.value is 0 (choose from good images), but this model's threshold was given by model.threshold.value at its fit: it keeps it until a refit (the refit command, or inspectd fit)",
			"model", info.ID, "threshold", info.ImageThreshold)
	}
	if v <= 0 || v == info.ImageThreshold {
		return nil
	}
	pixel := PixelThresholdFor(info, v)
	if err := det.SetThresholds(v, pixel); err != nil {
		return fmt.Errorf("model.threshold.value %g on model %s: %w", v, path, err)
	}
	if log != nil {
		log.Info("model.threshold.value applied to the loaded model", "threshold", v, "pixel_threshold", pixel,
			"model_threshold", info.ImageThreshold, "model", info.ID)
	}
	return nil
}

// PixelThresholdFor is the pixel threshold that goes with image threshold
// image on a model described by info: the model's pixel/image ratio kept
// (the fit's, or the one the search chose for the line), never above
// image and never below model.MinThreshold, which a small value at a
// small ratio reached (config check passed it and the start failed).
func PixelThresholdFor(info model.Info, image float64) float64 {
	return min(image, max(image*info.PixelThreshold/info.ImageThreshold, model.MinThreshold))
}

// gcPercent is the Go collector's target for the daemon: a collection when
// the heap has grown by half since the last, instead of Go's default of
// doubling. The daemon's heap is mostly long-lived buffers (frames in
// flight, the model's working memory) with little churn (inspection
// allocates nothing per frame; MQTT some), so collections stay rare while
// the heap's headroom, and RSS, shrink by a quarter of the live heap.
const gcPercent = 50

// TuneGC sets the collector's target for a long-running daemon (gcPercent)
// unless GOGC in the environment says otherwise.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// SaveAndReload writes a detector fitted in this process to path, closes
// it and loads it back: the fitted state then lives in the file's read-only
// mapping, as a model loaded at start does, instead of on the Go heap, whose
// collector would keep about as much again in headroom (RSS 219 against
// 160 MB at d = 100), and the fit's accumulators are returned to the OS.
func SaveAndReload(det *model.Detector, path string, mopts model.Options) (*model.Detector, error) {
	err := det.Save(path)
	det.Close()
	if err != nil {
		return nil, err
	}
	debug.FreeOSMemory() // the fit's accumulators (about 150 MB at d=100) and state are garbage now
	return model.Load(path, mopts)
}

// FrameSource adapts the first n frames of a synthetic source to
// model.ImageSource for fitting: image i is frame i+1, the same every time
// it is asked for (a fit reads its images more than once).
func FrameSource(src *capture.Synthetic, n int) model.ImageSource {
	return &frameSource{src: src, n: n}
}

type frameSource struct {
	src *capture.Synthetic
	n   int
}

func (f *frameSource) Len() int { return f.n }

func (f *frameSource) Image(i int) (image.Image, error) {
	var fr capture.Frame // a fresh buffer per image: Fit decodes ahead
	f.src.Frame(uint64(i)+1, &fr)
	return fr.Image, nil
}
