package daemon

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A state_dir that cannot be written refused every remote command while
// /healthz said ok: the box looked healthy and could not be controlled.
// Now status is answered, a threshold is refused naming state_dir and
// why, and /healthz's mqtt entry is bad, naming the folder, as it is for
// an outbox that cannot write; writable again, both recover (real
// mosquitto, chattr +i as root).
func TestUnwritableStateDirShowsInHealth(t *testing.T) {
	t.Parallel()
	op, r, d, _ := startModelPushRig(t, "cell1")
	state := filepath.Join(r.dir, "state")
	if out, err := exec.Command("chattr", "+i", state).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v %s", state, err, out)
	}
	clear := func() {
		if out, err := exec.Command("chattr", "-i", state).CombinedOutput(); err != nil {
			t.Errorf("chattr -i %s: %v %s", state, err, out)
		}
	}
	t.Cleanup(clear)

	if rep := op.reply("cell1", "status", `{"id":"s1"}`, 30*time.Second); rep["ok"] != true {
		t.Errorf("status with state_dir unwritable: %v", rep)
	}
	rep := op.reply("cell1", "threshold", `{"id":"t1","image":17.5}`, 30*time.Second)
	if msg, _ := rep["error"].(string); rep["ok"] != false || !strings.Contains(msg, "could not be recorded in state_dir "+state+" (operation not permitted)") {
		t.Errorf("threshold with state_dir unwritable: %v", rep)
	}
	h := d.handler.Health()
	want := "remote request table: state_dir " + state + " cannot be written: operation not permitted"
	if h.OK || h.MQTT.OK || !strings.Contains(h.MQTT.Detail, want) {
		t.Errorf("/healthz with state_dir unwritable: ok %v, mqtt %+v; want bad, naming %q", h.OK, h.MQTT, want)
	}

	clear()
	if rep := op.reply("cell1", "threshold", `{"id":"t2","image":17.5}`, 60*time.Second); rep["ok"] != true {
		t.Errorf("threshold once writable: %v", rep)
	}
	if h := d.handler.Health(); !h.MQTT.OK || strings.Contains(h.MQTT.Detail, "state_dir") {
		t.Errorf("/healthz once writable: mqtt %+v", h.MQTT)
	}
	r.stop()
}
