package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// A threshold command's, a refit's install's or a rollback's temporary
// files beside the model file (tempName), and what a save to one of them
// leaves when a kill cuts it short, were named ".m.safetensors.new-…"
// and "..m.safetensors.new-….tmp-…", which atomicfile.RemoveStale (each
// save's, and now the start's) did not take: tens of megabytes each, left
// for good. Once stale they are removed now; a fresh one (a save in
// progress) and another file's are kept.
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
	newTmp := tempName(path, "new")
	stale := []string{
		newTmp,
		tempName(path, "prev"),
		// What a save to newTmp (atomicfile.Write's temporary file
		// beside it) leaves when it is cut short.
		filepath.Join(dir, "."+filepath.Base(newTmp)+".tmp-3914728"),
	}
	for _, p := range stale {
		mk(p, old)
	}
	fresh := tempName(path, "held")
	mk(fresh, time.Now())
	other := tempName(filepath.Join(dir, "other.safetensors"), "new")
	mk(other, old)

	removeStaleModelFiles(path, slog.New(slog.DiscardHandler))
	for _, p := range stale {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("stale %s was kept", filepath.Base(p))
		}
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}
