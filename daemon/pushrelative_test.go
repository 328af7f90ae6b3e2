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
