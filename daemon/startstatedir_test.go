package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
)

// TestStartRefusesStateDirInCheckWords: the start refuses a state_dir that
// cannot be used in the words of config check, a push and a reload
// (StateDirError's), naming state_dir. It printed the raw error instead:
// "state_dir /x/plain.txt/st: stat /x/plain.txt/st: not a directory (set
// state_dir to a writable folder)", and for /proc "mkdir /proc/st: no such
// file or directory". Nothing is created.
func TestStartRefusesStateDirInCheckWords(t *testing.T) {
	file := plainFile(t, t.TempDir(), "plain.txt", "not a folder")
	dirs := []string{filepath.Join(file, "st"), file}
	if dir := unwritableFolder(); dir != "" {
		dirs = append(dirs, filepath.Join(dir, "st"))
	} else {
		t.Log("no folder here refuses a new file to this user: a state_dir that cannot be created is not tried")
	}
	for _, dir := range dirs {
		want := StateDirError(dir)
		if want == nil {
			t.Fatalf("StateDirError(%s) = nil, want a refusal", dir)
		}
		cfg := testDefaults(t)
		cfg.StateDir = dir
		err := Run(context.Background(), RunOptions{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || err.Error() != want.Error() {
			t.Errorf("start on state_dir %s: %v\nwant %v", dir, err, want)
		}
	}
}
