package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	reply := json.RawMessage(`{"applied":true,"changed":["capture.synthetic.fps"],"id":"p5","ok":true,"restarted":["capture"],"revert_at":"x","version":0}`)
	table, err := json.Marshal(map[string]any{"format": 1, "requests": []any{map[string]any{"name": "config", "id": "p5", "origin": "mqtt", "at": now, "done": true, "reply": reply}},
		"config_pending": map[string]any{
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
	// Recorded as the deadline's revert: the stored reply marked reverted,
	// why the wait ended, and the config-revert event for the next start.
	var after struct {
		Requests []struct {
			ID    string         `json:"id"`
			Reply map[string]any `json:"reply"`
		} `json:"requests"`
		Pending     json.RawMessage `json:"config_pending"`
		Unpublished map[string]any  `json:"config_revert_unpublished"`
	}
	if b, err := os.ReadFile(filepath.Join(state, remote.StateFile)); err != nil || json.Unmarshal(b, &after) != nil || after.Pending != nil {
		t.Errorf("the push still waits in the request table: %s %v", b, err)
	}
	if len(after.Requests) != 1 || after.Requests[0].Reply["reverted"] != true {
		t.Errorf("the push's stored reply not marked reverted: %+v", after.Requests)
	}
	if ev := after.Unpublished; ev["id"] != "p5" || ev["reverted"] != true || !strings.Contains(fmt.Sprint(ev["note"]), `got "x3"`) {
		t.Errorf("config-revert event kept for the next start: %v", ev)
	}
	if b, err := os.ReadFile(filepath.Join(state, remote.EndedFile)); err != nil || !strings.Contains(string(b), `"id":"p5"`) || !strings.Contains(string(b), "does not load") {
		t.Errorf("why the wait ended not recorded: %s %v", b, err)
	}
}
