package mqttpub

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const trigTopic = "inspectd/cam1/trigger"

func TestParseTrigger(t *testing.T) {
	for _, ok := range []struct{ in, id string }{
		{`{"id":"abc"}`, "abc"},
		{` { "id" : "batch-7/pos 3" } ` + "\n", "batch-7/pos 3"},
		{`{"id":"Prüfung-ß"}`, "Prüfung-ß"},
		{`{"id":"` + strings.Repeat("é", MaxTriggerIDLen) + `"}`, strings.Repeat("é", MaxTriggerIDLen)}, // characters, not bytes
		{`{"id":"` + strings.Repeat("x", MaxTriggerIDLen) + `"}`, strings.Repeat("x", MaxTriggerIDLen)},
	} {
		tr, err := ParseTrigger(trigTopic, []byte(ok.in))
		if err != nil || tr.ID != ok.id {
			t.Errorf("ParseTrigger(%q) = %q, %v", ok.in, tr.ID, err)
		}
	}
	for _, bad := range []struct{ in, want string }{
		{``, "empty"},
		{`   `, "not a JSON object"},
		{`"abc"`, "not a JSON object"},
		{`[{"id":"a"}]`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{`{}`, `"id" is missing`},
		{`{"id":""}`, `"id" is missing, empty or blank`},
		{`{"id":"  "}`, `"id" is missing, empty or blank`},
		{`{"id":"a","time":"yesterday"}`, `field "time": "yesterday" is not an RFC 3339 time such as`},
		{`{"id":"a","time":5}`, `field "time": expected a string, got number`},
		{`{"id":null}`, `"id" is missing`},
		{`{"id":5}`, `field "id": expected a string, got number`},
		{`{"id":"a","extra":1}`, `unknown field "extra" (a trigger takes "id" and "time")`},
		{`{"ID2":"a"}`, `unknown field`},
		{`{"id":"a"} {"id":"b"}`, "extra data"},
		{`{"id":"a"`, "unexpected EOF"},
		{`{"id":"a\u0007b"}`, "control"},
		{`{"id":"` + strings.Repeat("x", MaxTriggerIDLen+1) + `"}`, "129 characters long"},
		{"{\"id\":\"\xff\"}", "not valid UTF-8"},
		{`{"id":"` + strings.Repeat("x", 2000) + `"}`, "more than 1024"},
	} {
		_, err := ParseTrigger(trigTopic, []byte(bad.in))
		if err == nil {
			t.Errorf("ParseTrigger(%q) accepted", bad.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, bad.want) || !strings.Contains(msg, trigTopic) || !strings.Contains(msg, `expected a JSON object {"id"`) {
			t.Errorf("ParseTrigger(%q) error %q: want topic, expectation and %q", bad.in, msg, bad.want)
		}
	}
}

// TestParseTriggerKeysExact: a trigger's keys are spelt exactly. Before,
// {"ID":"p6"} on the trigger topic caused an inspection (encoding/json
// matches keys regardless of case), and of "id" and "ID" the last won.
func TestParseTriggerKeysExact(t *testing.T) {
	for _, bad := range []struct{ in, want, id string }{
		{`{"ID":"p6"}`, `unknown field "ID" (did you mean "id"? keys are case-sensitive; a trigger takes "id" and "time")`, ""},
		{`{"Id":"p6","time":"2026-11-28T16:25:32Z"}`, `unknown field "Id" (did you mean "id"?`, ""},
		{`{"id":"p6","TIME":"2026-11-28T16:25:32Z"}`, `unknown field "TIME" (did you mean "time"?`, "p6"},
		{`{"id":"p7","ID":"p8"}`, `field "ID" appears twice (also as "id")`, "p7"},
		{`{"ID":"p8","id":"p7"}`, `unknown field "ID" (did you mean "id"?`, "p7"},
		{`{"id":"p9","id":"p10"}`, `field "id" appears twice`, "p10"},
	} {
		tr, err := ParseTrigger(trigTopic, []byte(bad.in))
		if err == nil {
			t.Errorf("ParseTrigger(%s) accepted, id %q", bad.in, tr.ID)
			continue
		}
		if !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), trigTopic) {
			t.Errorf("ParseTrigger(%s) error %q: want topic and %q", bad.in, err, bad.want)
		}
		// The refusal is answered to the id spelt exactly, or to none.
		if id := TriggerID([]byte(bad.in)); id != bad.id {
			t.Errorf("TriggerID(%s) = %q, want %q", bad.in, id, bad.id)
		}
	}
}

// FuzzParseTrigger: never panics; accepted ids obey the documented rules,
// come from the keys "id" and "time" spelt exactly, and survive a JSON
// round trip.
func FuzzParseTrigger(f *testing.F) {
	for _, s := range []string{`{"id":"abc"}`, `{"id":""}`, `{"id":5}`, `{"id":"a","x":1}`, `[]`, `{"id":"a"} x`, `{"ID":"p6"}`, `{"id":"p7","ID":"p8"}`,
		`{"id":"\u00e9\ud800"}`, "\xff", `{"id":"` + strings.Repeat("y", 130) + `"}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		tr, err := ParseTrigger(trigTopic, payload)
		if err != nil {
			if !strings.Contains(err.Error(), trigTopic) {
				t.Fatalf("error without topic: %v", err)
			}
			return
		}
		if tr.ID == "" || len(tr.ID) > MaxTriggerIDLen || !utf8.ValidString(tr.ID) {
			t.Fatalf("accepted bad id %q from %q", tr.ID, payload)
		}
		var keys map[string]json.RawMessage
		json.Unmarshal(payload, &keys)
		for k := range keys {
			if k != "id" && k != "time" {
				t.Fatalf("accepted key %q of %q", k, payload)
			}
		}
		if id := TriggerID(payload); id != tr.ID {
			t.Fatalf("TriggerID(%q) = %q, ParseTrigger took %q", payload, id, tr.ID)
		}
		data, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseTrigger(trigTopic, data)
		if err != nil || back != tr {
			t.Fatalf("round trip of %q: %q, %v", tr.ID, back.ID, err)
		}
	})
}

func TestMarshalNaNNamesTopic(t *testing.T) {
	_, err := marshal("inspectd/cam1/result", &Result{Header: Header{Score: math.NaN()}})
	if err == nil || !strings.Contains(err.Error(), "inspectd/cam1/result") {
		t.Fatalf("err = %v", err)
	}
}

// TestErrorResultHasNoScore: a result that answers an inspection that
// could not be made says "score": null and "normalized_score": null (it
// said 0, a perfect part to a consumer testing normalized_score < 1);
// every other field, and every other verdict's score, as before.
func TestErrorResultHasNoScore(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		r    Result
		want map[string]any
	}{
		{Result{Header: Header{Seq: 7, FrameTime: at, TriggerID: "p7", Threshold: 15.5, ModelID: "m1"}, Anomalous: true, Verdict: "error", Error: "stale trigger"},
			map[string]any{"seq": 7.0, "trigger_id": "p7", "score": nil, "normalized_score": nil, "threshold": 15.5, "model_id": "m1",
				"anomalous": true, "verdict": "error", "error": "stale trigger", "frame_time": "2026-12-03T09:00:00Z"}},
		{Result{Header: Header{Seq: 8, FrameTime: at, Score: 0, Threshold: 15.5, NormalizedScore: 0}, Verdict: "ok"},
			map[string]any{"score": 0.0, "normalized_score": 0.0, "verdict": "ok"}},
		{Result{Header: Header{Seq: 9, FrameTime: at, Score: 31, Threshold: 15.5, NormalizedScore: 2}, Anomalous: true, Verdict: "anomalous"},
			map[string]any{"score": 31.0, "normalized_score": 2.0, "verdict": "anomalous"}},
	} {
		for _, v := range []any{tc.r, &tc.r} { // as a value and as the publisher hands it
			b, err := marshal("inspectd/cam1/result", v)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for k, w := range tc.want {
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("%s: %q is %v (present %v), want %v", b, k, g, ok, w)
				}
			}
			if strings.Count(string(b), `"score"`) != 1 || strings.Count(string(b), `"normalized_score"`) != 1 {
				t.Errorf("%s: score keys repeated", b)
			}
			var back Result
			if err := json.Unmarshal(b, &back); err != nil || back.Seq != tc.r.Seq || back.Verdict != tc.r.Verdict {
				t.Errorf("%s reads back as %+v, %v", b, back, err)
			}
		}
	}
	// A score that is not a number is refused, naming the topic, unless
	// the result says it is an error (then there is no score to write).
	if _, err := marshal("t", &Result{Header: Header{Score: math.NaN()}, Verdict: "error"}); err != nil {
		t.Errorf("an error result with a NaN score: %v", err)
	}
}
