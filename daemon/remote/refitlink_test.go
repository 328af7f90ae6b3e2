package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefitNamesALinkToNothing: a refit whose folder's train/good (or
// train, or the folder itself) is a link to nothing fell back to the
// folder's own images: it was refused in words that hid the link ("holds
// no usable images"), or fitted on the folder's own images where it had
// some, or said "no such file or directory" of a link that is there. Each
// is refused naming the link and where it leads, as fit names it
// (dataset.DanglingLink).
func TestRefitNamesALinkToNothing(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	base := t.TempDir()
	gone := filepath.Join(base, "gone")

	bare := filepath.Join(base, "bare") // nothing but the link
	os.MkdirAll(filepath.Join(bare, "train"), 0o755)
	os.Symlink(gone, filepath.Join(bare, "train", "good"))

	withOwn := filepath.Join(base, "own") // images of its own beside it
	writeFrames(t, withOwn, 12)
	os.MkdirAll(filepath.Join(withOwn, "train"), 0o755)
	os.Symlink("../../gone", filepath.Join(withOwn, "train", "good"))

	trainLink := filepath.Join(base, "trainlink") // train a link to nothing
	writeFrames(t, trainLink, 12)
	os.Symlink(gone, filepath.Join(trainLink, "train"))

	self := filepath.Join(base, "self") // the folder a link to nothing
	os.Symlink(gone, self)

	for i, c := range []struct{ folder, link string }{
		{bare, filepath.Join(bare, "train", "good")},
		{withOwn, filepath.Join(withOwn, "train", "good")},
		{trainLink, filepath.Join(trainLink, "train")},
		{self, self},
	} {
		rep := r.do("refit", `{"id":"l`+string(rune('a'+i))+`","folder":"`+c.folder+`"}`)
		mustFail(t, rep, CodeInvalid, c.link+" is a link to "+gone+", which does not exist")
		if field(rep) != "folder" {
			t.Errorf("refit of %s: field %q, want folder", c.folder, field(rep))
		}
		if strings.Contains(rep.Error, "usable images") {
			t.Errorf("refit of %s: %s", c.folder, rep.Error)
		}
	}
	if r.ctl.installs.Load() != 0 || r.d.runningJob() != nil {
		t.Error("a refused refit started or installed")
	}
}
