package httpapi

import (
	"io"
	"net/http/httptest"
	"os"
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

// TestMQTTHelpSaysWhichConnection: the inspectd_mqtt_* series are the
// JSON connection's, and their HELP says so (a trial read
// inspectd_mqtt_connected 1, "connected to the MQTT broker", as the
// Sparkplug edge node delivering while it waited for its primary host);
// inspectd_mqtt_too_large_total also counts the edge node's masks sent as
// null for their size, under sink="sparkplug", which its HELP did not say.
func TestMQTTHelpSaysWhichConnection(t *testing.T) {
	h := New(Options{Logger: quiet()})
	if err := h.Metrics().WatchMQTT(func() MQTTStats { return MQTTStats{} }); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	help := map[string]string{}
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(l, "# HELP "); ok {
			name, text, _ := strings.Cut(rest, " ")
			help[name] = text
		}
	}
	for name, want := range map[string][]string{
		"inspectd_mqtt_connected":             {"JSON connection", "unless mqtt.profile is sparkplug", "inspectd_sparkplug_online"},
		"inspectd_mqtt_reconnects_total":      {"JSON connection", "inspectd_sparkplug_sessions_total"},
		"inspectd_mqtt_dropped_offline_total": {"JSON connection", "inspectd_sparkplug_dropped_total"},
		"inspectd_mqtt_too_large_total":       {"Sparkplug masks sent as null", "sink"},
	} {
		for _, w := range want {
			if !strings.Contains(help[name], w) {
				t.Errorf("HELP %s %q lacks %q", name, help[name], w)
			}
		}
	}
}

// TestREADMEListsPublishFailureReasons: every reason of
// inspectd_publish_failures_total exported from the start is explained in
// the README's row for it, so that an alert's author can tell
// sparkplug_offline (the edge node without a session) from not_connected
// (the JSON connection down).
func TestREADMEListsPublishFailureReasons(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, row, ok := strings.Cut(string(readme), "\n| `inspectd_publish_failures_total` |")
	if !ok {
		t.Fatal("README's metrics reference lacks inspectd_publish_failures_total")
	}
	row, _, _ = strings.Cut(row, "\n")
	h := New(Options{Logger: quiet()})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	n := 0
	for _, l := range strings.Split(string(body), "\n") {
		_, rest, ok := strings.Cut(l, `inspectd_publish_failures_total{`)
		if !ok {
			continue
		}
		_, reason, _ := strings.Cut(rest, `reason="`)
		reason, _, _ = strings.Cut(reason, `"`)
		n++
		if !strings.Contains(row, "`"+reason+"`") {
			t.Errorf("README's inspectd_publish_failures_total row lacks reason %s", reason)
		}
	}
	if n == 0 {
		t.Error("no inspectd_publish_failures_total series exported at 0")
	}
}
