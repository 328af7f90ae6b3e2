// Package broker runs the embedded MQTT broker (github.com/mochi-mqtt/server/v2)
// that inspectd starts when no broker is configured, so that it works on a
// bare machine. It accepts anonymous clients, and therefore listens on
// loopback addresses only and refuses connections from anywhere else.
//
// With Options.StoreDir it keeps its state on disk (store.go): persistent
// sessions and their subscriptions, QoS 1/2 messages queued for
// subscribers that are away, and retained messages, so that a SCADA
// client with a persistent session gets the alarms published while it was
// away even across a restart of the daemon or a power cut.
package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultAddress is where the embedded broker listens unless told otherwise.
const DefaultAddress = "127.0.0.1:1883"

// Options configures the embedded broker.
type Options struct {
	// Address is host:port; the host must be a loopback address or
	// "localhost" (default DefaultAddress). Port 0 picks a free port.
	Address string
	// StoreDir, when set, is the folder of the broker's database
	// (StoreDir/broker.db, bbolt, fsynced on every change): persistent
	// sessions, subscriptions, messages queued for absent subscribers and
	// retained messages survive restarts. Empty keeps them in memory.
	StoreDir string
	// Logger receives the broker's log; default slog.Default().
	Logger *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	server *mochi.Server
	addr   string
	log    *slog.Logger
	once   sync.Once
	done   chan struct{}
}

// Start listens on opts.Address and serves until ctx is cancelled or
// Close is called. It fails with a clear message if the address is not
// loopback or the port is taken.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := checkLoopback(opts.Address); err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "broker")
	caps := mochi.NewDefaultServerCapabilities()
	// No expiry: mochi's default (24 h) would delete the retained status
	// and info of a daemon that runs for more than a day, and the alarms
	// queued for a subscriber away for a weekend. What bounds the queue
	// of an absent subscriber is MaximumInflight (8192 messages each).
	caps.MaximumMessageExpiryInterval = 0
	srv := mochi.New(&mochi.Options{Logger: slog.New(listenerLog{log.Handler()}), Capabilities: caps, InlineClient: false})
	if err := srv.AddHook(new(loopbackOnly), nil); err != nil {
		return nil, fmt.Errorf("embedded MQTT broker: add auth hook: %w", err)
	}
	if opts.StoreDir != "" {
		if err := addStore(srv, opts.StoreDir, log); err != nil {
			return nil, err
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "inspectd", Address: opts.Address})
	if err := srv.AddListener(tcp); err != nil {
		_ = srv.Close() // closes the store
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("embedded MQTT broker: listen on %s: address already in use (another MQTT broker, such as mosquitto, may be running there: configure inspectd to use it, or give the embedded broker another address)", opts.Address)
		}
		return nil, fmt.Errorf("embedded MQTT broker: listen on %s: %w", opts.Address, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded MQTT broker: serve on %s: %w", opts.Address, err)
	}
	b := &Broker{server: srv, addr: tcp.Address(), log: log, done: make(chan struct{})}
	log.Info("embedded MQTT broker listening", "address", b.addr, "store", opts.StoreDir)
	go func() {
		select {
		case <-ctx.Done():
			b.Close()
		case <-b.done:
		}
	}()
	return b, nil
}

// Addr returns the address the broker listens on (with the real port
// when Options.Address asked for port 0).
func (b *Broker) Addr() string { return b.addr }

// URL returns the broker address as a client URL, tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close disconnects all clients, stops listening and closes the store; it
// is safe to call more than once. Close the MQTT clients of this process
// first, so that they can say goodbye.
func (b *Broker) Close() {
	b.once.Do(func() {
		closed := make(chan struct{})
		go func() {
			_ = b.server.Close()
			close(closed)
		}()
		select {
		case <-closed:
			b.log.Info("embedded MQTT broker stopped", "address", b.addr)
		case <-time.After(closeWait):
			// mochi-mqtt v2.7.9's Clients.GetByListener read-locks its
			// client map twice (through Len); a client connecting or
			// leaving in between queues a writer and both wait for ever.
			// Its goroutine is left behind rather than the daemon's stop.
			b.log.Error("embedded MQTT broker did not stop within its wait (a lock-order fault of mochi-mqtt v2.7.9 when a client connects or leaves as it closes); going on without it",
				"address", b.addr, "wait", closeWait)
		}
		close(b.done)
	})
}

// closeWait bounds Close: a stop must not hang on the broker library.
const closeWait = 5 * time.Second

// Done is closed once the broker has stopped.
func (b *Broker) Done() <-chan struct{} { return b.done }

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("embedded MQTT broker address %q: expected host:port such as %s: %w", addr, DefaultAddress, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("embedded MQTT broker address %q: the embedded broker allows anonymous access, so it only listens on loopback (127.0.0.1, ::1 or localhost); use an external broker with authentication for network access", addr)
}

// loopbackOnly allows every client that connects from a loopback address,
// with full read/write access, and refuses all others; the listener is
// loopback-only anyway, this holds even if that ever changes. (mochi's
// own auth.AllowHook would pull in a YAML module for its ledger.)
type loopbackOnly struct {
	mochi.HookBase
}

// ID names the hook in mochi's logs.
func (h *loopbackOnly) ID() string { return "inspectd-loopback-only" }

// Provides tells mochi which hook methods this hook implements.
func (h *loopbackOnly) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate accepts loopback clients only.
func (h *loopbackOnly) OnConnectAuthenticate(cl *mochi.Client, _ packets.Packet) bool {
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// OnACLCheck allows every topic to authenticated (loopback) clients.
func (h *loopbackOnly) OnACLCheck(_ *mochi.Client, _ string, _ bool) bool { return true }
