package sparkplug

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// inspections returns free-running results as the pipeline makes them:
// scores, normalized scores and stage latencies change every frame, the
// threshold, verdict and model do not.
func inspections(k int) []*mqttpub.Result {
	t0 := time.Date(2026, 11, 28, 16, 25, 32, 435e6, time.UTC)
	rs := make([]*mqttpub.Result, k)
	for i := range rs {
		f := float64(i % 7)
		rs[i] = &mqttpub.Result{Header: mqttpub.Header{Seq: uint64(1000 + i), FrameTime: t0.Add(time.Duration(i) * 25 * time.Millisecond),
			Score: 6.58 + f*0.37, Threshold: 14, NormalizedScore: (6.58 + f*0.37) / 14, ModelID: "849136775201"},
			Verdict: "ok", LatencyMS: map[string]float64{"queue": 2.1 + f*0.1, "preprocess": 4.9 + f*0.01, "backbone": 61.3 + f*0.2,
				"padim": 12.2 + f*0.03, "map": 6.3 + f*0.02, "publish": 0.4 + f*0.001}}
	}
	return rs
}

// BenchmarkInspectionPayload measures what one inspection costs on the
// wire in each profile: the Sparkplug DDATA the edge node encodes (only
// the metrics that changed, by alias) against the JSON result that
// mqttpub publishes (encoding/json, as mqttpub's marshal does), in the
// same run. bytes/msg is the payload size.
func BenchmarkInspectionPayload(b *testing.B) {
	rs := inspections(64)
	b.Run("sparkplug-ddata", func(b *testing.B) {
		n, err := New(Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "Plant 1", EdgeNodeID: "line3-cam1",
			DeviceID: "line3-cam1", Logger: discard()})
		if err != nil {
			b.Fatal(err)
		}
		n.recordLocked(rs[0])
		n.dev.birth(nil, 0) // what a DBIRTH sent
		var buf []byte
		total := 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			n.recordLocked(rs[i%len(rs)])
			n.scratch = n.dev.changes(n.scratch[:0])
			p := sppb.Payload{Timestamp: uint64(rs[i%len(rs)].FrameTime.UnixMilli()), Metrics: n.scratch, Seq: uint64(i % 256), HasSeq: true}
			if buf, err = p.AppendMarshal(buf[:0]); err != nil {
				b.Fatal(err)
			}
			total += len(buf)
		}
		b.ReportMetric(float64(total)/float64(b.N), "bytes/msg")
	})
	b.Run("json-result", func(b *testing.B) {
		total := 0
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			data, err := json.Marshal(rs[i%len(rs)])
			if err != nil {
				b.Fatal(err)
			}
			total += len(data)
		}
		b.ReportMetric(float64(total)/float64(b.N), "bytes/msg")
	})
}

// BenchmarkBirth reports the size of the NBIRTH and DBIRTH a host receives
// at every (re)birth.
func BenchmarkBirth(b *testing.B) {
	n, err := New(Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "Plant 1", EdgeNodeID: "line3-cam1",
		DeviceID: "line3-cam1", Mask: true, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	_ = n.SetInfo(&mqttpub.Info{Version: "1.0.0", ModelID: "849136775201", Backbone: "mobilenet_quant_v1_224.tflite", D: 100,
		Thresholds: mqttpub.Thresholds{Image: 14, Pixel: 0.5}, Camera: "/dev/video0", StartedAt: time.Now()})
	n.recordLocked(inspections(1)[0])
	var nb, db []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		n.scratch = n.node.birth(n.scratch[:0], nowMS())
		p := sppb.Payload{Timestamp: nowMS(), Metrics: n.scratch, HasSeq: true}
		nb, _ = p.AppendMarshal(nb[:0])
		n.scratch = n.dev.birth(n.scratch[:0], nowMS())
		p = sppb.Payload{Timestamp: nowMS(), Metrics: n.scratch, Seq: 1, HasSeq: true}
		db, _ = p.AppendMarshal(db[:0])
	}
	b.ReportMetric(float64(len(nb)), "NBIRTH-bytes")
	b.ReportMetric(float64(len(db)), "DBIRTH-bytes")
}
