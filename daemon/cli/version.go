package cli

import (
	"context"
	"fmt"
	"runtime/debug"
)

// Version is the module version baked in by the Go toolchain.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func cmdVersion() *Command {
	return &Command{Name: "version", Summary: "print the version", Run: func(ctx context.Context, env *Env, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments")
		}
		fmt.Fprintln(env.Stdout, "inspectd", Version())
		return nil
	}}
}
