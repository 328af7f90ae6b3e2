package daemon

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
)

// TestSourceRefusalNamesItsKey: a start whose file source was not there
// said "capture.source file: file source: stat /x.jpg: no such file or
// directory", naming no key; a folder source's refusal likewise. Each now
// names the key that set what failed.
func TestSourceRefusalNamesItsKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		source config.Source
		key    string
		set    func(*config.Config, string)
	}{
		{config.SourceFile, "capture.file.path", func(c *config.Config, p string) { c.Capture.File.Path = p }},
		{config.SourceFolder, "capture.folder.path", func(c *config.Config, p string) { c.Capture.Folder.Path, c.Capture.Folder.Watch = p, false }},
	} {
		cfg := testDefaults(t)
		cfg.Capture.Source = tc.source
		missing := filepath.Join(dir, "missing-"+string(tc.source))
		tc.set(cfg, missing)
		src, _, _, err := OpenSource(cfg, testLogger(t))
		if src != nil {
			_ = src.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), missing) {
			t.Errorf("%s source at a missing %s: %v, want a refusal beginning %q and naming it", tc.source, missing, err, tc.key+": ")
		}
	}
}
