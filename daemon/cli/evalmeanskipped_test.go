package cli

import "testing"

// `eval --json` with several --data sets wrote "skipped_files": 0 in the
// mean over sets where a set had files skipped (a broken link, a corrupt
// image): a count, not averaged, left at zero, read as nothing skipped.
// It is the sets' total now, as region_iou_defects and
// registration_refused are in a mean row.
func TestEvalMeanCountsTheSetsSkippedFiles(t *testing.T) {
	sets := []EvalSet{
		{Data: "a", Results: []EvalResult{{Recipe: "plain", SkippedFiles: 8}}},
		{Data: "b", Results: []EvalResult{{Recipe: "plain"}}},
		{Data: "c", Results: []EvalResult{{Recipe: "plain", SkippedFiles: 3}}},
	}
	if m := meanResults(sets, []string{"plain"})[0]; m.SkippedFiles != 11 {
		t.Errorf("mean over sets skipping 8, 0 and 3 files: skipped_files %d, want 11", m.SkippedFiles)
	}
}
