package mqttpub

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func pub(id uint16, topic, payload string) *packets.PublishPacket {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName, p.Payload = 1, id, topic, []byte(payload)
	return p
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestOutboxOrderDepthAndReload(t *testing.T) {
	dir := t.TempDir()
	o, err := openOutbox(dir, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Ids deliberately out of numeric order: replay follows Put order.
	o.Put("o.9", pub(9, "a", "first"))
	o.Put("o.2", pub(2, "a", "second"))
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 3, []string{"t"}, []byte{1}
	o.Put("o.3", sub)
	in := pub(4, "in", "x")
	o.Put("i.4", in)
	o.Put("o.5", pub(5, "a", "third"))
	if got, want := o.All(), []string{"o.9", "o.2", "o.3", "i.4", "o.5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("All() = %v, want %v", got, want)
	}
	if d := o.depth(); d != 3 {
		t.Fatalf("depth = %d, want 3 outbound publishes", d)
	}
	o.Del("o.2")
	o.Del("o.2") // twice is harmless
	if d := o.depth(); d != 2 {
		t.Fatalf("depth after Del = %d", d)
	}
	if got := o.Get("o.9").(*packets.PublishPacket); string(got.Payload) != "first" || got.MessageID != 9 {
		t.Fatalf("Get(o.9) = %+v", got)
	}
	if o.Get("o.2") != nil {
		t.Fatal("deleted key still readable")
	}

	// A new process sees the same queue in the same order.
	o2, err := openOutbox(dir, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := o2.All(), []string{"o.9", "o.3", "i.4", "o.5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after reload All() = %v, want %v", got, want)
	}
	if d := o2.depth(); d != 2 {
		t.Fatalf("depth after reload = %d", d)
	}
	o2.Put("o.1", pub(1, "a", "fourth"))
	if got := o2.All(); got[len(got)-1] != "o.1" {
		t.Fatalf("new message not last after reload: %v", got)
	}
	o2.Reset()
	if len(o2.All()) != 0 || o2.depth() != 0 {
		t.Fatal("Reset left messages")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Fatalf("files left after Reset: %v", m)
	}
}

func TestOutboxReplaceKeepsNewest(t *testing.T) {
	dir := t.TempDir()
	o, _ := openOutbox(dir, discard(), nil)
	o.Put("o.7", pub(7, "a", "old"))
	o.Put("o.7", pub(7, "a", "new"))
	if d := o.depth(); d != 1 {
		t.Fatalf("depth = %d after replacing a key", d)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.msg")); len(m) != 1 {
		t.Fatalf("files after replace: %v", m)
	}
	// Simulate a crash between writing a replacement and removing the old
	// file: an older file for the same key reappears.
	old := filepath.Join(dir, "00000000000000000001-o.7.msg")
	data, _ := os.ReadFile(filepath.Join(dir, "00000000000000000002-o.7.msg"))
	if err := os.WriteFile(old, append([]byte(nil), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	o2, _ := openOutbox(dir, discard(), nil)
	if got := o2.Get("o.7").(*packets.PublishPacket); string(got.Payload) != "new" {
		t.Fatalf("reload picked %q", got.Payload)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("stale older copy not removed")
	}
}

func TestOutboxDropsSupersededAndJunk(t *testing.T) {
	dir := t.TempDir()
	o, _ := openOutbox(dir, discard(), nil)
	o.Put("o.1", pub(1, "inspectd/cam1/status", "offline"))
	o.Put("o.2", pub(2, "inspectd/cam1/alarm", "{}"))
	o.Put("o.3", pub(3, "inspectd/cam1/info", "{}"))
	must(t, os.WriteFile(filepath.Join(dir, "00000000000000000009-o.9.msg.tmp"), []byte("partial"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "00000000000000000010-o.10.msg"), []byte{0x30, 0x7f}, 0o600)) // truncated packet
	must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600))

	drop := func(p *packets.PublishPacket) bool { return !strings.HasSuffix(p.TopicName, "/alarm") }
	o2, err := openOutbox(dir, discard(), drop)
	if err != nil {
		t.Fatal(err)
	}
	if got := o2.All(); !reflect.DeepEqual(got, []string{"o.2"}) {
		t.Fatalf("All() = %v, want only the alarm", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000010-o.10.corrupt")); err != nil {
		t.Fatalf("corrupt file not set aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000009-o.9.msg.tmp")); !os.IsNotExist(err) {
		t.Fatal("temp file of an unfinished write not removed")
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal("unrelated file touched")
	}
}

// TestOutboxWriteFailureKeepsMessage: when the disk refuses the write the
// message stays deliverable from memory and the error is visible.
func TestOutboxWriteFailureKeepsMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "box")
	o, err := openOutbox(dir, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.RemoveAll(dir))
	must(t, os.WriteFile(dir, nil, 0o600)) // a file where the folder was: every write fails
	o.Put("o.1", pub(1, "a", "kept"))
	if got, ok := o.Get("o.1").(*packets.PublishPacket); !ok || string(got.Payload) != "kept" {
		t.Fatalf("Get after failed write = %v", o.Get("o.1"))
	}
	if o.depth() != 1 || !strings.Contains(o.lastError(), "write o.1") {
		t.Fatalf("depth %d, lastError %q", o.depth(), o.lastError())
	}
	o.Del("o.1")
	if o.depth() != 0 {
		t.Fatal("Del of an in-memory message")
	}
}

func TestOutboxMemoryOnly(t *testing.T) {
	o, err := openOutbox("", discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Put("o.1", pub(1, "a", "m"))
	if o.depth() != 1 || string(o.Get("o.1").(*packets.PublishPacket).Payload) != "m" || o.lastError() != "" {
		t.Fatal("memory outbox")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOutboxPutDel: the cost of making one QoS 1 message durable
// (write, fsync, rename, directory fsync) and forgetting it on PUBACK,
// as a ratio to the memory-only outbox measured in the same run.
func BenchmarkOutboxPutDel(b *testing.B) {
	p := pub(1, "inspectd/cam1/alarm", strings.Repeat("x", 300)) // about an alarm's size
	mem, _ := openOutbox("", discard(), nil)
	const base = 2000
	start := time.Now()
	for range base {
		mem.Put("o.1", p)
		mem.Del("o.1")
	}
	perMem := time.Since(start) / base
	disk, err := openOutbox(b.TempDir(), discard(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		disk.Put("o.1", p)
		disk.Del("o.1")
	}
	b.StopTimer()
	if perMem > 0 {
		b.ReportMetric(float64(b.Elapsed()/time.Duration(b.N))/float64(perMem), "x_memory")
	}
}
