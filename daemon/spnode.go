package daemon

import (
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug"
)

// tlsOptions maps mqtt.tls onto the publisher's TLS options.
func tlsOptions(m *config.MQTT) mqttpub.TLSOptions {
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
	var tlsOpts = tlsOptions(m)
	tc, err := tlsOpts.Config()
	if err != nil {
		return nil, err
	}
	n, err := sparkplug.New(sparkplug.Options{
		Brokers: d.brokerURLs(cfg), ClientID: cfg.SparkplugClientID(clientID), Username: m.Username, Password: m.Password,
		TLS: tc, KeepAlive: m.Keepalive.Std(), ConnectTimeout: m.ConnectTimeout.Std(), MaxReconnectInterval: m.MaxReconnectInterval.Std(),
		GroupID: cfg.Sparkplug.GroupID, EdgeNodeID: nodeID, DeviceID: deviceID, PrimaryHostID: cfg.Sparkplug.PrimaryHostID,
		StateDir: cfg.StateDir, Mask: m.Mask != config.PublishNever, Submitter: d.submitter(),
		Camera: d.cameraHealth, Logger: d.log, OnReboot: d.requestRestart, Carry: carry,
	})
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	return n, nil
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
