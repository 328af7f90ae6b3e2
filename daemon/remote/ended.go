package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// EndedFile is, in the state directory beside StateFile, the record of the
// last configuration push whose wait for config-confirm ended (confirmed,
// reverted at its deadline or by hand, ended by the file changed on the
// box), so that a config-confirm that comes after a restart is told what
// became of the push rather than that none ever waited. It holds one
// record; a new push waiting removes it.
const EndedFile = "remote-confirm-ended.json"

// maxEndedFile bounds what is read of EndedFile: one record is far less.
const maxEndedFile = 64 << 10

// endedWait is a push whose wait for config-confirm ended, and why, for
// the refusal of a config-confirm that comes after (until another push
// waits). Read and written by the command goroutine only; persisted in
// EndedFile.
type endedWait struct {
	ID  string    `json:"id"`
	At  time.Time `json:"at"`
	Why string    `json:"why"`
}

// endedPath is EndedFile beside the request table at table ("" in memory).
func endedPath(table string) string {
	if table == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(table), EndedFile)
}

// loadEnded reads the ended-wait record at path: the zero record when
// there is none, and an error naming the file when it cannot be read or
// parsed (the caller logs it and goes on without it).
func loadEnded(path string) (endedWait, error) {
	if path == "" {
		return endedWait{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return endedWait{}, nil
	}
	if err != nil {
		return endedWait{}, fmt.Errorf("ended config-confirm wait record %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEndedFile+1))
	if err != nil {
		return endedWait{}, fmt.Errorf("ended config-confirm wait record %s: %w", path, err)
	}
	if len(data) > maxEndedFile {
		return endedWait{}, fmt.Errorf("ended config-confirm wait record %s: larger than %d bytes", path, maxEndedFile)
	}
	var e endedWait
	if err := json.Unmarshal(data, &e); err != nil {
		return endedWait{}, fmt.Errorf("ended config-confirm wait record %s: %w", path, err)
	}
	if e.ID == "" || e.Why == "" {
		return endedWait{}, fmt.Errorf("ended config-confirm wait record %s: field id or why is empty", path)
	}
	return e, nil
}

// saveEnded writes e at path atomically (fsynced, renamed into place), or
// removes the file for the zero record.
func saveEnded(path string, e endedWait) error {
	if path == "" {
		return nil
	}
	if e.ID == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ended config-confirm wait record %s: %w", path, err)
		}
		return nil
	}
	data, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, 0o600, data); err != nil {
		return fmt.Errorf("ended config-confirm wait record %s: %w", path, err)
	}
	return nil
}

// endedFile is where the ended-wait record is kept now: beside the
// request table, which follows state_dir.
func (s *store) endedFile() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return endedPath(s.path)
}

// setEnded records e (the zero record: none) as the last ended wait, in
// memory and in EndedFile; a failed write is logged, as the wait has
// ended all the same.
func (d *Dispatcher) setEnded(e endedWait) {
	d.ended = e
	if err := saveEnded(d.store.endedFile(), e); err != nil {
		d.log.Error("remote: why a push's wait for config-confirm ended is not recorded on disk; a config-confirm after a restart is not told", "push", e.ID, "error", err)
	}
}
