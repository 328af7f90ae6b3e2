// Package config is inspectd's configuration: the schema of its one YAML
// file, documented defaults (an empty file is a valid configuration), strict
// decoding that names the line of every mistake, validation that names the
// field, the value and what is allowed, and atomic persistence for
// configuration pushed to the device over MQTT.
//
// The package only holds settings. It imports none of inspectd's other
// packages; the daemon maps these structs onto the option structs of the
// capture and model libraries.
package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the whole configuration file. The zero value is not useful;
// start from Default (which Parse does for every key the file leaves out).
type Config struct {
	// DeviceID names this device in MQTT topics (<topic_prefix>/<device_id>/...)
	// and in the default client id. Empty means the host name at run time;
	// see ResolvedDeviceID.
	DeviceID string `yaml:"device_id"`
	// StateDir holds what the daemon writes: the fitted model, the MQTT
	// outgoing message store and cached choices. It must survive reboots.
	// Diff compares it as the folder it names (SamePath).
	StateDir string `yaml:"state_dir" diff:"path"`
	// LogLevel is the slog level: debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// Capture selects and tunes the frame source.
	Capture Capture `yaml:"capture"`
	// Model configures the backbone, PaDiM fitting and scoring.
	Model Model `yaml:"model"`
	// MQTT configures the connection that results and alarms go out on.
	MQTT MQTT `yaml:"mqtt"`
	// Sparkplug configures the Sparkplug B edge node (mqtt.profile
	// sparkplug or both).
	Sparkplug Sparkplug `yaml:"sparkplug"`
	// HTTP configures the health, metrics and snapshot endpoint.
	HTTP HTTP `yaml:"http"`
	// Pipeline sizes the queues between processing stages.
	Pipeline Pipeline `yaml:"pipeline"`
	// Remote configures remote commands over MQTT (remote.go): who may
	// sign them and the limits on what arrives.
	Remote Remote `yaml:"remote"`
}

// Source names a frame source kind.
type Source string

// The frame sources capture.source accepts.
const (
	SourceSynthetic Source = "synthetic"
	SourceCamera    Source = "camera"
	SourceFolder    Source = "folder"
	SourceFile      Source = "file"
)

// Pixel formats capture.camera.formats accepts, as V4L2 names them.
const (
	FormatMJPEG = "MJPEG"
	FormatYUYV  = "YUYV"
	FormatGREY  = "GREY"
)

// TriggerMode says when a frame is inspected.
type TriggerMode string

// The trigger modes capture.trigger.mode accepts.
const (
	// TriggerFreeRun inspects every frame, at most max_rate per second.
	TriggerFreeRun TriggerMode = "free-run"
	// TriggerExternal inspects the next fresh frame when a trigger arrives.
	TriggerExternal TriggerMode = "external"
)

// Capture selects the frame source and what is done to every frame before
// inspection.
type Capture struct {
	// Source is the active source: synthetic, camera, folder or file. Only
	// the section of the active source is used; the others may stay as they are.
	Source Source `yaml:"source"`
	// Camera is a V4L2 camera.
	Camera Camera `yaml:"camera"`
	// Folder is a folder of images, for replays and line-scan systems that drop files.
	Folder Folder `yaml:"folder"`
	// File is a single image file.
	File File `yaml:"file"`
	// Synthetic renders labelled frames with injected defects; it needs no hardware.
	Synthetic Synthetic `yaml:"synthetic"`
	// ROI crops every frame to the inspected region, before rotation. For
	// a camera it is in pixels of the size the camera first streamed at:
	// after a reopen at another size its frames are refused (answered as
	// failed inspections), never cut at another part of the view or scaled.
	ROI ROI `yaml:"roi"`
	// Rotate turns the cropped frame clockwise by 0, 90, 180 or 270 degrees.
	Rotate int `yaml:"rotate"`
	// Trigger says which frames are inspected.
	Trigger Trigger `yaml:"trigger"`
	// MaxPixels is the largest image, in pixels (width × height), that the
	// folder and file sources, MJPEG camera frames, fit and eval decode. A
	// larger one is refused from its header, before any memory is taken for
	// its pixels, and skipped with one log line (a decompression bomb: a
	// 69-byte PNG can declare 40 gigapixels).
	MaxPixels int `yaml:"max_pixels"`
	// Align registers every frame to a reference view of a good part
	// before the backbone, for lines whose parts arrive shifted or turned.
	Align Align `yaml:"align"`
}

// Active is c with the sections of the sources other than the active one
// cleared (an empty Source is the synthetic one, as at start): two
// configurations whose Active captures are equal capture alike, so a
// change to a section not in use (a fleet push of capture.camera to a
// box that reads a folder) needs no new frame source.
func (c Capture) Active() Capture {
	src := c.Source
	if src == "" {
		src = SourceSynthetic
	}
	if src != SourceCamera {
		c.Camera = Camera{}
	}
	if src != SourceFolder {
		c.Folder = Folder{}
	}
	if src != SourceFile {
		c.File = File{}
	}
	if src != SourceSynthetic {
		c.Synthetic = Synthetic{}
	}
	return c
}

// Camera configures a V4L2 camera.
type Camera struct {
	// Device is the device node, a /dev/videoN path or a stable
	// /dev/v4l/by-id/... name.
	Device string `yaml:"device"`
	// Formats lists the pixel formats to try, most preferred first.
	Formats []string `yaml:"formats"`
	// Width and Height are the requested frame size; the camera's nearest
	// supported size is used.
	Width int `yaml:"width"`
	// Height: see Width.
	Height int `yaml:"height"`
	// FPS is the requested frame rate.
	FPS int `yaml:"fps"`
	// Buffers is the number of driver buffers; few keep latency low.
	Buffers int `yaml:"buffers"`
	// Timeout is how long to wait for a frame before counting a timeout;
	// the device is reopened after 3 in a row (a single late frame is not
	// worth the reopen's lost frames).
	Timeout Duration `yaml:"timeout"`
	// Controls sets camera controls by name (as `inspectd capture list`
	// shows them) to integer values, where the camera has them.
	Controls map[string]int32 `yaml:"controls"`
}

// Folder configures the image folder source.
type Folder struct {
	// Path is the folder; required when capture.source is folder. Diff
	// compares it as the folder it names (SamePath): "./frames" for
	// "frames" restarted capture for nothing.
	Path string `yaml:"path" diff:"path"`
	// Watch keeps waiting for new files after the existing ones are read.
	Watch bool `yaml:"watch"`
	// Loop starts again from the first file after the last one.
	Loop bool `yaml:"loop"`
}

// File configures the single image file source.
type File struct {
	// Path is the image file; required when capture.source is file. Diff
	// compares it as the file it names (SamePath): "./part.png" for
	// "part.png" rebuilt the file source for nothing.
	Path string `yaml:"path" diff:"path"`
}

// Synthetic configures the synthetic source.
type Synthetic struct {
	// Seed makes runs repeat.
	Seed int64 `yaml:"seed"`
	// Width and Height are the frame size.
	Width int `yaml:"width"`
	// Height: see Width.
	Height int `yaml:"height"`
	// DefectRate is the fraction of frames with an injected defect.
	DefectRate float64 `yaml:"defect_rate"`
	// FPS is the frame rate; 0 renders as fast as the pipeline takes frames.
	FPS int `yaml:"fps"`
}

// ROI is a rectangle in frame pixels. A zero Width or Height extends the
// region to the right or bottom edge, so the zero ROI is the whole frame.
type ROI struct {
	// X is the left edge.
	X int `yaml:"x"`
	// Y is the top edge.
	Y int `yaml:"y"`
	// Width is the region's width; 0 means up to the right edge.
	Width int `yaml:"width"`
	// Height is the region's height; 0 means down to the bottom edge.
	Height int `yaml:"height"`
}

// Trigger configures which frames are inspected.
type Trigger struct {
	// Mode is free-run or external.
	Mode TriggerMode `yaml:"mode"`
	// MaxRate limits free-run inspections per second; 0 means every frame.
	MaxRate float64 `yaml:"max_rate"`
	// Queue is how many trigger requests may wait; one more is answered
	// at once with an error result ("trigger queue full").
	Queue int `yaml:"queue"`
	// MaxAge is how old a trigger request may be when its turn comes (or
	// when it arrives, for requests that carry their send time); an older
	// one is answered with an error result ("stale trigger"), never with a
	// frame of a part that is no longer there.
	MaxAge Duration `yaml:"max_age"`
	// DedupWindow is how long a trigger id is remembered: a request with
	// an id answered within it is answered again with the stored result
	// instead of inspecting a second frame (QoS 1 redelivery).
	DedupWindow Duration `yaml:"dedup_window"`
}

// Resize says how a frame is brought to the backbone's input size.
type Resize string

// The resize modes model.input.resize accepts.
const (
	// ResizeFit keeps the aspect ratio and pads.
	ResizeFit Resize = "fit"
	// ResizeSquash stretches to the input size.
	ResizeSquash Resize = "squash"
	// ResizeCrop keeps the aspect ratio and crops the centre.
	ResizeCrop Resize = "crop"
)

// Model configures the backbone and PaDiM.
type Model struct {
	// Path is the fitted PaDiM model file; empty means
	// <state_dir>/model.safetensors (see ModelPath).
	Path string `yaml:"path"`
	// Recipe is auto (choose the recipe per line from its good images),
	// fixed (the settings below as written) or a recipe's name, such as
	// plain or v2-squash-std-z.
	Recipe string `yaml:"recipe"`
	// Ensemble lets the recipe search (recipe auto) try its best candidate
	// as an ensemble with the same recipe on the other bundled backbone
	// and plain PaDiM; false keeps single detectors (one backbone pass per
	// frame).
	Ensemble bool `yaml:"ensemble"`
	// Backbone is a TFLite model file, or the name of a bundled one
	// (mobilenet_v1, mobilenet_v2); empty means the bundled backbones
	// (MobileNet v1 with recipe fixed).
	Backbone string `yaml:"backbone"`
	// Taps names the backbone tensors whose outputs are embedded; empty picks
	// Conv2d_3/5/9 pointwise for the bundled backbone, else the last tensor
	// at stride 4, 8 and 16 automatically.
	Taps []string `yaml:"taps"`
	// Input says how frames become backbone input.
	Input Input `yaml:"input"`
	// Threads is the number of CPU threads TFLite uses; 0 (the default):
	// half the cores the process may use (GOMAXPROCS), at least one. The
	// pipeline's other stages (capture, PaDiM scoring on every core,
	// publishing) run beside the backbone, and TFLite's worker threads spin
	// while they wait for work: on a saturated 2-core box a second thread
	// cost a third of the throughput.
	Threads int `yaml:"threads"`
	// XNNPACK uses the XNNPACK delegate for float backbones.
	XNNPACK bool `yaml:"xnnpack"`
	// Optimize says how a quantized backbone runs on the CPU: auto, off,
	// int8 or float.
	Optimize string `yaml:"optimize"`
	// Delegate loads an external TFLite delegate (GPU, NPU).
	Delegate Delegate `yaml:"delegate"`
	// Precision of the inverse covariances PaDiM scores with: auto
	// (float16 where the CPU converts it in hardware, else float32),
	// float32, or float16. Model files and fits stay float32.
	Precision string `yaml:"precision"`
	// Features is the largest embedding size d that fitting may pick.
	Features int `yaml:"features"`
	// MinFeatures is the smallest d memory sizing may pick before it
	// coarsens the patch grid instead.
	MinFeatures int `yaml:"min_features"`
	// Seed chooses the random channel subset; it is stored with the model.
	Seed int64 `yaml:"seed"`
	// Epsilon regularizes every covariance: Σ + ε·I.
	Epsilon float64 `yaml:"epsilon"`
	// MemoryBudget bounds the scoring state (inverse covariances).
	MemoryBudget MemoryBudget `yaml:"memory_budget"`
	// MemoryFraction is the share of available memory an auto budget takes.
	MemoryFraction float64 `yaml:"memory_fraction"`
	// PositionZScore standardizes each patch position's distance by its
	// mean and spread on held-out normal images.
	PositionZScore bool `yaml:"position_zscore"`
	// ContextPool is the cell size, in finest-tap grid positions, of the
	// context scale: a second Gaussian over cell averages that finds
	// defects covering a whole region. 0 turns it off.
	ContextPool int `yaml:"context_pool"`
	// ContextFeatures is the context scale's largest d.
	ContextFeatures int `yaml:"context_features"`
	// ContextWeight multiplies the context scale's scores before they are
	// added to the patch scale's.
	ContextWeight float64 `yaml:"context_weight"`
	// BlurSigma is the anomaly map's Gaussian blur, in pixels at 224 px; 0 disables it.
	BlurSigma float64 `yaml:"blur_sigma"`
	// Threshold says how the anomaly threshold is chosen.
	Threshold Threshold `yaml:"threshold"`
}

// Input says how a frame becomes backbone input.
type Input struct {
	// Resize is fit, squash or crop.
	Resize Resize `yaml:"resize"`
	// Mean is subtracted per RGB channel; only float backbones use it.
	Mean [3]float64 `yaml:"mean"`
	// Std divides per RGB channel after Mean; only float backbones use it.
	Std [3]float64 `yaml:"std"`
	// Standardize rescales every frame to one brightness and contrast
	// before the backbone, so that parts are judged by texture and local
	// defects rather than by exposure or finish that varies part to part.
	Standardize bool `yaml:"standardize"`
	// Tiles above 1 cuts every frame along its long side into that many
	// views, each squashed onto the input (long narrow parts).
	Tiles int `yaml:"tiles"`
}

// Align configures registration (capture.align). The mode is fitted: the
// reference view is chosen from the good images and stored in the model
// file with it, and a model file's own mode wins at load. The bounds apply
// at every load.
type Align struct {
	// Mode is auto (the recipe search, model.recipe auto, tries
	// registration when the good images' poses vary; the fixed recipe does
	// not register), off (never), translate (shifts), rigid (shifts and
	// rotations up to MaxAngle) or turn (shifts and rotations by any angle:
	// parts that lie anyhow, MaxAngle not applied). A mode named here
	// registers every frame, whatever the recipe search finds. A named
	// model.recipe decides its own registration either way.
	Mode string `yaml:"mode"`
	// MaxShift is the largest shift corrected, as a fraction of the
	// frame's width and height; a part further off is an error.
	MaxShift float64 `yaml:"max_shift"`
	// MaxAngle is the largest rotation corrected, in degrees.
	MaxAngle float64 `yaml:"max_angle"`
	// MinConfidence is the lowest registration confidence scored; 0 takes
	// the floor learned from the training images.
	MinConfidence float64 `yaml:"min_confidence"`
}

// The registration modes capture.align.mode accepts.
const (
	AlignAuto      = "auto"
	AlignOff       = "off"
	AlignTranslate = "translate"
	AlignRigid     = "rigid"
	AlignTurn      = "turn"
)

// Delegate configures an external TFLite delegate plugin.
type Delegate struct {
	// Library is the plugin's shared object; empty means none.
	Library string `yaml:"library"`
	// Options are passed to the plugin as string key/value pairs.
	Options map[string]string `yaml:"options"`
	// Required makes a delegate that fails to load fatal instead of falling
	// back to the CPU.
	Required bool `yaml:"required"`
}

// Threshold configures the image-score threshold above which an inspection
// is anomalous.
type Threshold struct {
	// Quantile of the training images' leave-one-out scores.
	Quantile float64 `yaml:"quantile"`
	// Margin multiplies the quantile.
	Margin float64 `yaml:"margin"`
	// Value, when above 0, is the threshold itself and Quantile and Margin
	// are not used to choose it.
	Value float64 `yaml:"value"`
	// Holdout is the fraction of normal images the recipe search keeps
	// out of the candidates' fits to judge them on (recipe auto); the
	// threshold itself comes from every image, scored leave one out.
	Holdout float64 `yaml:"holdout"`
}

// Publish says when an image payload (mask, heatmap) is published.
type Publish string

// The values mqtt.mask and mqtt.heatmap accept.
const (
	PublishAnomalous Publish = "anomalous"
	PublishAlways    Publish = "always"
	PublishNever     Publish = "never"
)

// MQTT configures the MQTT client (or the embedded broker).
type MQTT struct {
	// Brokers are broker URLs tried in order; empty starts the embedded broker.
	Brokers []string `yaml:"brokers"`
	// EmbeddedListen is the embedded broker's host:port, used when Brokers is empty.
	EmbeddedListen string `yaml:"embedded_listen"`
	// ClientID is the MQTT client id. Empty means inspectd-<device_id>
	// when DeviceID is set, else inspectd-<host name>-<suffix> with a
	// random suffix kept in StateDir, so that boxes cloned from one image
	// (one host name) do not take each other's session.
	ClientID string `yaml:"client_id"`
	// Username authenticates to the broker; empty sends none.
	Username string `yaml:"username"`
	// Password goes with Username. It is a secret: Redacted hides it.
	Password string `yaml:"password" secret:"true"`
	// TLS configures ssl://, tls://, mqtts:// and wss:// brokers.
	TLS TLS `yaml:"tls"`
	// Keepalive is the MQTT keepalive interval; 0 disables it.
	Keepalive Duration `yaml:"keepalive"`
	// ConnectTimeout bounds one connection attempt.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// MaxReconnectInterval caps the reconnect backoff.
	MaxReconnectInterval Duration `yaml:"max_reconnect_interval"`
	// TopicPrefix is the first topic level(s) of every topic.
	TopicPrefix string `yaml:"topic_prefix"`
	// Groups (remote control, remote.go) are the device groups this
	// device takes remote commands for, on
	// <topic_prefix>/group/<group>/cmd/<command>, besides its own and the
	// fleet's topics.
	Groups []string `yaml:"groups"`
	// ResultQoS is the QoS of result messages (alarms are always QoS 1).
	ResultQoS int `yaml:"result_qos"`
	// ResultMaxRate limits result messages per second; 0 publishes every inspection.
	ResultMaxRate float64 `yaml:"result_max_rate"`
	// Mask says when the binary mask PNG is published.
	Mask Publish `yaml:"mask"`
	// Heatmap says when the heatmap JPEG is published.
	Heatmap Publish `yaml:"heatmap"`
	// ImageMaxSide bounds the longer side of a published heatmap and
	// mask, in pixels; 0 publishes them at the frame's size.
	ImageMaxSide int `yaml:"image_max_side"`

	// Profile says which payloads go out: json (the topics under
	// topic_prefix), sparkplug (a Sparkplug B edge node) or both.
	Profile Profile `yaml:"profile"`
	// Delivery limits (daemon/mqttpub).
	// MaxPayload is the largest payload published; larger images are
	// downsized or skipped, so that no broker drops the connection over one.
	MaxPayload Size `yaml:"max_payload"`
	// OutboxMaxMessages bounds the messages waiting for the broker; past it
	// the oldest images, then the oldest results are dropped, and alarms are
	// refused only when alarms alone fill it.
	OutboxMaxMessages int `yaml:"outbox_max_messages"`
	// OutboxMaxBytes bounds their size (on disk, and in memory).
	OutboxMaxBytes Size `yaml:"outbox_max_bytes"`
}

// Profile names the MQTT output profile.
type Profile string

// The profiles mqtt.profile accepts.
const (
	ProfileJSON      Profile = "json"
	ProfileSparkplug Profile = "sparkplug"
	ProfileBoth      Profile = "both"
)

// Sparkplug configures the Sparkplug B edge node: its own MQTT connection
// to mqtt.brokers (with mqtt's credentials, TLS and timeouts) under the
// topics spBv1.0/<group_id>/N*/<edge_node_id> and
// spBv1.0/<group_id>/D*/<edge_node_id>/<device_id>.
type Sparkplug struct {
	// GroupID is the Sparkplug group, the first topic level after spBv1.0.
	GroupID string `yaml:"group_id"`
	// EdgeNodeID names the edge node; empty means the device id (see
	// SparkplugEdgeNodeID).
	EdgeNodeID string `yaml:"edge_node_id"`
	// PrimaryHostID, when set, makes the edge node publish its births only
	// while that host application's STATE says it is online.
	PrimaryHostID string `yaml:"primary_host_id"`
	// ClientID is the edge node's MQTT client id; empty means the JSON
	// connection's client id with "-sparkplug" appended (see
	// SparkplugClientID).
	ClientID string `yaml:"client_id"`
}

// UsesJSON reports whether the JSON topics are published.
func (m *MQTT) UsesJSON() bool { return m.Profile != ProfileSparkplug }

// UsesSparkplug reports whether the Sparkplug B edge node runs.
func (m *MQTT) UsesSparkplug() bool { return m.Profile == ProfileSparkplug || m.Profile == ProfileBoth }

// TLS holds the files and settings for TLS connections to the broker.
type TLS struct {
	// CA is a PEM file of CAs to trust; empty means the system's.
	CA string `yaml:"ca"`
	// Cert is a PEM client certificate; it needs Key.
	Cert string `yaml:"cert"`
	// Key is the PEM private key of Cert.
	Key string `yaml:"key"`
	// ServerName overrides the name checked in the broker's certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate; for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// HTTP configures the HTTP endpoint.
type HTTP struct {
	// Listen is the host:port of /healthz, /metrics and the snapshots; empty disables it.
	Listen string `yaml:"listen"`
}

// Pipeline sizes the pipeline.
type Pipeline struct {
	// Queue is the bounded queue length between stages.
	Queue int `yaml:"queue"`
}

// Default returns the documented defaults, which DefaultYAML spells out.
// Every call returns a fresh value the caller may change.
func Default() *Config {
	return &Config{
		DeviceID: "",
		StateDir: "/var/lib/inspectd",
		LogLevel: "info",
		Capture: Capture{
			Source: SourceSynthetic,
			Align:  Align{Mode: AlignAuto, MaxShift: 0.25, MaxAngle: 20},
			Camera: Camera{
				Device:  "/dev/video0",
				Formats: []string{FormatMJPEG, FormatYUYV, FormatGREY},
				Width:   1280,
				Height:  720,
				FPS:     30,
				Buffers: 2,
				Timeout: Duration(2 * time.Second),
			},
			Synthetic: Synthetic{Seed: 1, Width: 640, Height: 480, DefectRate: 0.25, FPS: 10},
			Trigger: Trigger{Mode: TriggerFreeRun, Queue: 64, MaxAge: Duration(5 * time.Second),
				DedupWindow: Duration(10 * time.Minute)},
			MaxPixels: DefaultMaxPixels,
		},
		Model: Model{
			Recipe:   "auto",
			Ensemble: true,
			Input: Input{
				Resize: ResizeFit,
				Mean:   [3]float64{127.5, 127.5, 127.5},
				Std:    [3]float64{127.5, 127.5, 127.5},

				Standardize: true,
			},
			Threads:         0,
			XNNPACK:         true,
			Optimize:        "auto",
			Precision:       "auto",
			PositionZScore:  true,
			ContextPool:     6,
			ContextFeatures: 300,
			ContextWeight:   2,
			Features:        100,
			MinFeatures:     32,
			Seed:            1,
			Epsilon:         0.01,
			MemoryBudget:    AutoMemoryBudget(),
			MemoryFraction:  0.25,
			BlurSigma:       4,
			Threshold:       Threshold{Quantile: 0.99, Margin: 1.1, Value: 0, Holdout: 0.2},
		},
		MQTT: MQTT{
			EmbeddedListen:       "127.0.0.1:1883",
			Keepalive:            Duration(30 * time.Second),
			ConnectTimeout:       Duration(10 * time.Second),
			MaxReconnectInterval: Duration(30 * time.Second),
			TopicPrefix:          "inspectd",
			Mask:                 PublishAnomalous,
			Heatmap:              PublishAnomalous,
			ImageMaxSide:         640,
			Profile:              ProfileJSON,

			// Delivery limits: see mqttpub.DefaultMaxPayload and friends.
			MaxPayload:        256 << 10,
			OutboxMaxMessages: 10000,
			OutboxMaxBytes:    64 << 20,
		},
		Sparkplug: Sparkplug{GroupID: "inspectd"},
		HTTP:      HTTP{Listen: "127.0.0.1:9100"},
		Pipeline:  Pipeline{Queue: 4},
		Remote:    DefaultRemote(),
	}
}

// ResolvedDeviceID is device_id, or when that is empty the host name with
// every character that may not appear in an MQTT topic level (or in a
// device id) replaced by '-'.
func (c *Config) ResolvedDeviceID() (string, error) {
	if c.DeviceID != "" {
		return c.DeviceID, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("device_id is empty and the host name is unknown: %w", err)
	}
	id := sanitizeDeviceID(h)
	if id == "" {
		return "", fmt.Errorf("device_id is empty and the host name %q is empty", h)
	}
	return id, nil
}

// sanitizeDeviceID maps a host name onto the device id alphabet.
func sanitizeDeviceID(h string) string {
	var b strings.Builder
	for _, r := range h {
		if b.Len() >= maxDeviceID {
			break
		}
		if isIDRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// ResolvedClientID is mqtt.client_id, or inspectd-<device id> when empty.
// Without device_id the daemon adds a random suffix kept in its state
// folder (daemon.PreviewClientID says which).
func (c *Config) ResolvedClientID() (string, error) {
	if c.MQTT.ClientID != "" {
		return c.MQTT.ClientID, nil
	}
	id, err := c.ResolvedDeviceID()
	if err != nil {
		return "", err
	}
	return "inspectd-" + id, nil
}

// SparkplugEdgeNodeID is sparkplug.edge_node_id, or the device id when
// empty.
func (c *Config) SparkplugEdgeNodeID() (string, error) {
	if c.Sparkplug.EdgeNodeID != "" {
		return c.Sparkplug.EdgeNodeID, nil
	}
	return c.ResolvedDeviceID()
}

// SparkplugClientID is sparkplug.client_id, or when empty jsonClientID
// (the client id the JSON connection uses, as the daemon resolves it) with
// "-sparkplug" appended: the two connections must not share an id (the
// broker would close one for the other).
func (c *Config) SparkplugClientID(jsonClientID string) string {
	if c.Sparkplug.ClientID != "" {
		return c.Sparkplug.ClientID
	}
	return jsonClientID + "-sparkplug"
}

// ModelPath is model.path, or <state_dir>/model.safetensors when empty.
func (c *Config) ModelPath() string {
	if c.Model.Path != "" {
		return c.Model.Path
	}
	return filepath.Join(c.StateDir, "model.safetensors")
}

// SlogLevel is log_level as a slog.Level (info if it is not a valid level,
// which Validate reports).
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
