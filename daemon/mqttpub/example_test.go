package mqttpub_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// Example shows the order of calls the daemon makes: New, subscriptions,
// Start, publishing, Close.
func Example() {
	p, err := mqttpub.New(mqttpub.Options{
		Brokers:  []string{"tcp://127.0.0.1:1883"},
		DeviceID: "line3-cam1",
		StoreDir: "/var/lib/inspectd/mqtt",
		Logger:   slog.Default(),
	})
	if err != nil {
		slog.Error("mqtt", "error", err)
		return
	}
	triggers := make(chan mqttpub.Trigger, 16)
	_ = p.OnTrigger(func(m mqttpub.Message) {
		t, err := mqttpub.ParseTrigger(m.Topic, m.Payload)
		if err != nil {
			slog.Warn("bad trigger", "error", err)
			return
		}
		select {
		case triggers <- t:
		default: // pipeline busy: the PLC will time out and retry
		}
	})
	_ = p.SetInfo(&mqttpub.Info{Version: "0.1.0", DeviceID: "line3-cam1", ModelID: "m1", Backbone: "mobilenet_v1", D: 100})
	_ = p.Start()

	_ = p.PublishResult(&mqttpub.Result{Header: mqttpub.Header{Seq: 1, FrameTime: time.Now(), Score: 3.2, Threshold: 12, NormalizedScore: 0.27}}, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.Close(ctx)
}
