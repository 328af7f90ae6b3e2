package remote

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// `inspectd run` whose start failed (its state_dir refused as append-only,
// chattr +a, among others) asked RevertUnstartable whether a push waited
// for config-confirm, and it took the state folder's lock first: the lock
// file it made there stayed in an append-only folder for good, though the
// start's own check had left nothing there. A folder with no request table
// and no moved-table note holds no push to revert: nothing is made in it.
func TestRevertUnstartableWithNoTableMakesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "inspectd.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := RevertUnstartable(cfg, dir, errors.New("state_dir refused"), time.Now(), nil)
	if id != "" || err != nil {
		t.Fatalf("RevertUnstartable with no request table: %q, %v; want nothing reverted", id, err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("RevertUnstartable with nothing to revert left in the state folder: %v (%v)", entries, err)
	}
}
