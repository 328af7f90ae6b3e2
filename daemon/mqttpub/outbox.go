package mqttpub

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// outbox is the paho Store behind the publisher. paho's own FileStore
// covers the protocol side (it resumes stored messages on reconnect and,
// with ConnectRetry, reserves their packet ids at start so new messages
// cannot overwrite them), but it does not fsync, orders messages by file
// mtime, and panics on any I/O error (a full disk would crash the daemon).
// The outbox keeps paho's contract with these changes:
//
//   - one file per message, written to a temp file, fsynced, renamed, and
//     the directory fsynced, before Put returns, so an acknowledged-to-the-
//     caller alarm survives SIGKILL and power loss;
//   - files are named <sequence>-<key>.msg and replayed in sequence order;
//   - I/O errors are logged (one line each) and the message is kept in
//     memory instead, so it is still delivered while the process lives;
//   - it counts outbound PUBLISH packets (the queue depth for health and
//     metrics).
//
// With dir == "" it is a memory-only store with the same bookkeeping.
type outbox struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	seq     uint64
	entries map[string]*outboxEntry
	queued  int // outbound PUBLISH entries
	lastErr string
}

type outboxEntry struct {
	seq     uint64
	file    string // base name on disk; "" when held in memory
	mem     []byte // encoded packet when not on disk
	publish bool   // an outbound PUBLISH (counts towards queued)
}

const (
	outboxExt     = ".msg"
	outboxTmpExt  = ".tmp" // temporary files of outboxes written before atomicfile
	outboxBadExt  = ".corrupt"
	outboundKeyPf = "o."
)

// openOutbox loads the messages a previous run left in dir. Messages for
// which drop returns true (superseded retained state such as status and
// info, re-published on connect anyway) are deleted instead of replayed.
func openOutbox(dir string, log *slog.Logger, drop func(*packets.PublishPacket) bool) (*outbox, error) {
	o := &outbox{dir: dir, log: log, entries: map[string]*outboxEntry{}}
	if dir == "" {
		return o, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mqtt outbox %s: %w", dir, err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mqtt outbox %s: %w", dir, err)
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case atomicfile.IsTemp(name) || strings.HasSuffix(name, outboxTmpExt):
			// A write that never reached its rename: the caller was never
			// told it succeeded, so dropping it loses nothing promised.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		case !strings.HasSuffix(name, outboxExt):
			continue
		}
		seq, key, ok := parseOutboxName(name)
		if !ok {
			log.Warn("mqtt outbox: ignoring file with unexpected name", "dir", dir, "file", name)
			continue
		}
		pkt, err := readPacketFile(filepath.Join(dir, name))
		if err != nil {
			o.quarantine(name, err)
			continue
		}
		if pub, isPub := pkt.(*packets.PublishPacket); isPub && strings.HasPrefix(key, outboundKeyPf) && drop != nil && drop(pub) {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if old, dup := o.entries[key]; dup {
			// A crash between writing a replacement and removing the old
			// file leaves both; the newer one is the live packet.
			if old.seq > seq {
				_ = os.Remove(filepath.Join(dir, name))
				continue
			}
			_ = os.Remove(filepath.Join(dir, old.file))
			o.forget(key)
		}
		o.insert(key, &outboxEntry{seq: seq, file: name}, pkt)
		if seq > o.seq {
			o.seq = seq
		}
	}
	return o, nil
}

func parseOutboxName(name string) (uint64, string, bool) {
	base := strings.TrimSuffix(name, outboxExt)
	s, key, ok := strings.Cut(base, "-")
	if !ok || (!strings.HasPrefix(key, "o.") && !strings.HasPrefix(key, "i.")) {
		return 0, "", false
	}
	if _, err := strconv.ParseUint(key[2:], 10, 16); err != nil {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return seq, key, true
}

func readPacketFile(path string) (packets.ControlPacket, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return packets.ReadPacket(bytes.NewReader(data))
}

// quarantine renames an unreadable file so it is neither replayed nor lost.
func (o *outbox) quarantine(name string, err error) {
	bad := filepath.Join(o.dir, strings.TrimSuffix(name, outboxExt)+outboxBadExt)
	_ = os.Rename(filepath.Join(o.dir, name), bad)
	o.log.Error("mqtt outbox: unreadable message set aside", "file", bad, "error", err)
}

// insert records e under key; callers hold mu (or own o exclusively).
func (o *outbox) insert(key string, e *outboxEntry, pkt packets.ControlPacket) {
	if _, ok := pkt.(*packets.PublishPacket); ok && strings.HasPrefix(key, outboundKeyPf) {
		e.publish = true
		o.queued++
	}
	o.entries[key] = e
}

// forget removes key from the index; callers hold mu.
func (o *outbox) forget(key string) *outboxEntry {
	e := o.entries[key]
	if e == nil {
		return nil
	}
	if e.publish {
		o.queued--
	}
	delete(o.entries, key)
	return e
}

// Open is part of paho's Store interface; the outbox is usable from
// construction on, and stays usable after Close because paho may still
// persist an acknowledgement while it tears a connection down.
func (o *outbox) Open() {}

// Close is part of paho's Store interface; see Open.
func (o *outbox) Close() {}

// Put stores a packet durably before returning.
func (o *outbox) Put(key string, m packets.ControlPacket) {
	var buf bytes.Buffer
	if err := m.Write(&buf); err != nil {
		o.fail("encode", key, err)
		return
	}
	o.mu.Lock()
	o.seq++
	seq := o.seq
	o.mu.Unlock()

	e := &outboxEntry{seq: seq}
	if o.dir != "" {
		name := fmt.Sprintf("%020d-%s%s", seq, key, outboxExt)
		if err := o.writeDurable(name, buf.Bytes()); err != nil {
			o.fail("write", key, err)
			e.mem = buf.Bytes()
		} else {
			e.file = name
		}
	} else {
		e.mem = buf.Bytes()
	}

	o.mu.Lock()
	old := o.forget(key)
	o.insert(key, e, m)
	o.mu.Unlock()
	if old != nil && old.file != "" {
		_ = os.Remove(filepath.Join(o.dir, old.file))
	}
}

// writeDurable writes data under name so that after it returns the file
// exists with that content even across a power cut.
func (o *outbox) writeDurable(name string, data []byte) error {
	return atomicfile.WriteBytes(filepath.Join(o.dir, name), 0o600, data)
}

func (o *outbox) fail(op, key string, err error) {
	msg := fmt.Sprintf("%s %s: %v", op, key, err)
	o.mu.Lock()
	o.lastErr = msg
	o.mu.Unlock()
	o.log.Error("mqtt outbox: message kept in memory only", "dir", o.dir, "op", op, "key", key, "error", err)
}

// Get returns the stored packet or nil.
func (o *outbox) Get(key string) packets.ControlPacket {
	o.mu.Lock()
	e := o.entries[key]
	var mem []byte
	var file string
	if e != nil {
		mem, file = e.mem, e.file
	}
	o.mu.Unlock()
	switch {
	case e == nil:
		return nil
	case file == "":
		pkt, err := packets.ReadPacket(bytes.NewReader(mem))
		if err != nil {
			o.log.Error("mqtt outbox: cannot decode message held in memory", "key", key, "error", err)
			return nil
		}
		return pkt
	}
	pkt, err := readPacketFile(filepath.Join(o.dir, file))
	if err != nil {
		o.mu.Lock()
		if o.entries[key] == e {
			o.forget(key)
		}
		o.mu.Unlock()
		o.quarantine(file, err)
		return nil
	}
	return pkt
}

// All returns the keys in the order the packets were stored.
func (o *outbox) All() []string {
	o.mu.Lock()
	type ks struct {
		seq uint64
		key string
	}
	list := make([]ks, 0, len(o.entries))
	for k, e := range o.entries {
		list = append(list, ks{e.seq, k})
	}
	o.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	keys := make([]string, len(list))
	for i, k := range list {
		keys[i] = k.key
	}
	return keys
}

// Del forgets a packet once acknowledged. The removal is not fsynced: if
// a power cut undoes it the message is sent again, which QoS 1 allows.
func (o *outbox) Del(key string) {
	o.mu.Lock()
	e := o.forget(key)
	o.mu.Unlock()
	if e != nil && e.file != "" {
		if err := os.Remove(filepath.Join(o.dir, e.file)); err != nil && !os.IsNotExist(err) {
			o.log.Warn("mqtt outbox: cannot remove acknowledged message", "file", e.file, "error", err)
		}
	}
}

// Reset drops everything (paho calls it for clean sessions only).
func (o *outbox) Reset() {
	for _, k := range o.All() {
		o.Del(k)
	}
}

// depth returns the number of outbound PUBLISH packets not yet acknowledged.
func (o *outbox) depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queued
}

// lastError returns the last I/O error, or "".
func (o *outbox) lastError() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastErr
}
