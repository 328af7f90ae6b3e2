package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestRefitLogsEveryFileItSkipped: a refit from a folder answered the
// count of the files it skipped and the first 5 reasons, and logged none
// of them: with more skipped, an operator could not find the others. Each
// skipped file is now logged once, one warning a file naming its path and
// why, those its header refused and one that did not decode alike; the
// reply is as it was.
func TestRefitLogsEveryFileItSkipped(t *testing.T) {
	if testing.Short() {
		t.Skip("a real fit on 12 files; the live refit test covers the job's concurrency in -short runs")
	}
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	dir := t.TempDir()
	writeFrames(t, dir, 12)
	var bad []string
	for i := range 7 {
		bad = append(bad, filepath.Join(dir, fmt.Sprintf("bad%d.png", i)))
	}
	bad = append(bad, filepath.Join(dir, "bomb.png"))
	for _, p := range bad[:7] {
		if err := os.WriteFile(p, []byte("not a PNG at all"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(bad[7], pngBomb(200000, 200000), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its header reads as an image, its body does not decode: skipped by
	// the job, not by the listing.
	whole, err := os.ReadFile(filepath.Join(dir, "good_aa.png"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "good_zz_cut.png")
	if err := os.WriteFile(cut, whole[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	bad = append(bad, cut)

	rep := r.do("refit", `{"id":"f1","folder":"`+dir+`","max_false_alarm_rate":1}`)
	if !rep.OK {
		t.Fatalf("folder refit: %+v", rep)
	}
	if reasons, _ := rep.Data["skipped_reasons"].([]string); rep.Data["skipped"] != len(bad) || len(reasons) != 5 {
		t.Errorf("reply: skipped %v, reasons %v; want %d and the first 5", rep.Data["skipped"], rep.Data["skipped_reasons"], len(bad))
	}
	for _, p := range bad {
		if n := r.log.count("WARN file skipped", "file="+p+" reason=", filepath.Base(p)+": "); n != 1 {
			t.Errorf("%d log lines name %s as skipped, want 1:\n%s", n, p, r.log.all())
		}
	}
	if n := r.log.count("file skipped"); n != len(bad) {
		t.Errorf("%d file skipped lines, want %d:\n%s", n, len(bad), r.log.all())
	}
}
