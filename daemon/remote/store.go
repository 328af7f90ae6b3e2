package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon/internal/dirs"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
)

// StateFile is the request table's file name in the state directory.
const StateFile = "remote-requests.json"

// Bounds of the request table, so that its file stays small enough to be
// rewritten on every command.
const (
	maxEntries    = 4096
	maxNonces     = 10_000
	maxStoredBody = 64 << 10
	maxStateFile  = 32 << 20
)

// store is the persisted request table: the requests executed within the
// dedup window (with their replies, or as running), the nonces of signed
// envelopes seen within twice the skew, and the version of the pushed
// configuration in force. It is rewritten atomically (config/atomicfile) on
// every change, so that after a restart, a crash or a power cut a request
// is never executed twice and a nonce never accepted twice.
type store struct {
	path string

	mu      sync.Mutex
	entries map[string]*entry // by entryKey(name, id)
	nonces  map[string]time.Time
	version configVersion
	pending *pendingConfirm
	// unpublished is the config-revert event of a push reverted by a
	// start that failed (RevertUnstartable), for the next start to
	// publish: the failed start had no connection to publish it on.
	unpublished json.RawMessage
}

// entry is one executed request.
type entry struct {
	Name   string    `json:"name"`
	ID     string    `json:"id"`
	Origin string    `json:"origin"`
	At     time.Time `json:"at"`
	// Done is false while the command runs; a table loaded with an entry
	// still running belongs to a process that died during the command.
	Done bool `json:"done"`
	// Reply is the reply as published (Reply.MarshalJSON).
	Reply json.RawMessage `json:"reply,omitempty"`
	// Unsent is true from when the reply is stored until it has been
	// handed to the front end (an MQTT QoS 1 reply is in its outbox on
	// disk then): a table loaded with an unsent reply belongs to a process
	// that died in between, and the reply is sent again.
	Unsent bool `json:"unsent,omitempty"`
}

// configVersion is the `version` of the pushed configuration in force and
// of the one before it (0: none given).
type configVersion struct {
	Current  int64 `json:"current"`
	Previous int64 `json:"previous"`
}

type stateFile struct {
	Format   int               `json:"format"`
	Requests []*entry          `json:"requests"`
	Nonces   map[string]string `json:"nonces"` // key → expiry, RFC 3339
	Config   configVersion     `json:"config_version"`
	// Pending is a configuration push waiting for config-confirm, so that
	// a restart before its deadline still reverts it.
	Pending *pendingConfirm `json:"config_pending,omitempty"`
	// Unpublished is the config-revert event of a push reverted at a
	// failed start, published by the next start.
	Unpublished json.RawMessage `json:"config_revert_unpublished,omitempty"`
}

// CorruptTableError reports a request table that could not be read; New
// logs it and starts with an empty table (answered ids and seen nonces are
// forgotten).
type CorruptTableError struct {
	Path, Aside string
	Err         error
}

func (e *CorruptTableError) Error() string {
	return fmt.Sprintf("remote request table %s is unreadable (%v); moved to %s, starting with an empty table", e.Path, e.Err, e.Aside)
}

func entryKey(name, id string) string { return name + "\x00" + id }

// openStore loads the table at dir/StateFile; a missing file is an empty
// table. Entries left running by a dead process are returned as
// interrupted (and stored with an interrupted reply).
func openStore(dir string, now time.Time) (*store, []*entry, error) {
	s := &store{entries: map[string]*entry{}, nonces: map[string]time.Time{}}
	if dir == "" {
		return s, nil, nil // in memory only (tests, or no state dir)
	}
	s.path = filepath.Join(dir, StateFile)
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("remote request table: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, nil, fmt.Errorf("remote request table %s: %w", s.path, err)
	}
	if len(data) > maxStateFile {
		return nil, nil, fmt.Errorf("remote request table %s: larger than %d bytes", s.path, maxStateFile)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		// Written atomically, so only a failing disk gets here. Remote
		// control goes on with an empty table; the file is kept aside.
		aside := fmt.Sprintf("%s.corrupt-%d", s.path, now.Unix())
		if rerr := os.Rename(s.path, aside); rerr != nil {
			return nil, nil, fmt.Errorf("remote request table %s is unreadable (%v) and cannot be moved aside: %w", s.path, err, rerr)
		}
		return s, nil, &CorruptTableError{Path: s.path, Aside: aside, Err: err}
	}
	var interrupted []*entry
	for _, e := range sf.Requests {
		if e == nil || e.Name == "" || e.ID == "" {
			continue
		}
		if !e.Done {
			r := Reply{ID: e.ID, Error: "interrupted: inspectd stopped while this command ran (restart, crash or power cut); " +
				"the configuration and model in force are complete, either the old or the new: ask status or config-get, and send the command again with a new id if needed",
				Data: map[string]any{"code": CodeInterrupted}}
			e.Reply, _ = r.MarshalJSON()
			e.Done, e.Unsent = true, true
		}
		if e.Unsent {
			interrupted = append(interrupted, e)
		}
		s.entries[entryKey(e.Name, e.ID)] = e
	}
	for k, v := range sf.Nonces {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil && t.After(now) {
			s.nonces[k] = t
		}
	}
	s.version = sf.Config
	s.pending = sf.Pending
	s.unpublished = sf.Unpublished
	if len(interrupted) > 0 {
		if err := s.saveLocked(now, 0); err != nil {
			return nil, nil, err
		}
	}
	return s, interrupted, nil
}

// lookup returns the entry of a request executed within window, or nil.
func (s *store) lookup(name, id string, now time.Time, window time.Duration) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[entryKey(name, id)]
	if e == nil || (e.Done && now.Sub(e.At) > window) {
		return nil
	}
	c := *e
	return &c
}

// nonceSeen reports whether a nonce of key is remembered.
func (s *store) nonceSeen(key, nonce string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.nonces[key+"\x00"+nonce]
	return ok && t.After(now)
}

// record stores, in one atomic write, a nonce to remember until expires
// (when nonce is not ""), and a request starting to run (when e is not
// nil). window is the dedup window, for pruning. On error nothing is
// recorded in memory either, and the caller must not execute.
func (s *store) record(key, nonce string, expires time.Time, e *entry, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	nk := key + "\x00" + nonce
	if nonce != "" {
		if len(s.nonces) >= maxNonces {
			s.pruneLocked(now, window)
		}
		if len(s.nonces) >= maxNonces {
			return fmt.Errorf("more than %d signed commands within twice remote.max_skew; wait a little", maxNonces)
		}
		s.nonces[nk] = expires
	}
	var prev *entry
	var ek string
	if e != nil {
		ek = entryKey(e.Name, e.ID)
		prev = s.entries[ek]
		s.entries[ek] = e
	}
	if err := s.saveLocked(now, window); err != nil {
		if nonce != "" {
			delete(s.nonces, nk)
		}
		if e != nil {
			if prev != nil {
				s.entries[ek] = prev
			} else {
				delete(s.entries, ek)
			}
		}
		return err
	}
	return nil
}

// finish stores a request's reply. A failed write is returned (the reply
// is kept in memory regardless, so that this process still deduplicates).
func (s *store) finish(name, id string, reply Reply, now time.Time, window time.Duration) error {
	data, err := reply.MarshalJSON()
	if err != nil {
		return err
	}
	if len(data) > maxStoredBody {
		short := Reply{ID: reply.ID, OK: reply.OK, Error: reply.Error,
			Data: map[string]any{"note": fmt.Sprintf("the original reply (%d bytes) was too large to keep; it was published once", len(data))}}
		data, _ = short.MarshalJSON()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[entryKey(name, id)]
	if e == nil {
		e = &entry{Name: name, ID: id, At: now}
		s.entries[entryKey(name, id)] = e
	}
	e.Done, e.Reply, e.Unsent = true, data, true
	return s.saveLocked(now, window)
}

// markSent records that a stored reply has been handed to the front end.
func (s *store) markSent(name, id string, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[entryKey(name, id)]
	if e == nil || !e.Unsent {
		return nil
	}
	e.Unsent = false
	return s.saveLocked(now, window)
}

// configVersion returns the pushed configuration versions.
func (s *store) configVersion() configVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// setConfigVersion records the versions after a push or a rollback.
func (s *store) setConfigVersion(v configVersion, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.version
	s.version = v
	if err := s.saveLocked(now, window); err != nil {
		s.version = old
		return err
	}
	return nil
}

// pendingConfirm returns the push waiting for config-confirm, nil if none.
func (s *store) pendingConfirm() *pendingConfirm {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return nil
	}
	p := *s.pending
	return &p
}

// setPending records (p not nil) or clears (nil) the push waiting for
// config-confirm; on a failed write the table in memory is unchanged.
func (s *store) setPending(p *pendingConfirm, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.pending
	s.pending = p
	if err := s.saveLocked(now, window); err != nil {
		s.pending = old
		return err
	}
	return nil
}

// unpublishedEvent returns the config-revert event a failed start left
// for this one to publish, nil if none.
func (s *store) unpublishedEvent() json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unpublished
}

// setUnpublished records (nil: clears, once published) the config-revert
// event a start's revert could not publish; on a failed write the table
// in memory is unchanged.
func (s *store) setUnpublished(ev json.RawMessage, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.unpublished
	s.unpublished = ev
	if err := s.saveLocked(now, window); err != nil {
		s.unpublished = old
		return err
	}
	return nil
}

// move writes the table into dir, makes it the table's place and removes
// the file it had; on error nothing changes.
func (s *store) move(dir string, now time.Time, window time.Duration) error {
	return s.writeTo(dir, true, now, window)
}

// putPending records p (nil: clears) in memory whatever the write does,
// and returns the write's error: for a state the box is already in (a
// push applied, a revert done), which memory must follow even when the
// disk does not.
func (s *store) putPending(p *pendingConfirm, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = p
	return s.saveLocked(now, window)
}

// copyTo writes the table into dir as well (created if missing), without
// moving it: a configuration that names dir as state_dir is about to be
// saved, and a stop before the move (SetStateDir) must find it there.
func (s *store) copyTo(dir string, now time.Time, window time.Duration) error {
	return s.writeTo(dir, false, now, window)
}

// carryTo copies the table into dir as copyTo does, for a change of
// state_dir not applied yet, and returns what takes the copy back if the
// change is refused, so that the refused folder is left as it was: a
// table that was there before is put back, a copy that was not is
// removed, and then the folders the copy created, while empty. A folder
// another inspectd holds by then, or a file that no longer holds the copy
// (rewritten by whoever owns dir), is left alone.
func (s *store) carryTo(dir string, now time.Time, window time.Duration) (func() error, error) {
	target := filepath.Join(dir, StateFile)
	s.mu.Lock()
	same := s.path == "" || dir == "" || target == s.path
	s.mu.Unlock()
	if same {
		return func() error { return nil }, nil
	}
	// Another inspectd's folder is refused before anything is written
	// there: its table is its own. The take-back below covers what
	// refuses the change later (a daemon that took the folder meanwhile,
	// a model that does not load).
	if err := statelock.Free(dir); err != nil {
		return nil, err
	}
	top := dirs.FirstMissing(dir)
	var before []byte
	perm := os.FileMode(0o600)
	fi, err := os.Stat(target)
	if err == nil {
		perm = fi.Mode().Perm()
		before, err = os.ReadFile(target)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remote request table %s: %w", target, err)
	}
	existed := err == nil
	emptyAgain := func() {
		if top != "" {
			dirs.RemoveEmpty(dir, top)
		}
	}
	if err := s.copyTo(dir, now, window); err != nil {
		emptyAgain()
		return nil, err
	}
	ours, err := os.ReadFile(target)
	if err != nil {
		ours = nil // never equal to what is there: nothing is taken back
	}
	s.mu.Lock()
	from := endedPath(s.path)
	s.mu.Unlock()
	endedBack := carryEnded(from, filepath.Join(dir, EndedFile))
	return func() error {
		if statelock.Free(dir) != nil {
			return nil // another inspectd took the folder meanwhile: all there is its own
		}
		if err := endedBack(); err != nil {
			return err
		}
		cur, err := os.ReadFile(target)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("remote request table %s: %w", target, err)
		case ours == nil || !bytes.Equal(cur, ours):
			return nil
		case existed:
			return atomicfile.WriteBytes(target, perm, before)
		default:
			if err := os.Remove(target); err != nil {
				return err
			}
		}
		emptyAgain()
		return nil
	}, nil
}

// writeTo writes the table into dir (created if missing); with move, dir
// becomes its place and the old file is removed.
func (s *store) writeTo(dir string, move bool, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" || dir == "" || filepath.Join(dir, StateFile) == s.path {
		return nil
	}
	if err := atomicfile.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("remote request table: %w", err)
	}
	old := s.path
	s.path = filepath.Join(dir, StateFile)
	err := s.saveLocked(now, window)
	if err != nil || !move {
		s.path = old
		return err
	}
	_ = os.Remove(old) // left behind, it is rewritten whole if state_dir comes back
	// A push waiting for config-confirm moved the table: a start whose
	// file does not load finds the push through the configuration before
	// it, in the folder left (RevertUnstartable); it is told where to look.
	_ = os.Remove(movedPath(s.path)) // the table is here now
	if s.pending != nil {
		if b, err := json.Marshal(movedTable{StateDir: dir, Push: s.pending.ID}); err == nil {
			_ = atomicfile.WriteBytes(movedPath(old), 0o600, b)
		}
	}
	// The record of the last ended confirm wait goes along (best effort:
	// without it a late config-confirm is only told that none waits); one
	// left in dir from an earlier stint there is not this box's last.
	data, err := os.ReadFile(endedPath(old))
	switch {
	case err == nil:
		if atomicfile.WriteBytes(endedPath(s.path), 0o600, data) == nil {
			_ = os.Remove(endedPath(old))
		}
	case errors.Is(err, fs.ErrNotExist):
		_ = os.Remove(endedPath(s.path))
	}
	return nil
}

// MovedFile is, in a state directory the request table left while a push
// waited for config-confirm (the push moved state_dir), where the table
// went, so that a start that cannot read the pushed file finds the push
// from the configuration before it (RevertUnstartable).
const MovedFile = "remote-moved.json"

// movedTable is MovedFile's record.
type movedTable struct {
	StateDir string `json:"state_dir"`
	Push     string `json:"push"`
}

// movedPath is MovedFile beside the request table at table.
func movedPath(table string) string { return filepath.Join(filepath.Dir(table), MovedFile) }

// followMoved returns the state directory that MovedFile in dir names when
// the table there holds push id waiting; "" otherwise.
func followMoved(dir string, now time.Time) string {
	b, err := os.ReadFile(filepath.Join(dir, MovedFile))
	if err != nil || len(b) > maxEndedFile {
		return ""
	}
	var m movedTable
	if json.Unmarshal(b, &m) != nil || m.StateDir == "" || m.StateDir == dir {
		return ""
	}
	st, _, err := openStore(m.StateDir, now)
	if err != nil {
		return ""
	}
	if p := st.pendingConfirm(); p == nil || p.ID != m.Push {
		return ""
	}
	return m.StateDir
}

// carryEnded makes the ended-wait record at to (in a state_dir a change
// is about to name) the one at from (beside the table in force): copied,
// or, when from has none, one left at to from an earlier stint removed,
// so that a stop before the table moves (store.move) starts with the
// record, not without it or with a stale one. It is best effort, as the
// move's is: without the record a late config-confirm is only told that
// no push waits. It returns what puts to back as it was when the change
// is refused, unless to has changed since (rewritten by whoever owns the
// folder by then).
func carryEnded(from, to string) (takeBack func() error) {
	noop := func() error { return nil }
	data, err := os.ReadFile(from)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return noop
	}
	have := err == nil
	perm := os.FileMode(0o600)
	fi, err := os.Stat(to)
	var before []byte
	if err == nil {
		perm = fi.Mode().Perm()
		before, err = os.ReadFile(to)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return noop
	}
	existed := err == nil
	switch {
	case have:
		if atomicfile.WriteBytes(to, 0o600, data) != nil {
			return noop
		}
	case existed:
		if os.Remove(to) != nil {
			return noop
		}
	default:
		return noop
	}
	return func() error {
		cur, err := os.ReadFile(to)
		switch {
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("ended config-confirm wait record %s: %w", to, err)
		case have && (err != nil || !bytes.Equal(cur, data)), !have && err == nil:
			return nil // changed since: not ours to take back
		case existed:
			return atomicfile.WriteBytes(to, perm, before)
		default:
			if err := os.Remove(to); err != nil {
				return fmt.Errorf("ended config-confirm wait record %s: %w", to, err)
			}
			return nil
		}
	}
}

// markReverted marks push p's stored reply reverted, with note, so that a
// repeat of its id says so (the deadline's revert and a start's alike).
func (s *store) markReverted(p *pendingConfirm, note string, now time.Time, window time.Duration) error {
	cmd := p.Command
	if cmd == "" {
		cmd = "config" // "" is "config" (pendingConfirm.Command)
	}
	return s.amend(cmd, p.ID, map[string]any{"reverted": true, "note": note}, now, window)
}

// amend merges data into the stored reply of a finished request (a push
// reverted since it was answered), so that a repeat of its id says so.
func (s *store) amend(name, id string, data map[string]any, now time.Time, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[entryKey(name, id)]
	if e == nil || !e.Done {
		return nil
	}
	r, err := storedReply(e.Reply)
	if err != nil {
		return err
	}
	for k, v := range data {
		r.Data[k] = v
	}
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	e.Reply = b
	return s.saveLocked(now, window)
}

// pruneLocked drops expired nonces and finished requests older than
// window, then the oldest finished requests beyond maxEntries.
func (s *store) pruneLocked(now time.Time, window time.Duration) {
	for k, t := range s.nonces {
		if !t.After(now) {
			delete(s.nonces, k)
		}
	}
	var done []*entry
	for k, e := range s.entries {
		if e.Done && window > 0 && now.Sub(e.At) > window {
			delete(s.entries, k)
			continue
		}
		if e.Done {
			done = append(done, e)
		}
	}
	if extra := len(s.entries) - maxEntries; extra > 0 {
		sort.Slice(done, func(i, j int) bool { return done[i].At.Before(done[j].At) })
		for _, e := range done[:min(extra, len(done))] {
			delete(s.entries, entryKey(e.Name, e.ID))
		}
	}
}

func (s *store) saveLocked(now time.Time, window time.Duration) error {
	s.pruneLocked(now, window)
	if s.path == "" {
		return nil
	}
	sf := stateFile{Format: 1, Nonces: make(map[string]string, len(s.nonces)), Config: s.version, Pending: s.pending, Unpublished: s.unpublished}
	for _, e := range s.entries {
		sf.Requests = append(sf.Requests, e)
	}
	sort.Slice(sf.Requests, func(i, j int) bool { return sf.Requests[i].At.Before(sf.Requests[j].At) })
	for k, t := range s.nonces {
		sf.Nonces[k] = t.UTC().Format(time.RFC3339Nano)
	}
	data, err := json.Marshal(&sf)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(s.path, 0o600, data); err != nil {
		return fmt.Errorf("remote request table %s: %w", s.path, err)
	}
	return nil
}
