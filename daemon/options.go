// Package daemon is inspectd's running service: it maps the configuration
// onto the capture, model and MQTT libraries and joins them into a pipeline
// (capture → preprocess → backbone → PaDiM → publish) with health, metrics
// and remote triggers.
package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/padim"
	"github.com/inspectd/inspectd/model/sysmem"
)

// shareDirs are where the bundled backbone is looked for: the build tree or
// test setup (INSPECTD_SHARE), next to the binary (make install and the
// build folder share one layout), then the usual prefixes.
func shareDirs() []string {
	var dirs []string
	if d := os.Getenv("INSPECTD_SHARE"); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "..", "share", "inspectd"))
	}
	return append(dirs, "/usr/local/share/inspectd", "/usr/share/inspectd")
}

// BackbonePath resolves model.backbone: "" is the default bundled
// backbone (MobileNet v1), a bundled backbone's name (mobilenet_v1,
// mobilenet_v2) that one, anything else a file.
func BackbonePath(p string) (string, error) {
	name := p
	if name == "" {
		name = backbone.MobileNetV1
	}
	b, ok := backbone.BundleByName(name)
	if !ok {
		// A named pipe was opened and read by the backbone's load, so
		// that config check, a start or a reload naming one waited for
		// a writer for good (SIGTERM too); a device such as /dev/zero
		// was read without end. Refused unopened; a folder or a path not
		// there is left to the load, which names it.
		if st, err := os.Stat(p); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
			return "", fmt.Errorf("%s is %s, not a TFLite file: name a .tflite file in model.backbone, or a bundled backbone (mobilenet_v1, mobilenet_v2)", p, model.FileKind(st.Mode()))
		}
		return p, nil
	}
	for _, d := range shareDirs() {
		f := filepath.Join(d, b.File)
		if _, err := os.Stat(f); err == nil {
			return f, nil
		}
	}
	return "", fmt.Errorf("bundled backbone %s (%s) not found in %v: set INSPECTD_SHARE to the folder that holds it (make deps puts it in build/share/inspectd), or name a .tflite file in model.backbone", b.Name, b.File, shareDirs())
}

// bundled lists the bundled backbones installed on this machine, or only
// the one model.backbone names. A missing one other than the default is
// left out of the recipe search with one log line.
func bundled(name string, log *slog.Logger) []model.BundledPath {
	var out []model.BundledPath
	for _, b := range backbone.Bundles() {
		if name != "" && name != b.Name {
			continue
		}
		p, err := BackbonePath(b.Name)
		if err != nil {
			log.Warn("bundled backbone missing: the recipe search leaves it out", "backbone", b.Name, "err", err)
			continue
		}
		out = append(out, model.BundledPath{Name: b.Name, Path: p})
	}
	return out
}

// installed lists every bundled backbone installed on this machine when
// model.backbone names one (bundled then lists only that one, for the
// search), so that a model fitted on the other still loads; nil otherwise.
func installed(named string) []model.BundledPath {
	if named == "" {
		return nil
	}
	return bundled("", slog.New(slog.DiscardHandler)) // bundled warned of a missing one
}

// CacheDir is where measurements that can be redone are kept (which
// backbone variant runs fastest): the service's own cache directory when
// systemd gives it one (CacheDirectory= sets $CACHE_DIRECTORY to
// /var/cache/inspectd, which `systemctl clean --what=cache` empties), else
// state_dir.
func CacheDir(cfg *config.Config) string {
	if d, _, _ := strings.Cut(os.Getenv("CACHE_DIRECTORY"), ":"); d != "" {
		return d
	}
	return cfg.StateDir
}

// FieldError is a configuration value that is valid on its own but
// cannot be used here (a backbone file missing, a memory budget this
// machine cannot give, a precision its CPU lacks): Field names the key.
type FieldError struct {
	Field string
	Err   error
}

// Error is the key and what is wrong with its value ("model.memory_budget:
// resolved to 0 bytes"), the wording of the errors before FieldError.
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the error about the value.
func (e *FieldError) Unwrap() error { return e.Err }

// ModelOptions maps the configuration onto the model package's options.
// Its errors are *FieldError, naming the key that cannot be used.
func ModelOptions(cfg *config.Config, log *slog.Logger) (model.Options, error) {
	return modelOptions(cfg, log, true)
}

// LoadOptions are ModelOptions for a command that loads a model file and
// fits none (model info, bench and eval with a model file, a pushed
// model file's check): a bundled backbone missing from this machine
// is not logged as left out of the recipe search, which it does not run
// (with no share folder, model info said so once per bundled backbone
// before its own output).
func LoadOptions(cfg *config.Config, log *slog.Logger) (model.Options, error) {
	return modelOptions(cfg, log, false)
}

// modelOptions is ModelOptions; search says whether the recipe search
// may run, whose missing bundled backbones are logged.
func modelOptions(cfg *config.Config, log *slog.Logger, search bool) (model.Options, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	searchLog := log
	if !search {
		searchLog = slog.New(slog.DiscardHandler)
	}
	m := cfg.Model
	a := cfg.Capture.Align // registration runs before the backbone, fitted with the model
	bbPath, err := BackbonePath(m.Backbone)
	if err != nil {
		return model.Options{}, &FieldError{Field: "model.backbone", Err: err}
	}
	budget, err := memoryBudget(m, log)
	if err != nil {
		return model.Options{}, err
	}
	var defaultTaps []string
	named := ""
	if b, ok := backbone.BundleByName(m.Backbone); ok || m.Backbone == "" {
		if !ok {
			b, _ = backbone.BundleByName(backbone.MobileNetV1)
		} else {
			named = b.Name
		}
		defaultTaps = b.Taps
	}
	if m.Recipe != model.RecipeAuto && m.Recipe != model.RecipeFixed {
		if _, err := model.ParseRecipe(m.Recipe, m.Taps); err != nil {
			return model.Options{}, &FieldError{Field: "model.recipe", Err: err}
		}
	}
	var mean, std [3]float32
	for i := range 3 {
		mean[i], std[i] = float32(m.Input.Mean[i]), float32(m.Input.Std[i])
	}
	half, err := halfPrecision(m)
	if err != nil {
		return model.Options{}, err
	}
	probe, err := backbone.SelfProbeCommand()
	if err != nil {
		return model.Options{}, &FieldError{Field: "model.optimize", Err: err}
	}
	if testing.Testing() {
		// A test binary cannot serve "inspectd model probe": it would run
		// its tests again instead. Tests keep the builtin kernels.
		probe = nil
	}
	return model.Options{
		Backbone: backbone.Options{
			Optimize:     m.Optimize,
			StateDir:     CacheDir(cfg),
			ProbeCommand: probe,
			Path:         bbPath,
			Taps:         m.Taps,
			Threads:      BackboneThreads(m.Threads),
			XNNPACK:      m.XNNPACK,
			Delegate:     backbone.DelegateOptions{Library: m.Delegate.Library, Options: m.Delegate.Options, Required: m.Delegate.Required},
			Preprocess:   backbone.Preprocess{Resize: backbone.ResizeMode(m.Input.Resize), Mean: mean, Std: std},
			Logger:       log,
		},
		HalfPrecision:   half,
		Bundled:         bundled(named, searchLog),
		Installed:       installed(named),
		Recipe:          m.Recipe,
		Search:          model.SearchOptions{Holdout: m.Threshold.Holdout, NoEnsemble: !m.Ensemble},
		DefaultTaps:     defaultTaps,
		Standardize:     m.Input.Standardize,
		Tiles:           m.Input.Tiles,
		Features:        m.Features,
		MinFeatures:     m.MinFeatures,
		Seed:            uint64(m.Seed),
		Epsilon:         m.Epsilon,
		MemoryBudget:    budget,
		Sigma:           m.BlurSigma,
		PositionZScore:  m.PositionZScore,
		ContextPool:     m.ContextPool,
		ContextFeatures: m.ContextFeatures,
		ContextWeight:   m.ContextWeight,
		Align:           alignOptions(a),
		Threshold:       padim.ThresholdOptions{Explicit: m.Threshold.Value, Quantile: m.Threshold.Quantile, Margin: m.Threshold.Margin},
		Logger:          log,
	}, nil
}

// DescribeOptions are the options model.DescribeFile describes a model
// file with under cfg where its backbone cannot be opened (ModelOptions
// failed on model.backbone): ModelOptions's precision and memory budget,
// so that the description says what scores as a load's would, and the
// caller can hold the file's state to the budget as a load does. Its
// errors are *FieldError, as ModelOptions's.
func DescribeOptions(cfg *config.Config, log *slog.Logger) (model.Options, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	budget, err := memoryBudget(cfg.Model, log)
	if err != nil {
		return model.Options{}, err
	}
	half, err := halfPrecision(cfg.Model)
	if err != nil {
		return model.Options{}, err
	}
	return model.Options{HalfPrecision: half, MemoryBudget: budget, Logger: log}, nil
}

// memoryBudget resolves model.memory_budget to bytes, above 0.
func memoryBudget(m config.Model, log *slog.Logger) (int64, error) {
	budget, err := m.MemoryBudget.Resolve(m.MemoryFraction, func() (uint64, error) {
		mem, err := sysmem.Available()
		if err != nil {
			return 0, err
		}
		log.Debug("available memory", "bytes", mem.Bytes, "source", mem.Source)
		return uint64(max(mem.Bytes, 0)), nil
	})
	if err != nil {
		return 0, &FieldError{Field: "model.memory_budget", Err: err}
	}
	if budget == 0 {
		return 0, &FieldError{Field: "model.memory_budget", Err: errors.New("resolved to 0 bytes")}
	}
	return int64(budget), nil
}

// halfPrecision says whether model.precision scores with float16 inverse
// covariances on this CPU.
func halfPrecision(m config.Model) (bool, error) {
	switch m.Precision {
	case "float16":
		if !padim.HalfSupported() {
			return false, &FieldError{Field: "model.precision", Err: errors.New("float16 needs an x86-64 CPU with AVX2, FMA and F16C, which this one is not; use auto (float32 here) or float32")}
		}
		return true, nil
	case "auto", "":
		return padim.HalfSupported(), nil
	}
	return false, nil
}

// LoadConfig reads a configuration file with the daemon's rules beside
// config.Validate (ConfigRules: a recipe name the model cannot read is
// listed with its line among the file's other problems), or the defaults
// when path is empty.
func LoadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	// config.Load refuses a named pipe or a device unopened.
	return config.Load(path, ConfigRules()...)
}

// BackboneThreads is the TFLite thread count for model.threads: the
// configured number, or for 0 half the cores and at least one (see
// config.Model.Threads for why not all of them).
func BackboneThreads(configured int) int {
	if configured > 0 {
		return configured
	}
	return max(1, runtime.GOMAXPROCS(0)/2) // GOMAXPROCS follows cgroup CPU limits
}

// alignOptions maps capture.align onto the model's registration options:
// auto is no registration of its own that the recipe search may offer.
func alignOptions(a config.Align) model.AlignOptions {
	o := model.AlignOptions{Mode: align.Mode(a.Mode), MaxShift: a.MaxShift, MaxAngle: a.MaxAngle, MinConfidence: a.MinConfidence}
	if a.Mode == config.AlignAuto || a.Mode == "" {
		o.Mode, o.Offer = align.Off, true
	}
	return o
}

// CheckMQTTTLS builds mqtt.tls as the MQTT connections do when they are
// made (mqttpub.TLSOptions.Config, which reads the files; only when a
// broker speaks TLS, as tlsOptions passes them on), so that a file they would refuse
// is found by `inspectd config check`, and by a start or a reload before
// a connection is touched. Its error is a *FieldError naming the key
// (mqtt.tls.ca, mqtt.tls.cert or mqtt.tls.key), the file and what it
// should hold, in the words of mqttpub's one builder (mqttpub.TLSFileError).
func CheckMQTTTLS(m *config.MQTT) error {
	if _, err := tlsOptions(m).Config(); err != nil { // no TLS broker: nothing read
		if fe := (*mqttpub.TLSFileError)(nil); errors.As(err, &fe) {
			return &FieldError{Field: fe.Field, Err: fe.Detail()}
		}
		return err
	}
	return nil
}
