package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/model/backbone"
)

// version and commit are set at link time by the Makefile
// (-ldflags "-X github.com/inspectd/inspectd/daemon/cli.version=..."), from
// `git describe` and `git rev-parse`. They are never written at run time.
var (
	version string
	commit  string
)

// Version is the release this binary was built as: the link-time version,
// else the module version the Go toolchain recorded, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Commit is the git commit the binary was built from: the link-time value,
// else the revision `go build` recorded from the checkout ("-dirty" when it
// had uncommitted changes), else "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified == "true" {
			rev += "-dirty"
		}
		if rev != "" {
			return rev
		}
	}
	return "unknown"
}

func cmdVersion() *Command {
	return &Command{Name: "version", Summary: "print the version, commit, TensorFlow Lite and Go versions", Run: func(ctx context.Context, env *Env, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments")
		}
		// The first line stays "inspectd VERSION" for scripts that read it.
		fmt.Fprintf(env.Stdout, "inspectd %s\ncommit   %s\ntflite   %s\njpeg     %s\ngo       %s %s/%s\n",
			Version(), Commit(), backbone.TFLiteVersion(), capture.JPEGDecoderName(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}}
}
