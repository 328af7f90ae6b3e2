package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
)

func cmdRun() *Command {
	return &Command{
		Name:    "run",
		Summary: "run the inspection daemon (capture → backbone → PaDiM → MQTT)",
		Usage:   "[--config FILE] [--print]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "run")
			cfgPath := fs.String("config", "", "configuration file (default: built-in defaults); SIGHUP reloads it")
			print := fs.Bool("print", false, "print one line per inspection")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return usagef("takes no positional arguments")
			}
			// The file is Run's to load (Config left nil): a file that does
			// not load may be a push waiting for config-confirm edited on
			// the box, which Run reverts for the next start. Loaded here, the
			// error ended the command before Run could look.
			o := daemon.RunOptions{ConfigPath: *cfgPath, Version: Version(), Logger: env.Log, LogLevel: daemonLogLevel(env),
				Progress: progressBar(env.Stderr, "fit")}
			if *print {
				o.Print = env.Stdout
			}
			return daemon.Run(ctx, o)
		},
	}
}

// freeLoopback returns a free loopback address, for when the default MQTT
// port is taken by a broker already running on the machine.
func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func cmdDemo() *Command {
	return &Command{
		Name:    "demo",
		Summary: "run the daemon on the built-in defaults: synthetic parts with injected defects, embedded MQTT broker, no camera",
		Usage:   "[--state DIR] [--count N]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "demo")
			state := fs.String("state", "", "state folder for the demo's model and MQTT outbox (default: inspectd-demo in the user cache folder)")
			count := fs.Int("count", 300, "stop after this many inspections (0: run until Ctrl-C)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return usagef("takes no positional arguments")
			}
			cfg := config.Default()
			if *state == "" {
				dir, err := os.UserCacheDir()
				if err != nil {
					dir = os.TempDir()
				}
				*state = filepath.Join(dir, "inspectd-demo")
			}
			cfg.StateDir = *state
			cfg.DeviceID = "demo"
			if !portFree(cfg.MQTT.EmbeddedListen) {
				addr, err := freeLoopback()
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stderr, "port %s is taken (another MQTT broker?): the embedded broker listens on %s instead\n", cfg.MQTT.EmbeddedListen, addr)
				cfg.MQTT.EmbeddedListen = addr
			}
			if !portFree(cfg.HTTP.Listen) {
				addr, err := freeLoopback()
				if err != nil {
					return err
				}
				cfg.HTTP.Listen = addr
			}
			host, port, _ := net.SplitHostPort(cfg.MQTT.EmbeddedListen)
			fmt.Fprintf(env.Stdout, "inspectd demo: synthetic parts (%dx%d, %.0f%% with injected defects) → bundled backbone (the recipe search picks MobileNet v1 or V2) → PaDiM → MQTT\n",
				cfg.Capture.Synthetic.Width, cfg.Capture.Synthetic.Height, 100*cfg.Capture.Synthetic.DefectRate)
			fmt.Fprintf(env.Stdout, "watch it:  mosquitto_sub -h %s -p %s -t 'inspectd/demo/#' -v\n", host, port)
			fmt.Fprintf(env.Stdout, "health:    curl http://%s/healthz   (metrics: /metrics, latest heatmap: /heatmap.jpg)\n", cfg.HTTP.Listen)
			fmt.Fprintf(env.Stdout, "state:     %s (delete it to fit a new model)\n\n", *state)
			return daemon.Run(ctx, daemon.RunOptions{Config: cfg, Print: env.Stdout, Version: Version(), Logger: env.Log,
				Progress: progressBar(env.Stderr, "fit"), MaxInspections: *count})
		},
	}
}
