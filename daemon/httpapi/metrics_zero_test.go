package httpapi

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// The counters an alert watches are exported at 0 before their first
// event (a field trial found them absent, not even # HELP, until then).
func TestCountersExportedAtZero(t *testing.T) {
	h := New(Options{Logger: quiet()})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	for _, want := range []string{
		`inspectd_frame_drops_total{reason="overload"} 0`,
		`inspectd_triggers_total{outcome="invalid"} 0`,
		`inspectd_publish_failures_total{kind="alarm",reason="not_durable"} 0`,
		`inspectd_publish_failures_total{kind="result",reason="sparkplug_offline"} 0`,
		`inspectd_images_skipped_total{kind="heatmap"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestLastScoreNaNWithoutAScore: the last score gauges read NaN before the
// first inspection and after one that could not be made (they read 0, a
// perfect part, on a box that had inspected nothing, and a failed
// inspection left the part before's score standing).
func TestLastScoreNaNWithoutAScore(t *testing.T) {
	h := New(Options{Logger: quiet()})
	m := h.Metrics()
	scrape := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return string(body)
	}
	want := func(when string, lines ...string) {
		t.Helper()
		body := scrape()
		for _, l := range lines {
			if !strings.Contains(body, l+"\n") {
				t.Errorf("%s: /metrics lacks %q", when, l)
			}
		}
	}
	want("before the first inspection", "inspectd_last_score NaN", "inspectd_last_score_normalized NaN")
	m.ObserveInspection(6, 0.6, false)
	want("after an inspection", "inspectd_last_score 6", "inspectd_last_score_normalized 0.6")
	m.InspectionError()
	want("after an inspection that could not be made", "inspectd_last_score NaN", "inspectd_last_score_normalized NaN")
}
