package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/backbone"
)

// Finding is one thing Preflight found about a configuration on this
// machine. Fatal findings keep `inspectd run` from starting; Warn ones let
// it start but it will not inspect until they are mended (a camera that is
// not there now: a mistyped by-id path waits for ever); the others are
// worth knowing (a model that will be fitted at start).
type Finding struct {
	// Field is the configuration key it concerns, e.g. "model.path".
	Field string
	// Msg says what was found and what to do.
	Msg string
	// Fatal: `inspectd run` would not start. Warn (never with Fatal): it
	// starts but will not inspect until this is mended.
	Fatal, Warn bool
}

func (f Finding) String() string { return f.Field + ": " + f.Msg }

// Preflight checks what a valid configuration names on this machine the
// way `inspectd run` would use it: the backbone and the model file load,
// the folder or file source exists, the camera device is present, the
// state directory can be written, the mqtt.tls files make a TLS
// configuration. It loads the model (and so the backbone)
// once: seconds, not a fit.
func Preflight(cfg *config.Config, log *slog.Logger) []Finding {
	var out []Finding
	add := func(field string, fatal bool, format string, a ...any) {
		out = append(out, Finding{Field: field, Msg: fmt.Sprintf(format, a...), Fatal: fatal})
	}
	warn := func(field string, format string, a ...any) {
		out = append(out, Finding{Field: field, Msg: fmt.Sprintf(format, a...), Warn: true})
	}

	// Relative paths follow the working directory of the process that
	// reads the file, not the file's folder: say where each one landed
	// (under systemd, the working directory is /).
	if wd, err := os.Getwd(); err == nil {
		for _, r := range relativePaths(cfg) {
			add(r.key, false, "%s", r.taken(wd))
		}
	}

	switch cfg.Capture.Source {
	case config.SourceFolder:
		p := cfg.Capture.Folder.Path
		if st, err := os.Stat(p); err != nil && cfg.Capture.Folder.Watch {
			warn("capture.folder.path", "%v (a watched folder is waited for, as a share mounted after the start: reported on /healthz and status)", err)
		} else if err != nil {
			add("capture.folder.path", true, "%v: create the folder or set capture.folder.path", err)
		} else if !st.IsDir() {
			add("capture.folder.path", true, "%s is not a directory", p)
		}
	case config.SourceFile:
		// Decoded as the file source does at start: a file that is there
		// but is not an image the source reads (empty, another format, over
		// capture.max_pixels) stops run as surely as a missing one.
		path := cfg.Capture.File.Path
		if _, err := os.Stat(path); err != nil {
			add("capture.file.path", true, "%v: set capture.file.path to an image file", err)
			break
		}
		img, _, err := capture.DecodeImageFile(path, int64(cfg.Capture.MaxPixels))
		if err != nil {
			add("capture.file.path", true, "%v: set capture.file.path to a JPEG, PNG, BMP, TIFF or GIF image", err)
			break
		}
		// A capture.roi the image is too small for stops run as surely
		// (every frame of it would be refused): it was reported ok here.
		b := img.Bounds()
		if err := TransformOptions(cfg).CheckFileImage(path, b.Dx(), b.Dy()); err != nil {
			add("capture.roi", true, "%v: give capture.roi within the image's %dx%d pixels, or set capture.file.path to an image it fits in", err, b.Dx(), b.Dy())
		}
	case config.SourceCamera:
		// A bare by-id name is looked up where the camera opens it, not
		// in the working directory (which warned of a camera that is there).
		dev := capture.DevicePath(cfg.Capture.Camera.Device)
		if _, err := os.Stat(dev); err != nil {
			warn("capture.camera.device", "%v (inspectd waits for the camera and reports it on /healthz and status)", err)
		} else if kind := capture.NotCharDevice(dev); kind != "" {
			// No camera's node: inspectd starts and retries it for ever
			// ("not a V4L2 device"), and this said nothing (an image
			// file named here for capture.file.path's).
			warn("capture.camera.device", "%s is %s, not a V4L2 device: inspectd starts, but retries it without ever inspecting; name the camera's /dev/videoN node or /dev/v4l/by-id link ('inspectd capture list' shows them)", dev, kind)
		}
	}

	// In the words of a dry run's and a push's refusal (StateDirError),
	// which fit the case: a folder that is there is not to be created.
	stateOK := true
	if sfe := (*FieldError)(nil); errors.As(StateDirError(cfg.StateDir), &sfe) {
		add(sfe.Field, true, "%v", sfe.Err)
		stateOK = false
	} else if _, err := os.Stat(cfg.StateDir); errors.Is(err, os.ErrNotExist) {
		add("state_dir", false, "%s does not exist yet; inspectd creates it (the systemd unit's StateDirectory= does as a service)", cfg.StateDir)
	}

	// The files are read as the MQTT connections read them at start; a
	// bad one stops run (and is refused by a reload) before anything
	// connects.
	if err := CheckMQTTTLS(&cfg.MQTT); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			add(fe.Field, true, "%v", fe.Err)
		} else {
			add("mqtt.tls", true, "%v", err)
		}
	}

	// The model file is checked whether the backbone loads or not: a
	// missing model is a problem of its own, which an operator mending
	// the backbone would otherwise meet only at the next check. Only
	// loading it needs the backbone.
	mopts, err := ModelOptions(cfg, log)
	var fe *FieldError
	blocker := "model.backbone" // the key whose problem keeps the model from loading
	switch {
	case errors.As(err, &fe):
		blocker = fe.Field
		add(fe.Field, true, "%v", fe.Err)
	case err != nil:
		blocker = "model"
		add("model", true, "%v", err)
	default:
		if err = tryBackbone(mopts.Backbone); err != nil {
			add("model.backbone", true, "%v", err)
		}
	}
	bbOK := err == nil
	var recipeErr error // the named recipe's bundled backbones: a fit needs them
	if bbOK {
		recipeErr = mopts.RecipeBackbones()
	}
	path := cfg.ModelPath()
	if _, serr := os.Stat(path); recipeErr != nil && errors.Is(serr, os.ErrNotExist) {
		add("model.recipe", true, "%v: the model must be fitted first, and a fit with this recipe fails", recipeErr)
	} else if recipeErr != nil {
		warn("model.recipe", "%v: the model file runs, but a refit with this recipe (the refit command, 'inspectd fit') fails", recipeErr)
	}
	if !stateOK && cfg.Model.Path == "" {
		return out // the model lives in state_dir: said above
	}
	switch _, err := os.Stat(path); {
	case err == nil && errors.As(modelFileError(cfg, false), &fe):
		add(fe.Field, true, "%v", fe.Err) // a folder, a device: in the words of the start
	case errors.Is(err, os.ErrNotExist) && cfg.Capture.Source == config.SourceSynthetic:
		// The model fitted at start is written beside it: a folder that is
		// not there or not writable is refused by the start before the
		// fit, in these words. (In state_dir itself, which inspectd
		// creates, the checks above cover it.)
		if errors.As(modelFolderError(cfg), &fe) {
			add(fe.Field, true, "%v", fe.Err)
			break
		}
		add("model.path", false, "%s does not exist yet; inspectd fits one on normal synthetic frames at start", path)
	case errors.Is(err, os.ErrNotExist):
		add("model.path", true, "no model at %s: fit one first with 'inspectd fit --data DIR --out %s'", path, path)
	case err != nil:
		if errors.As(modelFolderError(cfg), &fe) {
			add(fe.Field, true, "%v", fe.Err) // a file where its folder should be, in the start's words
			break
		}
		add("model.path", true, "%v", err)
	case !bbOK:
		add("model.path", false, "%s is there; not loaded, as it loads only once %s is mended (its problem is listed with the others)", path, blocker)
	default:
		// Loading is the question, as for the backbone above: with
		// optimize auto a first load would time the backbone's variants
		// for seconds (they are timed when run starts).
		mopts.Backbone.Optimize = backbone.OptimizeOff
		det, err := model.Load(path, mopts)
		if err != nil {
			// In the start's words and key, worded from the load's own
			// error (loadRefusal): the file was read a second time, all of
			// it with its checksum, only to word the refusal; and a file
			// over model.memory_budget that is no model either is refused
			// as no model first, as the start refuses it.
			err = loadRefusal(cfg, err)
		}
		if fe := (*FieldError)(nil); errors.As(err, &fe) {
			add(fe.Field, true, "%v", fe.Err)
			break
		}
		if err != nil {
			add("model.path", true, "%v; if it is not a model inspectd fitted, fit one with 'inspectd fit --data DIR --out %s'", err, path)
			break
		}
		info := det.Info()
		det.Close()
		add("model.path", false, "%s loads: recipe %s, backbone %s", path, info.Recipe, info.Backbone)
	}
	return out
}

// tryBackbone loads the backbone bo names once and closes it.
func tryBackbone(bo backbone.Options) error {
	if _, err := os.Stat(bo.Path); err != nil {
		return fmt.Errorf("%w: name a TFLite file or a bundled backbone (%s)", err, strings.Join(bundledNames(), ", "))
	}
	bo.Optimize = backbone.OptimizeOff // loading is the question here, not the fastest variant
	bb, err := backbone.Open(bo)
	if err != nil {
		return err
	}
	bb.Close()
	return nil
}

// tryWrite creates and removes a file in dir: the only sure test of
// write access (permissions, ACLs, read-only mounts, root on /proc). A
// folder that is append-only or immutable (chattr +a, +i) is refused
// first, its attribute read (atomicfile.CheckFolder's *AttrError), with
// nothing made in it: an append-only one takes the file but refuses its
// removal, and each check (a start, a dry run, a push) left a
// .inspectd-check-* file there that not even root could remove. A file
// that cannot be removed all the same is named in the error.
func tryWrite(dir string) error {
	if err := atomicfile.CheckFolder(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".inspectd-check-*")
	if err != nil {
		return err
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%w (the check's file %s is left there: it cannot be removed)", err, f.Name())
	}
	return nil
}

// bundledNames lists the bundled backbones' names.
func bundledNames() []string {
	var out []string
	for _, b := range backbone.Bundles() {
		out = append(out, b.Name)
	}
	return out
}

// keyPath is a path setting: its key and its value.
type keyPath struct{ key, path string }

// relativePaths is cfg's path settings that the daemon uses and that are
// relative: they follow the working directory of the process that reads
// them, not the configuration file's folder (under systemd, /).
func relativePaths(cfg *config.Config) []keyPath {
	all := []keyPath{{"state_dir", cfg.StateDir}, {"model.path", cfg.Model.Path}}
	switch cfg.Capture.Source {
	case config.SourceFolder:
		all = append(all, keyPath{"capture.folder.path", cfg.Capture.Folder.Path})
	case config.SourceFile:
		all = append(all, keyPath{"capture.file.path", cfg.Capture.File.Path})
	}
	if _, bundled := backbone.BundleByName(cfg.Model.Backbone); !bundled {
		all = append(all, keyPath{"model.backbone", cfg.Model.Backbone})
	}
	var rel []keyPath
	for _, r := range all {
		if r.path != "" && !filepath.IsAbs(r.path) {
			rel = append(rel, r)
		}
	}
	return rel
}

// taken says where the relative path r lands from working directory wd.
func (r keyPath) taken(wd string) string {
	return fmt.Sprintf("%s is relative: taken from the working directory %s as %s (a service runs in /: write absolute paths)", r.path, wd, filepath.Join(wd, r.path))
}

// relativeNotes are a push's notes of the relative paths it sets (those
// of next that cur, the configuration in force, does not hold alike):
// the file's rule takes them from the daemon's working directory, which
// the operator who pushes them does not see (a dry run said ok of
// capture.folder.path "frames", which the daemon under systemd took as
// /frames).
func relativeNotes(cur, next *config.Config) []string {
	wd, err := os.Getwd()
	if err != nil {
		return nil
	}
	held := map[keyPath]bool{}
	for _, r := range relativePaths(cur) {
		held[r] = true
	}
	var notes []string
	for _, r := range relativePaths(next) {
		if !held[r] {
			notes = append(notes, r.key+": "+r.taken(wd))
		}
	}
	return notes
}
