package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/model"
)

// Finding is one thing Preflight found about a configuration on this
// machine. Fatal findings keep `inspectd run` from starting; the others
// are worth knowing (a camera that is unplugged now, a model that will be
// fitted at start).
type Finding struct {
	Field string // the configuration key it concerns, e.g. "model.path"
	Msg   string
	Fatal bool
}

func (f Finding) String() string { return f.Field + ": " + f.Msg }

// Preflight checks what a valid configuration names on this machine the
// way `inspectd run` would use it: the backbone and the model file load,
// the folder or file source exists, the camera device is present, the
// state directory can be written. It loads the model (and so the backbone)
// once: seconds, not a fit.
func Preflight(cfg *config.Config, log *slog.Logger) []Finding {
	var out []Finding
	add := func(field string, fatal bool, format string, a ...any) {
		out = append(out, Finding{Field: field, Msg: fmt.Sprintf(format, a...), Fatal: fatal})
	}

	switch cfg.Capture.Source {
	case config.SourceFolder:
		p := cfg.Capture.Folder.Path
		if st, err := os.Stat(p); err != nil {
			add("capture.folder.path", true, "%v", err)
		} else if !st.IsDir() {
			add("capture.folder.path", true, "%s is not a directory", p)
		}
	case config.SourceFile:
		if _, err := os.Stat(cfg.Capture.File.Path); err != nil {
			add("capture.file.path", true, "%v", err)
		}
	case config.SourceCamera:
		if _, err := os.Stat(cfg.Capture.Camera.Device); err != nil {
			add("capture.camera.device", false, "%v (inspectd waits for the camera and reports it on /healthz and status)", err)
		}
	}

	switch st, err := os.Stat(cfg.StateDir); {
	case err == nil && !st.IsDir():
		add("state_dir", true, "%s is not a directory", cfg.StateDir)
	case err == nil:
		if f, err := os.CreateTemp(cfg.StateDir, ".preflight-*"); err != nil {
			add("state_dir", true, "not writable by this user: %v", err)
		} else {
			f.Close()
			os.Remove(f.Name())
		}
	case errors.Is(err, os.ErrNotExist):
		if _, perr := os.Stat(filepath.Dir(cfg.StateDir)); perr != nil {
			add("state_dir", true, "%s does not exist and neither does its parent", cfg.StateDir)
		} else {
			add("state_dir", false, "%s does not exist yet; inspectd creates it (the systemd unit's StateDirectory= does as a service)", cfg.StateDir)
		}
	default:
		add("state_dir", true, "%v", err)
	}

	mopts, err := ModelOptions(cfg, log)
	if err != nil {
		add("model.backbone", true, "%v", err)
		return out
	}
	if _, err := os.Stat(mopts.Backbone.Path); err != nil {
		add("model.backbone", true, "%v", err)
		return out
	}
	path := cfg.ModelPath()
	switch _, err := os.Stat(path); {
	case errors.Is(err, os.ErrNotExist) && cfg.Capture.Source == config.SourceSynthetic:
		add("model.path", false, "%s does not exist yet; inspectd fits one on normal synthetic frames at start", path)
	case errors.Is(err, os.ErrNotExist):
		add("model.path", true, "no model at %s: fit one first with 'inspectd fit --data DIR --out %s'", path, path)
	case err != nil:
		add("model.path", true, "%v", err)
	default:
		det, err := model.Load(path, mopts)
		if err != nil {
			add("model.path", true, "%v", err)
			break
		}
		info := det.Info()
		det.Close()
		add("model.path", false, "%s loads: recipe %s, backbone %s", path, info.Recipe, info.Backbone)
	}
	return out
}
