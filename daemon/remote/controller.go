package remote

import (
	"context"
	"errors"
	"image"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/model"
)

// Controller is what remote commands need from the running daemon. The
// daemon implements it; each method's comment is its contract. Config,
// ModelInfo and Status are called from any goroutine (the MQTT handler
// included) and must be safe for concurrent use. The other methods are
// called from the dispatcher's command goroutine one at a time, except
// that the refit job calls NextFrame and, at its end, InstallModel from
// its own goroutine while quick commands go on: meanwhile the dispatcher
// refuses (busy) every command that would touch the model, the capture
// settings or the state directory, but ApplyConfig for other settings
// (mqtt, http, log_level, remote), RestartCamera and Snapshot may run
// concurrently with it.
type Controller interface {
	Configs
	Models
	Frames
	Camera
	StatusReporter
}

// Configs reads and replaces the configuration in force.
type Configs interface {
	// Config returns the configuration in force. It is never modified in
	// place: ApplyConfig replaces it with another value, so a caller may
	// keep and read the one it got without locks (but must not modify it).
	Config() *config.Config
	// ConfigPath is the configuration file that ApplyConfig writes, whose
	// config.PreviousPath is what a config rollback restores.
	ConfigPath() string
	// ApplyConfig makes c the configuration in force. c is complete and
	// valid (the caller validated it; the method may validate again). It
	//   1. saves c with config.SaveKeepPrevious(ConfigPath(), c): the file
	//      replaced atomically, the replaced one kept as .prev, so that a
	//      kill at any point leaves a complete old or new file;
	//   2. applies it live, restarting only the parts whose settings
	//      changed (config.Diff): capture settings reopen the source, mqtt
	//      settings reconnect, model settings build a new detector beside
	//      the running one and swap it in between two frames, http settings
	//      rebind, log_level takes effect;
	//   3. on any failure in 1 or 2 restores the file and its .prev as they
	//      were (config.Checkpoint) and the previous running parts, and
	//      returns an error saying what failed
	//      ("reopen capture: open /dev/video2: no such device"): the
	//      configuration in force, on disk and running, is then the old one.
	// On success it returns the parts restarted and notes on what applying
	// did that c does not say (Applied). It must not
	// hold up inspection longer than a swap between two frames. If the
	// change replaces the MQTT connection, the daemon builds a new MQTT
	// front end on it (NewMQTT) before the reply is published.
	ApplyConfig(ctx context.Context, c *config.Config) (Applied, error)
	// PlanConfig says, for a dry run, what ApplyConfig(c) would do that c
	// does not say (the notes Applied.Notes would carry, in the future
	// tense), or an error naming the key when applying c would be refused
	// for what is on the box (a model file missing or no model, a folder a
	// fitted model cannot be saved in, a state_dir that cannot be
	// created). It changes nothing and does not fit or load.
	PlanConfig(c *config.Config) (notes []string, err error)
	// CheckConfig is PlanConfig's refusal, for a push before it is
	// applied (so that both refuse in the same words, before the request
	// table is carried or the file saved), less the reading of a model
	// file that is there: ApplyConfig's load reads it, and refuses a file
	// that is no model in the same words and key, so that a push reads a
	// new model file once.
	CheckConfig(c *config.Config) error
}

// Applied is what ApplyConfig did.
type Applied struct {
	// Restarted are the parts restarted, in words ("capture", "mqtt",
	// "model"; empty when nothing needed a restart).
	Restarted []string
	// Notes say what applying did that the configuration does not: a
	// model fitted on synthetic frames because the model file it names is
	// not on the box (the operator believes that file loaded). Replies
	// carry them in their note.
	Notes []string
}

// Models reads and replaces the model in force.
type Models interface {
	// ModelInfo describes the detector in force (zero Info, ID "", when
	// none is loaded).
	ModelInfo() model.Info
	// FitOptions returns the model options of the configuration in force
	// (daemon.ModelOptions: backbone, taps, d, seed, memory budget
	// resolved, thresholds), so that a detector fitted with them loads in
	// the running daemon. The refit overrides Workers, Backbone.Threads and
	// Logger, and Features when the command names d.
	FitOptions() (model.Options, error)
	// InstallModel makes the complete model file at path (written by the
	// refit in the state directory) the model in force:
	//   1. loads it with the daemon's own options (model.Load), refusing a
	//      file that does not load (corrupt, another backbone, over the
	//      memory budget) with the loader's error;
	//   2. keeps the current model file as ModelPath+".prev" and renames
	//      path over ModelPath (atomic renames, directory fsynced; a kill
	//      at any point leaves a complete old or new model at ModelPath);
	//   3. swaps the detector between two frames: every frame is scored
	//      entirely by the old detector or entirely by the new one.
	// It returns the new detector's Info. On error the model file and the
	// detector in force are the old ones; the caller removes path.
	InstallModel(ctx context.Context, path string) (model.Info, error)
	// CheckModelTarget says why InstallModel would refuse to write a model
	// file over the model path now, in the words it refuses with (what is
	// there is a folder, a device, a named pipe or a socket; so is what is
	// at the path's .prev, which the install renames the model in force
	// over), or nil. A refit asks when it is accepted, so that it is
	// refused at once rather than after its fit (seconds to minutes);
	// InstallModel checks again, as the path may change meanwhile. It
	// reads no model file and changes nothing.
	CheckModelTarget() error
	// SetThresholds sets the image and pixel thresholds (both > 0) of the
	// detector in force and rewrites its model file with them (atomically,
	// the previous file kept as .prev as InstallModel does); frames
	// inspected after it returns are judged by the new thresholds. Returns
	// the new Info; on error nothing changed.
	SetThresholds(ctx context.Context, image, pixel float64) (model.Info, error)
	// RollbackModel makes the previous model file (.prev) the model in
	// force as InstallModel does, so that the current one becomes .prev
	// (a second rollback goes forward again). An error when there is no
	// previous model or it does not load; nothing changes then.
	RollbackModel(ctx context.Context) (model.Info, error)
}

// Frames gives a refit the live frames.
type Frames interface {
	// NextFrame returns the next frame the running source delivers after
	// the call, as inspection sees it (region of interest cut and rotated),
	// as an image the caller owns (a copy; *image.RGBA or *image.Gray).
	// Inspection goes on meanwhile. In external-trigger mode it returns the
	// source's next frame whether or not a trigger asked for it. It retries
	// temporary source errors (timeouts, a camera being reopened) itself
	// until ctx ends; it returns an error when the source is finished (a
	// folder without loop or watch) or stopped, or ctx ends.
	NextFrame(ctx context.Context) (image.Image, error)
}

// Camera controls the frame source.
type Camera interface {
	// RestartCamera closes and reopens the frame source with the
	// configuration in force and returns once it delivered a frame, or
	// with the error of the reopen (the source then keeps retrying as it
	// does after an unplug), of the frame's refusal (a camera back at
	// another size than capture.roi was given for) or of ctx.
	RestartCamera(ctx context.Context) error
	// Snapshot returns the latest inspected frame as a JPEG and when it
	// was captured; an error when no frame was inspected yet.
	Snapshot(ctx context.Context) (jpeg []byte, captured time.Time, err error)
	// Trigger queues a trigger request with correlation id id (sent, when
	// not zero, is when the sender made it), exactly as one on the trigger
	// topic: its inspection, or the error saying why there is none, is
	// published as a result with this trigger id. It returns an error when
	// the request is not taken (the queue full, stale, not in trigger
	// mode); that error is also published as the trigger's result. An id
	// answered before, within the trigger dedup window, inspects no second
	// part: its earlier answer comes back (its result is sent again on the
	// JSON result topic). It must not wait for the inspection.
	Trigger(ctx context.Context, id string, sent time.Time) (*AnsweredTrigger, error)
}

// AnsweredTrigger is the earlier answer to a trigger id given again.
type AnsweredTrigger struct {
	// Seq and Verdict are the inspection that answered it.
	Seq     uint64 `json:"seq"`
	Verdict string `json:"verdict"`
	// At is when it was answered (UTC).
	At time.Time `json:"answered_at"`
}

// StatusReporter reports the daemon's state.
type StatusReporter interface {
	// Status is the daemon's state for the status command. It must be
	// cheap and never wait for the pipeline.
	Status() Status
}

// Status is what the status command reports besides the model and the
// refit.
type Status struct {
	// Started is when the daemon started.
	Started time.Time `json:"-"`
	// Inspections counts inspections since the start.
	Inspections uint64 `json:"inspections"`
	// InspectionsPerSecond is the rate over the last minute or so.
	InspectionsPerSecond float64 `json:"inspections_per_s"`
	// Queues are the pipeline's queue depths by stage.
	Queues map[string]int `json:"queues,omitempty"`
	// LastError is the latest error of any part ("" if none) and when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Health is each part's health detail, as /healthz shows it
	// ("camera": "last frame 0.1s ago", "mqtt": "connected to ...").
	Health map[string]string `json:"health,omitempty"`
}

// KeyError is a Controller's refusal (ApplyConfig, PlanConfig, and
// InstallModel, CheckModelTarget, SetThresholds, RollbackModel) of the
// value of one configuration key on this box: a model file that is a
// folder or no model, a folder a model cannot be saved in, a state_dir
// that cannot be created, what is at the model path or its .prev that a
// model file cannot be written over. The reply names it in its field
// ("config." + Key), a push's as a threshold command's, a refit's or a
// rollback's, as the refusal of a state_dir the request table cannot be
// carried to does. Error is Err's text alone, which names the key already
// (a rollback's refusal of the .prev it loads names the file).
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Err.Error() }

// Unwrap returns the error about the value.
func (e *KeyError) Unwrap() error { return e.Err }

// refusedKey is a failed reply's error for err, a Controller's refusal of
// a configuration: its field is the key a KeyError names ("config." +
// Key), none otherwise; its message is format's, which says err (and so
// names the key) and is not prefixed with the field.
func refusedKey(err error, format string, a ...any) *Error {
	e := errorf(CodeFailed, "", format, a...)
	if ke := (*KeyError)(nil); errors.As(err, &ke) && ke.Key != "" {
		e.Field, e.named = "config."+ke.Key, true
	}
	return e
}
