package daemon

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// TestSparkplugAndJSONFromOnePipeline: with mqtt.profile both, the one
// pipeline's inspections reach a Sparkplug host (NBIRTH, DBIRTH, then
// DDATA with the score) and the JSON result topic alike; a configuration
// push back to json alone ends the edge node with its NDEATH.
func TestSparkplugAndJSONFromOnePipeline(t *testing.T) {
	r := startDaemon(t, func(r *runningDaemon) string {
		return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: both, ", 1)
	})
	r.daemon()
	var mu sync.Mutex
	kinds := map[string]int{}
	scores, results := 0, 0
	spTriggerAnswer := ""
	host := testbroker.Connect(t, mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:"+strconv.Itoa(r.port)).SetClientID("scada-host"),
		testbroker.Sub{Topic: "spBv1.0/#", Handler: func(_ mqtt.Client, m mqtt.Message) {
			parts := strings.Split(m.Topic(), "/")
			var p sppb.Payload
			if err := sppb.Unmarshal(m.Payload(), &p); err != nil {
				t.Errorf("%s: %v", m.Topic(), err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			kinds[parts[2]]++
			if parts[2] == "DDATA" || parts[2] == "DBIRTH" {
				for _, mt := range p.Metrics {
					if mt.Name == "Inspection/Score" || (parts[2] == "DDATA" && mt.Alias != 0) {
						scores++
						break
					}
				}
			}
		}},
		testbroker.Sub{Topic: "inspectd/cell1/result", Handler: func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			results++
			if strings.Contains(string(m.Payload()), `"trigger_id":"sp-1"`) {
				spTriggerAnswer = string(m.Payload())
			}
			mu.Unlock()
		}})
	// Ask for births: the host subscribed after them.
	rebirth := &sppb.Payload{Timestamp: uint64(time.Now().UnixMilli()),
		Metrics: []sppb.Metric{{Name: "Node Control/Rebirth", DataType: sppb.TypeBoolean, Value: sppb.Value{Kind: sppb.KindBoolean, Bool: true}}}}
	b, err := rebirth.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The request is repeated until a birth arrives: one sent before the
	// edge node subscribed to NCMD is lost, as it would be on a real broker.
	lastAsk := time.Time{}
	if !testbroker.WaitFor(r.ctx, 90*time.Second, func() bool {
		mu.Lock()
		born := kinds["NBIRTH"] > 0
		done := born && kinds["DBIRTH"] > 0 && kinds["DDATA"] >= 3 && scores >= 3 && results >= 3
		mu.Unlock()
		if !born && time.Since(lastAsk) > 3*time.Second {
			lastAsk = time.Now()
			host.Publish("spBv1.0/inspectd/NCMD/cell1", 0, false, b).Wait()
		}
		return done
	}) {
		mu.Lock()
		t.Fatalf("timed out waiting for births, data and JSON results (seen %v, scores %d, results %d); log:\n%s",
			kinds, scores, results, r.logs.String())
	}
	// A DCMD trigger takes the trigger path: in free-run it is answered on
	// result with an error saying so, under its id.
	trig := &sppb.Payload{Timestamp: uint64(time.Now().UnixMilli()),
		Metrics: []sppb.Metric{{Name: "Command/Trigger", DataType: sppb.TypeString, Value: sppb.Value{Kind: sppb.KindString, Str: "sp-1"}}}}
	tb, err := trig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	host.Publish("spBv1.0/inspectd/DCMD/cell1/cell1", 0, false, tb).Wait()
	r.waitFor("the answer to the DCMD trigger", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return spTriggerAnswer != ""
	})
	if !strings.Contains(spTriggerAnswer, "free-run") {
		t.Errorf("DCMD trigger answered %s", spTriggerAnswer)
	}

	r.write(r.baseYAML("cell1"))
	r.hup()
	r.waitFor("the NDEATH after switching to json", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return kinds["NDEATH"] > 0
	})
}

// TestSparkplugReboot: NCMD Node Control/Reboot ends the daemon with
// ErrRestartRequested, for its service manager to start it again.
func TestSparkplugReboot(t *testing.T) {
	r := startDaemon(t, func(r *runningDaemon) string {
		return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: sparkplug, ", 1)
	})
	r.daemon()
	host := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:" + strconv.Itoa(r.port)).SetClientID("scada-host"))
	if tok := host.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	defer host.Disconnect(0)
	reboot := &sppb.Payload{Timestamp: uint64(time.Now().UnixMilli()),
		Metrics: []sppb.Metric{{Name: "Node Control/Reboot", DataType: sppb.TypeBoolean, Value: sppb.Value{Kind: sppb.KindBoolean, Bool: true}}}}
	b, err := reboot.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("the node to subscribe", func() bool {
		return strings.Contains(r.logs.String(), "NBIRTH") || strings.Contains(r.logs.String(), "sparkplug")
	})
	deadline := time.After(60 * time.Second)
	for {
		host.Publish("spBv1.0/inspectd/NCMD/cell1", 0, false, b).Wait()
		select {
		case err := <-r.done:
			r.done <- nil
			if !errors.Is(err, ErrRestartRequested) {
				t.Fatalf("Run ended with %v, want ErrRestartRequested", err)
			}
			return
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			t.Fatal("the daemon did not stop on Node Control/Reboot")
		}
	}
}
