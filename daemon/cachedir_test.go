package daemon

import (
	"log/slog"
	"testing"

	"github.com/inspectd/inspectd/config"
)

// TestCacheDirectory: under systemd's CacheDirectory= the backbone's
// measured choice goes to $CACHE_DIRECTORY (its first entry), else to
// state_dir.
func TestCacheDirectory(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct{ env, want string }{
		{"", cfg.StateDir},
		{"/var/cache/inspectd", "/var/cache/inspectd"},
		{"/var/cache/inspectd:/var/cache/other", "/var/cache/inspectd"},
	} {
		t.Setenv("CACHE_DIRECTORY", c.env)
		mopts, err := ModelOptions(cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		if got := mopts.Backbone.StateDir; got != c.want {
			t.Errorf("CACHE_DIRECTORY=%q: backbone cache in %q; want %q", c.env, got, c.want)
		}
	}
}

// TestNamedBackboneLoadsEither: model.backbone naming a bundled backbone
// restricts the recipe search to it, while a model file fitted on the
// other bundled one still loads (Installed lists both).
func TestNamedBackboneLoadsEither(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	log := slog.New(slog.DiscardHandler)
	all, err := ModelOptions(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Bundled) < 2 {
		t.Skipf("%d bundled backbones installed", len(all.Bundled))
	}
	cfg.Model.Backbone = "mobilenet_v1"
	named, err := ModelOptions(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(named.Bundled) != 1 || named.Bundled[0].Name != "mobilenet_v1" || len(named.Installed) != len(all.Bundled) {
		t.Errorf("model.backbone mobilenet_v1: search on %v, loads on %v; want v1, and every one of %v", named.Bundled, named.Installed, all.Bundled)
	}
}
