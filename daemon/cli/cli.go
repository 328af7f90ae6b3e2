// Package cli holds inspectd's sub-commands. Each sub-command lives in its own
// file and is listed in commands(); main only hands over os.Args.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
)

// Env is what a sub-command gets from the process: its streams, so that
// tests can run commands in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
	// Level is Log's level: INSPECTD_LOG_LEVEL, or for the daemon the
	// configuration's log_level when that variable is not set.
	Level *slog.LevelVar
}

// Command is one sub-command. Name may hold a space ("model inspect").
type Command struct {
	Name    string
	Summary string
	// Usage is the argument synopsis shown after the name.
	Usage string
	// Hidden commands are internal (child-process probes) and not listed.
	Hidden bool
	// Run parses its own flags from args. Returning a *UsageError prints the
	// command's usage and exits 2.
	Run func(ctx context.Context, env *Env, args []string) error
}

// UsageError marks a mistake in the command line itself (exit status 2).
// Flags, when set, describes the command's flags, printed after the usage
// line (a flag the command does not have).
type UsageError struct{ Msg, Flags string }

func (e *UsageError) Error() string { return e.Msg }

// usagef builds a UsageError.
func usagef(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

// commands lists every sub-command; new ones are added here.
func commands() []*Command {
	cmds := []*Command{
		cmdVersion(),
		cmdConfigCheck(),
		cmdConfigDefaults(),
		cmdCaptureList(),
		cmdCaptureSnapshot(),
		cmdCaptureSet(),
		cmdCaptureExport(),
		cmdCaptureEncode(),
		cmdModelInspect(),
		cmdModelInfo(),
		cmdModelOptimize(), cmdModelProbe(),
		cmdFit(),
		cmdEval(),
		cmdRun(),
		cmdDemo(),
		cmdBench(),
		cmdKeygen(), cmdSign(),
		cmdSparkplugWatch(),
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}

// Main runs the sub-command named by args and returns the exit status:
// 0 success, 1 failure, 2 usage error.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	level := new(slog.LevelVar)
	level.Set(logLevel())
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Level: level,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	cmds := commands()
	if len(args) == 0 {
		printUsage(stderr, cmds)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		// Asked for: the help is the output (`inspectd help | less`).
		// "inspectd help run" is "inspectd run -h".
		if len(args) > 1 && args[0] == "help" {
			if cmd, _ := find(cmds, args[1:]); cmd != nil {
				return Main(ctx, append(strings.Fields(cmd.Name), "-h"), stdin, stdout, stdout)
			}
			for _, c := range cmds {
				if g, _, ok := strings.Cut(c.Name, " "); ok && g == args[1] { // a group: its subcommands
					return Main(ctx, []string{g, "-h"}, stdin, stdout, stdout)
				}
			}
			fmt.Fprintf(stderr, "inspectd help: unknown command %q\n\n", strings.Join(args[1:min(len(args), 3)], " "))
			printUsage(stderr, cmds)
			return 2
		}
		printUsage(stdout, cmds)
		return 0
	}
	cmd, rest := find(cmds, args)
	if cmd == nil {
		// "inspectd config" (a group without its subcommand) names the
		// subcommands rather than calling the group unknown.
		var subs []string
		for _, c := range cmds {
			if g, sub, ok := strings.Cut(c.Name, " "); ok && g == args[0] && !c.Hidden {
				subs = append(subs, sub)
			}
		}
		if len(subs) > 0 && (len(args) == 1 || strings.HasPrefix(args[1], "-")) {
			fmt.Fprintf(stderr, "inspectd %s: give a subcommand: %s (inspectd %s <subcommand> -h for its flags)\n", args[0], strings.Join(subs, ", "), args[0])
			if len(args) > 1 && (args[1] == "-h" || args[1] == "--help") {
				return 0
			}
			return 2
		}
		fmt.Fprintf(stderr, "inspectd: unknown command %q\n\n", strings.Join(args[:min(len(args), 2)], " "))
		printUsage(stderr, cmds)
		return 2
	}
	err := cmd.Run(ctx, env, rest)
	var ue *UsageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "inspectd %s: %s\nusage: %s\n%s", cmd.Name, ue.Msg, strings.TrimSpace("inspectd "+cmd.Name+" "+cmd.Usage), ue.Flags)
		return 2
	default:
		fmt.Fprintf(stderr, "inspectd %s: %v\n", cmd.Name, err)
		return 1
	}
}

// find matches the longest command name (two words before one).
func find(cmds []*Command, args []string) (*Command, []string) {
	if len(args) >= 2 {
		for _, c := range cmds {
			if c.Name == args[0]+" "+args[1] {
				return c, args[2:]
			}
		}
	}
	for _, c := range cmds {
		if c.Name == args[0] {
			return c, args[1:]
		}
	}
	return nil, nil
}

func printUsage(w io.Writer, cmds []*Command) {
	fmt.Fprintln(w, "usage: inspectd <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		fmt.Fprintf(w, "  %-16s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintln(w, "\nRun 'inspectd <command> -h' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting, so
// that Main maps them to exit status 2.
func newFlagSet(env *Env, cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet("inspectd "+cmd, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parseFlags parses args and turns a flag error into a UsageError that
// carries the flags' descriptions. The flag package prints the error and
// the usage itself; Main prints the UsageError too, so the error came
// twice: what the flag package writes is kept for -h only.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		_, _ = out.Write(buf.Bytes())
		return err
	}
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	fs.SetOutput(out)
	return &UsageError{Msg: err.Error(), Flags: flags.String()}
}

// parseDataCommand parses the flags of a command that works on a data
// folder (--data, required; no positional arguments) and loads the
// configuration named by cfgPath (defaults when empty).
func parseDataCommand(fs *flag.FlagSet, args []string, data, cfgPath *string) (*config.Config, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := noArgs(fs); err != nil {
		return nil, err
	}
	if *data == "" {
		return nil, usagef("--data is required: the folder of images")
	}
	return daemon.LoadConfig(*cfgPath)
}

// noArgs refuses positional arguments, naming the first: a flag's value
// given without its flag (or a value with a space in it) lands there.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q: this command takes flags only (-h lists them)", fs.Arg(0))
	}
	return nil
}

// daemonLogLevel is the level the daemon may set from log_level: nil
// when INSPECTD_LOG_LEVEL says otherwise.
func daemonLogLevel(env *Env) *slog.LevelVar {
	if os.Getenv("INSPECTD_LOG_LEVEL") != "" {
		return nil
	}
	return env.Level
}

// logLevel reads INSPECTD_LOG_LEVEL (debug, info, warn, error).
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("INSPECTD_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
