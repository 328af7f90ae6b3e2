package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the settings, named so that tests and messages agree.
const (
	maxDeviceID    = 64
	maxFrameSide   = 16384
	maxCameraFPS   = 1000
	maxBuffers     = 32
	maxThreads     = 64
	maxFeatures    = 2048
	maxBlurSigma   = 64
	maxContextPool = 64
	// maxContextWeight bounds model.context_weight: beyond it the patch
	// scale would hardly count.
	maxContextWeight = 16
	maxQueue         = 1024
	maxTopicPrefix   = 256
	maxClientID      = 256
	maxKeepalive     = 65535 * time.Second // MQTT's keepalive is 16-bit seconds
	maxTimeout       = time.Hour
	maxTaps          = 16
	minBudget        = Size(1 << 20)
	maxHoldout       = 0.9
	// maxMaxPixels bounds capture.max_pixels: a gigapixel is 4 GB as RGBA.
	maxMaxPixels = 1_000_000_000
	maxTiles     = 8
)

// DefaultMaxPixels is capture.max_pixels by default: 40 megapixels, twice a
// 20 MP industrial sensor, 160 MB as RGBA.
const DefaultMaxPixels = 40_000_000

// Validate checks every setting and every rule between settings, and
// returns all problems found, joined (see Problems); nil if none. Each
// message names the field, the value and what is allowed. Validate does not
// touch the file system or the network: files and devices are checked when
// they are opened.
func (c *Config) Validate() error {
	v := &validator{}
	if c.DeviceID != "" && !validID(c.DeviceID) {
		v.addf("device_id", "%q is not 1..%d letters, digits, '.', '_' or '-' (it is an MQTT topic level); leave it empty for the host name", c.DeviceID, maxDeviceID)
	}
	if strings.TrimSpace(c.StateDir) == "" {
		v.addf("state_dir", "is empty; the daemon needs a directory for the model and the MQTT store")
	}
	v.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	v.capture(&c.Capture)
	v.model(&c.Model)
	v.mqtt(&c.MQTT)
	v.sparkplug(&c.MQTT, &c.Sparkplug)
	if c.HTTP.Listen != "" {
		v.hostPort("http.listen", c.HTTP.Listen, "127.0.0.1:9100, or empty to disable HTTP")
		if len(c.MQTT.Brokers) == 0 && samePort(c.HTTP.Listen, c.MQTT.EmbeddedListen) {
			// Else the start fails on the broker's bind, whose message
			// blames another MQTT broker.
			v.addf("http.listen", "%q takes the port of mqtt.embedded_listen (%s): give one of them another port", c.HTTP.Listen, c.MQTT.EmbeddedListen)
		}
	}
	v.intRange("pipeline.queue", c.Pipeline.Queue, 1, maxQueue)
	v.remote(c) // remote.go: the remote section and mqtt.groups
	return errors.Join(v.probs...)
}

// Warnings lists the settings of c that are valid but that a fit leaves
// out, each a Problem naming its field (no file or line: Parse's warnings
// have them). Unlike Validate's problems they stop nothing: the daemon
// runs without them, which is why they must be said, in `inspectd config
// check` and in the log of the fit they change.
func (c *Config) Warnings() []*Problem {
	var out []*Problem
	m := &c.Model
	// The fixed recipe (model.recipe fixed, and the one auto weighs its
	// candidates against) takes the context scale only with the z-score,
	// whose per-position statistics it is standardized with; a named
	// recipe spells out its own scoring.
	if (m.Recipe == "auto" || m.Recipe == "fixed") && m.ContextPool != 0 && !m.PositionZScore {
		msg := fmt.Sprintf("%d is left out of the fit: the context scale needs model.position_zscore, which is false; set model.context_pool: 0 to fit without it, or model.position_zscore: true to have it", m.ContextPool)
		if m.Recipe == "auto" {
			msg += " (with model.recipe auto: in the fixed recipe the search weighs its candidates against; candidates with a context scale are tried all the same)"
		}
		out = append(out, &Problem{Field: "model.context_pool", Msg: msg, also: "model.position_zscore"})
	}
	return out
}

// fileWarnings are every setting of c that is valid but does not act as
// written, for `inspectd config check` (LoadWithWarnings): Warnings, which
// the fit's log repeats, and those no fit concerns (mqtt.tls with no TLS
// broker), which that log must not call left out of the fit.
func (c *Config) fileWarnings() []*Problem {
	out := c.Warnings()
	if w := c.MQTT.tlsUnused(); w != nil {
		out = append(out, w)
	}
	return out
}

// UsesTLS reports whether any of mqtt.brokers speaks TLS (ssl://, tls://,
// mqtts://, wss://): mqtt.tls applies only then. The embedded broker (no
// brokers) is plain MQTT.
func (m *MQTT) UsesTLS() bool {
	for _, b := range m.Brokers {
		if u, err := url.Parse(b); err == nil && TLSScheme(u.Scheme) {
			return true
		}
	}
	return false
}

// TLSScheme reports whether a broker URL scheme (as url.Parse gives it)
// speaks TLS: ssl, tls, mqtts, wss.
func TLSScheme(scheme string) bool { return brokerSchemes[strings.ToLower(scheme)] }

// tlsUnused is the warning for mqtt.tls settings that no broker connection
// uses: only ssl://, tls://, mqtts:// and wss:// brokers speak TLS, so with
// plain ones (or the embedded broker) the settings are read and ignored.
// A warning, not a problem: the file may be ready for a switch to TLS.
func (m *MQTT) tlsUnused() *Problem {
	if m.TLS == (TLS{}) || m.UsesTLS() {
		return nil
	}
	var set []string
	for _, s := range []struct {
		key string
		on  bool
	}{{"ca", m.TLS.CA != ""}, {"cert", m.TLS.Cert != ""}, {"key", m.TLS.Key != ""},
		{"server_name", m.TLS.ServerName != ""}, {"insecure_skip_verify", m.TLS.InsecureSkipVerify}} {
		if s.on {
			set = append(set, s.key)
		}
	}
	to := "the embedded broker (mqtt.brokers is empty), which is plain MQTT"
	if len(m.Brokers) > 0 {
		plain := make([]string, len(m.Brokers))
		for i, b := range m.Brokers {
			plain[i] = redactURL(b)
		}
		to = "mqtt.brokers " + strings.Join(plain, ", ") + ", none of which uses TLS"
	}
	return &Problem{Field: "mqtt.tls", also: "mqtt.brokers", Msg: fmt.Sprintf(
		"%s set, but inspectd connects only to %s: TLS applies to ssl://, tls://, mqtts:// and wss:// brokers, so these settings are not used",
		strings.Join(set, ", "), to)}
}

// validator collects problems.
type validator struct{ probs []error }

func (v *validator) addf(field, format string, args ...any) {
	v.probs = append(v.probs, &Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) intRange(field string, x, lo, hi int) {
	if x < lo || x > hi {
		v.addf(field, "%d is out of range %d..%d", x, lo, hi)
	}
}

// floatRange checks lo < x (or lo <= x when loIncl) and x <= hi; NaN and
// infinities always fail.
func (v *validator) floatRange(field string, x, lo, hi float64, loIncl bool) {
	ok := !math.IsNaN(x) && !math.IsInf(x, 0) && x <= hi && (x > lo || loIncl && x == lo)
	if !ok {
		open := "("
		if loIncl {
			open = "["
		}
		v.addf(field, "%s is out of range %s%s, %s]", fmtFloat(x), open, fmtFloat(lo), fmtFloat(hi))
	}
}

func (v *validator) durRange(field string, d Duration, lo, hi time.Duration) {
	if d.Std() < lo || d.Std() > hi {
		v.addf(field, "%s is out of range %s..%s", d, Duration(lo), Duration(hi))
	}
}

func (v *validator) oneOf(field, x string, allowed ...string) {
	for _, a := range allowed {
		if x == a {
			return
		}
	}
	v.addf(field, "%q is not one of %s", x, strings.Join(allowed, ", "))
}

// hostPort checks a listen address such as 127.0.0.1:1883 or :9100;
// example is shown in the message.
func (v *validator) hostPort(field, addr, example string) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		p, perr := strconv.Atoi(port)
		switch {
		case perr != nil || p < 0 || p > 65535:
			err = fmt.Errorf("port %q is not 0..65535", port)
		case strings.ContainsAny(host, " /"):
			err = fmt.Errorf("host %q is not a host name or IP address", host)
		}
	}
	if err != nil {
		v.addf(field, "%q is not host:port (like %s): %v", addr, example, unwrapAddrErr(err))
	}
}

// samePort says whether listeners on host:port addresses a and b would
// take the same port: the same fixed port on the same host, or with either
// host a wildcard ("", 0.0.0.0, ::).
func samePort(a, b string) bool {
	ha, pa, erra := net.SplitHostPort(a)
	hb, pb, errb := net.SplitHostPort(b)
	if erra != nil || errb != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

// unwrapAddrErr drops net.AddrError's repetition of the address.
func unwrapAddrErr(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

func (v *validator) capture(c *Capture) {
	v.oneOf("capture.source", string(c.Source), string(SourceSynthetic), string(SourceCamera), string(SourceFolder), string(SourceFile))
	v.oneOf("capture.align.mode", c.Align.Mode, AlignAuto, AlignOff, AlignTranslate, AlignRigid, AlignTurn)
	v.floatRange("capture.align.max_shift", c.Align.MaxShift, 0, 0.5, false)
	v.floatRange("capture.align.max_angle", c.Align.MaxAngle, 0, 180, false)
	if !(c.Align.MinConfidence >= 0 && c.Align.MinConfidence < 1) {
		v.addf("capture.align.min_confidence", "%s must be 0 (learned at fit) or above 0 and below 1", fmtFloat(c.Align.MinConfidence))
	}

	cam := &c.Camera
	if c.Source == SourceCamera && strings.TrimSpace(cam.Device) == "" {
		v.addf("capture.camera.device", "is empty; capture.source is camera")
	}
	if len(cam.Formats) == 0 {
		v.addf("capture.camera.formats", "is empty; list one or more of MJPEG, YUYV, GREY")
	}
	seen := map[string]bool{}
	for i, f := range cam.Formats {
		field := fmt.Sprintf("capture.camera.formats[%d]", i)
		switch {
		case f != FormatMJPEG && f != FormatYUYV && f != FormatGREY:
			v.addf(field, "%q is not one of MJPEG, YUYV, GREY", f)
		case seen[f]:
			v.addf(field, "%q is listed twice", f)
		}
		seen[f] = true
	}
	v.intRange("capture.camera.width", cam.Width, 1, maxFrameSide)
	v.intRange("capture.camera.height", cam.Height, 1, maxFrameSide)
	v.intRange("capture.camera.fps", cam.FPS, 1, maxCameraFPS)
	v.intRange("capture.camera.buffers", cam.Buffers, 1, maxBuffers)
	v.durRange("capture.camera.timeout", cam.Timeout, time.Millisecond, maxTimeout)
	for _, name := range sortedKeys(cam.Controls) {
		if strings.TrimSpace(name) == "" {
			v.addf("capture.camera.controls", "has a control with an empty name")
		}
	}

	if c.Source == SourceFolder && strings.TrimSpace(c.Folder.Path) == "" {
		v.addf("capture.folder.path", "is empty; capture.source is folder")
	}
	if c.Folder.Watch && c.Folder.Loop {
		v.addf("capture.folder.loop", "is true together with capture.folder.watch; a watched folder never ends, so choose one")
	}
	if c.Source == SourceFile && strings.TrimSpace(c.File.Path) == "" {
		v.addf("capture.file.path", "is empty; capture.source is file")
	}

	s := &c.Synthetic
	v.intRange("capture.synthetic.width", s.Width, 1, maxFrameSide)
	v.intRange("capture.synthetic.height", s.Height, 1, maxFrameSide)
	v.floatRange("capture.synthetic.defect_rate", s.DefectRate, 0, 1, true)
	v.intRange("capture.synthetic.fps", s.FPS, 0, maxCameraFPS)

	v.intRange("capture.max_pixels", c.MaxPixels, 1, maxMaxPixels)

	r := c.ROI
	for _, f := range []struct {
		name string
		val  int
	}{{"x", r.X}, {"y", r.Y}, {"width", r.Width}, {"height", r.Height}} {
		if f.val < 0 || f.val > maxFrameSide {
			v.addf("capture.roi."+f.name, "%d is out of range 0..%d", f.val, maxFrameSide)
		}
	}
	for _, f := range []struct {
		name string
		val  int
	}{{"width", r.Width}, {"height", r.Height}} {
		if f.val > 0 && f.val < MinROISide {
			v.addf("capture.roi."+f.name, "%d pixels: every frame would be too small to inspect; at least %d (or 0: to the frame's edge)", f.val, MinROISide)
		}
	}
	// The frame size is known in advance only for these sources; for files
	// the capture code checks the ROI against each image.
	var fw, fh int
	var from string
	switch c.Source {
	case SourceCamera:
		fw, fh, from = cam.Width, cam.Height, "capture.camera"
	case SourceSynthetic:
		fw, fh, from = s.Width, s.Height, "capture.synthetic"
	}
	if from != "" && fw > 0 && fh > 0 {
		v.roiFits("x", "width", r.X, r.Width, fw, from)
		v.roiFits("y", "height", r.Y, r.Height, fh, from)
	}

	if c.Rotate != 0 && c.Rotate != 90 && c.Rotate != 180 && c.Rotate != 270 {
		v.addf("capture.rotate", "%d is not one of 0, 90, 180, 270", c.Rotate)
	}
	v.oneOf("capture.trigger.mode", string(c.Trigger.Mode), string(TriggerFreeRun), string(TriggerExternal))
	v.floatRange("capture.trigger.max_rate", c.Trigger.MaxRate, 0, maxCameraFPS, true)
	v.intRange("capture.trigger.queue", c.Trigger.Queue, 1, 100000)
	v.durRange("capture.trigger.max_age", c.Trigger.MaxAge, 0, 24*time.Hour)
	v.durRange("capture.trigger.dedup_window", c.Trigger.DedupWindow, 0, 24*time.Hour)
}

// MinROISide is the least width and height of capture.roi: the model's
// smallest frame (model.MinFrameSide, which this package may not import;
// a daemon test holds the two equal). A smaller region makes every frame
// an error result.
const MinROISide = 16

// roiFits checks one axis of the ROI against a known frame size.
func (v *validator) roiFits(pos, size string, p, n, frame int, from string) {
	switch {
	case p < 0 || n < 0:
		// already reported
	case p >= frame:
		v.addf("capture.roi."+pos, "%d is outside the %d-pixel frame %s (%s.%s)", p, frame, size, from, size)
	case n > 0 && p+n > frame:
		v.addf("capture.roi."+size, "%d from %s %d ends at %d, past the %d-pixel frame %s (%s.%s)", n, pos, p, p+n, frame, size, from, size)
	case n == 0 && p > 0 && frame-p < MinROISide:
		// To the frame's edge from near it: every frame too small.
		v.addf("capture.roi."+pos, "%d leaves %d of the %d-pixel frame %s to its edge (%s.%s): every frame would be too small to inspect; at least %d pixels",
			p, frame-p, frame, size, from, size, MinROISide)
	}
}

func (v *validator) model(m *Model) {
	if len(m.Taps) > maxTaps {
		v.addf("model.taps", "has %d tensors; at most %d", len(m.Taps), maxTaps)
	}
	seen := map[string]bool{}
	for i, t := range m.Taps {
		field := fmt.Sprintf("model.taps[%d]", i)
		switch {
		case strings.TrimSpace(t) == "":
			v.addf(field, "is empty; name a tensor of the backbone")
		case seen[t]:
			v.addf(field, "%q is listed twice", t)
		}
		seen[t] = true
	}
	if m.Recipe == "" || strings.ContainsAny(m.Recipe, " \t\n/") {
		v.addf("model.recipe", "%q: want auto, fixed or a recipe's name (such as plain or v1-fit-std-z-ctx2)", m.Recipe)
	}
	v.oneOf("model.input.resize", string(m.Input.Resize), string(ResizeFit), string(ResizeSquash), string(ResizeCrop))
	if m.Input.Tiles != 0 && (m.Input.Tiles < 2 || m.Input.Tiles > maxTiles) {
		v.addf("model.input.tiles", "%d must be 0 (one view of the whole frame) or 2..%d", m.Input.Tiles, maxTiles)
	}
	for i, x := range m.Input.Mean {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			v.addf(fmt.Sprintf("model.input.mean[%d]", i), "%s is not a finite number", fmtFloat(x))
		}
	}
	for i, x := range m.Input.Std {
		if !(x > 0) || math.IsInf(x, 0) {
			v.addf(fmt.Sprintf("model.input.std[%d]", i), "%s must be a finite number above 0 (it divides)", fmtFloat(x))
		}
	}
	v.intRange("model.threads", m.Threads, 0, maxThreads) // 0: half the cores
	v.oneOf("model.optimize", m.Optimize, "auto", "off", "int8", "float")
	v.oneOf("model.precision", m.Precision, "auto", "float32", "float16")
	if m.Delegate.Library == "" {
		if m.Delegate.Required {
			v.addf("model.delegate.required", "is true but model.delegate.library is empty")
		}
		if len(m.Delegate.Options) > 0 {
			v.addf("model.delegate.options", "are set but model.delegate.library is empty")
		}
	}
	for _, k := range sortedKeys(m.Delegate.Options) {
		if strings.TrimSpace(k) == "" {
			v.addf("model.delegate.options", "has an option with an empty name")
		}
	}
	v.intRange("model.features", m.Features, 1, maxFeatures)
	switch {
	case m.MinFeatures < 1 || m.MinFeatures > maxFeatures:
		v.intRange("model.min_features", m.MinFeatures, 1, maxFeatures)
	case m.MinFeatures > m.Features && m.Features >= 1:
		v.addf("model.min_features", "%d is above model.features (%d); it must be in 1..%d", m.MinFeatures, m.Features, m.Features)
	}
	if !(m.Epsilon > 0) || math.IsInf(m.Epsilon, 0) {
		v.addf("model.epsilon", "%s must be a finite number above 0 (it keeps covariances invertible)", fmtFloat(m.Epsilon))
	}
	if !m.MemoryBudget.Auto && m.MemoryBudget.Bytes < minBudget {
		v.addf("model.memory_budget", "%s is below the minimum %s (write a unit, like 256MiB, or auto)", m.MemoryBudget.Bytes, minBudget)
	}
	v.floatRange("model.memory_fraction", m.MemoryFraction, 0, 1, false)
	v.floatRange("model.blur_sigma", m.BlurSigma, 0, maxBlurSigma, true)
	if m.ContextPool != 0 && (m.ContextPool < 2 || m.ContextPool > maxContextPool) {
		v.addf("model.context_pool", "%d must be 0 (off) or 2..%d", m.ContextPool, maxContextPool)
	}
	v.intRange("model.context_features", m.ContextFeatures, 1, maxFeatures)
	v.floatRange("model.context_weight", m.ContextWeight, 0, maxContextWeight, false)

	t := &m.Threshold
	v.floatRange("model.threshold.quantile", t.Quantile, 0, 1, false)
	if !(t.Margin > 0) || math.IsInf(t.Margin, 0) {
		v.addf("model.threshold.margin", "%s must be a finite number above 0", fmtFloat(t.Margin))
	}
	// The range of model.CheckThreshold (config imports no other package).
	if t.Value != 0 && !(t.Value >= 1e-6 && t.Value <= 1e9) {
		v.addf("model.threshold.value", "%s must be 0 (choose automatically) or a number in [1e-06, 1e+09]", fmtFloat(t.Value))
	}
	v.floatRange("model.threshold.holdout", t.Holdout, 0, maxHoldout, true)
	if m.Recipe == "auto" && t.Holdout == 0 {
		v.addf("model.threshold.holdout", "0 leaves no normal images to judge recipes on with model.recipe auto; set it in (0, %s] or choose a recipe", fmtFloat(maxHoldout))
	}
}

// brokerSchemes are the URL schemes paho accepts, and whether they use TLS.
var brokerSchemes = map[string]bool{
	"tcp": false, "mqtt": false, "ws": false,
	"ssl": true, "tls": true, "mqtts": true, "wss": true,
}

func (v *validator) mqtt(m *MQTT) {
	seen := map[string]bool{}
	for i, b := range m.Brokers {
		field := fmt.Sprintf("mqtt.brokers[%d]", i)
		if msg := checkBroker(b); msg != "" {
			v.addf(field, "%q %s", redactURL(b), msg) // remote.go: never echo a password
		} else if seen[b] {
			v.addf(field, "%q is listed twice", b)
		}
		seen[b] = true
	}
	switch {
	case m.EmbeddedListen != "":
		v.hostPort("mqtt.embedded_listen", m.EmbeddedListen, "127.0.0.1:1883")
	case len(m.Brokers) == 0:
		v.addf("mqtt.embedded_listen", "is empty; with mqtt.brokers empty the embedded broker needs a host:port like 127.0.0.1:1883")
	}
	if m.ClientID != "" && (len(m.ClientID) > maxClientID || !utf8.ValidString(m.ClientID) || strings.ContainsRune(m.ClientID, 0)) {
		v.addf("mqtt.client_id", "%q is not 1..%d bytes of UTF-8 without NUL; leave it empty for inspectd-<device_id> (inspectd-<host name>-<suffix> where device_id is empty)", m.ClientID, maxClientID)
	}
	if m.Password != "" && m.Username == "" {
		v.addf("mqtt.password", "is set but mqtt.username is empty; MQTT 3.1.1 sends a password only with a user name")
	}
	if m.TLS.Cert != "" && m.TLS.Key == "" {
		v.addf("mqtt.tls.key", "is empty but mqtt.tls.cert is set; a client certificate needs its key")
	}
	if m.TLS.Key != "" && m.TLS.Cert == "" {
		v.addf("mqtt.tls.cert", "is empty but mqtt.tls.key is set; a client key needs its certificate")
	}
	if m.Keepalive != 0 {
		v.durRange("mqtt.keepalive", m.Keepalive, time.Second, maxKeepalive)
	}
	v.durRange("mqtt.connect_timeout", m.ConnectTimeout, time.Second, 5*time.Minute)
	v.durRange("mqtt.max_reconnect_interval", m.MaxReconnectInterval, time.Second, maxTimeout)
	if msg := checkTopicPrefix(m.TopicPrefix); msg != "" {
		v.addf("mqtt.topic_prefix", "%q %s", m.TopicPrefix, msg)
	}
	if m.ResultQoS < 0 || m.ResultQoS > 2 {
		v.addf("mqtt.result_qos", "%d is not one of 0, 1, 2", m.ResultQoS)
	}
	v.floatRange("mqtt.result_max_rate", m.ResultMaxRate, 0, maxCameraFPS, true)
	v.oneOf("mqtt.mask", string(m.Mask), string(PublishAnomalous), string(PublishAlways), string(PublishNever))
	v.oneOf("mqtt.heatmap", string(m.Heatmap), string(PublishAnomalous), string(PublishAlways), string(PublishNever))
	if m.ImageMaxSide != 0 {
		v.intRange("mqtt.image_max_side", m.ImageMaxSide, 32, 16384)
	}

	// Delivery limits.
	v.sizeRange("mqtt.max_payload", m.MaxPayload, minMaxPayload, maxMaxPayload)
	v.intRange("mqtt.outbox_max_messages", m.OutboxMaxMessages, 100, 1_000_000)
	v.sizeRange("mqtt.outbox_max_bytes", m.OutboxMaxBytes, 1<<20, 16<<30)
	if m.OutboxMaxBytes < m.MaxPayload && m.OutboxMaxBytes >= 1<<20 && m.MaxPayload <= maxMaxPayload {
		v.addf("mqtt.outbox_max_bytes", "%s is smaller than mqtt.max_payload %s: a message that large could never be queued", m.OutboxMaxBytes, m.MaxPayload)
	}
}

// Bounds of mqtt.max_payload: MQTT's remaining length ends at 256 MiB.
const (
	minMaxPayload = Size(1 << 10)
	maxMaxPayload = Size(256 << 20)
)

func (v *validator) sizeRange(field string, x, lo, hi Size) {
	if x < lo || x > hi {
		v.addf(field, "%s is out of range %s..%s", x, lo, hi)
	}
}

// CheckBrokerURL says what is wrong with an MQTT broker URL, by the rules
// of mqtt.brokers (scheme, host, port, no user in it), nil if nothing:
// for a command line that takes a broker as the configuration does.
func CheckBrokerURL(s string) error {
	if why := checkBroker(s); why != "" {
		return fmt.Errorf("broker %q %s", s, why)
	}
	return nil
}

// checkBroker explains what is wrong with a broker URL, "" if nothing.
func checkBroker(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "is not a URL like tcp://host:1883"
	}
	tls, ok := brokerSchemes[u.Scheme]
	if u.Scheme == "" {
		return "has no scheme; write it like tcp://host:1883 or ssl://host:8883"
	}
	if !ok {
		return "has scheme " + strconv.Quote(u.Scheme) + "; use tcp, mqtt, ws (plain) or ssl, tls, mqtts, wss (TLS), like tcp://host:1883"
	}
	if u.Hostname() == "" {
		return "has no host; write it like " + u.Scheme + "://host:port"
	}
	if u.User != nil {
		return "holds a user name; set mqtt.username and mqtt.password instead"
	}
	// paho dials the host part as it stands: one with a colon too many (a
	// port typed twice) passed url.Parse, which takes the last colon's
	// digits for the port, and then failed every connect with "too many
	// colons in address", a typo that silently disconnected a box at a
	// reload.
	if u.Port() != "" {
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			why := err.Error()
			var ae *net.AddrError
			if errors.As(err, &ae) {
				why = ae.Err
			}
			if u.Scheme == "ws" || u.Scheme == "wss" {
				return "has host part " + strconv.Quote(u.Host) + ", not host:port (" + why + "); write it like " +
					u.Scheme + "://host:port/path with the port of the broker's WebSocket listener (" +
					u.Scheme + "://host/path for " + wsDefaultPort(u.Scheme) + "), an IPv6 address in brackets like " +
					u.Scheme + "://[::1]:port/path"
			}
			port := mqttPort(tls)
			return "has host part " + strconv.Quote(u.Host) + ", not host:port (" + why + "); write it like " +
				u.Scheme + "://host:" + port + ", an IPv6 address in brackets like " + u.Scheme + "://[::1]:" + port
		}
	}
	if u.Port() == "" && strings.HasSuffix(u.Host, ":") {
		// A colon with nothing after it is not the ws:// or wss:// default
		// port below: paho dialled port 0 for it, and the hint of a tcp://
		// URL without a port doubled the colon.
		host := strings.ReplaceAll(strings.TrimSuffix(u.Host, ":"), "%", "%25")
		if _, port, err := net.SplitHostPort(strings.TrimSuffix(u.Host, ":")); err == nil && port != "" {
			// tcp://h:1883: is a colon too many, not a port left out: the
			// hint below read tcp://h:1883:1883.
			return "ends in a colon after its port; write it like " + u.Scheme + "://" + host + u.EscapedPath()
		}
		if u.Scheme == "ws" || u.Scheme == "wss" {
			return "has an empty port after the colon; write it like " + u.Scheme + "://" + host + ":port/path with the port of the broker's WebSocket listener, or " +
				u.Scheme + "://" + host + "/path without the colon for " + wsDefaultPort(u.Scheme)
		}
		return "has an empty port after the colon; write it like " + u.Scheme + "://" + host + ":" + mqttPort(tls)
	}
	if p := u.Port(); p == "" {
		// A ws:// or wss:// URL without a port is dialled at 80 or 443 (the
		// WebSocket dialler under paho fills them in, as a browser does), a
		// proxy's usual place for a broker's WebSocket listener; tcp and
		// TLS have no such default in paho, which dialled "host" and failed
		// with "missing port in address" at every connect.
		if u.Scheme != "ws" && u.Scheme != "wss" {
			// The host as written keeps an IPv6 address in its brackets
			// (and a zone escaped): the hint for tcp://[::1] read
			// tcp://::1:1883, itself refused.
			return "has no port; write it like " + u.Scheme + "://" + strings.ReplaceAll(u.Host, "%", "%25") + ":" + mqttPort(tls)
		}
	} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return "has port " + p + ", not 1..65535"
	}
	if u.Scheme != "ws" && u.Scheme != "wss" && u.Path != "" && u.Path != "/" {
		return "has a path; only ws:// and wss:// URLs take one"
	}
	// paho dials host:port and drops the rest without a word: a query
	// (credentials or options meant for the broker) never reached it. A
	// WebSocket URL's query is sent (some brokers sign requests in it).
	if u.Scheme != "ws" && u.Scheme != "wss" && (u.RawQuery != "" || u.ForceQuery) {
		return "has a query (?" + u.RawQuery + "); only ws:// and wss:// URLs send one, set options in mqtt.* instead"
	}
	if u.Fragment != "" || strings.HasSuffix(s, "#") {
		return "has a fragment (#...), which no broker receives; remove it"
	}
	return ""
}

// mqttPort is the IANA port of MQTT, over TLS or not, for a hint; it does
// not fit ws:// and wss://, whose port is the broker's WebSocket listener's
// (mosquitto has no default for it).
func mqttPort(tls bool) string {
	if tls {
		return "8883"
	}
	return "1883"
}

// wsDefaultPort is the port a ws:// or wss:// URL without one is dialled at.
func wsDefaultPort(scheme string) string {
	if scheme == "wss" {
		return "443"
	}
	return "80"
}

// checkTopicPrefix explains what is wrong with a topic prefix, "" if nothing.
func checkTopicPrefix(p string) string {
	switch {
	case p == "":
		return "is empty; every topic starts with it"
	case len(p) > maxTopicPrefix:
		return fmt.Sprintf("is longer than %d bytes", maxTopicPrefix)
	case !utf8.ValidString(p):
		return "is not valid UTF-8"
	case strings.ContainsAny(p, "+#\x00"):
		return "holds a wildcard (+ or #) or NUL, which topic names may not"
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//"):
		return "has an empty topic level (a leading, trailing or doubled /)"
	case strings.HasPrefix(p, "$"):
		return "starts with $, which brokers reserve"
	}
	return ""
}

// validID reports whether s is a device id: 1..64 of [A-Za-z0-9._-].
func validID(s string) bool {
	if s == "" || len(s) > maxDeviceID {
		return false
	}
	for _, r := range s {
		if !isIDRune(r) {
			return false
		}
	}
	return true
}

func isIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// fmtFloat writes a float the way YAML would.
func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func sortedKeys[V any](m map[string]V) []string {
	// Sorted so that messages come out in the same order every run.
	return slices.Sorted(maps.Keys(m))
}

// Sparkplug B (mqtt.profile and the sparkplug section).

// maxSparkplugID bounds group, edge node and host ids: each travels in
// every topic.
const maxSparkplugID = 256

func (v *validator) sparkplug(m *MQTT, s *Sparkplug) {
	v.oneOf("mqtt.profile", string(m.Profile), string(ProfileJSON), string(ProfileSparkplug), string(ProfileBoth))
	if msg := checkSparkplugID(s.GroupID); msg != "" {
		v.addf("sparkplug.group_id", "%q %s", s.GroupID, msg)
	} else if s.GroupID == "STATE" {
		v.addf("sparkplug.group_id", "%q is reserved: spBv1.0/STATE/ carries host application states", s.GroupID)
	}
	if s.EdgeNodeID != "" {
		if msg := checkSparkplugID(s.EdgeNodeID); msg != "" {
			v.addf("sparkplug.edge_node_id", "%q %s; leave it empty for the device id", s.EdgeNodeID, msg)
		}
	}
	if s.PrimaryHostID != "" {
		if msg := checkSparkplugID(s.PrimaryHostID); msg != "" {
			v.addf("sparkplug.primary_host_id", "%q %s; leave it empty to publish births without waiting for a host", s.PrimaryHostID, msg)
		}
	}
	if s.ClientID != "" && (len(s.ClientID) > maxClientID || !utf8.ValidString(s.ClientID) || strings.ContainsRune(s.ClientID, 0)) {
		v.addf("sparkplug.client_id", "%q is not 1..%d bytes of UTF-8 without NUL; leave it empty for <mqtt client id>-sparkplug", s.ClientID, maxClientID)
	}
	if s.ClientID != "" && s.ClientID == m.ClientID {
		v.addf("sparkplug.client_id", "%q is also mqtt.client_id; the two connections need their own ids", s.ClientID)
	}
}

// checkSparkplugID explains what is wrong with a Sparkplug group, edge node
// or host id, "" if nothing: Sparkplug 3.0 §4.1 allows any UTF-8 except
// the topic separators and wildcards + / #.
func checkSparkplugID(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxSparkplugID:
		return fmt.Sprintf("is longer than %d bytes", maxSparkplugID)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsAny(s, "+/#\x00"):
		return "holds +, / or # (reserved in Sparkplug topics) or NUL"
	}
	return ""
}
