package daemon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestModelFolderUnderAFileNamesTheKey: a model.path whose folder is a
// plain file, or lies under one, was refused at once by the start, a
// SIGHUP reload and config check with stat's words alone ("model
// /x/file.txt/m.bin: stat …: not a directory"), without model.path, where
// a missing folder's refusal names the key. Each now names model.path and
// the folder, as the push and its dry run do
// (TestPushOfAModelFileInAMissingFolderIsRefusedAtOnce).
func TestModelFolderUnderAFileNamesTheKey(t *testing.T) {
	wordsOnly(t)
	file := plainFile(t, t.TempDir(), "file.txt", "not a folder")
	cases := []struct{ path, folder, why string }{
		{filepath.Join(file, "model.bin"), file, "folder " + file + " is a file, not a folder"},
		{filepath.Join(file, "sub", "model.bin"), filepath.Join(file, "sub"), "folder " + filepath.Join(file, "sub") + " is not a folder: " + file + " is a file"},
	}
	named := func(msg string, path, why string) bool {
		return strings.Contains(msg, "model.path") && strings.Contains(msg, path) && strings.Contains(msg, why)
	}

	// config check.
	for _, tc := range cases {
		cfg := testDefaults(t)
		cfg.Model.Path = tc.path
		var found bool
		for _, f := range Preflight(cfg, testLogger(t)) {
			if f.Field == "model.path" && f.Fatal {
				found = named(f.String(), tc.path, tc.why)
				if !found {
					t.Errorf("config check of %s: %s, want it to name model.path and %q", tc.path, f, tc.why)
				}
			}
		}
		if !found {
			t.Errorf("config check of %s: no fatal model.path finding", tc.path)
		}
	}

	// The start.
	for _, tc := range cases {
		r := startDaemon(t, func(r *runningDaemon) string {
			return strings.Replace(r.baseYAML("cell1"), "model: {", "model: {path: "+tc.path+", ", 1)
		})
		select {
		case err := <-r.done:
			r.done <- err // for the cleanup
			if err == nil || !named(err.Error(), tc.path, tc.why) {
				t.Errorf("start with model.path %s: %v, want it to name model.path and %q", tc.path, err, tc.why)
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("the daemon did not stop on model.path %s", tc.path)
		}
	}

	// A SIGHUP reload: refused, the running model kept.
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return r.baseYAML("cell1")
	})
	d := r.daemon()
	for i, tc := range cases {
		r.write(strings.Replace(r.baseYAML("cell1"), "model: {", "model: {path: "+tc.path+", ", 1))
		mark := len(r.logs.String())
		r.hup()
		r.waitFor("the reload refused", func() bool { return testutil.ToFloat64(d.metrics.ReloadFailures) == float64(i+1) })
		after := r.logs.String()[mark:]
		if !strings.Contains(after, "configuration not reloaded") || !named(after, tc.path, tc.why) {
			t.Errorf("reload to model.path %s: log\n%s\nwant the refusal to name model.path and %q", tc.path, after, tc.why)
		}
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the refused reloads, want %s", got, det.Info().ID)
	}
}
