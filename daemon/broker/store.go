package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// storeFile is the broker database in Options.StoreDir.
const storeFile = "broker.db"

// lockTimeout bounds the wait for the database lock: another process
// holding it is another broker on the same state directory.
const lockTimeout = time.Second

// addStore attaches the on-disk store to srv. A database that another
// process holds is an error (two daemons on one state directory); one
// that is damaged is moved aside, with one error line, and the broker
// starts empty: losing its queue is better than not starting.
func addStore(srv *mochi.Server, dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("embedded MQTT broker store: %w", err)
	}
	path := filepath.Join(dir, storeFile)
	if err := checkStore(path); err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("embedded MQTT broker store %s is locked by another process (another inspectd with the same state_dir?)", path)
		}
		bad := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, bad); rerr != nil {
			return fmt.Errorf("embedded MQTT broker store %s is damaged (%v) and cannot be moved aside: %w", path, err, rerr)
		}
		log.Error("embedded MQTT broker store damaged: moved aside, starting with an empty one (sessions, queued and retained messages lost)",
			"file", path, "moved_to", bad, "error", err)
	}
	h := &durableStore{skipped: map[string]struct{}{}}
	if err := srv.AddHook(h, &bolt.Options{Path: path, Options: &bbolt.Options{Timeout: lockTimeout}}); err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("embedded MQTT broker store %s is locked by another process (another inspectd with the same state_dir?)", path)
		}
		return fmt.Errorf("embedded MQTT broker store %s: %w", path, err)
	}
	return nil
}

// checkStore opens an existing database read-only and walks it, so that
// damage is found before mochi reads it (bbolt may panic on a bad page).
func checkStore(path string) (err error) {
	if _, serr := os.Stat(path); serr != nil {
		return nil // a first start
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt: %v", r)
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		for cerr := range tx.Check() {
			return cerr
		}
		return nil
	})
}

// durableStore is mochi's bbolt storage hook, mended and without the
// writes that protect nothing. Mended: mochi v2.7.9's bolt hook does not
// store the packet id of a message in flight, so after a restart the
// broker resends queued messages with id 0 and drops the subscriber's
// connection ("protocol violation: missing packet id") every time it comes
// back; the id is recovered from the record's key. Left out: the
// once-a-second $SYS statistics, the broker's bookkeeping of an incoming
// QoS 1 message (stored and deleted again within the same call, before the
// PUBACK), and the in-flight messages of clean sessions, which end with
// their connection anyway. Each of those would cost an fsync.
type durableStore struct {
	bolt.Hook
	mu      sync.Mutex
	skipped map[string]struct{} // client id + packet id of skipped QoS 1 bookkeeping
}

// Provides leaves out the $SYS statistics.
func (h *durableStore) Provides(b byte) bool {
	if b == mochi.OnSysInfoTick || b == mochi.StoredSysInfo {
		return false
	}
	return h.Hook.Provides(b)
}

func skipKey(cl *mochi.Client, pk packets.Packet) string { return cl.ID + ":" + pk.FormatID() }

// endsWithConnection reports whether cl's session ends when it
// disconnects (MQTT 3.1.1 clean session, MQTT 5 session expiry 0), the
// rule mochi applies when it reloads sessions.
func endsWithConnection(cl *mochi.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// OnQosPublish stores a message in flight, unless it is an incoming QoS 1
// message (a PUBACK about to be sent) or belongs to a clean session.
func (h *durableStore) OnQosPublish(cl *mochi.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback || endsWithConnection(cl) {
		h.mu.Lock()
		h.skipped[skipKey(cl, pk)] = struct{}{}
		h.mu.Unlock()
		return
	}
	h.Hook.OnQosPublish(cl, pk, sent, resends)
}

// OnQosComplete forgets a message in flight that was stored.
func (h *durableStore) OnQosComplete(cl *mochi.Client, pk packets.Packet) {
	k := skipKey(cl, pk)
	h.mu.Lock()
	_, skipped := h.skipped[k]
	delete(h.skipped, k)
	h.mu.Unlock()
	if !skipped {
		h.Hook.OnQosComplete(cl, pk)
	}
}

// OnQosDropped forgets a dropped message in flight that was stored.
func (h *durableStore) OnQosDropped(cl *mochi.Client, pk packets.Packet) {
	h.OnQosComplete(cl, pk)
}

// OnDisconnect forgets the skipped bookkeeping of a client whose session ends.
func (h *durableStore) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	if expire {
		h.mu.Lock()
		prefix := cl.ID + ":"
		for k := range h.skipped {
			if len(k) > len(prefix) && k[:len(prefix)] == prefix {
				delete(h.skipped, k)
			}
		}
		h.mu.Unlock()
	}
	h.Hook.OnDisconnect(cl, err, expire)
}

// StoredInflightMessages returns the stored messages in flight, each with
// its packet id: the key of a record is "<prefix>_<client id>:<packet id>".
// Records whose id cannot be recovered are left out: resending them would
// drop the subscriber's connection.
func (h *durableStore) StoredInflightMessages() ([]storage.Message, error) {
	v, err := h.Hook.StoredInflightMessages()
	out := v[:0]
	for _, m := range v {
		if m.PacketID == 0 {
			if i := strings.LastIndexByte(m.ID, ':'); i >= 0 {
				if id, perr := strconv.ParseUint(m.ID[i+1:], 10, 16); perr == nil {
					m.PacketID = uint16(id)
				}
			}
		}
		if m.PacketID == 0 {
			h.Log.Warn("embedded MQTT broker store: queued message without packet id left out", "key", m.ID)
			continue
		}
		out = append(out, m)
	}
	return out, err
}
