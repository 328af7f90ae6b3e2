package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultYAMLParsesToDefault(t *testing.T) {
	c, err := Parse(DefaultYAML(), "defaults")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Parse(DefaultYAML()) =\n%+v\nwant Default() =\n%+v", c, Default())
	}
	b := DefaultYAML()
	b[0] = 'X'
	if DefaultYAML()[0] == 'X' {
		t.Error("DefaultYAML shares its bytes with callers")
	}
}

// schemaKeys lists every YAML key path of a struct type.
func schemaKeys(t reflect.Type, prefix string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		p := prefix + name
		*out = append(*out, p)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(unmarshalerType) {
			schemaKeys(f.Type, p+".", out)
		}
	}
}

// TestDefaultYAMLDocumentsEveryKey checks that DefaultYAML has every key
// of the schema, and a comment for each: its own, or for keys written as a
// group (width, height) the comment of the key on the line above.
func TestDefaultYAMLDocumentsEveryKey(t *testing.T) {
	var want []string
	schemaKeys(reflect.TypeFor[Config](), "", &want)

	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML(), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		prevLine, prevComment := -1, ""
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := prefix + k.Value
			got = append(got, p)
			grouped := k.Line == prevLine+1 && slices.Contains(strings.FieldsFunc(prevComment, func(r rune) bool {
				return !('a' <= r && r <= 'z' || r == '_')
			}), k.Value)
			if k.HeadComment == "" && k.LineComment == "" && v.LineComment == "" && !grouped {
				t.Errorf("line %d: key %s has no comment (nor does the key above name it)", k.Line, p)
			}
			prevLine, prevComment = k.Line, k.HeadComment
			if v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle == 0 {
				walk(v, p+".")
			} else if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				t.Errorf("line %d: %s is a flow mapping; write each key on its own line with a comment", k.Line, p)
			}
		}
	}
	walk(doc.Content[0], "")
	slices.Sort(want)
	slices.Sort(got)
	for _, k := range want {
		if _, found := slices.BinarySearch(got, k); !found {
			t.Errorf("DefaultYAML lacks key %s", k)
		}
	}
	for _, k := range got {
		if _, found := slices.BinarySearch(want, k); !found {
			t.Errorf("DefaultYAML has key %s that the schema lacks", k)
		}
	}
}

// nonDefault returns a valid configuration that differs from Default in
// every setting, so that a round trip loses nothing unnoticed.
func nonDefault() *Config {
	c := Default()
	c.DeviceID = "cam-9"
	c.StateDir = "/srv/inspectd state"
	c.LogLevel = "debug"
	c.Capture = Capture{
		Source: SourceFolder,
		Camera: Camera{Device: "/dev/v4l/by-id/usb-x-video-index0", Formats: []string{"GREY", "YUYV"}, Width: 640, Height: 480,
			FPS: 60, Buffers: 4, Timeout: Duration(1500 * time.Millisecond), Controls: map[string]int32{"exposure": 250, "gain": -1}},
		Folder:    Folder{Path: "/data/line 3", Watch: true},
		File:      File{Path: "yes"}, // a string YAML 1.1 would read as a bool
		Synthetic: Synthetic{Seed: -5, Width: 100, Height: 80, DefectRate: 0.5, FPS: 0},
		ROI:       ROI{X: 1, Y: 2, Width: 30, Height: 40},
		Rotate:    90,
		Trigger:   Trigger{Mode: TriggerExternal, MaxRate: 2.5, Queue: 3, MaxAge: 0, DedupWindow: Duration(time.Minute)},
		MaxPixels: 12_000_000,
		Align:     Align{Mode: AlignRigid, MaxShift: 0.1, MaxAngle: 5.5, MinConfidence: 0.6},
	}
	c.Model = Model{
		Path: "/m/model.safetensors", Recipe: "v2-tiles3-std-z-ctx1", Backbone: "/m/backbone.tflite",
		Taps:    []string{"a/b:0", "null", "123"},
		Input:   Input{Resize: ResizeCrop, Mean: [3]float64{0.485, 0.456, 0.406}, Std: [3]float64{0.229, 0.224, 0.225}, Tiles: 2},
		Threads: 4, XNNPACK: false, Optimize: "int8", Precision: "float32",
		Delegate: Delegate{Library: "libedgetpu.so.1", Options: map[string]string{"device": "usb", "n": "1"}, Required: true},
		Features: 550, MinFeatures: 50, Seed: 42, Epsilon: 1e-3,
		MemoryBudget: FixedMemoryBudget(512_000_000), MemoryFraction: 0.5, PositionZScore: false, ContextPool: 4, ContextFeatures: 64, ContextWeight: 0.5, BlurSigma: 0,
		Threshold: Threshold{Quantile: 0.95, Margin: 1.5, Value: 12.25, Holdout: 0},
	}
	c.MQTT = MQTT{
		Brokers: []string{"ssl://b1:8883", "wss://b2/mqtt"}, EmbeddedListen: "", ClientID: "cid", Username: "u", Password: "p: #x",
		TLS:       TLS{CA: "/ca.pem", Cert: "/c.pem", Key: "/k.pem", ServerName: "broker", InsecureSkipVerify: true},
		Keepalive: 0, ConnectTimeout: Duration(3 * time.Second), MaxReconnectInterval: Duration(2 * time.Minute),
		TopicPrefix: "factory/line3", ResultQoS: 2, ResultMaxRate: 0.5, Mask: PublishAlways, Heatmap: PublishNever, ImageMaxSide: 0,
		Profile:    ProfileBoth,
		MaxPayload: 128 << 10, OutboxMaxMessages: 500, OutboxMaxBytes: 3 << 20,
	}
	c.Sparkplug = Sparkplug{GroupID: "Plant 1: Line 3", EdgeNodeID: "cam-3 ü", PrimaryHostID: "IamHost", ClientID: "spb"}
	c.HTTP.Listen = ""
	c.Pipeline.Queue = 16
	return c
}

func TestMarshalRoundTrip(t *testing.T) {
	for name, c := range map[string]*Config{"default": Default(), "non-default": nonDefault()} {
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(b, name)
		if err != nil {
			t.Fatalf("%s: Parse(Marshal()) error %v\n%s", name, err, b)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s: round trip changed the config:\n got  %+v\n want %+v\n%s", name, back, c, b)
		}
	}
	b, _ := Marshal(Default())
	for _, want := range []string{"timeout: 2s\n", "memory_budget: auto\n", "formats: [MJPEG, YUYV, GREY]\n", "keepalive: 30s\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Marshal(Default()) lacks %q", want)
		}
	}
	b, _ = Marshal(nonDefault())
	for _, want := range []string{"memory_budget: 512MB\n", "timeout: 1.5s\n", "max_reconnect_interval: 2m\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Marshal(nonDefault()) lacks %q:\n%s", want, b)
		}
	}
}

// The comment of model.ensemble said the search keeps the ensemble "only
// when the synthetic defects score it clearly higher" (than the single
// recipe), the rule of before; the search keeps it when they score it at
// least as high (README, Ensembles; fit prints "scored at least as high as
// the single recipe"), and one reading the defaults took it for rarer.
func TestDefaultYAMLEnsembleSaysWhenItIsKept(t *testing.T) {
	flat := defaultComment(t, "model", "ensemble")
	if !strings.Contains(flat, "at least as high as the single recipe") || strings.Contains(flat, "clearly higher") {
		t.Errorf("model.ensemble's comment: %q; want it kept when the synthetic defects score it at least as high as the single recipe", flat)
	}
}

// The comment of mqtt.client_id said an empty one is inspectd-<device_id>,
// but device_id is empty by default (the host name), and then the daemon
// connects as inspectd-<host name>-<random suffix> kept in state_dir
// (mqtt-client-id), so that boxes cloned from one image do not clash: one
// reading the defaults looked for inspectd-<host name> on the broker, or
// set ACLs for it, and found another id.
func TestDefaultYAMLClientIDSaysTheSuffix(t *testing.T) {
	flat := defaultComment(t, "mqtt", "client_id")
	for _, want := range []string{"inspectd-<device_id>", "inspectd-<host name>-<suffix>", "state_dir", "mqtt-client-id"} {
		if !strings.Contains(flat, want) {
			t.Errorf("mqtt.client_id's comment: %q; want it to say %q", flat, want)
		}
	}
}

// The comment of capture.camera.timeout said a wait that long counts as a
// timeout "and the device is reopened", but the camera is reopened only
// after 3 timeouts in a row (capture.CameraOptions.ReopenAfterTimeouts, as
// README's troubleshooting says): one sizing the stall from the defaults
// expected a reopen after 2 s and got one after 6 s.
func TestDefaultYAMLCameraTimeoutSaysThreeInARow(t *testing.T) {
	flat := defaultComment(t, "capture", "camera", "timeout")
	if !strings.Contains(flat, "3 timeouts in a row") {
		t.Errorf("capture.camera.timeout's comment: %q; want it to say the device is reopened after 3 timeouts in a row", flat)
	}
}

// defaultComment is the comment above the key at path in DefaultYAML, its
// "#" marks and line breaks flattened into single spaces ("" when the key
// is not there).
func defaultComment(t *testing.T, path ...string) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML(), &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.Content[0]
	for k, key := range path {
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != key {
				continue
			}
			if k == len(path)-1 {
				return strings.Join(strings.Fields(strings.ReplaceAll(n.Content[i].HeadComment, "#", " ")), " ")
			}
			next = n.Content[i+1]
		}
		if next == nil {
			return ""
		}
		n = next
	}
	return ""
}
