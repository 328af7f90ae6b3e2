package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/remote"
)

// fileSum is the hex SHA-256 of a file, as the request table records it.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestRunRevertsABrokenEditOfAPendingPush: `inspectd run` on a pushed
// file waiting for config-confirm, edited on the box into one that does
// not load (fps: x3), said only the load error and failed every start the
// same way: the command loaded the file itself and returned before the
// daemon looked for the push. Through the command now, the start puts the
// configuration before the push back, keeps the broken edit as .prev,
// ends the wait and says so, and the next start runs on that file.
func TestRunRevertsABrokenEditOfAPendingPush(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "inspectd.yaml")
	before := config.Default()
	before.StateDir = state
	before.HTTP.Listen = ""
	if err := config.Save(path, before); err != nil {
		t.Fatal(err)
	}
	pushed := before.Clone()
	pushed.Capture.Synthetic.FPS = 3
	if err := config.SaveKeepPrevious(path, pushed); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	table, err := json.Marshal(map[string]any{"format": 1, "config_pending": map[string]any{
		"id": "p5", "origin": "mqtt", "deadline": now.Add(2 * time.Minute), "applied_at": now,
		"before_sha256": fileSum(t, config.PreviousPath(path)), "after_sha256": fileSum(t, path)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, remote.StateFile), table, 0o600); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(body), "    fps: 3\n", "    fps: x3\n", 1)
	if broken == string(body) {
		t.Fatalf("no \"    fps: 3\" line in the pushed file:\n%s", body)
	}
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}

	code, _, errs := runConfigCLI("run", "--config", path)
	if code != 1 || !strings.Contains(errs, `capture.synthetic.fps: expected an integer, got "x3"`) ||
		!strings.Contains(errs, `configuration push "p5", which waited for config-confirm, is reverted`) {
		t.Fatalf("run on a broken edit of a pending push: exit %d, stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, "does not load; reverting the push for the next start") || !strings.Contains(errs, "file="+path) {
		t.Errorf("no log line naming the file:\n%s", errs)
	}
	if c, err := config.Load(path); err != nil || c.Capture.Synthetic.FPS != before.Capture.Synthetic.FPS {
		t.Errorf("the file after the start's revert: %v, %v", c, err)
	}
	if got, err := os.ReadFile(config.PreviousPath(path)); err != nil || string(got) != broken {
		t.Errorf("the broken edit not kept as .prev: %q %v", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(state, remote.StateFile)); err != nil || strings.Contains(string(b), "config_pending") {
		t.Errorf("the push still waits in the request table: %s %v", b, err)
	}
}
