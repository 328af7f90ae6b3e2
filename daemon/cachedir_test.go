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
