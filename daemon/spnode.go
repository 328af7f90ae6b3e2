package daemon

import (
	"errors"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/daemon/sparkplug"
)

// tlsOptions maps mqtt.tls onto the publisher's TLS options; none when no
// broker speaks TLS (config warns that the settings are not used there, so
// a stale file they name must not stop the daemon either).
func tlsOptions(m *config.MQTT) mqttpub.TLSOptions {
	if !m.UsesTLS() {
		return mqttpub.TLSOptions{}
	}
	return mqttpub.TLSOptions{CAFile: m.TLS.CA, CertFile: m.TLS.Cert, KeyFile: m.TLS.Key,
		ServerName: m.TLS.ServerName, InsecureSkipVerify: m.TLS.InsecureSkipVerify}
}

// newSparkplugNode creates and starts the Sparkplug B edge node for cfg
// (mqtt.profile sparkplug or both): its own MQTT connection to the same
// brokers, fed the same inspection results as the JSON topics.
func (d *Daemon) newSparkplugNode(cfg *config.Config, deviceID, clientID string, carry *sparkplug.Carry) (*sparkplug.Node, error) {
	m := &cfg.MQTT
	nodeID, err := cfg.SparkplugEdgeNodeID()
	if err != nil {
		return nil, err
	}
	// The JSON publisher's builder, and its errors naming mqtt.tls.
	tc, err := tlsOptions(m).Config()
	if err != nil {
		return nil, err
	}
	n, err := sparkplug.New(sparkplug.Options{
		Brokers: d.brokerURLs(cfg), ClientID: cfg.SparkplugClientID(clientID), Username: m.Username, Password: m.Password,
		TLS: tc, KeepAlive: m.Keepalive.Std(), ConnectTimeout: m.ConnectTimeout.Std(), MaxReconnectInterval: m.MaxReconnectInterval.Std(),
		GroupID: cfg.Sparkplug.GroupID, EdgeNodeID: nodeID, DeviceID: deviceID, PrimaryHostID: cfg.Sparkplug.PrimaryHostID,
		StateDir: cfg.StateDir, Mask: m.Mask != config.PublishNever, JSONDelivers: m.UsesJSON(), Submitter: rebootGate{d: d, next: d.submitter()},
		Camera: d.cameraHealth, Logger: d.log, OnReboot: d.requestRestart, Carry: carry, Counts: d.inspectionCounts,
		Rate: func() (float64, bool) { return d.rate.over(sparkplug.DefaultRateWindow) },
		// The JSON connection's limits: the same broker takes both.
		MaxPayload: int(m.MaxPayload), PacketLimit: d.sink.packetLimit,
	})
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// inspectionCounts reads the process's inspection counters for the edge
// node's Stats/Anomalous Count and Stats/Error Count: those of /metrics
// (inspectd_inspections_total by verdict), which count every inspection
// since the start whatever the MQTT profile was, so that Sparkplug and
// Prometheus never disagree.
func (d *Daemon) inspectionCounts() sparkplug.Counts {
	a, e := d.metrics.InspectionCounts()
	return sparkplug.Counts{Anomalous: a, Errors: e}
}

// requestRestart ends the daemon for its service manager to start it again
// (Sparkplug Node Control/Reboot). It only starts the stop: the edge node
// calls it from its MQTT goroutine.
func (d *Daemon) requestRestart() {
	d.log.Warn("restart requested by the SCADA host (Node Control/Reboot): stopping; the service manager starts inspectd again")
	if d.restart != nil {
		d.restart()
	}
}

// rebootGate is the edge node's Submitter: Node Control/Reboot
// (sparkplug.CommandReboot) is decided here, everything else goes to next.
// A restart is remote control, so it follows the rule the dispatcher
// applies to the other Sparkplug writes, which come unsigned as every NCMD
// and DCMD does: taken only where remote control runs unsigned commands
// (remote.allow_unsigned and no remote.trust_keys), refused unauthorized
// otherwise (remote.Dispatcher.RefuseUnsigned), with the dispatcher's log
// line and reply. Without it any
// client that reached the broker could restart the box, over and over
// until systemd's start limit stopped it for good.
type rebootGate struct {
	d    *Daemon
	next remote.Submitter
}

// Submit implements remote.Submitter.
func (g rebootGate) Submit(req remote.Request, done func(remote.Reply)) {
	if req.Name != sparkplug.CommandReboot {
		g.next.Submit(req, done)
		return
	}
	// done is called from another goroutine, as the Submitter contract
	// says: the edge node may hold its lock while it submits.
	if err := g.d.disp.RefuseUnsigned(req.Name, req.Origin); err != nil {
		code := remote.CodeUnauthorized
		if e := (*remote.Error)(nil); errors.As(err, &e) {
			code = e.Code
		}
		g.d.log.Warn("remote command refused", "component", "remote", "command", req.Name, "id", req.ID, "origin", req.Origin, "error", err)
		go done(remote.Reply{ID: req.ID, Error: err.Error(), Data: map[string]any{"code": code}})
		return
	}
	go done(remote.Reply{ID: req.ID, OK: true, Data: map[string]any{"restarting": true}})
}
