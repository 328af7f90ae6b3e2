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
	"github.com/inspectd/inspectd/daemon/internal/statelock"
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

// pendingPush writes, under a new folder, a configuration file pushed
// with confirm (capture.synthetic.fps 3) whose push "p5" waits in the
// request table, and returns the file, the state folder and the pushed
// file's text.
func pendingPush(t *testing.T) (path, state, pushedText string) {
	t.Helper()
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "inspectd.yaml")
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
	return path, state, string(body)
}

// breakFile edits the pushed file on the box into one that does not load.
func breakFile(t *testing.T, path, body string) string {
	t.Helper()
	broken := strings.Replace(body, "    fps: 3\n", "    fps: x3\n", 1)
	if broken == body {
		t.Fatalf("no \"    fps: 3\" line in the pushed file:\n%s", body)
	}
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	return broken
}

// TestRunRevertsABrokenEditOfAPendingPush: `inspectd run` on a pushed
// file waiting for config-confirm, edited on the box into one that does
// not load (fps: x3), said only the load error and failed every start the
// same way: the command loaded the file itself and returned before the
// daemon looked for the push. Through the command now, the start puts the
// configuration before the push back, keeps the broken edit as .prev,
// ends the wait and says so, and the next start runs on that file.
func TestRunRevertsABrokenEditOfAPendingPush(t *testing.T) {
	path, state, body := pendingPush(t)
	before := config.Default()
	broken := breakFile(t, path, body)

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

// TestRunBesideARunningDaemonRevertsNothing: a second `inspectd run` on
// the configuration of a daemon running with a push waiting (its file
// loading, or edited on the box into one that does not load) failed on
// the state folder's lock, or on the load error, and then reverted the
// running daemon's push under it: the file, .prev, the request table and
// the ended-wait record rewritten while that daemon went on calling the
// push pending, confirmed it, and ran on the reverted file at its next
// start. With the folder's lock held by another process, nothing is
// written and the command says why it did not start.
func TestRunBesideARunningDaemonRevertsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit bool
		want string
	}{
		{"pushed file", false, "in use by another inspectd"},
		{"broken edit", true, `capture.synthetic.fps: expected an integer, got "x3"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, state, body := pendingPush(t)
			if tc.edit {
				breakFile(t, path, body)
			}
			lock, err := statelock.Take(state) // the running daemon's
			if err != nil {
				t.Fatal(err)
			}
			defer lock.Release()
			files := []string{path, config.PreviousPath(path), filepath.Join(state, remote.StateFile), filepath.Join(state, remote.EndedFile)}
			read := func() []string {
				var out []string
				for _, f := range files {
					b, _ := os.ReadFile(f)
					out = append(out, string(b))
				}
				return out
			}
			before := read()
			code, _, errs := runConfigCLI("run", "--config", path)
			if code != 1 || !strings.Contains(errs, tc.want) || strings.Contains(errs, "is reverted") {
				t.Fatalf("second run: exit %d, stderr:\n%s", code, errs)
			}
			if tc.edit && !strings.Contains(errs, "another inspectd runs on its state_dir: nothing reverted") {
				t.Errorf("no line saying why nothing was reverted:\n%s", errs)
			}
			for i, after := range read() {
				if after != before[i] {
					t.Errorf("%s changed under the running daemon:\nbefore %q\nafter  %q", files[i], before[i], after)
				}
			}
		})
	}
}
