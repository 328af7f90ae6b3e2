package httpapi

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are inspectd's Prometheus metrics on a registry of their own
// (no global state: tests and several daemons in one process do not
// collide). The pipeline updates them through the methods below, which
// do not allocate once a label value has been seen.
type Metrics struct {
	// Registry holds every metric below plus the Go runtime and process
	// collectors; /metrics serves it.
	Registry *prometheus.Registry

	// Frames counts frames taken from the source.
	Frames prometheus.Counter
	// Drops counts frames dropped, by reason ("overload", "stale", ...).
	Drops *prometheus.CounterVec
	// Inspections counts finished inspections by verdict ("normal",
	// "anomalous", "error": an inspection that could not be made).
	Inspections *prometheus.CounterVec
	// PublishFailures counts results and alarms the publisher refused
	// (outbox not durable, payload over the limit), by kind.
	PublishFailures *prometheus.CounterVec
	// ImagesSkipped counts masks and heatmaps not published (over the
	// payload limit, encode failure), by kind.
	ImagesSkipped *prometheus.CounterVec
	// Triggers counts trigger requests by outcome ("accepted", "queue_full",
	// "stale", "no_frame", "retained", "duplicate", "invalid").
	Triggers *prometheus.CounterVec
	// Reloads and ReloadFailures count configuration reloads (SIGHUP,
	// remote pushes) applied and refused; a refused one leaves the running
	// configuration, backbone and model in place.
	Reloads, ReloadFailures prometheus.Counter
	// StageLatency is the time per pipeline stage, in seconds.
	StageLatency *prometheus.HistogramVec
	// ScoreNormalized is the distribution of score/threshold (1 = threshold).
	ScoreNormalized prometheus.Histogram
	// LastScore and LastScoreNormalized are those of the latest inspection.
	LastScore           prometheus.Gauge
	LastScoreNormalized prometheus.Gauge
	// RegistrationShift is the latest registered frame's shift in frame
	// pixels, by "axis" (x right, y down); RegistrationAngle its rotation
	// in degrees (clockwise on the image); RegistrationConfidence the
	// normalized cross-correlation with the reference view (−1..1,
	// unitless). One gauge per unit: a sum or graph over one metric never
	// mixes pixels with degrees. The three have no series until the first
	// registered frame (a model without registration shows none, not 0s).
	RegistrationShift      *prometheus.GaugeVec
	RegistrationAngle      *prometheus.GaugeVec
	RegistrationConfidence *prometheus.GaugeVec
	// RegistrationFailures counts frames refused for their registration,
	// by reason (no_overlap, low_confidence, shift, angle).
	RegistrationFailures *prometheus.CounterVec

	mu     sync.Mutex
	stages map[string]prometheus.Observer
	drops  map[string]prometheus.Counter
	normal prometheus.Counter
	// The registration gauges' series, made by the first ObserveRegistration.
	regOnce                           sync.Once
	shiftX, shiftY, angle, confidence prometheus.Gauge
	anom                              prometheus.Counter
	errs                              prometheus.Counter
}

// Metric name prefix.
const namespace = "inspectd"

// NewMetrics creates the metrics and registers them on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Frames: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "frames_total",
			Help: "Frames taken from the frame source."}),
		Drops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "frame_drops_total",
			Help: "Frames dropped before inspection, by reason."}, []string{"reason"}),
		Inspections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "inspections_total",
			Help: "Finished inspections by verdict."}, []string{"verdict"}),
		StageLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "stage_latency_seconds",
			Help:    "Time spent per pipeline stage.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13), // 0.5 ms .. 2 s
		}, []string{"stage"}),
		ScoreNormalized: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "score_normalized",
			Help:    "Image anomaly score divided by the threshold (above 1 is anomalous).",
			Buckets: []float64{0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10},
		}),
		PublishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "publish_failures_total",
			Help: "Results and alarms the MQTT publisher refused or could not make durable, and QoS 0 results that reached no consumer, by kind and reason (not_durable, outbox_full, too_large, not_connected: the JSON connection down, sparkplug_offline: mqtt.profile sparkplug and the edge node without a live session, other)."},
			[]string{"kind", "reason"}),
		ImagesSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "images_skipped_total",
			Help: "Masks and heatmaps not published (over the payload limit, encoding failed), by kind."}, []string{"kind"}),
		Triggers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "triggers_total",
			Help: "Trigger requests by outcome."}, []string{"outcome"}),
		Reloads: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "reloads_total",
			Help: "Configuration reloads applied (SIGHUP or remote push)."}),
		ReloadFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "reload_failures_total",
			Help: "Configuration reloads refused; the running configuration, backbone and model stay in place."}),
		LastScore: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_score",
			Help: "Image anomaly score of the latest inspection; NaN before the first and after one that could not be made."}),
		LastScoreNormalized: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_score_normalized",
			Help: "Score/threshold of the latest inspection; NaN before the first and after one that could not be made."}),
		RegistrationShift: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "last_registration_shift_pixels",
			Help: "Shift of the latest registered frame against the reference view, in frame pixels, by axis (x right, y down)."}, []string{"axis"}),
		RegistrationAngle: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "last_registration_angle_degrees",
			Help: "Rotation of the latest registered frame against the reference view, in degrees, clockwise on the image."}, nil),
		RegistrationConfidence: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "last_registration_confidence",
			Help: "Confidence of the latest registration: normalized cross-correlation of the aligned frame with the reference view, -1..1."}, nil),
		RegistrationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "registration_failures_total",
			Help: "Frames not scored because registration failed or exceeded its bounds, by reason."}, []string{"reason"}),
		stages: map[string]prometheus.Observer{},
		drops:  map[string]prometheus.Counter{},
	}
	m.Registry.MustRegister(m.Frames, m.Drops, m.Inspections, m.PublishFailures, m.ImagesSkipped, m.Triggers, m.Reloads, m.ReloadFailures,
		m.StageLatency, m.ScoreNormalized, m.LastScore, m.LastScoreNormalized, m.RegistrationShift, m.RegistrationAngle,
		m.RegistrationConfidence, m.RegistrationFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.normal = m.Inspections.WithLabelValues("normal")
	m.anom = m.Inspections.WithLabelValues("anomalous")
	m.errs = m.Inspections.WithLabelValues("error")
	// No inspection yet: 0 would read as a perfect part on a dashboard.
	m.LastScore.Set(math.NaN())
	m.LastScoreNormalized.Set(math.NaN())
	// Every series an alert may watch exists at 0 from the start:
	// increase() misses a counter's first event when the series appears
	// with it, and absent() cannot tell "none yet" from "not exported".
	m.drops["overload"] = m.Drops.WithLabelValues("overload")
	for _, o := range []string{"accepted", "queue_full", "stale", "no_frame", "retained", "duplicate", "invalid"} {
		m.Triggers.WithLabelValues(o)
	}
	for _, kind := range []string{"result", "alarm"} {
		for _, reason := range []string{"not_durable", "outbox_full", "too_large", "other"} {
			m.PublishFailures.WithLabelValues(kind, reason)
		}
	}
	// Results only: on the JSON connection an alarm is queued, never
	// dropped for the connection, and the edge node sends an alarm's
	// regions in its result's DDATA.
	m.PublishFailures.WithLabelValues("result", "not_connected")
	m.PublishFailures.WithLabelValues("result", "sparkplug_offline")
	for _, kind := range []string{"mask", "heatmap"} {
		m.ImagesSkipped.WithLabelValues(kind)
	}
	return m
}

// InspectionError counts one inspection that could not be made, and sets
// the last score gauges to NaN (NoScore).
func (m *Metrics) InspectionError() {
	m.errs.Inc()
	m.NoScore()
}

// NoScore sets the last score gauges to NaN: the latest part was answered
// without a score (an inspection that could not be made, a file skipped
// as unreadable), and the part before's would pass for its.
func (m *Metrics) NoScore() {
	m.LastScore.Set(math.NaN())
	m.LastScoreNormalized.Set(math.NaN())
}

// InspectionCounts returns inspectd_inspections_total for the verdicts
// anomalous and error, as /metrics shows them (for Sparkplug's Stats
// counters, which must agree with it). Read from the two counters
// themselves: a registry's Gather would read and sort every family.
func (m *Metrics) InspectionCounts() (anomalous, failed uint64) {
	return counterValue(m.anom), counterValue(m.errs)
}

// counterValue reads a counter (0 if it cannot be written out, which a
// plain counter always can).
func counterValue(c prometheus.Counter) uint64 {
	var pm dto.Metric
	if c.Write(&pm) != nil {
		return 0
	}
	return uint64(pm.GetCounter().GetValue())
}

// PublishFailure counts one result or alarm ("result", "alarm") the
// publisher refused or could not make durable, with the reason.
func (m *Metrics) PublishFailure(kind, reason string) {
	m.PublishFailures.WithLabelValues(kind, reason).Inc()
}

// ImageSkipped counts one mask or heatmap not published.
func (m *Metrics) ImageSkipped(kind string) { m.ImagesSkipped.WithLabelValues(kind).Inc() }

// Trigger counts one trigger request by outcome.
func (m *Metrics) Trigger(outcome string) { m.Triggers.WithLabelValues(outcome).Inc() }

// PipelineStats is what the metrics read from the pipeline at scrape time.
type PipelineStats struct {
	// LastGoodFrameAge is the time since the last frame that was captured
	// and decoded (since the start when there was none).
	LastGoodFrameAge time.Duration
}

// WatchPipeline exports the pipeline's state, read by f on every scrape:
// inspectd_last_good_frame_age_seconds. It may be called once.
func (m *Metrics) WatchPipeline(f func() PipelineStats) error {
	c := &funcCollector{descs: []*prometheus.Desc{
		prometheus.NewDesc(namespace+"_last_good_frame_age_seconds",
			"Seconds since the last frame that was captured and decoded (since the start when none was).", nil, nil),
	}}
	c.collect = func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(c.descs[0], prometheus.GaugeValue, f().LastGoodFrameAge.Seconds())
	}
	if err := m.Registry.Register(c); err != nil {
		return fmt.Errorf("register pipeline metrics: %w", err)
	}
	return nil
}

// Frame counts one frame from the source.
func (m *Metrics) Frame() { m.Frames.Inc() }

// Drop counts one dropped frame.
func (m *Metrics) Drop(reason string) {
	m.mu.Lock()
	c, ok := m.drops[reason]
	if !ok {
		c = m.Drops.WithLabelValues(reason)
		m.drops[reason] = c
	}
	m.mu.Unlock()
	c.Inc()
}

// ObserveStage records the time one stage took.
func (m *Metrics) ObserveStage(stage string, d time.Duration) {
	m.mu.Lock()
	o, ok := m.stages[stage]
	if !ok {
		o = m.StageLatency.WithLabelValues(stage)
		m.stages[stage] = o
	}
	m.mu.Unlock()
	o.Observe(d.Seconds())
}

// ObserveInspection records the outcome of one inspection.
func (m *Metrics) ObserveInspection(score, normalized float64, anomalous bool) {
	if anomalous {
		m.anom.Inc()
	} else {
		m.normal.Inc()
	}
	m.ScoreNormalized.Observe(normalized)
	m.LastScore.Set(score)
	m.LastScoreNormalized.Set(normalized)
}

// ObserveRegistration records the latest frame's registration: shift in
// frame pixels, angle in degrees, confidence.
func (m *Metrics) ObserveRegistration(shiftX, shiftY, angleDeg, confidence float64) {
	m.regOnce.Do(func() { // the series appear with the first registered frame
		m.shiftX, m.shiftY = m.RegistrationShift.WithLabelValues("x"), m.RegistrationShift.WithLabelValues("y")
		m.angle, m.confidence = m.RegistrationAngle.WithLabelValues(), m.RegistrationConfidence.WithLabelValues()
	})
	m.shiftX.Set(shiftX)
	m.shiftY.Set(shiftY)
	m.angle.Set(angleDeg)
	m.confidence.Set(confidence)
}

// RegistrationFailure counts one frame refused for its registration.
func (m *Metrics) RegistrationFailure(reason string) {
	m.RegistrationFailures.WithLabelValues(reason).Inc()
}

// MQTTStats is what the metrics read from the MQTT publisher at scrape time.
type MQTTStats struct {
	Connected  bool
	Reconnects uint64
	// Queued is the number of messages awaiting the broker; QueuedBytes
	// their size; OnDisk how many of them survive a restart; NotDurable
	// how many alarms and results are held in memory only because the
	// outbox could not write them.
	Queued             int
	QueuedBytes        int64
	OnDisk, NotDurable int
	// Evicted, Refused and TooLarge count the JSON connection's messages
	// by class ("alarm", "result", "image"): dropped to make room, refused
	// because the outbox was full, refused or set aside for their size.
	Evicted, Refused, TooLarge map[string]uint64
	// SparkplugTooLarge counts the Sparkplug edge node's masks sent as
	// null for their size: inspectd_mqtt_too_large_total{class="image",
	// sink="sparkplug"}, where TooLarge is sink="json". A mask too large
	// for both connections is refused by each, once in each series.
	SparkplugTooLarge uint64
	// DroppedOffline counts QoS 0 messages dropped when a reconnect failed.
	DroppedOffline uint64
	// MaxPayload is the largest image payload accepted now, in bytes.
	MaxPayload int
	// StoreFailing and ClientIDClash are the outbox failing to write and
	// a likely client-id clash.
	StoreFailing, ClientIDClash bool
}

// CameraStats is what the metrics read from the frame source at scrape time.
type CameraStats struct {
	Reopens      uint64
	Timeouts     uint64
	DecodeErrors uint64
	// TooLarge counts image files and frames refused for declaring more
	// pixels than capture.max_pixels (decompression bombs among them).
	TooLarge uint64
}

// WatchMQTT exports the JSON publisher's state, read by f on every scrape:
// inspectd_mqtt_connected, inspectd_mqtt_reconnects_total,
// inspectd_mqtt_queue_depth and the outbox's state. The Sparkplug edge
// node has series of its own (inspectd_sparkplug_*): a plant reading
// inspectd_mqtt_connected 1 as "SCADA gets data" missed a node waiting for
// its primary host. It may be called once.
func (m *Metrics) WatchMQTT(f func() MQTTStats) error {
	class := []string{"class"}
	c := &funcCollector{descs: []*prometheus.Desc{
		prometheus.NewDesc(namespace+"_mqtt_connected", "1 while the JSON connection to the MQTT broker is up (status, info, triggers, commands; results too unless mqtt.profile is sparkplug); the Sparkplug edge node's is inspectd_sparkplug_online.", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_reconnects_total", "Successful reconnections of the JSON connection to the MQTT broker since start; the Sparkplug edge node's sessions are inspectd_sparkplug_sessions_total.", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_queue_depth", "Messages awaiting the broker (in the outbox).", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_queue_bytes", "Size of the messages awaiting the broker.", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_queue_on_disk", "Messages awaiting the broker that are on disk (survive a restart).", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_not_durable", "Alarms and results held in memory only because the outbox could not write them.", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_evicted_total", "Queued messages dropped to make room (oldest images, then results), by class.", class, nil),
		prometheus.NewDesc(namespace+"_mqtt_refused_total", "Messages refused because the outbox was full, by class.", class, nil),
		prometheus.NewDesc(namespace+"_mqtt_too_large_total", "Messages refused or set aside for their size, by class and sink: json (the JSON connection), sparkplug (class image only: the Sparkplug masks sent as null for their size). A mask too large for both counts once in each sink.", []string{"class", "sink"}, nil),
		prometheus.NewDesc(namespace+"_mqtt_dropped_offline_total", "QoS 0 messages of the JSON connection dropped when a reconnect failed; the Sparkplug edge node's are inspectd_sparkplug_dropped_total.", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_max_payload_bytes", "Largest image payload published now (mqtt.max_payload, or lower as learned from the broker by the JSON connection or the Sparkplug edge node).", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_store_failing", "1 while the outbox cannot write to disk.", nil, nil),
		prometheus.NewDesc(namespace+"_mqtt_client_id_clash", "1 while another client seems to use this client id.", nil, nil),
	}}
	c.collect = func(ch chan<- prometheus.Metric) {
		s := f()
		ch <- prometheus.MustNewConstMetric(c.descs[0], prometheus.GaugeValue, gauge01(s.Connected))
		ch <- prometheus.MustNewConstMetric(c.descs[1], prometheus.CounterValue, float64(s.Reconnects))
		ch <- prometheus.MustNewConstMetric(c.descs[2], prometheus.GaugeValue, float64(s.Queued))
		ch <- prometheus.MustNewConstMetric(c.descs[3], prometheus.GaugeValue, float64(s.QueuedBytes))
		ch <- prometheus.MustNewConstMetric(c.descs[4], prometheus.GaugeValue, float64(s.OnDisk))
		ch <- prometheus.MustNewConstMetric(c.descs[5], prometheus.GaugeValue, float64(s.NotDurable))
		for i, m := range []map[string]uint64{s.Evicted, s.Refused} {
			for _, k := range []string{"alarm", "result", "image"} {
				ch <- prometheus.MustNewConstMetric(c.descs[6+i], prometheus.CounterValue, float64(m[k]), k)
			}
		}
		for _, k := range []string{"alarm", "result", "image"} {
			ch <- prometheus.MustNewConstMetric(c.descs[8], prometheus.CounterValue, float64(s.TooLarge[k]), k, "json")
		}
		ch <- prometheus.MustNewConstMetric(c.descs[8], prometheus.CounterValue, float64(s.SparkplugTooLarge), "image", "sparkplug")
		ch <- prometheus.MustNewConstMetric(c.descs[9], prometheus.CounterValue, float64(s.DroppedOffline))
		ch <- prometheus.MustNewConstMetric(c.descs[10], prometheus.GaugeValue, float64(s.MaxPayload))
		ch <- prometheus.MustNewConstMetric(c.descs[11], prometheus.GaugeValue, gauge01(s.StoreFailing))
		ch <- prometheus.MustNewConstMetric(c.descs[12], prometheus.GaugeValue, gauge01(s.ClientIDClash))
	}
	if err := m.Registry.Register(c); err != nil {
		return fmt.Errorf("register MQTT metrics: %w", err)
	}
	return nil
}

// WatchCamera exports the frame source's counters, read by f on every
// scrape: inspectd_camera_reopens_total, inspectd_camera_timeouts_total
// and inspectd_camera_decode_errors_total. It may be called once.
func (m *Metrics) WatchCamera(f func() CameraStats) error {
	c := &funcCollector{descs: []*prometheus.Desc{
		prometheus.NewDesc(namespace+"_camera_reopens_total", "Times the camera was reopened after an error.", nil, nil),
		prometheus.NewDesc(namespace+"_camera_timeouts_total", "Frame reads that timed out.", nil, nil),
		prometheus.NewDesc(namespace+"_camera_decode_errors_total", "Frames that could not be decoded.", nil, nil),
		prometheus.NewDesc(namespace+"_camera_too_large_total", "Image files and frames refused for declaring more pixels than capture.max_pixels.", nil, nil),
	}}
	c.collect = func(ch chan<- prometheus.Metric) {
		s := f()
		ch <- prometheus.MustNewConstMetric(c.descs[0], prometheus.CounterValue, float64(s.Reopens))
		ch <- prometheus.MustNewConstMetric(c.descs[1], prometheus.CounterValue, float64(s.Timeouts))
		ch <- prometheus.MustNewConstMetric(c.descs[2], prometheus.CounterValue, float64(s.DecodeErrors))
		ch <- prometheus.MustNewConstMetric(c.descs[3], prometheus.CounterValue, float64(s.TooLarge))
	}
	if err := m.Registry.Register(c); err != nil {
		return fmt.Errorf("register camera metrics: %w", err)
	}
	return nil
}

// SparkplugStats is what the metrics read from the Sparkplug B edge node
// (mqtt.profile sparkplug or both) at scrape time; the zero value without
// one (mqtt.profile json).
type SparkplugStats struct {
	// Online: births sent in a live session, hosts get data.
	Online bool
	// PrimaryHostOnline: the primary host's STATE says online (false
	// without sparkplug.primary_host_id, and while not connected).
	PrimaryHostOnline bool
	// Sessions counts MQTT sessions established; Births NBIRTH+DBIRTH
	// pairs queued, rebirths included.
	Sessions, Births uint64
	// BdSeq is the bdSeq of the current or last session (0 before the
	// first).
	BdSeq uint64
	// Queued and QueuedBytes are the messages in the edge node's send
	// queue and the bytes of their payloads.
	Queued, QueuedBytes int
	// DroppedOffline counts inspections' DDATA not sent for want of a
	// live session; DroppedQueueFull data messages the full send queue
	// refused; DroppedLeaving data messages still queued when a session
	// ended on purpose, dropped so that its NDEATH went at once.
	DroppedOffline, DroppedQueueFull, DroppedLeaving uint64
}

// WatchSparkplug exports the Sparkplug B edge node's state, read by f on
// every scrape: inspectd_sparkplug_online, _primary_host_online,
// _sessions_total, _births_total, _bdseq, _queue_depth, _queue_bytes and
// _dropped_total by reason. It may be called once.
//
// The series are there whatever mqtt.profile says, reading offline and 0
// without an edge node, as the inspectd_mqtt_* series are before the
// publisher exists: registered only with an edge node, they would come
// and go with reloads that change the profile, and an alert on
// inspectd_sparkplug_online == 0 could not tell a box that stopped
// reporting from one that has no edge node (an alert that should not
// fire on a JSON-only box says so in its selector or its rule).
func (m *Metrics) WatchSparkplug(f func() SparkplugStats) error {
	c := &funcCollector{descs: []*prometheus.Desc{
		prometheus.NewDesc(namespace+"_sparkplug_online", "1 while the Sparkplug edge node's births are sent in a live session (hosts get data); 0 without an edge node.", nil, nil),
		prometheus.NewDesc(namespace+"_sparkplug_primary_host_online", "1 while the primary host's STATE says online; 0 without sparkplug.primary_host_id and while not connected.", nil, nil),
		prometheus.NewDesc(namespace+"_sparkplug_sessions_total", "MQTT sessions the Sparkplug edge node established (each with a new bdSeq).", nil, nil),
		prometheus.NewDesc(namespace+"_sparkplug_births_total", "NBIRTH and DBIRTH pairs the Sparkplug edge node queued, rebirths included.", nil, nil),
		prometheus.NewDesc(namespace+"_sparkplug_bdseq", "bdSeq of the Sparkplug edge node's current or last session (0 before the first).", nil, nil),
		prometheus.NewDesc(namespace+"_sparkplug_queue_depth", "Messages in the Sparkplug edge node's send queue.", nil, nil),
		prometheus.NewDesc(namespace+"_sparkplug_queue_bytes", "Payload bytes of the messages in the Sparkplug edge node's send queue.", nil, nil),
		prometheus.NewDesc(namespace+"_sparkplug_dropped_total", "Sparkplug data messages not sent, by reason: offline (an inspection's DDATA without a live session), queue_full (refused by the full send queue), leaving (still queued when a session ended on purpose: dropped so that the NDEATH goes at once).", []string{"reason"}, nil),
	}}
	c.collect = func(ch chan<- prometheus.Metric) {
		s := f()
		ch <- prometheus.MustNewConstMetric(c.descs[0], prometheus.GaugeValue, gauge01(s.Online))
		ch <- prometheus.MustNewConstMetric(c.descs[1], prometheus.GaugeValue, gauge01(s.PrimaryHostOnline))
		ch <- prometheus.MustNewConstMetric(c.descs[2], prometheus.CounterValue, float64(s.Sessions))
		ch <- prometheus.MustNewConstMetric(c.descs[3], prometheus.CounterValue, float64(s.Births))
		ch <- prometheus.MustNewConstMetric(c.descs[4], prometheus.GaugeValue, float64(s.BdSeq))
		ch <- prometheus.MustNewConstMetric(c.descs[5], prometheus.GaugeValue, float64(s.Queued))
		ch <- prometheus.MustNewConstMetric(c.descs[6], prometheus.GaugeValue, float64(s.QueuedBytes))
		ch <- prometheus.MustNewConstMetric(c.descs[7], prometheus.CounterValue, float64(s.DroppedOffline), "offline")
		ch <- prometheus.MustNewConstMetric(c.descs[7], prometheus.CounterValue, float64(s.DroppedQueueFull), "queue_full")
		ch <- prometheus.MustNewConstMetric(c.descs[7], prometheus.CounterValue, float64(s.DroppedLeaving), "leaving")
	}
	if err := m.Registry.Register(c); err != nil {
		return fmt.Errorf("register Sparkplug metrics: %w", err)
	}
	return nil
}

// gauge01 is a flag's gauge value: 1 for true, 0 for false.
func gauge01(x bool) float64 {
	if x {
		return 1
	}
	return 0
}

// funcCollector reads a component's counters once per scrape, so the
// component keeps plain counters and knows nothing of Prometheus.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
