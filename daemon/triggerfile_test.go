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
	b := testbroker.Start(t, testbroker.Options{})
	det := syntheticDetector(t)
	l := startTriggerLine(t, b, func(r *runningDaemon) string {
		r.withModel(det)
		return r.triggerMode(strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}}", 1), b.URL, "")
	})
	now := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	// Sent until answered: the ones before the subscription are lost.
	l.waitFor("the answer to p1", func() bool {
		l.trigger(`{"id":"p1","time":"` + now() + `"}`)
		time.Sleep(300 * time.Millisecond)
		return len(l.answers("p1")) > 0
	})
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
