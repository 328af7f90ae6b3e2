package httpapi

import (
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestREADMEExplainsNoFrameTriggers: the README's row for
// inspectd_triggers_total lists every outcome exported from the start and
// says what no_frame counts, frames refused because capture.roi does not
// fit them among it (counted there since the pipeline answers such a
// trigger as one without a frame to inspect; the row listed the outcome's
// name alone, and an alert's author could not tell such a line, every
// part uninspected, from a camera gone).
func TestREADMEExplainsNoFrameTriggers(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, row, ok := strings.Cut(string(readme), "\n| `inspectd_triggers_total` |")
	if !ok {
		t.Fatal("README's metrics reference lacks inspectd_triggers_total")
	}
	row, _, _ = strings.Cut(row, "\n")
	h := New(Options{Logger: quiet()})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	n := 0
	for _, l := range strings.Split(string(body), "\n") {
		_, rest, ok := strings.Cut(l, `inspectd_triggers_total{outcome="`)
		if !ok {
			continue
		}
		outcome, _, _ := strings.Cut(rest, `"`)
		n++
		if !strings.Contains(row, "`"+outcome+"`") {
			t.Errorf("README's inspectd_triggers_total row lacks outcome %s", outcome)
		}
	}
	if n == 0 {
		t.Error("no inspectd_triggers_total series exported at 0")
	}
	_, noFrame, _ := strings.Cut(row, "`no_frame` when")
	for _, want := range []string{"no frame it could be inspected on", "`capture.roi` does not fit", "folder's file too small"} {
		if !strings.Contains(noFrame, want) {
			t.Errorf("README's inspectd_triggers_total row does not say what no_frame counts (%q):\n%s", want, row)
		}
	}
}
