package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusedRefitLogsEveryFileItSkipped: a folder refit refused at its
// check logged none of the files it skipped, while one that runs logs each
// (TestRefitLogsEveryFileItSkipped): with 11 unreadable images the reply
// said "11 skipped: …" naming 5, and no log line named the others; with 2
// good images beside them the reply said only "holds 2 usable image(s)",
// naming neither the folder nor the 11 skipped. Each refusal now logs every
// skipped file once, as a refit that runs does, and says the log names them;
// the "usable image(s)" refusal names the folder and the count skipped.
func TestRefusedRefitLogsEveryFileItSkipped(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	dir := t.TempDir()
	var bad []string
	for i := range 11 {
		ext := ".png"
		if i%2 == 1 {
			ext = ".jpg"
		}
		p := filepath.Join(dir, fmt.Sprintf("bad%02d%s", i, ext))
		if err := os.WriteFile(p, []byte("not an image at all"), 0o644); err != nil {
			t.Fatal(err)
		}
		bad = append(bad, p)
	}
	logged := func(what string, times int) {
		t.Helper()
		for _, p := range bad {
			if n := r.log.count("WARN file skipped", "file="+p+" reason=", filepath.Base(p)+": "); n != times {
				t.Errorf("%s: %d log lines name %s as skipped, want %d:\n%s", what, n, p, times, r.log.all())
			}
		}
		if n := r.log.count("WARN file skipped"); n != times*len(bad) {
			t.Errorf("%s: %d file skipped lines, want %d:\n%s", what, n, times*len(bad), r.log.all())
		}
	}
	words := func(what string, rep Reply, parts ...string) {
		t.Helper()
		mustFail(t, rep, CodeInvalid, "folder: ")
		if field(rep) != "folder" {
			t.Errorf("%s: field %q, want folder: %+v", what, field(rep), rep)
		}
		for _, p := range parts {
			if !strings.Contains(rep.Error, p) {
				t.Errorf("%s: error %q lacks %q", what, rep.Error, p)
			}
		}
	}

	rep := r.do("refit", `{"id":"f5","folder":"`+dir+`"}`)
	words("no usable image", rep, dir+" holds no usable images", "11 skipped", "the log names each")
	logged("no usable image", 1)

	writeFrames(t, dir, 2)
	rep = r.do("refit", `{"id":"f6","folder":"`+dir+`"}`)
	words("2 usable images", rep, dir+" holds 2 usable image(s)", "11 other file(s) skipped", "the log names each", "a refit needs at least 3")
	logged("2 usable images, once more", 2)
}
