package httpapi

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// sparkplugSeries are the edge node's series, as README's metrics
// reference must name them.
var sparkplugSeries = []string{
	"inspectd_sparkplug_online", "inspectd_sparkplug_primary_host_online", "inspectd_sparkplug_sessions_total",
	"inspectd_sparkplug_births_total", "inspectd_sparkplug_bdseq", "inspectd_sparkplug_queue_depth",
	"inspectd_sparkplug_queue_bytes", "inspectd_sparkplug_dropped_total",
}

// TestSparkplugMetrics: the edge node's state is exported under fixed
// names and types, the drops by every reason from the start (an alert's
// increase() sees the first), read anew on every scrape; without an edge
// node the series read offline and 0 rather than disappear.
func TestSparkplugMetrics(t *testing.T) {
	m := NewMetrics()
	var mu sync.Mutex
	var st SparkplugStats // no edge node: mqtt.profile json
	if err := m.WatchSparkplug(func() SparkplugStats { mu.Lock(); defer mu.Unlock(); return st }); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchSparkplug(func() SparkplugStats { return SparkplugStats{} }); err == nil {
		t.Fatal("second WatchSparkplug accepted")
	}
	const head = `# HELP inspectd_sparkplug_bdseq bdSeq of the Sparkplug edge node's current or last session (0 before the first).
# TYPE inspectd_sparkplug_bdseq gauge
inspectd_sparkplug_bdseq %[5]s
# HELP inspectd_sparkplug_births_total NBIRTH and DBIRTH pairs the Sparkplug edge node queued, rebirths included.
# TYPE inspectd_sparkplug_births_total counter
inspectd_sparkplug_births_total %[4]s
# HELP inspectd_sparkplug_dropped_total Sparkplug data messages not sent, by reason: offline (an inspection's DDATA without a live session), queue_full (refused by the full send queue), leaving (still queued when a session ended on purpose: dropped so that the NDEATH goes at once).
# TYPE inspectd_sparkplug_dropped_total counter
inspectd_sparkplug_dropped_total{reason="leaving"} %[10]s
inspectd_sparkplug_dropped_total{reason="offline"} %[8]s
inspectd_sparkplug_dropped_total{reason="queue_full"} %[9]s
# HELP inspectd_sparkplug_online 1 while the Sparkplug edge node's births are sent in a live session (hosts get data); 0 without an edge node.
# TYPE inspectd_sparkplug_online gauge
inspectd_sparkplug_online %[1]s
# HELP inspectd_sparkplug_primary_host_online 1 while the primary host's STATE says online; 0 without sparkplug.primary_host_id and while not connected.
# TYPE inspectd_sparkplug_primary_host_online gauge
inspectd_sparkplug_primary_host_online %[2]s
# HELP inspectd_sparkplug_queue_bytes Payload bytes of the messages in the Sparkplug edge node's send queue.
# TYPE inspectd_sparkplug_queue_bytes gauge
inspectd_sparkplug_queue_bytes %[7]s
# HELP inspectd_sparkplug_queue_depth Messages in the Sparkplug edge node's send queue.
# TYPE inspectd_sparkplug_queue_depth gauge
inspectd_sparkplug_queue_depth %[6]s
# HELP inspectd_sparkplug_sessions_total MQTT sessions the Sparkplug edge node established (each with a new bdSeq).
# TYPE inspectd_sparkplug_sessions_total counter
inspectd_sparkplug_sessions_total %[3]s
`
	expect := func(when string, v ...any) {
		t.Helper()
		want := strings.NewReader(fmt.Sprintf(head, v...))
		if err := testutil.GatherAndCompare(m.Registry, want, sparkplugSeries...); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	expect("without an edge node", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0")

	mu.Lock()
	st = SparkplugStats{Online: true, PrimaryHostOnline: true, Sessions: 3, Births: 5, BdSeq: 255, Queued: 2, QueuedBytes: 4096,
		DroppedOffline: 7, DroppedQueueFull: 11, DroppedLeaving: 13}
	mu.Unlock()
	expect("with an edge node online", "1", "1", "3", "5", "255", "2", "4096", "7", "11", "13")
}

// TestREADMEListsSparkplugSeries: the README's metrics reference names
// every series of the edge node.
func TestREADMEListsSparkplugSeries(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sparkplugSeries {
		if !strings.Contains(string(readme), "\n| `"+name+"` |") {
			t.Errorf("README's metrics reference lacks %s", name)
		}
	}
}
