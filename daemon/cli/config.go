package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
)

// cmdConfigCheck validates configuration files the way the daemon loads
// them, so that an edit can be checked before a restart.
func cmdConfigCheck() *Command {
	return &Command{
		Name:    "config check",
		Summary: "validate configuration files and summarize them",
		Usage:   "FILE...",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "config check")
			here := fs.Bool("here", true, "also check what the file names on this machine: the backbone and model load, the capture folder or file exists, the camera is present, state_dir can be written (--here=false checks only the file, e.g. before pushing it to another box)")
			// Flags may follow the files (config check a.yaml --here=false).
			var flags, files []string
			for _, a := range args {
				if strings.HasPrefix(a, "-") && len(a) > 1 {
					flags = append(flags, a)
				} else {
					files = append(files, a)
				}
			}
			if err := parseFlags(fs, append(flags, files...)); err != nil {
				return err
			}
			if fs.NArg() == 0 {
				return usagef("name a configuration file, e.g. /etc/inspectd/inspectd.yaml")
			}
			var bad []string
			notHere := map[string]bool{} // valid files that cannot run on this machine
			for _, path := range fs.Args() {
				// The daemon's rules check what config cannot (a recipe
				// name is the model's grammar), listed with the others.
				c, warnings, err := config.LoadWithWarnings(path, daemon.ConfigRules()...)
				if err != nil {
					bad = append(bad, path)
					printProblems(env.Stderr, err)
					for _, w := range warnings {
						fmt.Fprintf(env.Stderr, "warning: %s\n", w)
					}
					continue
				}
				if !*here {
					fmt.Fprintln(env.Stdout, verdictLine(path, 0, 0, len(warnings)))
					writeSummary(env.Stdout, c)
					writeWarnings(env.Stdout, warnings)
					continue
				}
				// The machine is tried before the file's first line is
				// printed: a plain "ok" followed by "cannot run on this
				// machine" read as a pass to whoever stopped at the "ok".
				findings := daemon.Preflight(c, env.Log)
				fatal, warn := 0, 0
				for _, f := range findings {
					if f.Fatal {
						fatal++
					} else if f.Warn {
						warn++
					}
				}
				fmt.Fprintln(env.Stdout, verdictLine(path, fatal, warn, len(warnings)))
				writeSummary(env.Stdout, c)
				writeWarnings(env.Stdout, warnings)
				fmt.Fprintln(env.Stdout, "  on this machine:")
				for _, f := range findings {
					if f.Fatal {
						fmt.Fprintf(env.Stderr, "%s: %s\n", path, f)
						continue
					}
					if f.Warn {
						fmt.Fprintf(env.Stdout, "    warning: %s\n", f)
						continue
					}
					fmt.Fprintf(env.Stdout, "    %s\n", f)
				}
				if fatal > 0 {
					bad = append(bad, path)
					notHere[path] = true
				}
			}
			switch {
			case len(bad) == 0:
				return nil
			case fs.NArg() == 1 && notHere[bad[0]]:
				return errors.New(bad[0] + " is valid but cannot run on this machine as it is")
			case fs.NArg() == 1 && bad[0] == "":
				return errors.New(`"" is not valid`) // an empty path named nothing
			case fs.NArg() == 1:
				return errors.New(bad[0] + " is not valid")
			case len(notHere) == 0:
				return fmt.Errorf("%d of %d files are not valid: %s", len(bad), fs.NArg(), strings.Join(bad, ", "))
			default:
				return fmt.Errorf("%d of %d files are not valid or cannot run on this machine as they are: %s", len(bad), fs.NArg(), strings.Join(bad, ", "))
			}
		},
	}
}

// verdictLine is config check's first line for a valid file with fatal
// problems and warn warnings on this machine and unused settings (the
// file's own warnings, config.Config.Warnings): "ok" only with none. With
// warnings alone inspectd starts, but a camera that is not there (a
// mistyped by-id path) leaves it waiting, which a plain "ok" hid; a
// setting the fit leaves out was as hidden behind "ok".
func verdictLine(path string, fatal, warn, unused int) string {
	settings := ""
	if unused > 0 {
		settings = fmt.Sprintf("%s below %s not act as written", plural(unused, "setting"), pick(unused == 1, "does", "do"))
	}
	switch {
	case fatal == 0 && warn == 0 && unused == 0:
		return path + ": ok"
	case fatal == 0 && warn == 0:
		return fmt.Sprintf("%s: valid, but %s", path, settings)
	case fatal == 0 && unused == 0:
		return fmt.Sprintf("%s: valid, and inspectd can start here, but it will not inspect until the %s below is mended", path, plural(warn, "warning"))
	case fatal == 0:
		return fmt.Sprintf("%s: valid, and inspectd can start here, but it will not inspect until the %s below is mended; and %s", path, plural(warn, "warning"), settings)
	case unused == 0:
		return fmt.Sprintf("%s: the file is valid, but it cannot run on this machine as it is (%s)", path, plural(fatal, "problem"))
	}
	return fmt.Sprintf("%s: the file is valid, but it cannot run on this machine as it is (%s); and %s", path, plural(fatal, "problem"), settings)
}

// pick is a if cond, else b.
func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// writeWarnings lists the file's warnings (valid settings that do not act
// as written), with their lines, under its summary.
func writeWarnings(w io.Writer, warnings []*config.Problem) {
	for _, p := range warnings {
		p := *p
		p.File = "" // the file's own lines: named on the first line
		fmt.Fprintf(w, "  warning: %s\n", &p)
	}
}

// cmdConfigDefaults prints the annotated default configuration, the
// reference for every key.
func cmdConfigDefaults() *Command {
	return &Command{
		Name:    "config defaults",
		Summary: "print the default configuration with every key explained",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "config defaults")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return usagef("takes no arguments")
			}
			_, err := env.Stdout.Write(config.DefaultYAML())
			return err
		},
	}
}

// printProblems writes one line per problem, or the error as it is when it
// is not about the contents (a missing file).
func printProblems(w io.Writer, err error) {
	ps := config.Problems(err)
	if len(ps) == 0 {
		fmt.Fprintln(w, err)
		return
	}
	for _, p := range ps {
		fmt.Fprintln(w, p)
	}
}

// writeSummary shows what a valid configuration will do, in the terms an
// operator checks: which source, which model limits, where results go.
func writeSummary(w io.Writer, c *config.Config) {
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "  %-9s %s\n", k+":", fmt.Sprintf(format, a...)) }

	device := c.DeviceID
	if device == "" {
		if id, err := c.ResolvedDeviceID(); err == nil {
			device = id + " (host name)"
		} else {
			device = "the host name"
		}
	}
	line("device", "%s", device)
	line("capture", "%s", captureSummary(&c.Capture))
	line("model", "%s", modelSummary(c))
	line("mqtt", "%s", mqttSummary(c))
	if c.HTTP.Listen == "" {
		line("http", "off")
	} else {
		line("http", "%s", c.HTTP.Listen)
	}
	line("state", "%s, log level %s, queue %d", c.StateDir, c.LogLevel, c.Pipeline.Queue)
}

func captureSummary(c *config.Capture) string {
	var s string
	switch c.Source {
	case config.SourceCamera:
		m := c.Camera
		s = fmt.Sprintf("camera %s %dx%d at %d fps (%s)", m.Device, m.Width, m.Height, m.FPS, strings.Join(m.Formats, ", "))
		if len(m.Controls) > 0 {
			s += fmt.Sprintf(", %d controls", len(m.Controls))
		}
	case config.SourceFolder:
		mode := "once"
		switch {
		case c.Folder.Watch:
			mode = "watched"
		case c.Folder.Loop:
			mode = "looped"
		}
		s = fmt.Sprintf("folder %s (%s)", c.Folder.Path, mode)
	case config.SourceFile:
		s = "file " + c.File.Path
	default:
		m := c.Synthetic
		s = fmt.Sprintf("synthetic %dx%d at %d fps, %g defect rate, seed %d", m.Width, m.Height, m.FPS, m.DefectRate, m.Seed)
	}
	if r := c.ROI; r != (config.ROI{}) {
		dim := func(n int) string {
			if n == 0 {
				return "edge"
			}
			return fmt.Sprint(n)
		}
		s += fmt.Sprintf("; roi at (%d,%d) size %sx%s", r.X, r.Y, dim(r.Width), dim(r.Height))
	}
	if c.Rotate != 0 {
		s += fmt.Sprintf("; rotated %d°", c.Rotate)
	}
	if a := c.Align; a.Mode != "" && a.Mode != "off" && a.Mode != "auto" {
		s += fmt.Sprintf("; registration %s within %g of the frame", a.Mode, a.MaxShift)
		if a.Mode != "turn" {
			s += fmt.Sprintf(" and %g°", a.MaxAngle)
		}
		if a.MinConfidence > 0 {
			s += fmt.Sprintf(", confidence ≥ %g", a.MinConfidence)
		} else {
			s += ", confidence floor learned at fit"
		}
	}
	switch {
	case c.Trigger.Mode == config.TriggerExternal:
		s += "; external trigger"
	case c.Trigger.MaxRate > 0:
		s += fmt.Sprintf("; free-run, at most %g/s", c.Trigger.MaxRate)
	default:
		s += "; free-run"
	}
	return s
}

func modelSummary(c *config.Config) string {
	m := &c.Model
	budget := m.MemoryBudget.String()
	if m.MemoryBudget.Auto {
		budget = fmt.Sprintf("auto (%.4g%% of available memory)", m.MemoryFraction*100)
	}
	threshold := fmt.Sprintf("threshold %g", m.Threshold.Value)
	if m.Threshold.Value == 0 {
		threshold = fmt.Sprintf("threshold %g quantile × %g of the training images' leave-one-out scores",
			m.Threshold.Quantile, m.Threshold.Margin)
	}
	backbone := m.Backbone
	switch {
	case backbone == "" && m.Recipe == "auto":
		backbone = "bundled (MobileNet v1 or v2)"
	case backbone == "" && strings.Contains(m.Recipe, "+"):
		backbone = "bundled (each ensemble member its own)"
	case backbone == "" && strings.HasPrefix(m.Recipe, "v2"):
		backbone = "bundled MobileNet v2"
	case backbone == "":
		backbone = "bundled MobileNet v1"
	}
	recipe := "recipe " + m.Recipe
	if m.Recipe == "auto" {
		ens := "ensembles tried"
		if !m.Ensemble {
			ens = "no ensembles"
		}
		recipe = fmt.Sprintf("recipe auto (judged on %.4g%% held-out images; %s)", m.Threshold.Holdout*100, ens)
	}
	n := daemon.BackboneThreads(m.Threads)
	threads := fmt.Sprintf("%d threads", n)
	if n == 1 {
		threads = "1 thread"
	}
	if m.Threads == 0 {
		threads += " (half the cores)"
	}
	s := fmt.Sprintf("%s, %s, d ≤ %d (min %d), memory %s, %s; backbone %s, %s",
		c.ModelPath(), recipe, m.Features, m.MinFeatures, budget, threshold, backbone, threads)
	if m.Delegate.Library != "" {
		s += ", delegate " + m.Delegate.Library
		if m.Delegate.Required {
			s += " (required)"
		}
	}
	return s
}

func mqttSummary(c *config.Config) string {
	m := &c.MQTT
	var s string
	if len(m.Brokers) == 0 {
		s = "embedded broker on " + m.EmbeddedListen
	} else {
		s = strings.Join(m.Brokers, ", ")
	}
	s += " as " + daemon.PreviewClientID(c)
	if m.Username != "" {
		s += ", user " + m.Username
		if m.Password != "" {
			s += " (password set)"
		}
	}
	device, err := c.ResolvedDeviceID()
	if err != nil {
		device = "<host name>"
	}
	if m.UsesJSON() {
		s += fmt.Sprintf("; topics %s/%s/..., results QoS %d", m.TopicPrefix, device, m.ResultQoS)
		if m.ResultMaxRate > 0 {
			s += fmt.Sprintf(" at most %g/s", m.ResultMaxRate)
		}
	}
	if m.UsesSparkplug() {
		s += "; " + sparkplugSummary(c, device)
	}
	return s
}

// sparkplugSummary names the Sparkplug B topics of the edge node (its own
// connection and client id) and, with the JSON profile off, what the JSON
// topics still carry: the results go to Sparkplug only.
func sparkplugSummary(c *config.Config, device string) string {
	node, err := c.SparkplugEdgeNodeID()
	if err != nil {
		node = "<host name>"
	}
	g := c.Sparkplug.GroupID
	s := fmt.Sprintf("Sparkplug B node spBv1.0/%s/N*/%s, device spBv1.0/%s/D*/%s/%s, as %s",
		g, node, g, node, device, c.SparkplugClientID(daemon.PreviewClientID(c)))
	if h := c.Sparkplug.PrimaryHostID; h != "" {
		s += fmt.Sprintf(", births while host %s is online (spBv1.0/STATE/%s)", h, h)
	}
	if !c.MQTT.UsesJSON() {
		s += fmt.Sprintf("; %s/%s/... carries status, info, triggers and commands only", c.MQTT.TopicPrefix, device)
	}
	return s
}
