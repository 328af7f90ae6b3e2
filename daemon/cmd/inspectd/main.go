// Command inspectd is the edge visual-inspection daemon: see daemon/cli for
// its sub-commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/inspectd/inspectd/daemon/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
