package daemon

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/padim"
)

// The methods in this file are what remote commands need from the running
// daemon (remote.Controller); each keeps inspection going while it works
// and changes the detector only between two frames.

// ModelInfo describes the detector in force.
func (d *Daemon) ModelInfo() model.Info {
	if p := d.pipe.Load(); p != nil {
		return p.ModelInfo()
	}
	return model.Info{}
}

// FitOptions are the model options of the configuration in force, for a
// refit whose model must load in this daemon.
func (d *Daemon) FitOptions() (model.Options, error) { return ModelOptions(d.Config(), d.log) }

// InstallModel makes the complete model file at path the model in force:
// it is loaded with the daemon's options (a file that does not load is
// refused and nothing changes), moved over the model path with the
// previous file kept as .prev, and swapped in between two frames.
func (d *Daemon) InstallModel(ctx context.Context, path string) (model.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pipe.Load() == nil {
		return model.Info{}, errStarting
	}
	cfg := d.cfg
	if err := installTargetError(cfg); err != nil {
		return model.Info{}, keyed(err)
	}
	det, err := d.loadModel(cfg, path)
	if err != nil {
		return model.Info{}, err
	}
	inForce, err := saveInForce(cfg.ModelPath(), d.saveInForce)
	if err == nil {
		err = installModelFile(path, cfg.ModelPath(), inForce)
	}
	if err != nil {
		err = modelFilesError(cfg, err)
		det.Close()
		return model.Info{}, keyed(err)
	}
	return d.swapDetector(det), nil
}

// CheckModelTarget says why InstallModel would refuse to write a model
// file over the model path of the configuration in force now
// or its .prev (installTargetError), or nil: a refit asks when it is
// accepted. A refusal names its key (keyed), as a push's does.
func (d *Daemon) CheckModelTarget() error { return keyed(installTargetError(d.Config())) }

// saveInForce saves the detector in force to path (saveInForce's save).
// Called with d.mu held.
func (d *Daemon) saveInForce(path string, opts atomicfile.Options) error {
	var err error
	d.pipe.Load().det.Use(func(det *model.Detector) { err = det.SaveWith(path, opts) })
	return err
}

// RollbackModel makes the previous model file the model in force, and the
// current one the previous (a second rollback goes forward again).
func (d *Daemon) RollbackModel(ctx context.Context) (model.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pipe.Load() == nil {
		return model.Info{}, errStarting
	}
	cfg := d.cfg
	prev := PreviousModelPath(cfg.ModelPath())
	if err := noPreviousModelError(prev); err != nil {
		if ll := (*dataset.LinkLoopError)(nil); errors.As(err, &ll) {
			// A link at the key's .prev, not the want of a rollback
			// point: under the key, as a folder or a pipe there.
			return model.Info{}, &remote.KeyError{Key: modelKey(cfg), Err: err}
		}
		return model.Info{}, err
	}
	// Before the previous file is loaded: the swap renames it over the
	// model path.
	if err := modelTargetError(cfg); err != nil {
		return model.Info{}, keyed(err)
	}
	det, err := d.loadModel(cfg, prev)
	if nm := (*padim.NotModelFileError)(nil); errors.As(err, &nm) {
		// Refused before it was opened (a named pipe's open waited for a
		// writer, holding this command and d.mu, for good). What is at
		// the key's .prev, as a threshold command refuses it: under the
		// key, in its own words.
		return model.Info{}, &remote.KeyError{Key: modelKey(cfg), Err: fmt.Errorf("previous model: %w: move it aside, or copy the model file to roll back to there", err)}
	}
	if le := (*padim.LoadError)(nil); errors.As(err, &le) && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, padim.ErrOverBudget) {
		// The file at the key's .prev read as no model (garbage, cut
		// short, empty): what is there, as a folder or a pipe there and
		// as a push naming such a file, under the key. One gone since
		// its Stat, or over model.memory_budget, is not the file's fault.
		return model.Info{}, &remote.KeyError{Key: modelKey(cfg), Err: fmt.Errorf("previous model: %w: move it aside, or copy the model file to roll back to there", err)}
	}
	if errors.Is(err, padim.ErrOverBudget) {
		// A .prev over model.memory_budget: under that key, with what to
		// do, as a push naming such a file is refused (budgetError).
		return model.Info{}, keyed(fmt.Errorf("previous model: %w", budgetError(cfg.Model, err)))
	}
	if err != nil {
		return model.Info{}, fmt.Errorf("previous model: %w", err)
	}
	inForce, err := saveInForce(cfg.ModelPath(), d.saveInForce)
	if err == nil {
		err = swapWithPrevious(cfg.ModelPath(), inForce)
	}
	if err != nil {
		err = modelFilesError(cfg, err)
		det.Close()
		return model.Info{}, keyed(err)
	}
	return d.swapDetector(det), nil
}

// SetThresholds sets the image and pixel thresholds of the detector in
// force, from the next frame on, and rewrites its model file with them
// (the previous file kept as .prev). On error nothing changed.
func (d *Daemon) SetThresholds(ctx context.Context, image, pixel float64) (model.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pipe.Load()
	if p == nil {
		return model.Info{}, errStarting
	}
	if v := d.cfg.Model.Threshold.Value; v > 0 && image != v {
		// It is applied at every model load: the next start or reload
		// would undo this one without a word.
		return model.Info{}, fmt.Errorf("model.threshold.value %g is set in the configuration, which applies it at every model load and would undo an image threshold of %g at the next start: push model.threshold.value instead (or set it to 0 to use this command)", v, image)
	}
	// Before the thresholds change and the file is written: there is
	// nothing to undo, and no new file is left beside the path.
	if err := installTargetError(d.cfg); err != nil {
		return model.Info{}, keyed(err)
	}
	// The model in force is kept as .prev, saved from memory before its
	// thresholds change.
	dst := d.cfg.ModelPath()
	inForce, err := saveInForce(dst, d.saveInForce)
	if err != nil {
		return model.Info{}, keyed(modelFilesError(d.cfg, err))
	}
	var info model.Info
	var oldImage, oldPixel float64
	err = p.det.modify(func(det *model.Detector) error {
		info = det.Info()
		oldImage, oldPixel = info.ImageThreshold, info.PixelThreshold
		if err := det.SetThresholds(image, pixel); err != nil {
			return err
		}
		info = det.Info()
		return nil
	})
	if err != nil {
		removeTemp(inForce)
		return model.Info{}, err
	}
	undo := func() {
		_ = p.det.modify(func(det *model.Detector) error { return det.SetThresholds(oldImage, oldPixel) })
	}
	tmp := tempName(dst, "new")
	var saveErr error
	// With the permissions it takes dst's place with, from the start.
	p.det.Use(func(det *model.Detector) { saveErr = det.SaveWith(tmp, keptModelOptions(dst)) })
	if saveErr == nil {
		saveErr = installModelFile(tmp, dst, inForce)
	} else {
		removeTemp(inForce)
	}
	if saveErr != nil {
		_ = os.Remove(tmp) // a whole model file, which nothing else removes
		undo()
		return model.Info{}, keyed(modelFilesError(d.cfg, saveErr))
	}
	d.publishInfo()
	d.log.Info("thresholds set", "image", image, "pixel", pixel, "model", info.ID)
	return info, nil
}

// loadModel loads a model file with the options of cfg.
func (d *Daemon) loadModel(cfg *config.Config, path string) (*model.Detector, error) {
	mopts, err := ModelOptions(cfg, d.log)
	if err != nil {
		return nil, err
	}
	det, err := model.Load(path, mopts)
	if err != nil {
		return nil, err
	}
	if err := ConfigThreshold(cfg, det, path, d.log); err != nil {
		det.Close()
		return nil, err
	}
	return det, nil
}

// swapDetector installs det between two frames and closes the old one.
// Called with d.mu held.
func (d *Daemon) swapDetector(det *model.Detector) model.Info {
	d.pipe.Load().SwapDetector(det).Close()
	d.logModel(det)
	d.publishInfo()
	return det.Info()
}

// tapAttempt bounds one wait for a frame before NextFrame asks again (a
// trigger-mode request may have expired, a pipeline may have restarted).
const tapAttempt = 10 * time.Second

// NextFrame returns a copy of the next good frame the source delivers
// after the call, as inspection sees it, while inspection goes on; in
// trigger mode whether or not a trigger asked for it. It keeps asking
// through temporary trouble (a restarted pipeline, a full trigger queue)
// until ctx ends, but not through frames refused for their size
// (capture.FrameSizeError): that error comes back at once.
func (d *Daemon) NextFrame(ctx context.Context) (image.Image, error) {
	for {
		if d.stopping.Load() {
			return nil, errStopping
		}
		p := d.pipe.Load()
		if p == nil { // the daemon is starting
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		actx, cancel := context.WithTimeout(ctx, tapAttempt)
		img, err := p.NextFrame(actx, d.trigPtr.Load())
		cancel()
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fse := (*capture.FrameSizeError)(nil); errors.As(err, &fse) {
			return nil, err // frames come, none of them usable: asking again waits for nothing
		}
		if !errors.Is(err, errPipelineStopped) && !errors.Is(err, context.DeadlineExceeded) {
			select { // a full trigger queue: PLC triggers go first
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

// RestartCamera closes and reopens the frame source with the configuration
// in force and returns once a frame came from it (or ctx ends; the source
// then keeps retrying as it does after an unplug). A folder source returns
// once it is in use: a watched or once-read folder goes on after the files
// already inspected (capture.FolderLedger; a looped one starts its loop
// again), and a watched folder has a frame only when the next file
// arrives.
//
// A camera's capture.roi stays held to the frame size it was given for
// (capture.HoldSize): a camera that comes back at another size has its
// frames refused and answered as failed inspections, as after an unplug,
// and RestartCamera returns the refusal (capture.FrameSizeError), naming
// both sizes. It took the new size as the roi's, and cut the same pixels
// out of another view.
func (d *Daemon) RestartCamera(ctx context.Context) error {
	cfg := d.Config()
	src, desc, err := openCapture(cfg, d.log, sourceOpen{ledger: d.folders, reportSkips: true, cameraOpen: d.cameraOpen})
	if err != nil {
		return err
	}
	capture.HoldSize(src, d.src.Current())
	if err := d.src.Swap(ctx, src); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("the new frame source is not in use yet: %w", err) // the swap still happens at the next frame
		}
		d.log.Warn("previous frame source closed with an error", "err", err)
	}
	d.mu.Lock()
	d.desc = desc
	d.mu.Unlock()
	d.log.Info("frame source restarted", "source", desc)
	if cfg.Capture.Source == config.SourceFolder {
		return nil
	}
	if _, err = d.NextFrame(ctx); errors.As(err, new(*capture.FrameSizeError)) {
		return fmt.Errorf("the camera is back, but %w", err)
	}
	return err
}

// Snapshot returns the latest inspected frame as a JPEG and when it was
// inspected.
func (d *Daemon) Snapshot(ctx context.Context) ([]byte, time.Time, error) {
	return d.handler.Snapshot()
}

// ConfigPath is the configuration file that configuration pushes write.
func (d *Daemon) ConfigPath() string {
	if d.o.ConfigPath == "" {
		return ""
	}
	p, err := filepath.Abs(d.o.ConfigPath)
	if err != nil {
		return d.o.ConfigPath
	}
	return p
}

// errStarting refuses a model change, or a trigger, before the pipeline
// runs.
var errStarting = errors.New("inspectd is starting: try again in a moment")

// errNoConfigFile refuses a configuration push to a daemon started without
// a configuration file: what it applied would be gone at the next start.
var errNoConfigFile = errors.New("inspectd runs on its built-in defaults, without a configuration file: a pushed configuration would not survive a restart; start it with --config FILE")

// ApplyConfig saves c as the configuration file (the previous kept as
// .prev) and applies it live, changing only the parts whose settings
// differ; on any failure the file and its .prev are restored as they were
// and the running parts stay as they were.
func (d *Daemon) ApplyConfig(ctx context.Context, c *config.Config) (remote.Applied, error) {
	path := d.ConfigPath()
	if path == "" {
		return remote.Applied{}, errNoConfigFile
	}
	cp, err := config.NewCheckpoint(path)
	if err != nil {
		return remote.Applied{}, err
	}
	// Saved as it is put in force: the file says the state_dir and the
	// capture folder or file the daemon runs on, as config get does.
	cur := d.Config()
	c = config.KeepSpelling(cur, c)
	if err := config.SaveKeepPrevious(path, c); err != nil {
		return remote.Applied{}, err
	}
	// A model this push fitted in place of a missing file is removed by
	// applyNoted if the push is refused after the fit (removeFitted).
	changed, notes, err := d.applyNoted(ctx, c)
	if err != nil {
		// Both files back: the previous file is what a rollback, or the
		// revert of an unconfirmed push, restores.
		if rerr := cp.Restore(); rerr != nil {
			d.log.Error("previous configuration files not restored", "file", path, "err", rerr)
		}
		d.metrics.ReloadFailures.Inc()
		if d.base.Err() != nil {
			return remote.Applied{}, err // the stop's refusal, not the value's
		}
		_, err = pushOutcome(cur, c, nil, err)
		return remote.Applied{}, err
	}
	if len(changed) > 0 {
		d.log.Info("configuration applied", "file", path, "changed", strings.Join(changed, ","))
	}
	notes, _ = pushOutcome(cur, c, notes, nil)
	return remote.Applied{Restarted: changed, Notes: notes}, nil
}

// PlanConfig says what applying c would do that c does not say, without
// doing it, for a dry-run push: the note of a model fitted on synthetic
// frames because the model file c names is not on the box (fittedNote's,
// in the future tense), or the error that would refuse it for what is on
// the box (a new state_dir that cannot be created or written or is
// another inspectd's, a model file that is a folder, a device or not a
// model, or whose scoring state is over c's model.memory_budget, a folder
// the fitted model cannot be saved in, a model file missing where nothing
// fits one, a frame source that cannot be opened: sourceError). It
// creates, loads and fits nothing.
func (d *Daemon) PlanConfig(c *config.Config) ([]string, error) {
	notes, err := d.planConfig(c, true)
	if err == nil {
		err = d.sourceError(c)
	}
	return pushOutcome(d.Config(), c, notes, err)
}

// sourceError says why applying c would refuse the frame source it names,
// for a dry run: the source is opened as the apply opens it
// (openChangedSource), in its words and under its key, after the model
// (the apply's order), and closed at once. It records nothing in the
// folder ledger and leaves the running source alone; a camera's device is
// looked for, not opened. nil where c does not change the source (the
// running one stays, as the apply keeps it). The push itself leaves this
// to its apply, which opens the source once.
func (d *Daemon) sourceError(c *config.Config) error {
	cur := d.Config()
	c = config.KeepSpelling(cur, c)
	nextDev, err := c.ResolvedDeviceID()
	if err != nil {
		return err
	}
	if !diffConfig(cur, c, d.deviceID, nextDev).capture {
		return nil
	}
	src, _, err := d.openChangedSource(cur, c, nil)
	if err != nil {
		return err
	}
	_ = src.Close() // nothing read from it: a close error says nothing of c
	return nil
}

// CheckConfig is PlanConfig's refusal for a push about to be applied,
// reading only the header of a model file that is there
// (modelHeaderError), not its data and checksum: ApplyConfig's load reads
// those (openDetector), refusing a file that fails its checksum with
// modelFileError's words, so that the push reads the whole file once, not
// once here and again to load it. A file whose header is no model's is
// refused here, before anything is saved or applied.
func (d *Daemon) CheckConfig(c *config.Config) error {
	_, err := d.planConfig(c, false)
	if err == nil {
		return nil
	}
	_, err = pushOutcome(d.Config(), c, nil, err)
	return err
}

// relativeRefusal is a push's refusal that says where the relative paths
// the push sets land: "no model at m.safetensors" sent the operator to
// look beside the configuration file, where the daemon (in / under
// systemd) had not looked.
type relativeRefusal struct {
	err   error
	notes []string
}

func (e *relativeRefusal) Error() string {
	return e.err.Error() + " (" + strings.Join(e.notes, "; ") + ")"
}

// Unwrap keeps the refusal's key and code (remote.KeyError, *remote.Error).
func (e *relativeRefusal) Unwrap() error { return e.err }

// pushOutcome is how a push of next, checked, dry run or applied over
// cur, the configuration in force when it came, is told, with the notes
// of the relative paths next sets (relativeNotes): where err is nil,
// notes, what the check or apply says, after them; else err keyed with
// those notes said after it (relativeRefusal), where there are any. The
// one place these notes are made, for the check, the dry run and the
// apply alike.
func pushOutcome(cur, next *config.Config, notes []string, err error) ([]string, error) {
	rel := relativeNotes(cur, config.KeepSpelling(cur, next))
	if err == nil {
		return append(rel, notes...), nil
	}
	err = keyed(err)
	if len(rel) == 0 {
		return nil, err
	}
	return nil, &relativeRefusal{err: err, notes: rel}
}

// planConfig is PlanConfig; whole false reads of a model file that is
// there its header alone, leaving its data and checksum unread
// (CheckConfig).
func (d *Daemon) planConfig(c *config.Config, whole bool) ([]string, error) {
	cur := d.Config()
	c = config.KeepSpelling(cur, c)
	nextDev, err := c.ResolvedDeviceID()
	if err != nil {
		return nil, err
	}
	if c.StateDir != cur.StateDir {
		// Checked as the push checks it before anything is applied, but
		// without creating the folder: a dry run changes nothing.
		if err := StateDirError(c.StateDir); err != nil {
			return nil, err
		}
		if err := d.ownStateDirError(c.StateDir, cur.StateDir); err != nil {
			return nil, err
		}
		if err := statelock.Free(c.StateDir); err != nil {
			return nil, err
		}
	}
	if !diffConfig(cur, c, d.deviceID, nextDev).model {
		return nil, nil // the model in force stays: its file is not opened
	}
	// A folder or a device where the model file should be, a missing
	// file where nothing fits one, a folder that cannot be reached: what
	// the push refuses before it applies anything (CheckConfig).
	if err := modelFileError(c, false); err != nil {
		return nil, err
	}
	there := false
	switch _, err := os.Stat(c.ModelPath()); {
	case errors.Is(err, os.ErrNotExist) && c.Capture.Source != config.SourceSynthetic:
		return nil, &noModelError{key: modelKey(c), path: c.ModelPath()}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		if ferr := modelFolderError(c); ferr != nil {
			if ll := (*dataset.LinkLoopError)(nil); errors.As(ferr, &ll) {
				// The pushed path names a link that loops: the value is
				// wrong, as one naming a folder is, not the box.
				return nil, invalidValue(ferr)
			}
			return nil, ferr
		}
		return nil, fmt.Errorf("model %s: %w", c.ModelPath(), err) // as openDetector refuses it
	case err == nil:
		there = true
	}
	if there || whole {
		// Then what the apply refuses, in its order: the model options
		// (ModelOptions' refusals), then, as the load would, a file that is there
		// but is no model or whose scoring state is over
		// model.memory_budget, the pushed configuration's as the load
		// resolves it (a new file pushed with a budget is measured
		// against itself, not the model in force).
		// LoadOptions: the check runs no recipe search, so a bundled
		// backbone missing from this box is not logged as left out of one
		// (ModelOptions logged it on every push with no share folder).
		mopts, err := LoadOptions(c, d.log)
		if err != nil {
			return nil, err
		}
		if there {
			// From the header: a regular file that is no model's
			// (garbage, a JPEG, a model file cut short), or a model over
			// the budget. The push's load refused these only after the
			// configuration was saved, counting a reload failure and
			// putting the file back. It is the pushed value that is
			// wrong, as a value out of bounds, or a budget below the
			// model in force, is.
			if err := modelHeaderError(c, mopts.MemoryBudget); err != nil {
				return nil, err
			}
		}
		if whole {
			// A dry run reads the file whole, as the load would: its
			// checksum. No detector is built.
			if err := modelFileErrorUnder(c, true, mopts.MemoryBudget); err != nil {
				return nil, err
			}
		}
	}
	n, err := fitPlanned(c, d.o)
	if err != nil || n == 0 {
		return nil, err
	}
	return []string{plannedFitNote(c, n)}, nil
}

// modelHeaderError says, from its header alone, why the regular file at
// c's model path is not a model file the load takes, as the push's check
// refuses it: one whose header does not read as a model file inspectd
// wrote (garbage, a JPEG, a file cut short), in the words the load's
// refusal has (notLoadableError), or (budget > 0: model.Options'
// MemoryBudget) one whose scoring state is over budget, as the load
// refuses it (under model.memory_budget, budgetError), both code invalid
// (invalidValue): the pushed value is wrong. nil when the header reads as
// a model's within the budget (its checksum unread), when the file is no
// longer there or no longer a regular file (modelFileError and the load
// say those), and when it cannot be opened or read (EACCES, EIO): the
// load refuses that as before, code failed, for it says nothing of the
// pushed value. Only the header is read: padim.Load refuses a model whose
// scoring state is over its MaxStateBytes from the header, before it maps
// the file or reads the checksum, and every model's state is over 1 byte;
// that refusal says the state the file needs, which budget is then
// measured against as the load measures it. A file over the budget is
// then read whole for its checksum, as the load's refusal reads it
// (loadRefusal), so that a file that fails it is refused as no model
// first, in those words (code failed, as the load's is), not as over the
// budget: raising the budget would only lead to that refusal.
func modelHeaderError(c *config.Config, budget int64) error {
	path := c.ModelPath()
	pm, err := padim.Load(path, padim.LoadOptions{MaxStateBytes: 1})
	var over *padim.OverBudgetError
	var nm *padim.NotModelFileError
	var pe *fs.PathError
	switch {
	case err == nil:
		pm.Close() // no state at all: read whole, and a model file
		return nil
	case errors.As(err, &over):
		if budget <= 0 || over.Bytes <= budget {
			return nil
		}
		if ferr := modelFileError(c, true); ferr != nil {
			return ferr
		}
		o := *over
		o.Budget = budget
		return invalidValue(budgetError(c.Model, &padim.LoadError{Path: path, Err: &o}))
	case errors.As(err, &nm), errors.As(err, &pe):
		// Not a regular file, gone, or not opened or read (EACCES,
		// EIO): not the header's verdict.
		return nil
	}
	return invalidValue(notLoadableError(c, err))
}

// invalidValue is err, a *FieldError refusing a pushed value for what is
// on the box (a model file that is no model, or over model.memory_budget),
// as a remote.KeyError whose error carries code invalid (a remote.Error),
// in err's words: the reply then says it as a value out of bounds is
// said, with its field. Other errors come back as they are.
func invalidValue(err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	return &remote.KeyError{Key: fe.Field, Err: &remote.Error{Code: remote.CodeInvalid, Msg: err.Error()}}
}

// keyed tags err, a refusal of a configuration change or of a model
// command's file (a threshold command, a refit's install, a model
// rollback, refused for what is at the model path or its .prev, or its
// folder), with the key whose value it refuses (remote.KeyError), for the
// reply's field: a *FieldError's (a model file that is a folder or no
// model, its folder, state_dir), a missing model's (model.path, or
// state_dir where the model lives there), a state_dir another inspectd
// uses. Other errors, and a KeyError already, come back as they are.
func keyed(err error) error {
	var fe *FieldError
	var nm *noModelError
	var inUse *statelock.InUseError
	var ke *remote.KeyError
	switch {
	case err == nil, errors.As(err, &ke):
		return err
	case errors.As(err, &fe):
		return &remote.KeyError{Key: fe.Field, Err: err}
	case errors.As(err, &nm):
		return &remote.KeyError{Key: nm.key, Err: err}
	case errors.As(err, &inUse):
		return &remote.KeyError{Key: "state_dir", Err: err}
	}
	return err
}

// Status is the daemon's state for the status command; it never waits for
// the pipeline or a configuration change.
func (d *Daemon) Status() remote.Status {
	st := remote.Status{Started: d.startedAt, Health: map[string]string{}}
	p := d.pipe.Load()
	if p != nil {
		st.Inspections = d.inspectedBefore.Load() + p.Inspected()
		st.Queues = p.QueueDepths()
	}
	st.InspectionsPerSecond = d.rate.perSecond()
	h := d.handler.Health()
	for name, c := range map[string]httpapi.ComponentHealth{"camera": h.Camera, "model": h.Model, "mqtt": h.MQTT} {
		st.Health[name] = c.Detail
	}
	var errAt time.Time
	note := func(msg string, at time.Time) {
		if msg != "" && !at.Before(errAt) {
			st.LastError, st.LastErrorAt, errAt = msg, at, at
		}
	}
	if p != nil {
		note(p.LastError())
	}
	ms := d.sink.state()
	note(ms.LastError, ms.LastErrorAt)
	if e, ok := d.lastReloadErr.Load().(timedError); ok {
		note(e.msg, e.at)
	}
	return st
}

// timedError is an error message and when it happened.
type timedError struct {
	msg string
	at  time.Time
}

// rateMeter estimates inspections per second over the last minute from a
// sample of the count taken every second.
type rateMeter struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	count uint64
}

const rateWindow = time.Minute

func (r *rateMeter) add(count uint64) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, rateSample{now, count})
	n := 0
	for n < len(r.samples)-1 && now.Sub(r.samples[n].at) > rateWindow {
		n++
	}
	r.samples = append(r.samples[:0], r.samples[n:]...)
}

// perSecond is the rate over the whole minute the meter keeps, for the
// status command; 0 before two samples.
func (r *rateMeter) perSecond() float64 {
	v, _ := r.over(rateWindow)
	return v
}

// over is the inspection rate over about the last window (at most window,
// in the loop's one-second samples), for the edge node's Stats/Inspections
// per Second, which a birth right after a reload must be able to give;
// ok false before two samples.
func (r *rateMeter) over(window time.Duration) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.samples)
	if n < 2 {
		return 0, false
	}
	last := r.samples[n-1]
	i := n - 2
	for i > 0 && last.at.Sub(r.samples[i-1].at) <= window {
		i--
	}
	first := r.samples[i]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 || last.count < first.count {
		return 0, false
	}
	return float64(last.count-first.count) / dt, true
}
