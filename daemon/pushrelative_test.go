package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPushNamesARelativePathWhereItLands: a push of a relative
// capture.folder.path was applied, and its dry run answered ok, without a
// word, though the daemon takes it from its own working directory (/ under
// systemd), which the operator who pushes it does not see. The dry run and
// the push now note where it lands; a later push that leaves it as it is
// does not say it again (real mosquitto, real files).
func TestPushNamesARelativePathWhereItLands(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, _, d, _ := startModelPushRig(t, "cellrel")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel := "no-such-frames-" + fmt.Sprint(time.Now().UnixNano())
	want := "capture.folder.path: " + rel + " is relative: taken from the working directory " + wd + " as " + filepath.Join(wd, rel)
	push := `{"capture":{"source":"folder","folder":{"path":"` + rel + `","watch":true}}}`
	for _, dry := range []bool{true, false} {
		rep := op.reply("cellrel", "config", fmt.Sprintf(`{"id":"rel-%t","config":%s,"dry_run":%t}`, dry, push, dry), 60*time.Second)
		if rep["ok"] != true || !strings.Contains(fmt.Sprint(rep["note"]), want) {
			t.Errorf("push of a relative capture.folder.path (dry run %t): %v, want ok with a note %q", dry, rep, want)
		}
	}
	if got := d.Config().Capture.Folder.Path; got != rel {
		t.Fatalf("capture.folder.path %q in force, want %q", got, rel)
	}
	rep := op.reply("cellrel", "config", `{"id":"qos","config":{"mqtt":{"result_qos":1}}}`, 60*time.Second)
	if rep["ok"] != true || strings.Contains(fmt.Sprint(rep["note"]), "relative") {
		t.Errorf("push of another setting: %v, want ok without a note of the relative path it leaves as it is", rep)
	}
}

// TestPushRefusalNamesARelativePathWhereItLands: a push (and its dry run)
// refused for a relative path that is not on the box ("model.path: folder
// no-such-line/ does not exist") did not say where the daemon looked: the
// note of where a relative path lands came only with a push applied, and
// the operator looked beside the configuration file. The refusal says it
// now, keeping its key.
func TestPushRefusalNamesARelativePathWhereItLands(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, _, _, _ := startModelPushRig(t, "cellrelno")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join("no-such-line-"+fmt.Sprint(time.Now().UnixNano()), "m.safetensors")
	want := "model.path: " + rel + " is relative: taken from the working directory " + wd + " as " + filepath.Join(wd, rel)
	for _, dry := range []bool{true, false} {
		rep := op.reply("cellrelno", "config", fmt.Sprintf(`{"id":"relno-%t","config":{"model":{"path":%q}},"dry_run":%t}`, dry, rel, dry), 60*time.Second)
		if rep["ok"] != false || rep["field"] != "config.model.path" || !strings.Contains(fmt.Sprint(rep["error"]), want) {
			t.Errorf("push of a relative model.path in a folder that is not there (dry run %t): %v, want it refused naming config.model.path and saying %q", dry, rep, want)
		}
	}
}

// TestPushAppliedAndRefusedNamesARelativePathWhereItLands: a push refused
// as it was applied for a relative path not on the box (a file source's
// capture.file.path "nofile.png") said "stat nofile.png: no such file or
// directory" without where the daemon looked, the dry run having said
// where it lands; the refusal says it too now.
func TestPushAppliedAndRefusedNamesARelativePathWhereItLands(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, _, _, _ := startModelPushRig(t, "cellrelapply")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel := "no-such-part-" + fmt.Sprint(time.Now().UnixNano()) + ".png"
	want := "capture.file.path: " + rel + " is relative: taken from the working directory " + wd + " as " + filepath.Join(wd, rel)
	rep := op.reply("cellrelapply", "config", `{"id":"relapply","config":{"capture":{"source":"file","file":{"path":"`+rel+`"}}}}`, 60*time.Second)
	if rep["ok"] != false || !strings.Contains(fmt.Sprint(rep["error"]), want) {
		t.Errorf("push of a relative capture.file.path that is not there: %v, want it refused saying %q", rep, want)
	}
}
