package broker_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/broker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestEmbeddedBrokerDelivers: the publisher connects to the embedded
// broker and a subscriber receives its alarm and the retained status.
func TestEmbeddedBrokerDelivers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := broker.Start(ctx, broker.Options{Address: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") || strings.HasSuffix(b.URL(), ":0") {
		t.Fatalf("URL() = %q", b.URL())
	}

	var mu sync.Mutex
	got := map[string][]byte{}
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("scada").
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			got[m.Topic()] = append([]byte(nil), m.Payload()...)
			mu.Unlock()
		}))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("inspectd/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	p, err := mqttpub.New(mqttpub.Options{Brokers: []string{b.URL()}, DeviceID: "cam1", StoreDir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := p.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishAlarm(&mqttpub.Alarm{Header: mqttpub.Header{Seq: 3}, Regions: []mqttpub.Region{{X: 1, Y: 2, W: 3, H: 4, Area: 9}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		alarm, status := got["inspectd/cam1/alarm"], got["inspectd/cam1/status"]
		mu.Unlock()
		if alarm != nil && status != nil {
			var a mqttpub.Alarm
			if err := json.Unmarshal(alarm, &a); err != nil || a.Seq != 3 || len(a.Regions) != 1 || a.Regions[0].Area != 9 {
				t.Fatalf("alarm %s: %v", alarm, err)
			}
			if string(status) != "online" {
				t.Fatalf("status %q", status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber got %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if err := p.Close(cctx); err != nil {
		t.Fatal(err)
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = broker.Start(context.Background(), broker.Options{Address: l.Addr().String(), Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("Start on a taken port: %v", err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:1883", "192.168.1.5:1883", ":1883", "example.com:1883"} {
		_, err := broker.Start(context.Background(), broker.Options{Address: addr, Logger: quiet()})
		if err == nil || !strings.Contains(err.Error(), "only listens on loopback") {
			t.Errorf("Start(%q): %v", addr, err)
		}
	}
	if _, err := broker.Start(context.Background(), broker.Options{Address: "127.0.0.1", Logger: quiet()}); err == nil ||
		!strings.Contains(err.Error(), "expected host:port") {
		t.Errorf("address without port: %v", err)
	}
}

// TestContextStops: cancelling the context stops the broker and frees the port.
func TestContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b, err := broker.Start(ctx, broker.Options{Address: "localhost:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-b.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("broker did not stop on context cancel")
	}
	l, err := net.Listen("tcp", b.Addr())
	if err != nil {
		t.Fatalf("port not released after stop: %v", err)
	}
	l.Close()
	b.Close() // idempotent
}
