package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// cmdSparkplugWatch prints the Sparkplug B traffic of a broker decoded, one
// JSON line per message: what a commissioning engineer checks without a
// SCADA host (mosquitto_sub shows the protobuf payloads as binary).
func cmdSparkplugWatch() *Command {
	return &Command{
		Name:    "sparkplug watch",
		Summary: "print Sparkplug B messages decoded, one JSON line each",
		Usage:   "[--broker URL] [--group GROUP] [--count N] [--rebirth] [--username U --password P] [--cafile F] [--cert F --key F] [--server-name N] [--insecure-skip-verify]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "sparkplug watch")
			broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL, as in mqtt.brokers: tcp:// or mqtt:// (plain), ssl://, tls:// or mqtts:// (TLS), ws:// or wss:// (WebSocket, with the listener's path)")
			group := fs.String("group", "", "Sparkplug group id to watch (default: every group, and host STATE)")
			count := fs.Int("count", 0, "exit after this many messages (0: until interrupted)")
			user := fs.String("username", "", "MQTT user name")
			pass := fs.String("password", "", "MQTT password")
			rebirth := fs.Bool("rebirth", false, "ask a node whose births were missed for new ones (NCMD Node Control/Rebirth), once each; without it, its data shows aliases")
			// The daemon's mqtt.tls, flag by flag: a plant broker has a
			// private CA and often asks for client certificates.
			var tf watchTLS
			fs.StringVar(&tf.ca, "cafile", "", "PEM file of the CAs that may sign the broker's certificate, as mqtt.tls.ca (default: the system's)")
			fs.StringVar(&tf.cert, "cert", "", "PEM client certificate for a broker that asks for one, as mqtt.tls.cert (needs --key)")
			fs.StringVar(&tf.key, "key", "", "PEM private key of --cert, as mqtt.tls.key")
			fs.StringVar(&tf.serverName, "server-name", "", "name checked in the broker's certificate instead of the --broker host, as mqtt.tls.server_name")
			fs.BoolVar(&tf.insecure, "insecure-skip-verify", false, "accept any broker certificate, as mqtt.tls.insecure_skip_verify; for tests only")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return &UsageError{Msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
			}
			if *count < 0 {
				return &UsageError{Msg: fmt.Sprintf("--count %d: want 0 or more", *count)}
			}
			if err := config.CheckBrokerURL(*broker); err != nil {
				return &UsageError{Msg: "--broker: " + strings.Replace(err.Error(), "mqtt.username and mqtt.password", "--username and --password", 1)}
			}
			if *pass != "" && *user == "" {
				return &UsageError{Msg: "--password needs --username (MQTT sends no password without a user name)"}
			}
			if err := tf.check(*broker); err != nil {
				return err
			}
			if strings.ContainsAny(*group, "+#/") {
				return &UsageError{Msg: fmt.Sprintf("--group %q: a Sparkplug group id has no + # or /", *group)}
			}
			filter := "spBv1.0/#"
			if *group != "" {
				filter = "spBv1.0/" + *group + "/#"
			}
			tc, err := tf.config()
			if err != nil {
				return err
			}
			return watchSparkplug(ctx, env, sparkplugWatch{broker: *broker, filter: filter, count: *count, user: *user, pass: *pass,
				rebirth: *rebirth, tls: tc, tlsFlags: tf})
		},
	}
}

type sparkplugWatch struct {
	broker, filter, user, pass string
	count                      int
	rebirth                    bool
	tls                        *tls.Config // nil: paho's default (the system's CAs)
	tlsFlags                   watchTLS
}

// watchTLS is the watch's TLS flags, the daemon's mqtt.tls by field.
type watchTLS struct {
	ca, cert, key, serverName string
	insecure                  bool
}

func (f watchTLS) set() bool { return f != watchTLS{} }

// check refuses flags a watch cannot run with: a certificate without its
// key, or TLS flags for a broker URL without TLS (they would be ignored,
// and the watch taken for a check of the TLS set-up).
func (f watchTLS) check(broker string) error {
	switch {
	case f.cert != "" && f.key == "":
		return &UsageError{Msg: "--cert needs --key (the client certificate's private key)"}
	case f.key != "" && f.cert == "":
		return &UsageError{Msg: "--key needs --cert (the client certificate it is the key of)"}
	}
	if u, err := url.Parse(broker); err == nil && f.set() && !config.TLSScheme(u.Scheme) {
		return &UsageError{Msg: fmt.Sprintf("--cafile, --cert, --key, --server-name and --insecure-skip-verify are for a TLS broker (ssl://, tls://, mqtts://, wss://); --broker %s has none", broker)}
	}
	return nil
}

// config builds the TLS configuration with the daemon's builder for
// mqtt.tls (mqttpub.TLSOptions.Build), reading the files now; nil when no
// flag is set. An error names the flag and its file.
func (f watchTLS) config() (*tls.Config, error) {
	if !f.set() {
		return nil, nil
	}
	return mqttpub.TLSOptions{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key, ServerName: f.serverName,
		InsecureSkipVerify: f.insecure}.Build(mqttpub.TLSFields{CA: "--cafile", Cert: "--cert", Key: "--key"})
}

func watchSparkplug(ctx context.Context, env *Env, w sparkplugWatch) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dec := newSparkplugDecoder()
	var mu sync.Mutex // paho delivers on one goroutine, but the count is read here too
	seen := 0
	asked := map[string]bool{} // nodes (their NCMD topics) told of or asked for a rebirth
	opts := mqtt.NewClientOptions().AddBroker(w.broker).SetClientID(fmt.Sprintf("inspectd-spwatch-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).
		SetProtocolVersion(4). // Sparkplug B is MQTT 3.1.1 (or 5): no silent retry as 3.1 to blur the error
		SetUsername(w.user).SetPassword(w.pass)
	if w.tls != nil {
		opts.SetTLSConfig(w.tls)
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		// Subscribed again on every connect: a clean session forgets it.
		tok := c.Subscribe(w.filter, 0, func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			defer mu.Unlock()
			if w.count > 0 && seen >= w.count {
				return
			}
			seen++
			rec := dec.decode(m.Topic(), m.Payload(), time.Now())
			line, _ := json.Marshal(rec)
			fmt.Fprintf(env.Stdout, "%s\n", line)
			if rec.warning != "" {
				fmt.Fprintf(env.Stderr, "warning: %s\n", rec.warning)
			}
			if node := rec.unnamed; node != "" && !asked[node] {
				asked[node] = true
				if w.rebirth {
					// Published from the handler: paho does not wait for a
					// QoS 0 publish, so delivery is not held up.
					c.Publish(node, 0, false, rebirthRequest())
					fmt.Fprintf(env.Stderr, "no birth seen from %s: asked for a rebirth on %s\n", rec.Topic, node)
				} else {
					fmt.Fprintf(env.Stderr, "no birth seen from %s: its data shows aliases; start the watch before the node, or run with --rebirth\n", rec.Topic)
				}
			}
			if w.count > 0 && seen == w.count {
				cancel()
			}
		})
		switch {
		case !tok.WaitTimeout(10 * time.Second):
			fmt.Fprintf(env.Stderr, "subscribe to %s on the MQTT broker %s: no answer within 10 s; nothing will be printed until a reconnect subscribes again\n", w.filter, w.broker)
		case tok.Error() != nil:
			fmt.Fprintf(env.Stderr, "subscribe to %s on the MQTT broker %s: %v; nothing will be printed until a reconnect subscribes again\n", w.filter, w.broker, tok.Error())
		default:
			fmt.Fprintf(env.Stderr, "watching %s on %s\n", w.filter, w.broker)
		}
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		// Said: "no traffic" is not "no connection".
		fmt.Fprintf(env.Stderr, "connection to the MQTT broker %s lost: %s; reconnecting\n", w.broker, lostCause(err))
	})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return connectError(ctx, w, tok.Error())
	}
	defer c.Disconnect(250)
	<-ctx.Done()
	return nil
}

// connectError says why the watch could not connect to w.broker, in
// words, with what was tried: paho's own errors ("network Error : EOF")
// name neither the broker nor a cause a person can act on. err is nil
// when no answer came in time. The error wraps paho's.
//
// A connection closed unanswered on a TLS or WebSocket URL is followed by
// one more try of the steps before the CONNECT (failedStep): paho's error
// ("connection reset by peer") reads the same for a TLS handshake or
// WebSocket upgrade the port did not take as for a CONNECT the broker
// closed on, and the advice differs.
func connectError(ctx context.Context, w sparkplugWatch, err error) error {
	user := "no user name"
	if w.user != "" {
		user = "user " + w.user
	}
	tried := fmt.Sprintf("an MQTT 3.1.1 CONNECT with a clean session and %s, within 10 s", user)
	cause := netCause(err)
	var dial *net.OpError
	if errors.As(cause, &dial) && dial.Op == "dial" {
		tried = "a connection to its address, within 10 s" // no CONNECT was sent
	}
	var why string
	var unknownCA x509.UnknownAuthorityError
	closed := closedUnanswered(cause)
	u, _ := url.Parse(w.broker) // checked before the watch started
	step := stepNone
	if closed && u != nil {
		step = w.failedStep(ctx, u)
	}
	var wrongHost x509.HostnameError
	switch {
	case err == nil:
		why = "no answer within 15 s: a firewall that drops the packets, or another host"
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		why = "the broker refused the credentials (" + err.Error() + "): give the --username and --password it expects"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		why = "the broker rejected the client id"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		why = "the broker answered that it is unavailable"
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		why = "the broker does not take MQTT 3.1.1, which Sparkplug B needs"
	case errors.As(cause, &unknownCA):
		tried = "a TLS handshake, within 10 s"
		why = "its certificate is not signed by a CA the watch trusts (" + cause.Error() + "): give the CA that signed it with --cafile"
		if w.tlsFlags.ca != "" {
			why = "its certificate is not signed by a CA in --cafile " + w.tlsFlags.ca + " (" + cause.Error() + "): give the CA that signed it"
		}
	case errors.As(cause, &wrongHost):
		tried = "a TLS handshake, within 10 s"
		why = "its certificate is not for this address (" + cause.Error() + "): connect by a name it holds, or give that name with --server-name"
	case refusedClientCert(cause):
		// TLS 1.3: the broker checks the client's certificate after the
		// handshake, and says so as the CONNACK is awaited.
		why = "it refused the client (" + cause.Error() + "): it asks for a client certificate it trusts; give it with --cert and --key"
		if w.tlsFlags.cert != "" {
			why = "it refused the client certificate --cert " + w.tlsFlags.cert + " (" + cause.Error() + "): is it one for a client, signed by a CA the broker trusts?"
		}
	case closed && step == stepTLS:
		tried = "a TLS handshake, within 10 s"
		port := "this the broker's TLS port, and not a plain MQTT one (tcp:// there)"
		if u.Scheme == "wss" {
			port = "this the broker's WebSocket listener with TLS, and not a plain one (ws:// there)"
		}
		why = "the TLS handshake failed (" + cause.Error() + "): is " + port + "?"
	case closed && step == stepWebSocket:
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		tried = "a WebSocket upgrade (HTTP GET " + path + "), within 10 s"
		why = "the port did not answer a WebSocket upgrade (" + cause.Error() + "): is it the broker's WebSocket listener " +
			"(mosquitto: a listener with protocol websockets), and not its MQTT one (tcp:// or ssl:// there)?"
	case closed && u != nil && config.TLSScheme(u.Scheme):
		// A broker that refuses the client's certificate sends its alert
		// and closes: the client may see the close before the alert.
		client := "does it ask for a client certificate (give it with --cert and --key)"
		if w.tlsFlags.cert != "" {
			client = "does it trust the client certificate --cert " + w.tlsFlags.cert
		}
		why = "it closed the connection without answering (" + cause.Error() + "): is this the broker's TLS port, and not a plain MQTT one (tcp:// there)? " +
			client + "? Its own log says why it did not take this client"
	case closed && u != nil && u.Scheme == "ws":
		why = "it closed the connection without answering (" + cause.Error() + ") after the WebSocket upgrade: " +
			"does it take this client (its own log says why it did not)?"
	case closed:
		why = "it closed the connection without answering (" + cause.Error() + "): is an MQTT broker listening there, " +
			"and not a TLS one (use ssl://), and does it take this client (its own log says why it did not)?"
	case errors.Is(cause, syscall.ECONNREFUSED):
		why = "nothing listens there (" + cause.Error() + "): the broker is down, or on another port"
	case isTimeout(cause):
		why = "no answer in time (" + cause.Error() + "): a firewall that drops the packets, or another host"
	case errors.As(cause, new(*net.DNSError)):
		why = "its host name does not resolve (" + cause.Error() + ")"
	default:
		why = cause.Error()
	}
	return &watchError{msg: fmt.Sprintf("could not connect to the MQTT broker %s (tried %s): %s", w.broker, tried, why), err: err}
}

// The step before the MQTT CONNECT that failedStep found failing.
const (
	stepNone      = ""          // none: they went through, or there are none (tcp://)
	stepTLS       = "tls"       // the TLS handshake
	stepWebSocket = "websocket" // the WebSocket upgrade
)

// failedStep tries once more, on a connection of its own, the steps paho
// takes before its CONNECT for broker URL u (a TLS handshake for ssl://,
// tls://, mqtts:// and wss://, an upgrade for ws:// and wss://) and says
// which failed, within 5 s each. Only a connection closed on it, or (TLS)
// an answer that is not TLS, counts as the step's failure: a refused
// certificate has its own advice, and an address gone since is no step's.
func (w sparkplugWatch) failedStep(ctx context.Context, u *url.URL) string {
	const timeout = 5 * time.Second
	host := u.Host
	if u.Port() == "" && (u.Scheme == "ws" || u.Scheme == "wss") {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"ws": "80", "wss": "443"}[u.Scheme])
	}
	if config.TLSScheme(u.Scheme) {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: w.tls}
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			if closedUnanswered(err) || errors.As(err, new(tls.RecordHeaderError)) {
				return stepTLS
			}
			return stepNone
		}
		c.Close()
	}
	if u.Scheme == "ws" || u.Scheme == "wss" {
		dial := *u
		dial.User = nil // as paho: the dialer under it refuses a URL with user info
		c, err := mqtt.NewWebsocket(dial.String(), w.tls, timeout, nil, nil)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				return stepNone
			}
			return stepWebSocket // closed, or answered without the upgrade
		}
		c.Close()
	}
	return stepNone
}

// closedUnanswered reports whether err is the peer's close or reset of the
// connection.
func closedUnanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// refusedClientCert reports whether err is a TLS alert by which a broker
// refuses the client's certificate, or its lack of one.
func refusedClientCert(err error) bool {
	for _, a := range []string{"certificate required", "bad certificate", "unsupported certificate", "certificate unknown", "unknown certificate authority"} {
		if strings.Contains(err.Error(), "remote error: tls: "+a) {
			return true
		}
	}
	return false
}

// lostCause is why a connection was lost, in words.
func lostCause(err error) string {
	cause := netCause(err)
	switch {
	case cause == nil:
		return "no reason given"
	case errors.Is(cause, io.EOF), errors.Is(cause, io.ErrUnexpectedEOF):
		return "the broker closed it (" + cause.Error() + ")"
	}
	return cause.Error()
}

// netCause is the network error under paho's "network Error : <cause>"
// (an error joining the two), or err itself.
func netCause(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != packets.ErrorNetworkError {
				return e
			}
		}
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// watchError is an error said in words, wrapping the one it explains.
type watchError struct {
	msg string
	err error
}

func (e *watchError) Error() string { return e.msg }
func (e *watchError) Unwrap() error { return e.err }

// sparkplugDecoder turns Sparkplug messages into printable records. It
// learns each node's and device's metric names from their births: data
// and command messages carry only aliases.
type sparkplugDecoder struct {
	names map[string]map[uint64]string // by the topic's group/node[/device]
	// seqs is each edge node's last seq (by group/node), from the first
	// of its messages seen (an NBIRTH starts it again, an NDEATH ends
	// it): a message whose seq does not follow says messages were lost.
	seqs map[string]uint64
}

func newSparkplugDecoder() *sparkplugDecoder {
	return &sparkplugDecoder{names: map[string]map[uint64]string{}, seqs: map[string]uint64{}}
}

// spRecord is one printed message.
type spRecord struct {
	Received  string         `json:"received"`
	Topic     string         `json:"topic"`
	Type      string         `json:"type,omitempty"`
	Seq       *uint64        `json:"seq,omitempty"`
	Timestamp string         `json:"timestamp,omitempty"`
	Metrics   map[string]any `json:"metrics,omitempty"`
	// State is a host application's STATE message (JSON, not protobuf).
	State json.RawMessage `json:"state,omitempty"`
	Error string          `json:"error,omitempty"`
	// unnamed is the NCMD topic of the node whose metrics came as
	// aliases without a birth seen ("" when every one was named).
	unnamed string
	// warning says what is wrong with a message that decoded but breaks
	// Sparkplug 3.0 in a way a host would stumble on: an NBIRTH without
	// metrics, a STATE without a boolean "online" ("" when none).
	warning string
}

// followSeq checks that a node's message r (payload p) carries the seq
// after the node's last one, as Sparkplug 3.0 asks of every message from
// an NBIRTH to the NDEATH, and warns of a gap (messages lost on the way,
// which a host answers with a rebirth request). The first message seen of
// a node is the reference: a watch is mostly started on a node already
// running, whose next NBIRTH may be hours away, and a watch that waited
// for it reported no gap meanwhile.
func (d *sparkplugDecoder) followSeq(node string, r *spRecord, p *sppb.Payload) {
	switch r.Type {
	case "NBIRTH":
		d.seqs[node] = p.Seq
		return
	case "NDEATH":
		delete(d.seqs, node)
		return
	case "NDATA", "DBIRTH", "DDATA", "DDEATH":
	default:
		return // commands come from hosts, without seq
	}
	if !p.HasSeq {
		return
	}
	last, known := d.seqs[node]
	d.seqs[node] = p.Seq
	if !known {
		return
	}
	if want := (last + 1) % 256; p.Seq != want && r.warning == "" {
		r.warning = fmt.Sprintf("%s has seq %d after %d: %d message(s) of node %s lost or not seen on the way (a host asks for a rebirth)",
			r.Topic, p.Seq, last, (p.Seq+256-want)%256, node)
	}
}

// rebirthRequest is an NCMD payload asking for new births (Sparkplug 3.0:
// the metric Node Control/Rebirth, true), dated now.
func rebirthRequest() []byte {
	now := uint64(time.Now().UnixMilli())
	b, _ := (&sppb.Payload{Timestamp: now, Metrics: []sppb.Metric{{Name: "Node Control/Rebirth", Timestamp: now,
		DataType: sppb.TypeBoolean, Value: sppb.BoolValue(true)}}}).Marshal() // cannot fail: no value out of its type
	return b
}

// decode makes the record of one message on topic (spBv1.0/...).
func (d *sparkplugDecoder) decode(topic string, payload []byte, received time.Time) spRecord {
	r := spRecord{Received: received.UTC().Format(time.RFC3339Nano), Topic: topic}
	parts := strings.Split(topic, "/")
	if len(parts) >= 3 && parts[1] == "STATE" {
		r.Type = "STATE"
		var st struct {
			Online json.RawMessage `json:"online"`
		}
		if json.Valid(payload) {
			r.State = payload
		} else {
			r.Error = fmt.Sprintf("STATE payload is not JSON (%d bytes)", len(payload))
		}
		if err := json.Unmarshal(payload, &st); err != nil || (string(st.Online) != "true" && string(st.Online) != "false") {
			got := "no \"online\""
			switch {
			case r.Error != "":
				got = fmt.Sprintf("%d bytes that are not JSON (a Sparkplug 2 host sends ONLINE or OFFLINE as text)", len(payload))
			case len(st.Online) > 0:
				got = "\"online\": " + truncateForLine(string(st.Online))
			}
			r.warning = fmt.Sprintf("%s has %s: a Sparkplug 3.0 host's STATE is {\"online\": true or false, \"timestamp\": ms}, and edge nodes waiting for this host take it as not online", topic, got)
		}
		return r
	}
	if len(parts) < 4 || len(parts) > 5 {
		r.Error = "not a Sparkplug B topic (spBv1.0/<group>/<type>/<node>[/<device>])"
		return r
	}
	r.Type = parts[2]
	key := parts[1] + "/" + parts[3]
	if len(parts) == 5 {
		key += "/" + parts[4]
	}
	var p sppb.Payload
	if err := sppb.Unmarshal(payload, &p); err != nil {
		r.Error = fmt.Sprintf("payload (%d bytes) does not decode as Sparkplug B: %v", len(payload), err)
		return r
	}
	if p.HasSeq {
		r.Seq = &p.Seq
	}
	if p.Timestamp != 0 {
		r.Timestamp = msTime(p.Timestamp)
	}
	if r.Type == "NBIRTH" && len(p.Metrics) == 0 {
		r.warning = fmt.Sprintf("%s carries no metrics: a Sparkplug 3.0 NBIRTH carries bdSeq and every node metric, so a host cannot name this node's data (nor match its NDEATH)", topic)
	}
	d.followSeq(parts[1]+"/"+parts[3], &r, &p)
	birth := r.Type == "NBIRTH" || r.Type == "DBIRTH"
	if birth {
		d.names[key] = map[uint64]string{}
		if r.Type == "NBIRTH" { // a node's rebirth renews its devices' births too
			for k := range d.names {
				if strings.HasPrefix(k, key+"/") {
					delete(d.names, k)
				}
			}
		}
	}
	names := d.names[key]
	if len(p.Metrics) > 0 {
		r.Metrics = make(map[string]any, len(p.Metrics))
	}
	for _, m := range p.Metrics {
		name := m.Name
		if birth && m.HasAlias && name != "" {
			names[m.Alias] = name
		}
		if name == "" && m.HasAlias {
			if name = names[m.Alias]; name == "" {
				name = fmt.Sprintf("alias %d (no birth seen)", m.Alias)
				r.unnamed = "spBv1.0/" + parts[1] + "/NCMD/" + parts[3]
			}
		}
		r.Metrics[name] = metricValue(&m)
	}
	return r
}

// metricValue is a metric's value as JSON: numbers, booleans and strings
// as such, null for a null metric, a DataSet as its columns and rows, bytes
// as their size and content type.
func metricValue(m *sppb.Metric) any {
	if m.IsNull {
		return nil
	}
	return value(m.DataType, m.Value, m.MetaData)
}

func value(t sppb.DataType, v sppb.Value, md *sppb.MetaData) any {
	switch v.Kind {
	case sppb.KindInt:
		switch t {
		case sppb.TypeInt8, sppb.TypeInt16, sppb.TypeInt32:
			return v.Int32()
		}
		return uint32(v.Uint)
	case sppb.KindLong:
		switch t {
		case sppb.TypeInt64:
			return v.Int64()
		case sppb.TypeDateTime:
			return msTime(v.Uint)
		}
		return v.Uint
	case sppb.KindFloat:
		return finite(float64(v.Float32))
	case sppb.KindDouble:
		return finite(v.Float64)
	case sppb.KindBoolean:
		return v.Bool
	case sppb.KindString:
		return v.Str
	case sppb.KindBytes:
		b := map[string]any{"bytes": len(v.Bytes)}
		if md != nil && md.ContentType != "" {
			b["content_type"] = md.ContentType
		}
		return b
	case sppb.KindDataSet:
		ds := v.DataSet
		rows := make([][]any, len(ds.Rows))
		for i, row := range ds.Rows {
			rows[i] = make([]any, len(row.Elements))
			for j, e := range row.Elements {
				var ct sppb.DataType
				if j < len(ds.Types) {
					ct = ds.Types[j]
				}
				rows[i][j] = value(ct, e, nil)
			}
		}
		return map[string]any{"columns": ds.Columns, "rows": rows}
	}
	return nil
}

// finite is f, or its name for NaN and the infinities (JSON has no such
// numbers).
func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return f
}

// truncateForLine shortens s to fit a one-line warning.
func truncateForLine(s string) string {
	const max = 40
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}

func msTime(ms uint64) string {
	return time.UnixMilli(int64(ms)).UTC().Format(time.RFC3339Nano)
}
