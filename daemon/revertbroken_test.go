package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/remote"
)

// TestRunRevertsABrokenEditOfAPendingPush: a pushed configuration waiting
// for config-confirm, edited on the box into a file that does not load,
// failed every start on that file (Run returned before looking for the
// push, as the file named no state_dir): now the start puts the
// configuration before the push back, the broken edit kept as .prev, and
// says so, so that the next start runs.
func TestRunRevertsABrokenEditOfAPendingPush(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "inspectd.yaml")
	before := config.Default()
	before.StateDir = state
	if err := config.Save(path, before); err != nil {
		t.Fatal(err)
	}
	pushed := before.Clone()
	pushed.MQTT.ResultQoS = 1
	if err := config.SaveKeepPrevious(path, pushed); err != nil {
		t.Fatal(err)
	}
	sum := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		return hex.EncodeToString(h[:])
	}
	now := time.Now()
	table, err := json.Marshal(map[string]any{"format": 1, "config_pending": map[string]any{
		"id": "c1", "origin": "test", "deadline": now.Add(time.Hour), "applied_at": now,
		"before_sha256": sum(config.PreviousPath(path)), "after_sha256": sum(path)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, remote.StateFile), table, 0o600); err != nil {
		t.Fatal(err)
	}
	broken := []byte("mqtt: {result_qos: [\n")
	if err := os.WriteFile(path, broken, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	err = Run(t.Context(), RunOptions{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil || !strings.Contains(err.Error(), `configuration push "c1"`) || !strings.Contains(err.Error(), "is reverted") {
		t.Fatalf("Run on a broken edit of a pending push: %v", err)
	}
	if c, err := config.Load(path, ConfigRules()...); err != nil || c.MQTT.ResultQoS != 0 {
		t.Errorf("the file after the start's revert: %v, %v", c, err)
	}
	if got, err := os.ReadFile(config.PreviousPath(path)); err != nil || string(got) != string(broken) {
		t.Errorf("the broken edit not kept as .prev: %q %v", got, err)
	}
	if !strings.Contains(logs.String(), "does not load; reverting the push for the next start") || !strings.Contains(logs.String(), "file="+path) {
		t.Errorf("no log line naming the file:\n%s", logs.String())
	}
}
