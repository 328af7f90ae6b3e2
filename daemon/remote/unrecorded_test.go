package remote

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
)

// immutable makes dir unwritable, even to root, with chattr +i, and
// clears it when the test ends; it skips where chattr is refused (not
// root, a file system without the attribute).
func immutable(t *testing.T, dir string) (clear func()) {
	t.Helper()
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v %s", dir, err, out)
	}
	clear = func() {
		if out, err := exec.Command("chattr", "-i", dir).CombinedOutput(); err != nil {
			t.Errorf("chattr -i %s: %v %s", dir, err, out)
		}
	}
	t.Cleanup(clear) // a second -i is harmless
	return clear
}

// A state_dir that cannot be written refused every remote command, status
// and config-get too, naming a temporary file: the box could not even be
// asked what was wrong. Read-only commands are answered unrecorded; those
// that change the box are refused naming state_dir, the folder and why;
// the failure is logged once and reported by StateError (/healthz).
func TestMQTTUnwritableStateDirStillAnswersReadOnly(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b)
	x := startBox(t, b, "box1", unsigned)
	x.ctl.setModel(t)
	x.ready(t, op)
	dir := x.ctl.dir
	clear := immutable(t, dir)

	op.publish(t, "inspectd/box1/cmd/status", []byte(`{"id":"s1"}`), false)
	if r := op.await(t, "inspectd/box1/reply/status", 1); r["ok"] != true || r["device_id"] != "box1" {
		t.Errorf("status with state_dir unwritable: %v", r)
	}
	op.publish(t, "inspectd/box1/cmd/config-get", []byte(`{"id":"g1"}`), false)
	if r := op.await(t, "inspectd/box1/reply/config-get", 1); r["ok"] != true || r["config"] == nil {
		t.Errorf("config-get with state_dir unwritable: %v", r)
	}
	op.publish(t, "inspectd/box1/cmd/threshold", []byte(`{"id":"t1","image":17.5}`), false)
	r := op.await(t, "inspectd/box1/reply/threshold", 1)
	msg, _ := r["error"].(string)
	want := "not executed: the request could not be recorded in state_dir " + dir + " (operation not permitted): " +
		"a command that changes the box is run only once it is recorded, so that a redelivered copy is not run twice; " +
		"look for an immutable or append-only attribute on the folder (lsattr shows it, chattr -i or -a clears it)"
	if r["ok"] != false || msg != want || x.ctl.thresholds.Load() != 0 {
		t.Errorf("threshold with state_dir unwritable: %v (thresholds set %d times)\nwant error %q", r, x.ctl.thresholds.Load(), want)
	}
	if strings.Contains(msg, ".tmp-") {
		t.Errorf("the refusal names the temporary file: %s", msg)
	}
	// A second read-only command: answered, and the failure not logged again.
	op.publish(t, "inspectd/box1/cmd/status", []byte(`{"id":"s2"}`), false)
	if r := op.await(t, "inspectd/box1/reply/status", 2); r["ok"] != true {
		t.Errorf("second status: %v", r)
	}
	if n := x.log.count("requests cannot be recorded in state_dir", dir); n != 1 {
		t.Errorf("the failure logged %d times, want once:\n%s", n, x.log.all())
	}
	if got, want := x.d.StateError(), "state_dir "+dir+" cannot be written: operation not permitted"; !strings.HasPrefix(got, want) {
		t.Errorf("StateError %q, want it to start %q", got, want)
	}

	// Writable again: the command runs, and the health clears.
	clear()
	op.publish(t, "inspectd/box1/cmd/threshold", []byte(`{"id":"t2","image":17.5}`), false)
	if r := op.await(t, "inspectd/box1/reply/threshold", 2); r["ok"] != true || x.ctl.thresholds.Load() != 1 {
		t.Errorf("threshold once writable: %v (thresholds set %d times)", r, x.ctl.thresholds.Load())
	}
	if got := x.d.StateError(); got != "" {
		t.Errorf("StateError once writable: %q", got)
	}
	if n := x.log.count("requests are recorded in state_dir again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}
