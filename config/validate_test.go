package config

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

// TestValidate changes Default in one way per case and checks the exact
// messages: each names the field, the value and what is allowed.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want []string // nil: valid
	}{
		// top level
		{"device id ok", func(c *Config) { c.DeviceID = "line3-cam_1.a" }, nil},
		{"device id slash", func(c *Config) { c.DeviceID = "line3/cam" },
			[]string{`device_id: "line3/cam" is not 1..64 letters, digits, '.', '_' or '-' (it is an MQTT topic level); leave it empty for the host name`}},
		{"device id wildcard", func(c *Config) { c.DeviceID = "cam+" },
			[]string{`device_id: "cam+" is not 1..64 letters, digits, '.', '_' or '-' (it is an MQTT topic level); leave it empty for the host name`}},
		{"device id too long", func(c *Config) { c.DeviceID = strings.Repeat("a", 65) },
			[]string{`device_id: "` + strings.Repeat("a", 65) + `" is not 1..64 letters, digits, '.', '_' or '-' (it is an MQTT topic level); leave it empty for the host name`}},
		{"state dir empty", func(c *Config) { c.StateDir = " " },
			[]string{`state_dir: is empty; the daemon needs a directory for the model and the MQTT store`}},
		{"log level", func(c *Config) { c.LogLevel = "verbose" },
			[]string{`log_level: "verbose" is not one of debug, info, warn, error`}},

		// model.precision
		{"precision float16", func(c *Config) { c.Model.Precision = "float16" }, nil},
		{"precision unknown", func(c *Config) { c.Model.Precision = "fp16" },
			[]string{`model.precision: "fp16" is not one of auto, float32, float16`}},

		// capture
		{"source", func(c *Config) { c.Capture.Source = "webcam" },
			[]string{`capture.source: "webcam" is not one of synthetic, camera, folder, file`}},
		{"camera ok", func(c *Config) { c.Capture.Source = SourceCamera }, nil},
		{"camera device empty", func(c *Config) { c.Capture.Source = SourceCamera; c.Capture.Camera.Device = "" },
			[]string{`capture.camera.device: is empty; capture.source is camera`}},
		{"camera device empty but unused", func(c *Config) { c.Capture.Camera.Device = "" }, nil},
		{"formats empty", func(c *Config) { c.Capture.Camera.Formats = nil },
			[]string{`capture.camera.formats: is empty; list one or more of MJPEG, YUYV, GREY`}},
		{"format unknown and twice", func(c *Config) { c.Capture.Camera.Formats = []string{"YUYV", "H264", "YUYV", "mjpeg"} },
			[]string{
				`capture.camera.formats[1]: "H264" is not one of MJPEG, YUYV, GREY`,
				`capture.camera.formats[2]: "YUYV" is listed twice`,
				`capture.camera.formats[3]: "mjpeg" is not one of MJPEG, YUYV, GREY`,
			}},
		{"camera size", func(c *Config) { c.Capture.Camera.Width = 0; c.Capture.Camera.Height = 20000 },
			[]string{`capture.camera.width: 0 is out of range 1..16384`, `capture.camera.height: 20000 is out of range 1..16384`}},
		{"camera fps", func(c *Config) { c.Capture.Camera.FPS = 0 },
			[]string{`capture.camera.fps: 0 is out of range 1..1000`}},
		{"camera buffers", func(c *Config) { c.Capture.Camera.Buffers = 33 },
			[]string{`capture.camera.buffers: 33 is out of range 1..32`}},
		{"camera timeout zero", func(c *Config) { c.Capture.Camera.Timeout = 0 },
			[]string{`capture.camera.timeout: 0s is out of range 1ms..1h`}},
		{"camera timeout long", func(c *Config) { c.Capture.Camera.Timeout = Duration(2 * time.Hour) },
			[]string{`capture.camera.timeout: 2h is out of range 1ms..1h`}},
		{"camera control empty name", func(c *Config) { c.Capture.Camera.Controls = map[string]int32{"": 1, "gain": 2} },
			[]string{`capture.camera.controls: has a control with an empty name`}},
		{"folder path", func(c *Config) { c.Capture.Source = SourceFolder },
			[]string{`capture.folder.path: is empty; capture.source is folder`}},
		{"folder ok", func(c *Config) {
			c.Capture.Source = SourceFolder
			c.Capture.Folder.Path = "/data"
			c.Capture.Folder.Loop = true
		}, nil},
		{"folder watch and loop", func(c *Config) { c.Capture.Folder.Watch = true; c.Capture.Folder.Loop = true },
			[]string{`capture.folder.loop: is true together with capture.folder.watch; a watched folder never ends, so choose one`}},
		{"file path", func(c *Config) { c.Capture.Source = SourceFile },
			[]string{`capture.file.path: is empty; capture.source is file`}},
		{"synthetic", func(c *Config) {
			s := &c.Capture.Synthetic
			s.Width, s.Height, s.DefectRate, s.FPS = -1, 0, 1.5, 1001
		}, []string{
			`capture.synthetic.width: -1 is out of range 1..16384`,
			`capture.synthetic.height: 0 is out of range 1..16384`,
			`capture.synthetic.defect_rate: 1.5 is out of range [0, 1]`,
			`capture.synthetic.fps: 1001 is out of range 0..1000`,
		}},
		{"synthetic defect rate NaN", func(c *Config) { c.Capture.Synthetic.DefectRate = math.NaN() },
			[]string{`capture.synthetic.defect_rate: NaN is out of range [0, 1]`}},
		{"roi negative", func(c *Config) { c.Capture.ROI = ROI{X: -1, Y: 0, Width: 20, Height: -5} },
			[]string{`capture.roi.x: -1 is out of range 0..16384`, `capture.roi.height: -5 is out of range 0..16384`}},
		{"roi inside synthetic frame", func(c *Config) { c.Capture.ROI = ROI{X: 40, Y: 80, Width: 600, Height: 400} }, nil},
		{"roi zero size reaches the edge", func(c *Config) { c.Capture.ROI = ROI{X: 600, Y: 464} }, nil},
		// No ROI on a small frame: nothing said of capture.roi (a review).
		{"no roi, small frame", func(c *Config) { c.Capture.Synthetic.Width = 8 }, nil},
		// To the edge from a pixel before it: every frame 1×1 (a review).
		{"roi zero size too near the edge", func(c *Config) { c.Capture.ROI = ROI{X: 639, Y: 479} },
			[]string{
				`capture.roi.x: 639 leaves 1 of the 640-pixel frame width to its edge (capture.synthetic.width): every frame would be too small to inspect; at least 16 pixels`,
				`capture.roi.y: 479 leaves 1 of the 480-pixel frame height to its edge (capture.synthetic.height): every frame would be too small to inspect; at least 16 pixels`,
			}},
		{"roi past synthetic frame", func(c *Config) { c.Capture.ROI = ROI{X: 100, Y: 480, Width: 600} },
			[]string{
				`capture.roi.width: 600 from x 100 ends at 700, past the 640-pixel frame width (capture.synthetic.width)`,
				`capture.roi.y: 480 is outside the 480-pixel frame height (capture.synthetic.height)`,
			}},
		{"roi too small to inspect", func(c *Config) { c.Capture.ROI = ROI{X: 10, Y: 10, Width: 8, Height: 15} },
			[]string{`capture.roi.width: 8 pixels: every frame would be too small to inspect; at least 16 (or 0: to the frame's edge)`,
				`capture.roi.height: 15 pixels: every frame would be too small to inspect; at least 16 (or 0: to the frame's edge)`}},
		{"roi at the smallest", func(c *Config) { c.Capture.ROI = ROI{Width: 16, Height: 16} }, nil},
		{"roi past camera frame", func(c *Config) { c.Capture.Source = SourceCamera; c.Capture.ROI = ROI{Height: 721} },
			[]string{`capture.roi.height: 721 from y 0 ends at 721, past the 720-pixel frame height (capture.camera.height)`}},
		{"roi not checked for folders", func(c *Config) {
			c.Capture.Source = SourceFolder
			c.Capture.Folder.Path = "/data"
			c.Capture.ROI = ROI{X: 5000, Width: 100}
		}, nil},
		{"rotate", func(c *Config) { c.Capture.Rotate = 45 },
			[]string{`capture.rotate: 45 is not one of 0, 90, 180, 270`}},
		{"rotate 270", func(c *Config) { c.Capture.Rotate = 270 }, nil},
		{"max pixels zero", func(c *Config) { c.Capture.MaxPixels = 0 },
			[]string{`capture.max_pixels: 0 is out of range 1..1000000000`}},
		{"max pixels huge", func(c *Config) { c.Capture.MaxPixels = 2_000_000_000 },
			[]string{`capture.max_pixels: 2000000000 is out of range 1..1000000000`}},
		{"max pixels small", func(c *Config) { c.Capture.MaxPixels = 1 }, nil},
		{"trigger mode", func(c *Config) { c.Capture.Trigger.Mode = "hardware" },
			[]string{`capture.trigger.mode: "hardware" is not one of free-run, external`}},
		{"trigger max rate", func(c *Config) { c.Capture.Trigger.MaxRate = -1 },
			[]string{`capture.trigger.max_rate: -1 is out of range [0, 1000]`}},

		// model
		{"taps", func(c *Config) { c.Model.Taps = []string{"a", "", "a"} },
			[]string{`model.taps[1]: is empty; name a tensor of the backbone`, `model.taps[2]: "a" is listed twice`}},
		{"too many taps", func(c *Config) {
			for i := range 17 {
				c.Model.Taps = append(c.Model.Taps, strings.Repeat("t", i+1))
			}
		}, []string{`model.taps: has 17 tensors; at most 16`}},
		{"resize", func(c *Config) { c.Model.Input.Resize = "stretch" },
			[]string{`model.input.resize: "stretch" is not one of fit, squash, crop`}},
		{"mean and std", func(c *Config) {
			c.Model.Input.Mean[1] = math.Inf(1)
			c.Model.Input.Std = [3]float64{1, 0, -2}
		}, []string{
			`model.input.mean[1]: +Inf is not a finite number`,
			`model.input.std[1]: 0 must be a finite number above 0 (it divides)`,
			`model.input.std[2]: -2 must be a finite number above 0 (it divides)`,
		}},
		{"threads", func(c *Config) { c.Model.Threads = -1 },
			[]string{`model.threads: -1 is out of range 0..64`}},
		{"threads 65", func(c *Config) { c.Model.Threads = 65 },
			[]string{`model.threads: 65 is out of range 0..64`}},
		{"delegate required without library", func(c *Config) { c.Model.Delegate.Required = true },
			[]string{`model.delegate.required: is true but model.delegate.library is empty`}},
		{"delegate options without library", func(c *Config) { c.Model.Delegate.Options = map[string]string{"device": "usb"} },
			[]string{`model.delegate.options: are set but model.delegate.library is empty`}},
		{"delegate ok", func(c *Config) {
			c.Model.Delegate = Delegate{Library: "libedgetpu.so.1", Options: map[string]string{"device": "usb"}, Required: true}
		}, nil},
		{"delegate empty option name", func(c *Config) {
			c.Model.Delegate = Delegate{Library: "x.so", Options: map[string]string{"": "usb"}}
		}, []string{`model.delegate.options: has an option with an empty name`}},
		{"features", func(c *Config) { c.Model.Features = 5000 },
			[]string{`model.features: 5000 is out of range 1..2048`}},
		{"features zero", func(c *Config) { c.Model.Features = 0 },
			[]string{`model.features: 0 is out of range 1..2048`}},
		{"min features above features", func(c *Config) { c.Model.MinFeatures = 200 },
			[]string{`model.min_features: 200 is above model.features (100); it must be in 1..100`}},
		{"min features zero", func(c *Config) { c.Model.MinFeatures = 0 },
			[]string{`model.min_features: 0 is out of range 1..2048`}},
		{"min features equal", func(c *Config) { c.Model.MinFeatures = 100 }, nil},
		{"context pool one", func(c *Config) { c.Model.ContextPool = 1 },
			[]string{`model.context_pool: 1 must be 0 (off) or 2..64`}},
		{"context pool large", func(c *Config) { c.Model.ContextPool = 65 },
			[]string{`model.context_pool: 65 must be 0 (off) or 2..64`}},
		{"context pool off", func(c *Config) { c.Model.ContextPool = 0 }, nil},
		{"context features", func(c *Config) { c.Model.ContextFeatures = 0 },
			[]string{`model.context_features: 0 is out of range 1..2048`}},
		{"context weight zero", func(c *Config) { c.Model.ContextWeight = 0 },
			[]string{`model.context_weight: 0 is out of range (0, 16]`}},
		{"context weight large", func(c *Config) { c.Model.ContextWeight = 17 },
			[]string{`model.context_weight: 17 is out of range (0, 16]`}},
		{"context weight NaN", func(c *Config) { c.Model.ContextWeight = math.NaN() },
			[]string{`model.context_weight: NaN is out of range (0, 16]`}},
		{"align rigid", func(c *Config) { c.Capture.Align.Mode = AlignRigid }, nil},
		{"align mode", func(c *Config) { c.Capture.Align.Mode = "affine" },
			[]string{`capture.align.mode: "affine" is not one of auto, off, translate, rigid, turn`}},
		{"align shift", func(c *Config) { c.Capture.Align.MaxShift = 0.6 },
			[]string{`capture.align.max_shift: 0.6 is out of range (0, 0.5]`}},
		{"align angle", func(c *Config) { c.Capture.Align.MaxAngle = math.NaN() },
			[]string{`capture.align.max_angle: NaN is out of range (0, 180]`}},
		{"align confidence", func(c *Config) { c.Capture.Align.MinConfidence = 1 },
			[]string{`capture.align.min_confidence: 1 must be 0 (learned at fit) or above 0 and below 1`}},
		{"epsilon", func(c *Config) { c.Model.Epsilon = 0 },
			[]string{`model.epsilon: 0 must be a finite number above 0 (it keeps covariances invertible)`}},
		{"epsilon NaN", func(c *Config) { c.Model.Epsilon = math.NaN() },
			[]string{`model.epsilon: NaN must be a finite number above 0 (it keeps covariances invertible)`}},
		{"memory budget small", func(c *Config) { c.Model.MemoryBudget = FixedMemoryBudget(256) },
			[]string{`model.memory_budget: 256B is below the minimum 1MiB (write a unit, like 256MiB, or auto)`}},
		{"memory budget ok", func(c *Config) { c.Model.MemoryBudget = FixedMemoryBudget(1 << 20) }, nil},
		{"memory fraction zero", func(c *Config) { c.Model.MemoryFraction = 0 },
			[]string{`model.memory_fraction: 0 is out of range (0, 1]`}},
		{"memory fraction above one", func(c *Config) { c.Model.MemoryFraction = 1.5 },
			[]string{`model.memory_fraction: 1.5 is out of range (0, 1]`}},
		{"memory fraction one", func(c *Config) { c.Model.MemoryFraction = 1 }, nil},
		{"blur sigma", func(c *Config) { c.Model.BlurSigma = -0.5 },
			[]string{`model.blur_sigma: -0.5 is out of range [0, 64]`}},
		{"blur off", func(c *Config) { c.Model.BlurSigma = 0 }, nil},
		{"threshold", func(c *Config) {
			c.Model.Threshold = Threshold{Quantile: 0, Margin: -1, Value: -2, Holdout: 0.95}
		}, []string{
			`model.threshold.quantile: 0 is out of range (0, 1]`,
			`model.threshold.margin: -1 must be a finite number above 0`,
			`model.threshold.value: -2 must be 0 (choose automatically) or a number in [1e-06, 1e+09]`,
			`model.threshold.holdout: 0.95 is out of range [0, 0.9]`,
		}},
		{"no holdout for the recipe search", func(c *Config) { c.Model.Threshold.Holdout = 0 },
			[]string{`model.threshold.holdout: 0 leaves no normal images to judge recipes on with model.recipe auto; set it in (0, 0.9] or choose a recipe`}},
		{"fixed recipe without holdout", func(c *Config) { c.Model.Threshold.Holdout = 0; c.Model.Recipe = "fixed" }, nil},
		{"recipe empty", func(c *Config) { c.Model.Recipe = "" },
			[]string{`model.recipe: "": want auto, fixed or a recipe's name (such as plain or v1-fit-std-z-ctx2)`}},
		{"recipe named", func(c *Config) { c.Model.Recipe = "v2-squash-std-z" }, nil},
		{"tiles", func(c *Config) { c.Model.Input.Tiles = 1 }, []string{`model.input.tiles: 1 must be 0 (one view of the whole frame) or 2..8`}},
		{"tiles ok", func(c *Config) { c.Model.Input.Tiles = 3 }, nil},

		// mqtt
		{"brokers ok", func(c *Config) {
			c.MQTT.Brokers = []string{"tcp://10.0.0.5:1883", "ssl://broker:8883", "mqtt://b:1", "mqtts://b:2",
				"tls://b:3", "ws://b/mqtt", "wss://b:443/mqtt", "tcp://[::1]:1883"}
		}, nil},
		{"broker scheme", func(c *Config) { c.MQTT.Brokers = []string{"http://b:1883"} },
			[]string{`mqtt.brokers[0]: "http://b:1883" has scheme "http"; use tcp, mqtt, ws (plain) or ssl, tls, mqtts, wss (TLS), like tcp://host:1883`}},
		{"broker no scheme", func(c *Config) { c.MQTT.Brokers = []string{"10.0.0.5:1883"} },
			[]string{`mqtt.brokers[0]: "10.0.0.5:1883" is not a URL like tcp://host:1883`}},
		{"broker bare host", func(c *Config) { c.MQTT.Brokers = []string{"broker"} },
			[]string{`mqtt.brokers[0]: "broker" has no scheme; write it like tcp://host:1883 or ssl://host:8883`}},
		{"broker no port", func(c *Config) {
			c.MQTT.Brokers = []string{"tcp://broker", "ssl://broker", "tcp://[::1]", "ssl://[fe80::1%25eth0]"}
		},
			[]string{
				`mqtt.brokers[0]: "tcp://broker" has no port; write it like tcp://broker:1883`,
				`mqtt.brokers[1]: "ssl://broker" has no port; write it like ssl://broker:8883`,
				`mqtt.brokers[2]: "tcp://[::1]" has no port; write it like tcp://[::1]:1883`,
				`mqtt.brokers[3]: "ssl://[fe80::1%25eth0]" has no port; write it like ssl://[fe80::1%25eth0]:8883`,
			}},
		{"broker empty port", func(c *Config) {
			c.MQTT.Brokers = []string{"ws://127.0.0.1:", "wss://host:/mqtt", "tcp://broker:", "ssl://[::1]:", "tcp://h:1883:", "ws://h:9001:/mqtt"}
		},
			[]string{
				`mqtt.brokers[0]: "ws://127.0.0.1:" has an empty port after the colon; write it like ws://127.0.0.1:port/path with the port of the broker's WebSocket listener, or ws://127.0.0.1/path without the colon for 80`,
				`mqtt.brokers[1]: "wss://host:/mqtt" has an empty port after the colon; write it like wss://host:port/path with the port of the broker's WebSocket listener, or wss://host/path without the colon for 443`,
				`mqtt.brokers[2]: "tcp://broker:" has an empty port after the colon; write it like tcp://broker:1883`,
				`mqtt.brokers[3]: "ssl://[::1]:" has an empty port after the colon; write it like ssl://[::1]:8883`,
				`mqtt.brokers[4]: "tcp://h:1883:" ends in a colon after its port; write it like tcp://h:1883`,
				`mqtt.brokers[5]: "ws://h:9001:/mqtt" ends in a colon after its port; write it like ws://h:9001/mqtt`,
			}},
		{"broker query or fragment", func(c *Config) {
			c.MQTT.Brokers = []string{"tcp://b:1883?x=1", "ssl://b:8883#f", "tcp://b:1883?", "wss://b:443/mqtt?X-Amz-Signature=1"}
		},
			[]string{
				`mqtt.brokers[0]: "tcp://b:1883?x=1" has a query (?x=1); only ws:// and wss:// URLs send one, set options in mqtt.* instead`,
				`mqtt.brokers[1]: "ssl://b:8883#f" has a fragment (#...), which no broker receives; remove it`,
				`mqtt.brokers[2]: "tcp://b:1883?" has a query (?); only ws:// and wss:// URLs send one, set options in mqtt.* instead`,
			}},
		{"broker bad port", func(c *Config) { c.MQTT.Brokers = []string{"tcp://broker:0", "tcp://broker:70000"} },
			[]string{
				`mqtt.brokers[0]: "tcp://broker:0" has port 0, not 1..65535`,
				`mqtt.brokers[1]: "tcp://broker:70000" has port 70000, not 1..65535`,
			}},
		{"broker port twice", func(c *Config) {
			c.MQTT.Brokers = []string{"tcp://127.0.0.1:18831:99", "ssl://::1:8883", "wss://b:443:1/mqtt"}
		},
			[]string{
				`mqtt.brokers[0]: "tcp://127.0.0.1:18831:99" has host part "127.0.0.1:18831:99", not host:port (too many colons in address); write it like tcp://host:1883, an IPv6 address in brackets like tcp://[::1]:1883`,
				`mqtt.brokers[1]: "ssl://::1:8883" has host part "::1:8883", not host:port (too many colons in address); write it like ssl://host:8883, an IPv6 address in brackets like ssl://[::1]:8883`,
				`mqtt.brokers[2]: "wss://b:443:1/mqtt" has host part "b:443:1", not host:port (too many colons in address); write it like wss://host:port/path with the port of the broker's WebSocket listener (wss://host/path for 443), an IPv6 address in brackets like wss://[::1]:port/path`,
			}},
		{"broker ipv6", func(c *Config) {
			c.MQTT.Brokers = []string{"tcp://[::1]:1883", "ssl://[fe80::1%25eth0]:8883", "ws://[::1]/mqtt"}
		}, nil},
		{"broker no host", func(c *Config) { c.MQTT.Brokers = []string{"tcp://:1883"} },
			[]string{`mqtt.brokers[0]: "tcp://:1883" has no host; write it like tcp://host:port`}},
		{"broker user info", func(c *Config) { c.MQTT.Brokers = []string{"tcp://u:p@b:1883"} },
			[]string{`mqtt.brokers[0]: "tcp://u:xxxxx@b:1883" holds a user name; set mqtt.username and mqtt.password instead`}},
		{"broker path", func(c *Config) { c.MQTT.Brokers = []string{"tcp://b:1883/x"} },
			[]string{`mqtt.brokers[0]: "tcp://b:1883/x" has a path; only ws:// and wss:// URLs take one`}},
		{"broker twice", func(c *Config) { c.MQTT.Brokers = []string{"tcp://b:1883", "tcp://b:1883"} },
			[]string{`mqtt.brokers[1]: "tcp://b:1883" is listed twice`}},
		{"embedded listen", func(c *Config) { c.MQTT.EmbeddedListen = "localhost" },
			[]string{`mqtt.embedded_listen: "localhost" is not host:port (like 127.0.0.1:1883): missing port in address`}},
		{"embedded listen port", func(c *Config) { c.MQTT.EmbeddedListen = "127.0.0.1:99999" },
			[]string{`mqtt.embedded_listen: "127.0.0.1:99999" is not host:port (like 127.0.0.1:1883): port "99999" is not 0..65535`}},
		{"embedded listen empty", func(c *Config) { c.MQTT.EmbeddedListen = "" },
			[]string{`mqtt.embedded_listen: is empty; with mqtt.brokers empty the embedded broker needs a host:port like 127.0.0.1:1883`}},
		{"embedded listen empty with brokers", func(c *Config) { c.MQTT.EmbeddedListen = ""; c.MQTT.Brokers = []string{"tcp://b:1883"} }, nil},
		{"embedded listen any port", func(c *Config) { c.MQTT.EmbeddedListen = ":0" }, nil},
		{"client id", func(c *Config) { c.MQTT.ClientID = "a\x00b" },
			[]string{`mqtt.client_id: "a\x00b" is not 1..256 bytes of UTF-8 without NUL; leave it empty for inspectd-<device_id> (inspectd-<host name>-<suffix> where device_id is empty)`}},
		{"password without username", func(c *Config) { c.MQTT.Password = "secret" },
			[]string{`mqtt.password: is set but mqtt.username is empty; MQTT 3.1.1 sends a password only with a user name`}},
		{"tls cert without key", func(c *Config) { c.MQTT.TLS.Cert = "/etc/inspectd/client.pem" },
			[]string{`mqtt.tls.key: is empty but mqtt.tls.cert is set; a client certificate needs its key`}},
		{"tls key without cert", func(c *Config) { c.MQTT.TLS.Key = "/etc/inspectd/client.key" },
			[]string{`mqtt.tls.cert: is empty but mqtt.tls.key is set; a client key needs its certificate`}},
		{"keepalive off", func(c *Config) { c.MQTT.Keepalive = 0 }, nil},
		{"keepalive too short", func(c *Config) { c.MQTT.Keepalive = Duration(500 * time.Millisecond) },
			[]string{`mqtt.keepalive: 500ms is out of range 1s..18h12m15s`}},
		{"keepalive too long", func(c *Config) { c.MQTT.Keepalive = Duration(24 * time.Hour) },
			[]string{`mqtt.keepalive: 24h is out of range 1s..18h12m15s`}},
		{"connect timeout", func(c *Config) { c.MQTT.ConnectTimeout = 0 },
			[]string{`mqtt.connect_timeout: 0s is out of range 1s..5m`}},
		{"reconnect interval", func(c *Config) { c.MQTT.MaxReconnectInterval = Duration(-time.Second) },
			[]string{`mqtt.max_reconnect_interval: -1s is out of range 1s..1h`}},
		{"topic prefix ok", func(c *Config) { c.MQTT.TopicPrefix = "factory/line3" }, nil},
		{"topic prefix empty", func(c *Config) { c.MQTT.TopicPrefix = "" },
			[]string{`mqtt.topic_prefix: "" is empty; every topic starts with it`}},
		{"topic prefix wildcard", func(c *Config) { c.MQTT.TopicPrefix = "factory/#" },
			[]string{`mqtt.topic_prefix: "factory/#" holds a wildcard (+ or #) or NUL, which topic names may not`}},
		{"topic prefix empty level", func(c *Config) { c.MQTT.TopicPrefix = "factory//x" },
			[]string{`mqtt.topic_prefix: "factory//x" has an empty topic level (a leading, trailing or doubled /)`}},
		{"topic prefix trailing slash", func(c *Config) { c.MQTT.TopicPrefix = "factory/" },
			[]string{`mqtt.topic_prefix: "factory/" has an empty topic level (a leading, trailing or doubled /)`}},
		{"topic prefix dollar", func(c *Config) { c.MQTT.TopicPrefix = "$SYS" },
			[]string{`mqtt.topic_prefix: "$SYS" starts with $, which brokers reserve`}},
		{"topic prefix long", func(c *Config) { c.MQTT.TopicPrefix = strings.Repeat("a", 257) },
			[]string{`mqtt.topic_prefix: "` + strings.Repeat("a", 257) + `" is longer than 256 bytes`}},
		{"qos", func(c *Config) { c.MQTT.ResultQoS = 3 },
			[]string{`mqtt.result_qos: 3 is not one of 0, 1, 2`}},
		{"result max rate", func(c *Config) { c.MQTT.ResultMaxRate = math.Inf(1) },
			[]string{`mqtt.result_max_rate: +Inf is out of range [0, 1000]`}},
		{"mask and heatmap", func(c *Config) { c.MQTT.Mask = "sometimes"; c.MQTT.Heatmap = "" },
			[]string{
				`mqtt.mask: "sometimes" is not one of anomalous, always, never`,
				`mqtt.heatmap: "" is not one of anomalous, always, never`,
			}},

		// Sparkplug B
		{"profile both", func(c *Config) { c.MQTT.Profile = ProfileBoth }, nil},
		{"profile", func(c *Config) { c.MQTT.Profile = "opcua" },
			[]string{`mqtt.profile: "opcua" is not one of json, sparkplug, both`}},
		{"sparkplug ids ok", func(c *Config) {
			c.Sparkplug = Sparkplug{GroupID: "Plant 1: Line 3", EdgeNodeID: "Kamera ü", PrimaryHostID: "IamHost", ClientID: "spb"}
		}, nil},
		{"group id empty", func(c *Config) { c.Sparkplug.GroupID = "" },
			[]string{`sparkplug.group_id: "" is empty`}},
		{"group id slash", func(c *Config) { c.Sparkplug.GroupID = "plant/line" },
			[]string{`sparkplug.group_id: "plant/line" holds +, / or # (reserved in Sparkplug topics) or NUL`}},
		{"group id STATE", func(c *Config) { c.Sparkplug.GroupID = "STATE" },
			[]string{`sparkplug.group_id: "STATE" is reserved: spBv1.0/STATE/ carries host application states`}},
		{"edge node wildcard", func(c *Config) { c.Sparkplug.EdgeNodeID = "cam+" },
			[]string{`sparkplug.edge_node_id: "cam+" holds +, / or # (reserved in Sparkplug topics) or NUL; leave it empty for the device id`}},
		{"host id invalid UTF-8", func(c *Config) { c.Sparkplug.PrimaryHostID = "h\xff" },
			[]string{`sparkplug.primary_host_id: "h\xff" is not valid UTF-8; leave it empty to publish births without waiting for a host`}},
		{"host id long", func(c *Config) { c.Sparkplug.PrimaryHostID = strings.Repeat("h", 257) },
			[]string{`sparkplug.primary_host_id: "` + strings.Repeat("h", 257) + `" is longer than 256 bytes; leave it empty to publish births without waiting for a host`}},
		{"sparkplug client id shared", func(c *Config) { c.MQTT.ClientID = "cam"; c.Sparkplug.ClientID = "cam" },
			[]string{`sparkplug.client_id: "cam" is also mqtt.client_id; the two connections need their own ids`}},
		{"sparkplug client id NUL", func(c *Config) { c.Sparkplug.ClientID = "a\x00" },
			[]string{`sparkplug.client_id: "a\x00" is not 1..256 bytes of UTF-8 without NUL; leave it empty for <mqtt client id>-sparkplug`}},
		// mqtt delivery limits
		{"delivery limits", func(c *Config) {
			c.MQTT.MaxPayload = 512
			c.MQTT.OutboxMaxMessages = 99
			c.MQTT.OutboxMaxBytes = 32 << 30
		},
			[]string{
				`mqtt.max_payload: 512B is out of range 1KiB..256MiB`,
				`mqtt.outbox_max_messages: 99 is out of range 100..1000000`,
				`mqtt.outbox_max_bytes: 32GiB is out of range 1MiB..16GiB`,
			}},
		{"outbox smaller than a payload", func(c *Config) { c.MQTT.MaxPayload = 8 << 20; c.MQTT.OutboxMaxBytes = 4 << 20 },
			[]string{`mqtt.outbox_max_bytes: 4MiB is smaller than mqtt.max_payload 8MiB: a message that large could never be queued`}},

		// http and pipeline
		{"http off", func(c *Config) { c.HTTP.Listen = "" }, nil},
		{"http all interfaces", func(c *Config) { c.HTTP.Listen = ":9100" }, nil},
		{"http listen", func(c *Config) { c.HTTP.Listen = "9100" },
			[]string{`http.listen: "9100" is not host:port (like 127.0.0.1:9100, or empty to disable HTTP): missing port in address`}},
		{"http listen on the embedded broker's port", func(c *Config) { c.HTTP.Listen, c.MQTT.EmbeddedListen = "0.0.0.0:1883", "127.0.0.1:1883" },
			[]string{`http.listen: "0.0.0.0:1883" takes the port of mqtt.embedded_listen (127.0.0.1:1883): give one of them another port`}},
		{"http listen beside the embedded broker", func(c *Config) { c.HTTP.Listen, c.MQTT.EmbeddedListen = "127.0.0.2:1883", "127.0.0.1:1883" }, nil},
		{"http listen on an external broker's port", func(c *Config) {
			c.HTTP.Listen, c.MQTT.EmbeddedListen, c.MQTT.Brokers = "127.0.0.1:1883", "127.0.0.1:1883", []string{"tcp://10.0.0.5:1883"}
		}, nil},
		{"http listen port name", func(c *Config) { c.HTTP.Listen = "localhost:http" },
			[]string{`http.listen: "localhost:http" is not host:port (like 127.0.0.1:9100, or empty to disable HTTP): port "http" is not 0..65535`}},
		{"queue", func(c *Config) { c.Pipeline.Queue = 0 },
			[]string{`pipeline.queue: 0 is out of range 1..1024`}},
		{"queue big", func(c *Config) { c.Pipeline.Queue = 1025 },
			[]string{`pipeline.queue: 1025 is out of range 1..1024`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(c)
			var got []string
			for _, p := range Problems(c.Validate()) {
				got = append(got, p.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Validate():\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

// TestCheckBrokerURLPortPerScheme checks the port a broker URL's hint
// suggests for each scheme: 1883 for MQTT, 8883 for MQTT over TLS, and
// never either for a WebSocket, which is served on the broker's WebSocket
// listener (80 and 443 when the URL has no port, which is accepted).
func TestCheckBrokerURLPortPerScheme(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		noPort string // what a URL without a port gets, "" for accepted
		twice  string // the hint for a host part with a port typed twice
	}{
		{"tcp", "write it like tcp://b:1883", "write it like tcp://host:1883, "},
		{"mqtt", "write it like mqtt://b:1883", "write it like mqtt://host:1883, "},
		{"ssl", "write it like ssl://b:8883", "write it like ssl://host:8883, "},
		{"tls", "write it like tls://b:8883", "write it like tls://host:8883, "},
		{"mqtts", "write it like mqtts://b:8883", "write it like mqtts://host:8883, "},
		{"ws", "", "write it like ws://host:port/path with the port of the broker's WebSocket listener (ws://host/path for 80), "},
		{"wss", "", "write it like wss://host:port/path with the port of the broker's WebSocket listener (wss://host/path for 443), "},
	} {
		err := CheckBrokerURL(tc.scheme + "://b")
		switch {
		case tc.noPort == "" && err != nil:
			t.Errorf("%s://b: %v; want it accepted", tc.scheme, err)
		case tc.noPort != "" && (err == nil || !strings.HasSuffix(err.Error(), "has no port; "+tc.noPort)):
			t.Errorf("%s://b: %v; want it to end %q", tc.scheme, err, tc.noPort)
		}
		err = CheckBrokerURL(tc.scheme + "://b:1:2")
		if err == nil || !strings.Contains(err.Error(), tc.twice) {
			t.Errorf("%s://b:1:2: %v; want it to hold %q", tc.scheme, err, tc.twice)
		}
		if err != nil && (tc.scheme == "ws" || tc.scheme == "wss") && strings.Contains(err.Error(), "88") {
			t.Errorf("%s://b:1:2: %v suggests an MQTT port for a WebSocket", tc.scheme, err)
		}
	}
}

// TestValidateReportsAll checks that problems in different sections are
// all reported, not only the first.
func TestValidateReportsAll(t *testing.T) {
	c := Default()
	c.LogLevel = "loud"
	c.Model.Features = 0
	c.MQTT.ResultQoS = 5
	c.Pipeline.Queue = -1
	err := c.Validate()
	ps := Problems(err)
	var fields []string
	for _, p := range ps {
		fields = append(fields, p.Field)
		if p.File != "" || p.Line != 0 {
			t.Errorf("Validate problem %v has a file or line", p)
		}
	}
	want := []string{"log_level", "model.features", "mqtt.result_qos", "pipeline.queue"}
	if !slices.Equal(fields, want) {
		t.Errorf("fields %q; want %q", fields, want)
	}
	if n := strings.Count(err.Error(), "\n"); n != 3 {
		t.Errorf("joined error has %d newlines; want 3:\n%v", n, err)
	}
}

func TestSparkplugIDs(t *testing.T) {
	c := Default()
	c.DeviceID = "cam1"
	node, err := c.SparkplugEdgeNodeID()
	if err != nil || node != "cam1" {
		t.Errorf("edge node id %q, %v; want the device id", node, err)
	}
	if client := c.SparkplugClientID("inspectd-cam1"); client != "inspectd-cam1-sparkplug" {
		t.Errorf("client id %q; want inspectd-cam1-sparkplug", client)
	}
	c.Sparkplug = Sparkplug{GroupID: "g", EdgeNodeID: "node", ClientID: "spb"}
	node, _ = c.SparkplugEdgeNodeID()
	client := c.SparkplugClientID("inspectd-cam1")
	if node != "node" || client != "spb" {
		t.Errorf("configured ids: %q %q", node, client)
	}
	for p, want := range map[Profile][2]bool{ProfileJSON: {true, false}, ProfileSparkplug: {false, true}, ProfileBoth: {true, true}} {
		c.MQTT.Profile = p
		if got := [2]bool{c.MQTT.UsesJSON(), c.MQTT.UsesSparkplug()}; got != want {
			t.Errorf("profile %s: json, sparkplug = %v, want %v", p, got, want)
		}
	}
}

// Active keeps the active source's section and clears the others', so a
// change to a section not in use compares equal.
func TestCaptureActive(t *testing.T) {
	a := Default().Capture
	a.Source, a.Folder.Path = SourceFolder, "/srv/parts"
	b := a
	b.Camera.Width, b.Synthetic.Seed, b.File.Path = 1920, 7, "/srv/one.png"
	if !reflect.DeepEqual(a.Active(), b.Active()) {
		t.Errorf("sections not in use differ in Active: %+v, %+v", a.Active(), b.Active())
	}
	if got := a.Active(); got.Folder.Path != "/srv/parts" || !reflect.DeepEqual(got.Camera, Camera{}) || got.Source != SourceFolder {
		t.Errorf("Active of a folder source %+v", got)
	}
	b.Folder.Watch = !a.Folder.Watch
	if reflect.DeepEqual(a.Active(), b.Active()) {
		t.Error("a change to the active source's section hidden")
	}
	var empty Capture // an empty source is the synthetic one
	empty.Synthetic.Width, empty.Camera.Width = 640, 1920
	if got := empty.Active(); got.Synthetic.Width != 640 || got.Camera.Width != 0 {
		t.Errorf("Active of an empty source %+v", got)
	}
}

// TestTLSWithoutTLSBrokerWarns: mqtt.tls settings with only plain brokers
// (or the embedded one) are not used; the file is valid (a switch to TLS
// may be under way) but config check must say so, naming mqtt.tls and the
// brokers, at the line of mqtt.tls.
func TestTLSWithoutTLSBrokerWarns(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		body string
		want string // "" for no warning
		line int
	}{
		{"mqtt:\n  brokers: [tcp://b:1883, ws://b/mqtt]\n  tls:\n    ca: /etc/ca.pem\n", `mqtt.tls: ca set, but inspectd connects only to mqtt.brokers tcp://b:1883, ws://b/mqtt, none of which uses TLS`, 3},
		{"mqtt:\n  tls:\n    cert: /c.pem\n    key: /k.pem\n", `mqtt.tls: cert, key set, but inspectd connects only to the embedded broker (mqtt.brokers is empty)`, 2},
		{"mqtt:\n  brokers: [tcp://b:1883, ssl://b:8883]\n  tls:\n    ca: /etc/ca.pem\n", "", 0},
		{"mqtt:\n  brokers: [wss://b/mqtt]\n  tls:\n    insecure_skip_verify: true\n", "", 0},
		{"mqtt:\n  brokers: [tcp://b:1883]\n", "", 0},
	} {
		path := filepath.Join(dir, "w.yaml")
		if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, ws, err := LoadWithWarnings(path)
		switch {
		case err != nil:
			t.Errorf("%q: %v; want it valid", tc.body, err)
		case len(c.Warnings()) != 0:
			t.Errorf("%q: Warnings() %v: the fit's log would call mqtt.tls left out of the fit", tc.body, c.Warnings())
		case tc.want == "" && len(ws) != 0:
			t.Errorf("%q: warnings %v, want none", tc.body, ws)
		case tc.want != "" && (len(ws) != 1 || ws[0].Field != "mqtt.tls" || ws[0].Line != tc.line || !strings.Contains(ws[0].Error(), tc.want)):
			t.Errorf("%q: warnings %v, want one at line %d holding %q", tc.body, ws, tc.line, tc.want)
		}
	}
}
