package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd bench --data SET` with a test/<label> that is a link to
// nothing left it out without a word, where eval refuses the set
// (dataset.Set.BrokenTest). Bench now refuses it the same way, before any
// fit, naming the link and where it leads; one that leads round in a loop
// is named with its loop.
func TestBenchRefusesATestLabelLinkedToNothing(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 4, 6, 3)
	cfg := evalConfig(t, dir)
	test := filepath.Join(set, "test")
	missing := filepath.Join(dir, "unmounted", "crack")
	if err := os.Symlink(missing, filepath.Join(test, "crack")); err != nil {
		t.Fatal(err)
	}
	bench := func() (int, string) {
		code, _, stderr := runCaptureCmd(t, "bench", "--config", cfg, "--data", set, "--count", "2", "--no-mqtt")
		return code, stderr
	}
	code, stderr := bench()
	want := filepath.Join(test, "crack") + " is a link to " + missing + ", which does not exist"
	if code != 1 || !strings.Contains(stderr, "data set "+set+": "+want) || !strings.Contains(stderr, "remove the link to bench without it") {
		t.Errorf("a dangling test/crack: exit %d, stderr:\n%s\nwant %q", code, stderr, want)
	}

	// With a loop beside it: both named.
	for _, l := range [][2]string{{"la", "missing-label"}, {"lb", "la"}, {"la", "lb"}} {
		if err := os.Symlink(l[0], filepath.Join(test, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	code, stderr = bench()
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, filepath.Join(test, "missing-label")+" is a link that leads round in a loop (la → lb → la)") {
		t.Errorf("a dangling test/crack and a looping test/missing-label: exit %d, stderr:\n%s", code, stderr)
	}
}
