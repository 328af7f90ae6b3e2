package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/config/atomicfile"
)

// clientIDFile holds the random suffix of the default MQTT client id.
const clientIDFile = "mqtt-client-id"

// resolveClientID is mqtt.client_id when set; inspectd-<device_id> when
// device_id is set explicitly (the operator named this box); otherwise
// inspectd-<host name>-<suffix>, the suffix random and kept in the state
// folder. Two boxes cloned from one image (same host name) then still get
// different client ids — a broker disconnects the older of two clients
// with one id, and both reconnect forever — while one box keeps its id,
// and with it its persistent session, across restarts.
func resolveClientID(cfg *config.Config, deviceID string) (string, error) {
	if cfg.MQTT.ClientID != "" {
		return cfg.MQTT.ClientID, nil
	}
	if cfg.DeviceID != "" {
		return "inspectd-" + cfg.DeviceID, nil
	}
	path := filepath.Join(cfg.StateDir, clientIDFile)
	data, err := os.ReadFile(path)
	suffix := strings.TrimSpace(string(data))
	if err != nil || !validSuffix(suffix) {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("mqtt client id: read %s: %w", path, err)
		}
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("mqtt client id: %w", err)
		}
		suffix = hex.EncodeToString(b[:])
		if err := atomicfile.WriteBytes(path, 0o640, []byte(suffix+"\n")); err != nil {
			return "", fmt.Errorf("mqtt client id: keep the suffix in %s: %w (set mqtt.client_id or device_id)", path, err)
		}
	}
	return "inspectd-" + deviceID + "-" + suffix, nil
}

// PreviewClientID is the MQTT client id the daemon will connect as, read
// without choosing or writing anything (for `config check`): the suffix in
// the state folder when a start chose one, else a placeholder saying where
// it will be kept.
func PreviewClientID(cfg *config.Config) string {
	if cfg.MQTT.ClientID != "" {
		return cfg.MQTT.ClientID
	}
	dev, err := cfg.ResolvedDeviceID()
	if err != nil {
		dev = "<host name>"
	}
	if cfg.DeviceID != "" {
		return "inspectd-" + dev
	}
	path := filepath.Join(cfg.StateDir, clientIDFile)
	if data, err := os.ReadFile(path); err == nil && validSuffix(strings.TrimSpace(string(data))) {
		return "inspectd-" + dev + "-" + strings.TrimSpace(string(data))
	}
	return "inspectd-" + dev + "-<random suffix, chosen at the first start and kept in " + path + ">"
}

func validSuffix(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// newBootID is a random id for this start of the process (8 hex digits).
func newBootID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
	return hex.EncodeToString(b[:])
}
