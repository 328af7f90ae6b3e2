package cli

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
)

// `inspectd fit` made a state_dir that was not there in an append-only
// folder (chattr +a), where `inspectd run` and `config check` refuse to
// make it (a folder made there can never be removed): for the model file
// it saves there, and for the backbone variant's cache even where the
// model went elsewhere. A fit whose model goes in state_dir is refused
// now, before the fit, in run's words; one whose model goes elsewhere
// fits without caching the variant, and makes no state_dir.
func TestFitMakesNoStateDirTheDaemonWouldNot(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 5, 2, 3)
	appendOnly := filepath.Join(dir, "var")
	if err := os.Mkdir(appendOnly, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(appendOnly, "inspectd")
	cfg := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+state+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chattr(t, "+a", appendOnly)
	// What config check says of this state_dir, as run does.
	_, checkOut, checkErr := runCaptureCmd(t, "config", "check", cfg)
	checked := checkOut + checkErr
	var says string
	for _, l := range strings.Split(checked, "\n") {
		if i := strings.Index(l, "state_dir: "+state+" does not exist and cannot be created"); i >= 0 {
			says = strings.TrimSpace(l[i:])
		}
	}
	if says == "" {
		t.Fatalf("config check says nothing of state_dir %s in an append-only folder:\n%s", state, checked)
	}
	code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg)
	if code == 0 || !strings.Contains(stderr, says) || strings.Contains(stderr, "fit done") {
		t.Errorf("fit into state_dir %s: exit %d, %q; want it refused before the fit saying %q", state, code, stderr, says)
	}
	if _, err := os.Lstat(state); err == nil {
		t.Fatalf("fit into the model file in state_dir made %s", state)
	}
	m := filepath.Join(dir, "m.safetensors")
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", m); code != 0 {
		t.Fatalf("fit --out %s: exit %d, %s", m, code, stderr)
	}
	if _, err := os.Lstat(state); err == nil {
		t.Errorf("fit --out %s made state_dir %s in an append-only folder", m, state)
	}
}

// The backbone variant's choice is cached in state_dir: a fit (or eval,
// or bench) made the state_dir to keep it, in an append-only folder too,
// where the daemon refuses to make it. There it is not cached (measured
// again at each run); a state_dir the daemon would make keeps it.
func TestNoBackboneCacheInAStateDirTheDaemonWouldNotMake(t *testing.T) {
	dir := t.TempDir()
	appendOnly := filepath.Join(dir, "var")
	if err := os.Mkdir(appendOnly, 0o755); err != nil {
		t.Fatal(err)
	}
	chattr(t, "+a", appendOnly)
	env := &Env{Log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct{ state, want string }{
		{filepath.Join(appendOnly, "inspectd"), ""},
		{filepath.Join(dir, "inspectd"), filepath.Join(dir, "inspectd")},
	} {
		cfg := config.Default()
		cfg.StateDir = c.state
		opts, err := benchOptions(cfg, env, "")
		if err != nil {
			t.Fatal(err)
		}
		if opts.Backbone.StateDir != c.want {
			t.Errorf("state_dir %s: the backbone's cache in %q, want %q", c.state, opts.Backbone.StateDir, c.want)
		}
	}
}
