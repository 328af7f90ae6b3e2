package dataset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A ground_truth/<label> (or ground_truth) that is a link leading nowhere
// left each of the label's masks missing: an evaluation counted them and
// named the first missing mask file, never the link. Scan names the link
// in BrokenTruth, for labels with test images only (a dangling masks
// folder no test image needs is no matter), and still lists the set.
func TestScanNamesAGroundTruthLinkedToNothing(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"train/good", "test/good", "test/crack", "test/dent", "ground_truth/dent"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "0.png"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "gone", "crack")
	for _, l := range [][2]string{{missing, "ground_truth/crack"}, {"nowhere", "ground_truth/scratch"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Scan(dir)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	want := filepath.Join(dir, "ground_truth", "crack") + " is a link to " + missing + ", which does not exist"
	if len(s.BrokenTruth) != 1 || s.BrokenTruth[0].Error() != want {
		t.Errorf("BrokenTruth %v, want [%s]", s.BrokenTruth, want)
	}
	if len(s.Test) != 3 || len(s.BrokenTest) != 0 {
		t.Errorf("%d test images, broken test/ %v: want 3, none", len(s.Test), s.BrokenTest)
	}

	// ground_truth itself a link to nothing: named once, not per label.
	if err := os.RemoveAll(filepath.Join(dir, "ground_truth")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(missing, filepath.Join(dir, "ground_truth")); err != nil {
		t.Fatal(err)
	}
	if s, err = Scan(dir); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	want = filepath.Join(dir, "ground_truth") + " is a link to " + missing + ", which does not exist"
	var got []string
	for _, e := range s.BrokenTruth {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != want {
		t.Errorf("BrokenTruth with ground_truth a link to nothing:\n%s\nwant %s", strings.Join(got, "\n"), want)
	}
}
