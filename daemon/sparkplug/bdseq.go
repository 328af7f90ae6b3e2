package sparkplug

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// BdSeqFile is the file in Options.StateDir that holds the last bdSeq used
// in an MQTT CONNECT, as decimal text.
const BdSeqFile = "sparkplug-bdseq"

// bdSeqStore hands out the birth/death sequence number (Sparkplug 3.0
// §6.4.19, tck-id-topics-nbirth-bdseq-increment): 0 on the first CONNECT
// ever, one more on every CONNECT after that, 255 followed by 0. Each
// number is on disk (written atomically) before the CONNECT that carries it
// goes out, so a process killed at any point starts again with a number its
// previous session's NDEATH cannot carry: a host never takes a new session
// for the dead one.
type bdSeqStore struct {
	path  string // "" keeps it in memory
	last  uint64
	fresh bool // no number used yet
}

func openBdSeq(dir string, log *slog.Logger) (*bdSeqStore, error) {
	s := &bdSeqStore{fresh: true}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sparkplug bdSeq: %w", err)
	}
	s.path = filepath.Join(dir, BdSeqFile)
	// A write cut short by a crash leaves its temporary file; the number in
	// the file itself is still the last one used.
	if tmps, _ := filepath.Glob(filepath.Join(dir, "."+BdSeqFile+"*")); len(tmps) > 0 {
		for _, t := range tmps {
			if atomicfile.IsTemp(filepath.Base(t)) {
				_ = os.Remove(t)
			}
		}
	}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("sparkplug bdSeq: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || n > 255 {
		// Starting again at 0 may repeat the number of the last session, so
		// a host could take that session's late NDEATH for this one's;
		// nothing better can be known now.
		log.Warn("sparkplug bdSeq file is not a number 0..255; starting again at 0", "file", s.path, "content", quoteShort(data))
		return s, nil
	}
	s.last, s.fresh = n, false
	return s, nil
}

// next returns the bdSeq for the next CONNECT. With an error the number is
// still the right one for this process, but it is not on disk: after a
// restart it may be used again.
func (s *bdSeqStore) next() (uint64, error) {
	n := uint64(0)
	if !s.fresh {
		n = (s.last + 1) % 256
	}
	s.last, s.fresh = n, false
	if s.path == "" {
		return n, nil
	}
	if err := atomicfile.WriteBytes(s.path, 0o600, []byte(strconv.FormatUint(n, 10)+"\n")); err != nil {
		return n, fmt.Errorf("sparkplug bdSeq %s: %w", s.path, err)
	}
	return n, nil
}

// quoteShort quotes at most 32 bytes of b for a log line.
func quoteShort(b []byte) string {
	if len(b) > 32 {
		return strconv.Quote(string(b[:32])) + "..."
	}
	return strconv.Quote(string(b))
}
