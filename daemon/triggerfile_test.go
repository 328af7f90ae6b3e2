package daemon

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// A trigger answered with a folder source's skipped file (a corrupt part)
// had its error answer forgotten, as one with no part is: the same id
// again (a QoS 1 redelivery, or a PLC retrying the part) took the next
// file, another part, and answered it under that id; every later trigger
// then got the file after its own. An error answer that took a file is
// stored: the id is answered again with it, and the next file waits for
// the next trigger.
func TestTriggerRepeatedAfterASkippedFileTakesNoOtherFile(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	if err := os.Mkdir(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(frames, "a.png")
	if err := os.WriteFile(corrupt, []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute) // long written: answered at once, not waited for
	if err := os.Chtimes(corrupt, old, old); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b.png", "c.png"} {
		var buf bytes.Buffer
		if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(frames, n), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := folderTriggerLine(t, frames)
	l.firstTrigger("p1")
	l.trigger(`{"id":"p1","time":"` + now() + `"}`)
	time.Sleep(time.Second)
	l.trigger(`{"id":"p2","time":"` + now() + `"}`)
	if r := l.waitAnswer("p2"); r.File != "b.png" {
		t.Errorf("p2 answered with %q (%s %q), want b.png, the file after p1's", r.File, r.Verdict, r.Error)
	}
	for _, r := range l.answers("p1") {
		if r.File != "a.png" || r.Verdict != VerdictError {
			t.Errorf("p1 answered with %q (%s %q), want a.png's error again", r.File, r.Verdict, r.Error)
		}
	}
}

// folderTriggerLine is a trigger-mode daemon on a real mosquitto that
// inspects the watched folder frames.
func folderTriggerLine(t *testing.T, frames string) *triggerLine {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{})
	det := syntheticDetector(t)
	return startTriggerLine(t, b, func(r *runningDaemon) string {
		r.withModel(det)
		return r.triggerMode(strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}}", 1), b.URL, "")
	})
}

// now is a trigger's "time": sent now.
func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// firstTrigger sends the trigger id until it is answered: those sent
// before the daemon subscribed are lost.
func (l *triggerLine) firstTrigger(id string) mqttpub.Result {
	l.t.Helper()
	l.waitFor("the answer to "+id, func() bool {
		l.trigger(`{"id":"` + id + `","time":"` + now() + `"}`)
		time.Sleep(300 * time.Millisecond)
		return len(l.answers(id)) > 0
	})
	return l.answers(id)[0]
}

// A trigger that took a folder's corrupt file set the capture health's
// error that only a good frame clears: an idle trigger-mode folder line
// said "capture: no good frame for 2m45s …; last error: trigger "p1": file
// g12.png skipped" on /healthz and degraded on the retained status, for
// good, after one bad part. The skipped file is judged as a free-run
// folder's is (the source counts it; the run rule weighs it): one corrupt
// part after an idle spell leaves the health as it was.
func TestTriggeredCorruptFileInIdleFolderStaysHealthy(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	if err := os.Mkdir(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(frames, "a.png"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	l := folderTriggerLine(t, frames)
	if r := l.firstTrigger("p1"); r.Verdict == VerdictError {
		t.Fatalf("p1 answered %s %q, want a.png inspected", r.Verdict, r.Error)
	}
	// The line has been idle a minute; then a corrupt part.
	d := l.daemon()
	d.pipe.Load().health.lastGood.Store(time.Now().Add(-time.Minute).UnixNano())
	corrupt := filepath.Join(frames, "b.png")
	if err := os.WriteFile(corrupt, []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute) // long written: answered at once, not waited for
	if err := os.Chtimes(corrupt, old, old); err != nil {
		t.Fatal(err)
	}
	l.trigger(`{"id":"p2","time":"` + now() + `"}`)
	if r := l.waitAnswer("p2"); r.Verdict != VerdictError || r.File != "b.png" {
		t.Fatalf("p2 answered %q %s %q, want b.png's error", r.File, r.Verdict, r.Error)
	}
	for range 5 {
		if ok, why := d.pipe.Load().CameraHealth(); !ok {
			t.Fatalf("camera health after one corrupt part in an idle trigger-mode folder: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
