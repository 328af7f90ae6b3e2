package daemon

import (
	"strings"
	"testing"

	"github.com/inspectd/inspectd/daemon/sparkplug"
)

// TestSparkplugMetricsOnline: with mqtt.profile sparkplug, /metrics says
// the edge node is online once its births are out, and its sessions and
// births counters go on across a reload that rebuilds the connections
// (the replacement node counts from 0: the daemon adds the old one's), as
// the inspectd_mqtt_* counters do. The node had no series at all.
func TestSparkplugMetricsOnline(t *testing.T) {
	var yaml string
	r := startDaemon(t, func(r *runningDaemon) string {
		y := strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: sparkplug, ", 1)
		yaml = strings.Replace(y, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)
		return yaml
	})
	url := r.httpURL()
	var m map[string]float64
	r.waitFor("inspectd_sparkplug_online 1", func() bool {
		m = scrapeSeries(url)
		return m["inspectd_sparkplug_online"] == 1
	})
	sessions, births, bdSeq := m["inspectd_sparkplug_sessions_total"], m["inspectd_sparkplug_births_total"], m["inspectd_sparkplug_bdseq"]
	if sessions < 1 || births < 1 {
		t.Fatalf("online with inspectd_sparkplug_sessions_total %v, inspectd_sparkplug_births_total %v; want 1 or more each", sessions, births)
	}

	d := r.daemon()
	node := func() *sparkplug.Node {
		d.sink.mu.RLock()
		defer d.sink.mu.RUnlock()
		return d.sink.node
	}
	before := node()
	r.write(strings.Replace(yaml, "mqtt: {", "mqtt: {keepalive: 20s, ", 1))
	r.hup()
	r.waitFor("a new edge node online after the reload", func() bool {
		if n := node(); n == nil || n == before {
			return false
		}
		m = scrapeSeries(url)
		return m["inspectd_sparkplug_online"] == 1
	})
	if got := m["inspectd_sparkplug_sessions_total"]; got < sessions+1 {
		t.Errorf("inspectd_sparkplug_sessions_total %v after a reload, want the %v before it and the new node's", got, sessions)
	}
	if got := m["inspectd_sparkplug_births_total"]; got < births+1 {
		t.Errorf("inspectd_sparkplug_births_total %v after a reload, want the %v before it and the new node's", got, births)
	}
	if got := m["inspectd_sparkplug_bdseq"]; got <= bdSeq {
		t.Errorf("inspectd_sparkplug_bdseq %v after a reload, want more than the %v before it (a new CONNECT)", got, bdSeq)
	}
}
