package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
)

// --print shows two decimals, unless they would make a score and a
// threshold that differ look equal (a trial read "14.24 / 14.24 (1.00×)"
// as a defect and, elsewhere, as ok).
func TestPrintLineTellsCloseScoresApart(t *testing.T) {
	var b strings.Builder
	p := &Pipeline{o: PipelineOptions{Print: &b}}
	p.printLine(7, &capture.Frame{}, "ok", 12.3, 14.2411, 12.3/14.2411, 4*time.Millisecond, "")
	p.printLine(8, &capture.Frame{}, "DEFECT", 14.2415, 14.2411, 14.2415/14.2411, 4*time.Millisecond, "")
	got := b.String()
	for _, want := range []string{"#7     ok score  12.30 / 14.24 (0.86×)", "#8     DEFECT score 14.2415 / 14.2411 (1.000028×)"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
