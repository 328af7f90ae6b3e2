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
		`inspectd_images_skipped_total{kind="heatmap"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
