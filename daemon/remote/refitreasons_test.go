package remote

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A refit's skipped_reasons mixed styles: capture's refusals named the
// full path ("image /srv/good/x.png: image: unknown format", "/srv/good/
// p.png is a named pipe, not an image file", "decode /srv/good/cut.png:
// unexpected EOF", "stat …: no such file or directory") where the refit's
// own named the file alone ("bomb.png: …"). Every reason is now the
// file's name in the folder the refit reads, then why, without the path.
func TestRefitSkippedReasonsAreOneStyle(t *testing.T) {
	dir := t.TempDir()
	writeFrames(t, dir, 1)
	files := map[string][]byte{
		"bomb.png":  pngBomb(200000, 200000),
		"notes.png": []byte("operator notes, not a PNG"),
		"empty.png": nil,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"bomb.png", "notes.png", "empty.png", "gone.png"}
	if err := os.Symlink(filepath.Join(dir, "nowhere.png"), filepath.Join(dir, "gone.png")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.png"), 0o644); err == nil {
		names = append(names, "pipe.png")
	}
	whole, err := os.ReadFile(filepath.Join(dir, "good_aa.png"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "good_zz_cut.png")
	if err := os.WriteFile(cut, whole[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	names = append(names, "good_zz_cut.png")

	f, err := listFolder(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	// The cut file reads as an image by its header: the job's decode
	// (admit) skips it.
	f.fit, f.val = []string{cut}, nil
	_ = f.admit()
	var all []string
	for _, s := range f.files {
		all = append(all, s.reason)
	}
	t.Logf("%q", all)
	if len(all) != len(names) {
		t.Fatalf("%d skipped, want %d: %q", len(all), len(names), all)
	}
	for _, r := range all {
		name, why, ok := strings.Cut(r, ": ")
		if !ok || !strings.Contains(strings.Join(names, " "), name) || why == "" ||
			strings.Contains(r, filepath.Join(dir, name)) || strings.HasPrefix(why, "stat ") || strings.HasPrefix(why, "is ") {
			t.Errorf("reason %q: want the file's name, then why, without its path", r)
		}
	}
	for _, want := range []string{"pipe.png: a named pipe, not an image file", "gone.png: a link to ", "empty.png: empty file (0 bytes)", "good_zz_cut.png: does not decode: "} {
		if want == "pipe.png: a named pipe, not an image file" && !strings.Contains(strings.Join(names, " "), "pipe.png") {
			continue
		}
		if !strings.Contains(strings.Join(all, "; "), want) {
			t.Errorf("reasons %q, want one saying %q", all, want)
		}
	}
}
