package mqttpub

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// TLSOptions configures TLS for ssl://, tls://, mqtts:// and wss:// brokers.
type TLSOptions struct {
	// CAFile is a PEM bundle of CAs that may sign the broker certificate;
	// empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// brokers that require one; both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked against the broker
	// certificate (default: the host of the broker URL).
	ServerName string
	// InsecureSkipVerify disables certificate checks; for bench tests only.
	InsecureSkipVerify bool
}

// Options configures a Publisher. Zero durations take the defaults below.
type Options struct {
	// Brokers are tried in order on every connection attempt, e.g.
	// "tcp://10.0.0.5:1883", "ssl://broker.plant:8883".
	Brokers []string
	// ClientID must be stable across restarts: the broker keeps the
	// persistent session under it. Default "inspectd-<DeviceID>".
	ClientID string
	Username string
	Password string
	TLS      TLSOptions
	// KeepAlive is the MQTT keepalive (default 30s).
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt, TCP + TLS + CONNACK
	// (default 10s).
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the exponential backoff between attempts
	// (default 60s).
	MaxReconnectInterval time.Duration
	// WriteTimeout bounds how long a publish may wait for a stalled
	// connection before it is left to the outbox (default 10s).
	WriteTimeout time.Duration
	// StoreDir holds the outbox: every QoS 1/2 message is written there
	// (fsynced) before Publish returns and removed when the broker
	// acknowledges it, so messages survive broker outages and restarts
	// of the daemon. Empty keeps the outbox in memory only.
	StoreDir string
	// MaxPayload is the largest payload published, in bytes (default
	// DefaultMaxPayload); larger ones are refused with ErrPayloadTooLarge
	// before they reach a broker that would drop the connection over them.
	// Set it to the broker's limit when that is lower.
	MaxPayload int
	// Carry, when set, is what the publisher this one replaces learned of
	// its brokers (Publisher.Carry, taken at a reload that rebuilds the
	// connection): with the same Brokers, in the same order, the packet
	// limit it learned is in force from the first publish, rather than
	// learned again at the price of another lost connection. Another
	// broker list starts knowing no limit, as a broker of its own may
	// take more. MaxPayload still applies: the lower of the two wins.
	Carry *Carry
	// OutboxMaxMessages and OutboxMaxBytes bound the outbox (defaults
	// DefaultOutboxMaxMessages, DefaultOutboxMaxBytes): beyond them the
	// oldest images, then the oldest results are dropped, and an alarm is
	// refused (ErrOutboxFull) only when alarms alone fill it. Every queued
	// message is also held in memory, so OutboxMaxBytes bounds that too.
	OutboxMaxMessages int
	OutboxMaxBytes    int64
	// TopicPrefix is the first topic level(s), default "inspectd".
	TopicPrefix string
	// DeviceID is the topic level after the prefix; required.
	DeviceID string
	// Logger receives one line per connection event; default slog.Default().
	Logger *slog.Logger
}

// Defaults for zero Options fields.
const (
	DefaultTopicPrefix          = "inspectd"
	DefaultKeepAlive            = 30 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 60 * time.Second
	DefaultWriteTimeout         = 10 * time.Second
	// DefaultMaxPayload (256 KiB) is accepted by every common broker:
	// mosquitto, HiveMQ and EMQX allow far more by default, Azure IoT Hub
	// 256 KB; AWS IoT Core allows 128 KB, which a broker teaches the
	// publisher after one dropped connection (set it for such brokers). It
	// holds a heatmap JPEG of a 1280x720 frame at quality 80.
	DefaultMaxPayload = 256 << 10
	// MaxPacketPayload is the largest payload MQTT can carry at all: the
	// remaining length field ends at 268,435,455 bytes.
	MaxPacketPayload = 268435455 - 1024
	// DefaultOutboxMaxMessages holds about 15 minutes of results at 10
	// inspections per second, or 10,000 alarms.
	DefaultOutboxMaxMessages = 10000
	// DefaultOutboxMaxBytes bounds what the outbox holds on disk and in memory.
	DefaultOutboxMaxBytes = 64 << 20
	// firstRetryInterval is the first backoff step; it doubles per failed
	// attempt up to MaxReconnectInterval (paho uses the same 1 s start for
	// reconnects, so initial connects and reconnects pace alike).
	firstRetryInterval = time.Second
)

// withDefaults returns a copy of o with defaults filled in, or an error
// naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxReconnectInterval == 0 {
		o.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.OutboxMaxMessages == 0 {
		o.OutboxMaxMessages = DefaultOutboxMaxMessages
	}
	if o.OutboxMaxBytes == 0 {
		o.OutboxMaxBytes = DefaultOutboxMaxBytes
	}
	if o.MaxPayload < 0 || o.MaxPayload > MaxPacketPayload {
		return o, fmt.Errorf("mqtt MaxPayload is %d; expected 1 to %d bytes", o.MaxPayload, MaxPacketPayload)
	}
	if o.OutboxMaxMessages < 0 {
		return o, fmt.Errorf("mqtt OutboxMaxMessages is %d; expected a positive count", o.OutboxMaxMessages)
	}
	if o.OutboxMaxBytes < 0 {
		return o, fmt.Errorf("mqtt OutboxMaxBytes is %d; expected a positive size", o.OutboxMaxBytes)
	}
	if err := checkTopicLevel("DeviceID", o.DeviceID, false); err != nil {
		return o, err
	}
	if err := checkTopicLevel("TopicPrefix", o.TopicPrefix, true); err != nil {
		return o, err
	}
	if o.ClientID == "" {
		o.ClientID = "inspectd-" + o.DeviceID
	}
	if len(o.ClientID) > 65535 {
		return o, fmt.Errorf("mqtt ClientID is %d bytes; at most 65535", len(o.ClientID))
	}
	if len(o.Brokers) == 0 {
		return o, errors.New("mqtt Brokers is empty: expected at least one URL such as tcp://127.0.0.1:1883")
	}
	for i, b := range o.Brokers {
		if err := checkBrokerURL(b); err != nil {
			return o, fmt.Errorf("mqtt Brokers[%d] %q: %w", i, b, err)
		}
	}
	for name, d := range map[string]time.Duration{"KeepAlive": o.KeepAlive, "ConnectTimeout": o.ConnectTimeout,
		"MaxReconnectInterval": o.MaxReconnectInterval, "WriteTimeout": o.WriteTimeout} {
		if d < 0 {
			return o, fmt.Errorf("mqtt %s is %s; expected a positive duration", name, d)
		}
	}
	if o.KeepAlive < time.Second {
		return o, fmt.Errorf("mqtt KeepAlive is %s; MQTT counts it in whole seconds, expected at least 1s", o.KeepAlive)
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		return o, errors.New("mqtt TLS: CertFile and KeyFile must be given together")
	}
	return o, nil
}

// checkTopicLevel rejects MQTT wildcards and empty levels; a prefix may
// span several levels ("plant1/line3/inspectd"), a device id may not.
func checkTopicLevel(field, s string, multi bool) error {
	if s == "" {
		return fmt.Errorf("mqtt %s is empty: expected a topic level such as \"line3-cam1\"", field)
	}
	if strings.ContainsAny(s, "+#\x00") {
		return fmt.Errorf("mqtt %s %q: must not contain the wildcards '+' or '#' or NUL", field, s)
	}
	if !multi && strings.Contains(s, "/") {
		return fmt.Errorf("mqtt %s %q: must be a single topic level, without '/'", field, s)
	}
	for _, level := range strings.Split(s, "/") {
		if level == "" {
			return fmt.Errorf("mqtt %s %q: empty topic level (leading, trailing or double '/')", field, s)
		}
	}
	return nil
}

// checkBrokerURL accepts the schemes paho can dial.
func checkBrokerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "ws", "wss":
	case "":
		return errors.New("missing scheme: expected tcp://host:port or ssl://host:port")
	default:
		return fmt.Errorf("unsupported scheme %q: expected tcp, mqtt, ssl, tls, mqtts, ws or wss", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("missing host")
	}
	// A ws:// or wss:// URL without a port is dialled at 80 or 443 (the
	// WebSocket dialler under paho fills them in), and config accepts it:
	// refusing it here stopped a valid configuration at start-up.
	if u.Port() == "" && u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("missing port: expected %s://%s:%s", u.Scheme, strings.ReplaceAll(u.Host, "%", "%25"), mqttPort(u.Scheme))
	}
	return nil
}

// mqttPort is the IANA port of MQTT for a scheme that dials TCP, over TLS
// or not, for a hint.
func mqttPort(scheme string) string {
	switch scheme {
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		return "8883"
	}
	return "1883"
}
