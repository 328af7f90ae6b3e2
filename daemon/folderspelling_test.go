package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPushOfTheCaptureFolderSpelledOtherwiseIsNoChange: a push of
// capture.folder.path naming the folder in force spelled otherwise
// ("frames/", "x/../frames", a relative path to it) counted as a change:
// capture was restarted, and the watched folder's source was built again
// to go on after the files it had inspected. Such a push changes nothing
// of capture now (its other settings are applied, the spelling in force
// kept), and a push of another folder is still a change (real mosquitto,
// real files).
func TestPushOfTheCaptureFolderSpelledOtherwiseIsNoChange(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, _ := startModelPushRig(t, "cellspell")
	frames, other := filepath.Join(r.dir, "frames"), filepath.Join(r.dir, "frames2")
	for _, dir := range []string{frames, other} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeGrayPNG(t, filepath.Join(dir, "a.png"), 160, 120)
	}
	folder := func(path string) string {
		return fmt.Sprintf(`"capture":{"source":"folder","folder":{"path":%q,"watch":true}}`, path)
	}
	restarted := func(rep map[string]any) []string {
		var out []string
		if l, ok := rep["restarted"].([]any); ok {
			for _, v := range l {
				out = append(out, fmt.Sprint(v))
			}
		}
		return out
	}
	if rep := op.reply("cellspell", "config", `{"id":"sp0","config":{`+folder(frames)+`}}`, 60*time.Second); rep["ok"] != true || !slices.Contains(restarted(rep), "capture") {
		t.Fatalf("push of the folder source %s: %v", frames, rep)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, frames)
	if err != nil {
		t.Fatal(err)
	}
	for i, spelled := range []string{frames + "/", r.dir + "/x/../frames", r.dir + "/./frames", rel} {
		rep := op.reply("cellspell", "config", fmt.Sprintf(`{"id":"sp%d","config":{%s,"mqtt":{"result_qos":%d}}}`, i+1, folder(spelled), (i+1)%2), 60*time.Second)
		if rep["ok"] != true || fmt.Sprint(rep["changed"]) != "[mqtt.result_qos]" || slices.Contains(restarted(rep), "capture") || slices.Contains(restarted(rep), "pipeline") {
			t.Errorf("push of capture.folder.path %q for %s in force, with mqtt.result_qos: %v, want only mqtt.result_qos changed, capture not restarted", spelled, frames, rep)
		}
		if got := d.Config().Capture.Folder.Path; got != frames {
			t.Errorf("capture.folder.path in force after the push of %q: %q, want the spelling in force %q", spelled, got, frames)
		}
		alone := op.reply("cellspell", "config", fmt.Sprintf(`{"id":"spa%d","config":{%s}}`, i+1, folder(spelled)), 60*time.Second)
		if alone["ok"] != true || alone["applied"] != false || fmt.Sprint(alone["changed"]) != "[]" {
			t.Errorf("push of capture.folder.path %q alone for %s in force: %v, want nothing to change", spelled, frames, alone)
		}
	}
	rep := op.reply("cellspell", "config", `{"id":"spother","config":{`+folder(other)+`}}`, 60*time.Second)
	if rep["ok"] != true || fmt.Sprint(rep["changed"]) != "[capture.folder.path]" || !slices.Contains(restarted(rep), "capture") {
		t.Errorf("push of another folder %s: %v, want capture.folder.path changed and capture restarted", other, rep)
	}
}

// TestPushOfTheCaptureFileSpelledOtherwiseIsNoChange: a push of
// capture.file.path naming the file in force spelled otherwise
// ("./part.png", "x/../part.png", a relative path to it) counted as a
// change and rebuilt the file source for the same file. Such a push changes
// nothing of capture now (the spelling in force kept), and a push of
// another file is still a change (real mosquitto, real files).
func TestPushOfTheCaptureFileSpelledOtherwiseIsNoChange(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, _ := startModelPushRig(t, "filespell")
	part, other := filepath.Join(r.dir, "part.png"), filepath.Join(r.dir, "other.png")
	for _, f := range []string{part, other} {
		writeGrayPNG(t, f, 160, 120)
	}
	file := func(path string) string {
		return fmt.Sprintf(`"capture":{"source":"file","file":{"path":%q}}`, path)
	}
	restartedCapture := func(rep map[string]any) bool {
		l, _ := rep["restarted"].([]any)
		return slices.ContainsFunc(l, func(v any) bool { return v == "capture" || v == "pipeline" })
	}
	if rep := op.reply("filespell", "config", `{"id":"fs0","config":{`+file(part)+`}}`, 60*time.Second); rep["ok"] != true || !restartedCapture(rep) {
		t.Fatalf("push of the file source %s: %v", part, rep)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, part)
	if err != nil {
		t.Fatal(err)
	}
	for i, spelled := range []string{r.dir + "/x/../part.png", r.dir + "/./part.png", rel} {
		rep := op.reply("filespell", "config", fmt.Sprintf(`{"id":"fs%d","config":{%s,"mqtt":{"result_qos":%d}}}`, i+1, file(spelled), (i+1)%2), 60*time.Second)
		if rep["ok"] != true || fmt.Sprint(rep["changed"]) != "[mqtt.result_qos]" || restartedCapture(rep) {
			t.Errorf("push of capture.file.path %q for %s in force, with mqtt.result_qos: %v, want only mqtt.result_qos changed, capture not restarted", spelled, part, rep)
		}
		if got := d.Config().Capture.File.Path; got != part {
			t.Errorf("capture.file.path in force after the push of %q: %q, want the spelling in force %q", spelled, got, part)
		}
	}
	rep := op.reply("filespell", "config", `{"id":"fsother","config":{`+file(other)+`}}`, 60*time.Second)
	if rep["ok"] != true || fmt.Sprint(rep["changed"]) != "[capture.file.path]" || !restartedCapture(rep) {
		t.Errorf("push of another file %s: %v, want capture.file.path changed and capture restarted", other, rep)
	}
}
