package daemon

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inspectd/inspectd/config"
)

// TestSourceRefusalsNameTheirField: a push refused for its frame source (a
// capture.file.path or capture.folder.path that is not there) named the
// key in its words ("capture.file.path: file source: stat …") but its
// reply had no field, which every other refusal of a value has; it names
// the key now, config.capture.file.path or config.capture.folder.path
// (real mosquitto, real files). A capture.roi that the file's image is too
// small for was refused with no field either ("capture roi/rotate: roi …
// does not fit in the 64x48 image of file …"): it is config.capture.roi.
func TestSourceRefusalsNameTheirField(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, _ := startModelPushRig(t, "cellsrcfield")
	small := filepath.Join(r.dir, "small.png")
	writeGrayPNG(t, small, 64, 48)
	for i, p := range []struct{ config, field string }{
		{`{"capture":{"source":"file","file":{"path":"` + small + `"},"roi":{"x":8,"y":8,"width":128,"height":96}}}`, "config.capture.roi"},
		{`{"capture":{"source":"file","file":{"path":"` + filepath.Join(r.dir, "no-such-part.png") + `"}}}`, "config.capture.file.path"},
		{`{"capture":{"source":"folder","folder":{"path":"` + filepath.Join(r.dir, "no-such-frames") + `"}}}`, "config.capture.folder.path"},
	} {
		rep := op.reply("cellsrcfield", "config", fmt.Sprintf(`{"id":"sf%d","config":%s}`, i, p.config), 60*time.Second)
		if rep["ok"] != false || rep["code"] != "failed" || rep["field"] != p.field {
			t.Errorf("push of %s: %v, want it refused, code failed, field %s", p.config, rep, p.field)
		}
		// The message is as it was: it names the key itself.
		if msg := fmt.Sprint(rep["error"]); !strings.Contains(msg, strings.TrimPrefix(p.field, "config.")+": ") {
			t.Errorf("push of %s: error %q does not name the key", p.config, msg)
		}
	}
	if src := d.Config().Capture.Source; src != "" && src != "synthetic" {
		t.Errorf("capture.source %q in force after the refusals, want the synthetic line kept", src)
	}
}

// TestDryRunRefusesTheSourceThePushRefuses: a dry run of a push setting
// capture.source file with a file that is not there answered ok, while the
// push was refused for that file. The dry run opens the source as the
// push's apply does (openChangedSource) and is refused in the same words,
// under the same field, for a missing file, a file that is no image and a
// folder that is not there; the running source stays, no reload failure
// is counted, and a dry run of a file that is there still answers ok
// (real mosquitto, real files).
func TestDryRunRefusesTheSourceThePushRefuses(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, _ := startModelPushRig(t, "cellsrcdry")
	junk := plainFile(t, r.dir, "junk.png", "not a png")
	small := filepath.Join(r.dir, "small.png")
	writeGrayPNG(t, small, 64, 48)
	for i, p := range []struct{ config, field string }{
		{`{"capture":{"source":"file","file":{"path":"` + small + `"},"roi":{"x":8,"y":8,"width":128,"height":96}}}`, "config.capture.roi"},
		{`{"capture":{"source":"file","file":{"path":"` + filepath.Join(r.dir, "no-such-part.png") + `"}}}`, "config.capture.file.path"},
		{`{"capture":{"source":"file","file":{"path":"` + junk + `"}}}`, "config.capture.file.path"},
		{`{"capture":{"source":"folder","folder":{"path":"` + filepath.Join(r.dir, "no-such-frames") + `"}}}`, "config.capture.folder.path"},
	} {
		before := testutil.ToFloat64(d.metrics.ReloadFailures)
		dry := op.reply("cellsrcdry", "config", fmt.Sprintf(`{"id":"sd%d-dry","config":%s,"dry_run":true}`, i, p.config), 60*time.Second)
		failures := testutil.ToFloat64(d.metrics.ReloadFailures) - before
		push := op.reply("cellsrcdry", "config", fmt.Sprintf(`{"id":"sd%d","config":%s}`, i, p.config), 60*time.Second)
		if dry["ok"] != false || dry["field"] != push["field"] || dry["code"] != push["code"] {
			t.Errorf("dry run of %s: %v, want it refused as the push is: %v", p.config, dry, push)
		}
		if push["ok"] != false || push["field"] != p.field {
			t.Errorf("push of %s: %v, want it refused under %s", p.config, push, p.field)
		}
		dryWords, _ := strings.CutPrefix(fmt.Sprint(dry["error"]), "dry run: applying this would be refused: ")
		pushWords, _ := strings.CutPrefix(fmt.Sprint(push["error"]), "not applied; the previous configuration is in force: ")
		if dryWords != pushWords {
			t.Errorf("dry run of %s refused as %q, the push as %q: want the same words", p.config, dry["error"], push["error"])
		}
		if failures != 0 {
			t.Errorf("dry run of %s counted %v reload failures", p.config, failures)
		}
	}
	good := filepath.Join(r.dir, "part.png")
	writeGrayPNG(t, good, 160, 120)
	rep := op.reply("cellsrcdry", "config", `{"id":"sd-good","config":{"capture":{"source":"file","file":{"path":"`+good+`"}}},"dry_run":true}`, 60*time.Second)
	if rep["ok"] != true || rep["dry_run"] != true {
		t.Errorf("dry run of a file source that is there: %v, want ok", rep)
	}
	if src := d.Config().Capture.Source; src != "" && src != config.SourceSynthetic {
		t.Errorf("capture.source %q in force after the dry runs, want the synthetic line kept", src)
	}
	r.moreInspections(2)
}
