package daemon

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSourceRefusalsNameTheirField: a push refused for its frame source (a
// capture.file.path or capture.folder.path that is not there) named the
// key in its words ("capture.file.path: file source: stat …") but its
// reply had no field, which every other refusal of a value has; it names
// the key now, config.capture.file.path or config.capture.folder.path
// (real mosquitto, real files).
func TestSourceRefusalsNameTheirField(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, _ := startModelPushRig(t, "cellsrcfield")
	for i, p := range []struct{ config, field string }{
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
