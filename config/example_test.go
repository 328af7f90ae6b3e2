package config

import (
	"os"
	"reflect"
	"testing"
)

// TestExampleConfig keeps systemd/inspectd.example.yaml, which `make
// install` puts in /etc/inspectd, valid and meaningful.
func TestExampleConfig(t *testing.T) {
	const path = "../systemd/inspectd.example.yaml"
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Capture.Source != SourceCamera {
		t.Errorf("capture.source = %q; the example is a camera setup", c.Capture.Source)
	}
	if len(c.MQTT.Brokers) == 0 {
		t.Error("mqtt.brokers is empty; the example uses an external broker")
	}
	if c.DeviceID == "" {
		t.Error("device_id is empty")
	}
	if reflect.DeepEqual(c, Default()) {
		t.Error("the example is the default configuration")
	}
	// Everything the example sets is there to be read: the file must not
	// restate a whole section of defaults.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > len(DefaultYAML())/2 {
		t.Errorf("example is %d bytes, more than half of DefaultYAML; write only what differs", len(data))
	}
}
