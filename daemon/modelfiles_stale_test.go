package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// A threshold command's, a refit's install's or a rollback's new model
// file beside the model file (tempName "new"), and what a save to one of
// them leaves when a kill cuts it short, were named ".m.safetensors.new-…"
// and "..m.safetensors.new-….tmp-…", which atomicfile.RemoveStale (each
// save's, and now the start's) did not take: tens of megabytes each, left
// for good. Once stale they are removed now; a fresh one (a save in
// progress) and another file's are kept. A copy of the model a command
// replaces (tempName "prev", "held") is never removed: a kill between an
// install's renames leaves that model in it alone; the start names it in a
// warning with what to do, and removes what a save to it cut short left.
func TestStaleModelTempFilesAreRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	old := time.Now().Add(-atomicfile.StaleAfter - time.Minute)
	mk := func(p string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(p, []byte("a model cut short"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	newTmp, prevTmp, held := tempName(path, "new"), tempName(path, "prev"), tempName(path, "held")
	stale := []string{
		newTmp,
		// What a save to newTmp or prevTmp (atomicfile.Write's temporary
		// file beside it) leaves when it is cut short.
		filepath.Join(dir, "."+filepath.Base(newTmp)+".tmp-3914728"),
		filepath.Join(dir, "."+filepath.Base(prevTmp)+".tmp-3914729"),
		// ... and a save to a copy that was never made.
		filepath.Join(dir, "."+filepath.Base(tempName(path, "prev"))+".tmp-3914730"),
	}
	for _, p := range append(stale, prevTmp, held) {
		mk(p, old)
	}
	fresh := tempName(path, "new")
	mk(fresh, time.Now())
	other := tempName(filepath.Join(dir, "other.safetensors"), "new")
	mk(other, old)

	var logged strings.Builder
	removeStaleModelFiles(path, slog.New(slog.NewTextHandler(&logged, nil)))
	for _, p := range stale {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("stale %s was kept", filepath.Base(p))
		}
	}
	for _, p := range []string{fresh, other, prevTmp, held} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
	for _, p := range []string{prevTmp, held} {
		if !strings.Contains(logged.String(), "file="+p) {
			t.Errorf("the start does not name the copy of the replaced model %s:\n%s", p, logged.String())
		}
	}
	if n := strings.Count(logged.String(), "move it to the prev file and send rollback with target model"); n != 2 {
		t.Errorf("%d warnings with the remedy, want 2:\n%s", n, logged.String())
	}
}
