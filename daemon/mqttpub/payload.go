package mqttpub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/inspectd/inspectd/daemon/internal/jsonkeys"
	"github.com/inspectd/inspectd/model"
)

// Header is what results and alarms both say of an inspection; its fields
// appear at the top level of either payload.
type Header struct {
	// Seq numbers inspections from 1 since the process started; it goes on
	// across configuration reloads and remote pushes. BootID changes at
	// every start, so (BootID, Seq) names one inspection for good: a
	// consumer that deduplicates by seq must key on both. Every answer
	// takes the next number, whatever its verdict: an error result (a
	// failed inspection, a trigger without a frame, an unreadable file)
	// takes one too, and so does a result not published (mqtt.result_max_rate,
	// a camera's free-run failures beyond one a second), so a gap in the
	// published seqs is answers not sent (or lost), never a skipped number.
	Seq    uint64 `json:"seq"`
	BootID string `json:"boot_id,omitempty"`
	// FrameTime is when the camera captured the frame (RFC 3339, UTC).
	// Absent (zero) on an error result that had no frame: a trigger that
	// got none, a file that could not be read.
	FrameTime time.Time `json:"frame_time,omitzero"`
	// TriggerID echoes the id of the trigger request this inspection
	// answers; empty for free-running inspections.
	TriggerID string `json:"trigger_id,omitempty"`
	// File is the image file the frame came from, its name within the
	// folder (folder and file sources; empty for cameras and synthetic
	// frames): what tells a part from a file the source read again.
	File string `json:"file,omitempty"`
	// FileBytes holds File's exact bytes (base64) when the name is not
	// UTF-8, which a JSON string cannot carry: File then has U+FFFD for
	// each byte that is not, and two such names can read alike (SetFile).
	FileBytes []byte `json:"file_bytes,omitempty"`
	// Score is the image anomaly score (max of the anomaly map).
	Score float64 `json:"score"`
	// Threshold is the image score above which a frame is anomalous.
	Threshold float64 `json:"threshold"`
	// NormalizedScore is Score/Threshold: above 1 means anomalous.
	NormalizedScore float64 `json:"normalized_score"`
	// ModelID identifies the fitted model that produced the score.
	ModelID string `json:"model_id"`
}

// SetFile sets File to name, and FileBytes to its bytes when name is not
// UTF-8 (nil otherwise: nothing allocated for the usual names).
func (h *Header) SetFile(name string) {
	h.File, h.FileBytes = name, nil
	if !utf8.ValidString(name) {
		h.FileBytes = []byte(name)
	}
}

// Result is the JSON payload published on <prefix>/<device_id>/result for
// every inspection.
type Result struct {
	Header
	// Anomalous is the verdict. An inspection that could not be made (a
	// trigger that got no frame, a failed inspection) is reported as
	// anomalous with Verdict "error": a line must never take a missing
	// inspection for a good part.
	Anomalous bool `json:"anomalous"`
	// Verdict is "ok", "anomalous" or "error".
	Verdict string `json:"verdict"`
	// Error says why no inspection was made (Verdict "error").
	Error string `json:"error,omitempty"`
	// LatencyMS holds the time spent in each pipeline stage, in
	// milliseconds, keyed by stage name (capture, align, preprocess,
	// backbone, ...).
	LatencyMS map[string]float64 `json:"latency_ms"`
	// Registration is the frame's registration to the model's reference
	// view (models fitted with registration only; with Verdict "error"
	// when the frame was refused for it, the estimate that was refused,
	// when there was one).
	Registration *Registration `json:"registration,omitempty"`
}

// MarshalJSON writes the result with Header's tags; a result with Verdict
// "error" has "score" and "normalized_score" null: no part was measured,
// and a 0 read as a perfect part by a consumer that tests
// normalized_score < 1 (Sparkplug sends these metrics null, and /metrics
// NaN, for the same reason).
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // without this method
	if r.Verdict != verdictError {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		// Shallower than Header's fields of the same names: these win.
		Score           *float64 `json:"score"`
		NormalizedScore *float64 `json:"normalized_score"`
	}{plain: plain(r)})
}

// verdictError is Result.Verdict of an inspection that could not be made.
const verdictError = "error"

// Registration is where the part lay in the frame against the reference
// view of a good part the model was fitted on.
type Registration struct {
	// Mode is the model's registration mode: translate or rigid.
	Mode string `json:"mode"`
	// ShiftX, ShiftY are the part's shift in frame pixels (x right, y
	// down); AngleDeg its rotation in degrees, clockwise on the image.
	ShiftX   float64 `json:"shift_x"`
	ShiftY   float64 `json:"shift_y"`
	AngleDeg float64 `json:"angle_deg"`
	// Confidence is the normalized cross-correlation of the aligned
	// frame with the reference view, −1..1.
	Confidence float64 `json:"confidence"`
	// Failure names why the frame was refused: no_overlap,
	// low_confidence, shift or angle (Verdict "error" only).
	Failure string `json:"failure,omitempty"`
}

// Region is one connected region of the binary anomaly mask, in pixels of
// the inspected image (or ROI): bounding box and area.
type Region struct {
	X    int `json:"x"`
	Y    int `json:"y"`
	W    int `json:"w"`
	H    int `json:"h"`
	Area int `json:"area_px"`
}

// Alarm is the JSON payload published at QoS 1 on
// <prefix>/<device_id>/alarm for anomalous inspections only.
type Alarm struct {
	Header
	// ImageWidth and ImageHeight give the frame the region coordinates refer to.
	ImageWidth  int `json:"image_width"`
	ImageHeight int `json:"image_height"`
	// Regions lists the mask's connected regions, largest first.
	Regions []Region `json:"regions"`
}

// Thresholds are the decision thresholds of the loaded model.
type Thresholds struct {
	// Image is the image-score threshold (verdict).
	Image float64 `json:"image"`
	// Pixel is the anomaly-map threshold that makes the binary mask.
	Pixel float64 `json:"pixel"`
}

// Info is the retained JSON payload on <prefix>/<device_id>/info, describing
// what the daemon runs. It is re-published on every (re)connect.
type Info struct {
	Version    string     `json:"version"`
	DeviceID   string     `json:"device_id"`
	ModelID    string     `json:"model_id"`
	Backbone   string     `json:"backbone"`
	D          int        `json:"d"`
	Thresholds Thresholds `json:"thresholds"`
	// Camera describes the frame source (device path, folder, "synthetic").
	Camera    string    `json:"camera"`
	StartedAt time.Time `json:"started_at"`
	// Recipe is the model's scoring recipe and RecipeChoice how it was
	// chosen (auto, fixed or named); RecipeFigures are the recipe search's
	// validation figures it was chosen by (auto only), LineNoise the
	// training images' sensor noise against their contrast. Each is absent
	// where the model file does not record it.
	Recipe        string               `json:"recipe,omitempty"`
	RecipeChoice  string               `json:"recipe_choice,omitempty"`
	RecipeFigures *model.RecipeFigures `json:"recipe_figures,omitempty"`
	LineNoise     *model.LineNoise     `json:"line_noise,omitempty"`
}

// Trigger is the request payload on <prefix>/<device_id>/trigger:
// {"id": "..."} asks for an inspection of the next fresh frame, answered on
// result with the same id. The optional "time" (RFC 3339) is when the
// sender made the request: one that the broker held while inspectd was
// down arrives late, and the daemon then answers it as stale instead of
// inspecting a part that is no longer there.
type Trigger struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time,omitzero"`
}

// MaxTriggerIDLen bounds the trigger id, in characters, which is echoed
// into every result.
const MaxTriggerIDLen = 128

// maxTriggerPayload bounds what ParseTrigger reads: a valid request is tiny.
const maxTriggerPayload = 1024

// ParseTrigger decodes a trigger request strictly: a single JSON object
// with the field "id", a string of 1 to MaxTriggerIDLen bytes of valid
// UTF-8 without control characters, and optionally "time" (RFC 3339);
// keys spelt exactly, each once (not "ID", nor "id" and "ID" both). The error names the topic and
// says what was expected, so a PLC programmer can fix the request from the
// daemon's log line alone.
func ParseTrigger(topic string, payload []byte) (Trigger, error) {
	var t Trigger
	fail := func(format string, a ...any) (Trigger, error) {
		return Trigger{}, fmt.Errorf("trigger on %q: expected a JSON object {\"id\": \"<1-%d characters>\"} (optionally with \"time\": \"<RFC 3339>\"): %s",
			topic, MaxTriggerIDLen, fmt.Sprintf(format, a...))
	}
	if len(payload) == 0 {
		return fail("payload is empty")
	}
	if len(payload) > maxTriggerPayload {
		return fail("payload is %d bytes, more than %d", len(payload), maxTriggerPayload)
	}
	if !utf8.Valid(payload) {
		return fail("payload is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fail("payload %s is not a JSON object", quoteShort(payload))
	}
	var raw triggerJSON
	// Keys exactly: encoding/json alone took {"ID":"p6"} for an id, and
	// the last of two keys differing in case.
	var ke *jsonkeys.Error
	if errors.As(jsonkeys.Check(trimmed, reflect.TypeOf(raw)), &ke) {
		switch ke.Kind {
		case jsonkeys.Duplicate:
			if ke.Want != ke.Key {
				return fail("field %q appears twice (also as %q)", ke.Key, ke.Want)
			}
			return fail("field %q appears twice", ke.Key)
		case jsonkeys.Case:
			return fail("unknown field %q (did you mean %q? keys are case-sensitive; a trigger takes \"id\" and \"time\")", ke.Key, ke.Want)
		}
		return fail("unknown field %q (a trigger takes \"id\" and \"time\")", ke.Key)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			// encoding/json's own words name Go's types ("Go struct field
			// Trigger.id of type string"): a PLC programmer reads JSON's.
			return fail("field %q: expected a string, got %s", te.Field, te.Value)
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fail("unknown field %s (a trigger takes \"id\" and \"time\")", name)
		}
		return fail("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	t.ID = raw.ID
	if raw.Time != "" {
		tm, err := time.Parse(time.RFC3339Nano, raw.Time)
		if err != nil {
			return fail("field \"time\": %s is not an RFC 3339 time such as \"2026-11-28T16:25:32.435Z\"", quoteShort([]byte(raw.Time)))
		}
		t.Time = tm
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail("extra data after the JSON object")
	}
	if err := CheckTriggerID(t.ID); err != nil {
		return fail("field \"id\" %v", err)
	}
	return t, nil
}

// CheckTriggerID says what is wrong with a trigger id (nil when nothing
// is): 1 to MaxTriggerIDLen characters of valid UTF-8, not blank, without
// control characters. The error reads after the id's name ("is 129
// characters long, at most 128"), for front ends whose ids are not JSON
// (Sparkplug's Command/Trigger).
func CheckTriggerID(id string) error {
	if strings.TrimSpace(id) == "" {
		return errors.New("is missing, empty or blank")
	}
	if n := utf8.RuneCountInString(id); n > MaxTriggerIDLen {
		return fmt.Errorf("is %d characters long, at most %d", n, MaxTriggerIDLen)
	}
	for _, r := range id {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("contains control or invalid character %U", r)
		}
	}
	return nil
}

// triggerJSON is a trigger request as it travels.
type triggerJSON struct {
	ID   string `json:"id"`
	Time string `json:"time"`
}

// TriggerID returns the "id" string of a trigger request that ParseTrigger
// refused for another reason (an unknown field, a bad time), so that its
// sender can still be answered; "" when there is no usable id.
func TriggerID(payload []byte) string {
	if len(payload) > maxTriggerPayload {
		return ""
	}
	// "id" spelt exactly: {"id":"p6","ID":"p7"} is answered to p6, and
	// {"ID":"p6"} to nobody (its sender used no id inspectd takes).
	raw, ok := jsonkeys.Lookup(payload, "id")
	var id string
	if !ok || json.Unmarshal(raw, &id) != nil {
		return ""
	}
	if strings.TrimSpace(id) == "" || utf8.RuneCountInString(id) > MaxTriggerIDLen || !utf8.ValidString(id) {
		return ""
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return id
}

// quoteShort quotes at most 64 bytes of b for an error message.
func quoteShort(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q...", b[:64])
	}
	return fmt.Sprintf("%q", b)
}

// marshal encodes a payload, naming the topic if it cannot (a NaN score,
// for instance, has no JSON form).
func marshal(topic string, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("mqtt %s: encode JSON payload: %w", topic, err)
	}
	return data, nil
}
