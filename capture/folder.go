package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// DefaultExtensions lists the image file endings a folder source reads
// unless told otherwise (a new slice each call).
func DefaultExtensions() []string {
	return []string{".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif"}
}

// FolderOptions configure a Folder.
type FolderOptions struct {
	// Dir is the folder. Required.
	Dir string
	// Watch keeps waiting for new files after the ones present at start,
	// for systems that drop images into a folder. A new file is read once
	// its size has stayed the same for one poll.
	Watch bool
	// Loop starts again at the first file after the last (replays).
	Loop bool
	// PollInterval is how often a watched folder is listed. Default 200ms.
	PollInterval time.Duration
	// Extensions are the file name endings read (case-insensitive). Default
	// DefaultExtensions().
	Extensions []string
	// Color selects RGBA or gray frames; ColorAuto keeps gray files gray.
	Color Color
	// MaxPixels refuses, from its header and before decoding, an image of
	// more pixels (0: DefaultMaxPixels).
	MaxPixels int64
	// Log receives one line per skipped file; nil uses slog.Default().
	Log *slog.Logger
	// ReportSkips makes Next return a *SkippedFileError for a file it
	// skips (once per file and version, when it logs it), where it would
	// otherwise go on to the next file: every file is a part, and a line
	// that tracks parts by file name must hear that this one got no
	// verdict. The next call goes on with the next file. A watched folder
	// then gives a file that fails to decode, or stays empty, until it has
	// been unchanged for Settle before it answers it: a copy that paused
	// half-way for a second was answered as corrupt, then again as the
	// part it was.
	ReportSkips bool
	// Settle is how long a file in a watched folder must stay unchanged
	// before, with ReportSkips, it is answered as unreadable or empty
	// (0: DefaultSettle).
	Settle time.Duration
	// Ledger, when set, records the files this folder hands out, and a
	// folder that is not looped skips those it records unchanged
	// (Folder.unchanged: size, modification time, inode, and the content's
	// checksum when only the change time moved): a source opened again on the same
	// folder (a capture restart) goes on where the last one stopped
	// instead of inspecting every file again. A looped folder ignores it.
	Ledger *FolderLedger
	// Explain, when set, rewords the error of reading the file at path
	// for the skipped file's log line and SkippedFileError: the daemon
	// gives dataset.ImageFileError, which says where a symbolic link that
	// leads to nothing or round in a loop leads (the system says only "no
	// such file or directory" of a link that ls shows, or "too many levels
	// of symbolic links"). It must keep errors.Is of the error it is given.
	Explain func(path string, err error) error
}

// FolderLedger is the record of the files folder sources handed out, per
// folder (by its absolute, cleaned path), by name with their size,
// modification time, where the system has them inode and change time,
// and the CRC-32C of the content read; the caller keeps it across the
// sources it opens. Opening a source
// forgets that folder's files that are no longer in it; a source opened on
// another folder, or refused, leaves the others' records alone (a reload
// that is refused must not make the folder still in use start over). Safe
// for concurrent use (a source being replaced may still hand out a file
// while its successor starts).
type FolderLedger struct {
	mu    sync.Mutex
	files map[string]map[string]fileStamp // folder → name → stamp
	// The file it is kept in (OpenFolderLedger), one JSON line appended
	// per file handed out; lines counts them, for compaction.
	path  string
	f     *os.File
	lines int
	log   *slog.Logger
}

// NewFolderLedger returns an empty ledger kept in memory.
func NewFolderLedger() *FolderLedger { return &FolderLedger{files: map[string]map[string]fileStamp{}} }

// ledgerLine is one file handed out, as the ledger's file holds it.
type ledgerLine struct {
	Dir   string `json:"dir"`
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
	Ino   uint64 `json:"ino,omitempty"`
	CTime int64  `json:"ctime_ns,omitempty"`
	// CRC is the content's checksum (fileStamp.sum); absent in a ledger
	// written before it was kept, or for a file not read whole.
	CRC *uint32 `json:"crc32c,omitempty"`
	// DirBytes and NameBytes hold Dir and Name exactly (base64) when they
	// are not UTF-8, which a JSON string cannot carry (encoding/json
	// writes U+FFFD for each bad byte: the file would not match its record
	// after a restart and be inspected again).
	DirBytes  []byte `json:"dir_bytes,omitempty"`
	NameBytes []byte `json:"name_bytes,omitempty"`
}

// lineOf is the file's line of a folder's file and its stamp.
func lineOf(dir, name string, st fileStamp) ledgerLine {
	e := ledgerLine{Dir: dir, Name: name, Size: st.size, MTime: st.mtime.UnixNano(), Ino: st.ino, CTime: st.ctimeN}
	if !utf8.ValidString(dir) {
		e.DirBytes = []byte(dir)
	}
	if !utf8.ValidString(name) {
		e.NameBytes = []byte(name)
	}
	if st.summed {
		e.CRC = &st.sum
	}
	return e
}

// stamp is the line's file stamp.
func (e ledgerLine) stamp() fileStamp {
	st := fileStamp{size: e.Size, mtime: time.Unix(0, e.MTime), ino: e.Ino, ctimeN: e.CTime}
	if e.CRC != nil {
		st.sum, st.summed = *e.CRC, true
	}
	return st
}

// OpenFolderLedger returns a ledger kept in the file at path as well (a
// daemon's state folder), so that a restart of the process goes on after
// the files already inspected too, not only a restart of the source: it
// reads what the file holds, rewrites it compacted, and appends a line
// for every file handed out. The appends are not synced: a power cut
// may forget the last few files, which are then inspected again (never
// one left out). A file it cannot read is logged and started afresh; one
// it cannot write leaves the ledger in memory, logged once.
func OpenFolderLedger(path string, log *slog.Logger) *FolderLedger {
	if log == nil {
		log = slog.Default()
	}
	l := NewFolderLedger()
	l.path, l.log = path, log
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		lines, bad := strings.Split(string(data), "\n"), 0
		for i, line := range lines {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var e ledgerLine
			err := json.Unmarshal([]byte(line), &e)
			if e.DirBytes != nil {
				e.Dir = string(e.DirBytes)
			}
			if e.NameBytes != nil {
				e.Name = string(e.NameBytes)
			}
			if err != nil || e.Dir == "" || e.Name == "" {
				if i < len(lines)-1 { // a last line cut short by a crash is expected
					bad++
				}
				continue
			}
			if l.files[e.Dir] == nil {
				l.files[e.Dir] = map[string]fileStamp{}
			}
			l.files[e.Dir][e.Name] = e.stamp()
		}
		if bad > 0 {
			log.Warn("folder ledger: lines not understood, left out (their files may be inspected again)", "file", path, "lines", bad)
		}
	case !errors.Is(err, fs.ErrNotExist):
		log.Warn("folder ledger unreadable: files in watched folders may be inspected again", "file", path, "err", err)
	}
	l.mu.Lock()
	l.compactLocked()
	l.mu.Unlock()
	return l
}

// compactLocked rewrites the ledger's file with one line per file it
// holds (atomically), and opens it for appending.
func (l *FolderLedger) compactLocked() {
	if l.path == "" {
		return
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	var b strings.Builder
	n := 0
	for dir, m := range l.files {
		for name, st := range m {
			line, _ := json.Marshal(lineOf(dir, name, st))
			b.Write(line)
			b.WriteByte('\n')
			n++
		}
	}
	// Synced and renamed: a power cut during the rewrite leaves the old
	// file or the new one, never an empty one (every file inspected again).
	err := atomicfile.WriteBytes(l.path, 0o640, []byte(b.String()))
	if err == nil {
		l.f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o640)
	}
	if err != nil {
		l.log.Warn("folder ledger not written: a restart may inspect files in watched folders again", "file", l.path, "err", err)
		l.path = "" // in memory from now on
		return
	}
	l.lines = n
}

// Close closes the ledger's file.
func (l *FolderLedger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ledgerKey is the folder's key: the same folder written two ways
// ("/data/in", "/data/in/", a relative path) is one.
func ledgerKey(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return filepath.Clean(dir)
}

// open starts a source on dir, whose files are present: the records of
// files no longer there are forgotten. It returns how many of present were
// handed out before (by name; a changed file is read again).
func (l *FolderLedger) open(dir string, present []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.files[dir]
	if m == nil {
		m = map[string]fileStamp{}
		l.files[dir] = m
	}
	if len(present) == 0 {
		// An empty listing forgets nothing, as the poll's: a share's empty
		// mount point at start (a reboot before the mount) would have every
		// file inspected again when it comes (a trial: all of them were).
		return 0
	}
	keep := make(map[string]bool, len(present))
	for _, n := range present {
		keep[n] = true
	}
	for n := range m {
		if !keep[n] {
			delete(m, n)
		}
	}
	return len(m)
}

// recorded is the stamp name in dir had when it was handed out, if it was.
func (l *FolderLedger) recorded(dir, name string) (fileStamp, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.files[dir][name]
	return st, ok
}

func (l *FolderLedger) record(dir, name string, st fileStamp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files[dir] == nil {
		l.files[dir] = map[string]fileStamp{}
	}
	l.files[dir][name] = st
	if l.f == nil {
		return
	}
	line, _ := json.Marshal(lineOf(dir, name, st))
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		l.log.Warn("folder ledger not written: a restart may inspect files in watched folders again", "file", l.path, "err", err)
		l.f.Close()
		l.f, l.path = nil, ""
		return
	}
	l.lines++
	if total := l.entriesLocked(); l.lines > 4*total+10000 {
		l.compactLocked() // forgotten files' lines add up
	}
}

func (l *FolderLedger) entriesLocked() int {
	n := 0
	for _, m := range l.files {
		n += len(m)
	}
	return n
}

func (l *FolderLedger) forget(dir, name string) {
	l.mu.Lock()
	delete(l.files[dir], name)
	l.mu.Unlock()
}

// Len is the number of files recorded, over every folder.
func (l *FolderLedger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entriesLocked()
}

// DefaultSettle is FolderOptions.Settle's default: longer than the pauses
// of a file share or FTP upload that is still going on.
const DefaultSettle = 5 * time.Second

// SkippedFileError is what a folder source's Next returns, with
// FolderOptions.ReportSkips, for a file it skipped: unreadable, not an
// image, or over the pixel limit (Reason says which). The frame then
// carries only the file's Name and the Time; the source goes on with the
// next file at the next call.
type SkippedFileError struct {
	Name   string
	Reason string // "unreadable or corrupt", "empty" or "too large"
	Err    error
}

func (e *SkippedFileError) Error() string {
	return fmt.Sprintf("file %s skipped (%s): %v", e.Name, e.Reason, e.Err)
}

// Unwrap returns the reading error (ErrImageTooLarge for a file over the
// pixel limit).
func (e *SkippedFileError) Unwrap() error { return e.Err }

// Folder is a Source reading the image files of a folder in name order
// (sorted once at start). Unreadable or corrupt files are counted as decode
// errors, and images over the pixel limit as TooLarge; both are skipped
// with one log line each. Every file is a part: the folder never drops one
// (Lossless).
type Folder struct {
	opts     FolderOptions
	log      *slog.Logger
	counters Counters
	files    []string // sorted at start; Loop replays these
	queue    []string // still to read
	// queued are a watched folder's files listed and not yet taken by
	// Next, which reads each as it is then.
	queued map[string]bool
	// seen are the files read (or tried), with their stamp then, so that a
	// watched folder reads a file again when it is replaced under the same
	// name (a camera's software that reuses names, an upload renamed over
	// the last one).
	seen    map[string]fileStamp
	pending map[string]int64 // watched files seen once, with their size
	// failed are the files that did not decode, with their stamp from
	// before the read: logged once, and in a watched folder read again
	// when they change (a copy that paused half-way, a chmod that made
	// one readable).
	failed map[string]fileStamp
	// passFrames counts the frames the current pass of a looped folder
	// gave that its consumer did not refuse (refuse: a region of interest
	// that does not fit in the file's image); a pass with none waits
	// before the next.
	passFrames int
	replay     bool // a looped folder's pass after the first
	dec        imageDecoder
	seq        uint64
	timer      *time.Timer
	key        string // the folder's key in opts.Ledger
	// unlisted says the last listing of a watched folder failed.
	unlisted bool
	crc      *crc32.Table
	buf      []byte // checksum's reads
}

// NewFolder lists and sorts the folder's image files. A folder with no
// images, or that cannot be listed, is an error unless it is watched (a
// watched one is then polled until it can be: Next returns ErrUnavailable
// meanwhile).
func NewFolder(opts FolderOptions) (*Folder, error) {
	if opts.Dir == "" {
		return nil, errors.New("folder source: no folder given")
	}
	if opts.Watch && opts.Loop {
		return nil, fmt.Errorf("folder source %s: watch and loop exclude each other", opts.Dir)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if len(opts.Extensions) == 0 {
		opts.Extensions = DefaultExtensions()
	}
	exts := make([]string, len(opts.Extensions))
	for i, e := range opts.Extensions {
		exts[i] = strings.ToLower(e)
		if !strings.HasPrefix(exts[i], ".") {
			exts[i] = "." + exts[i]
		}
	}
	opts.Extensions = exts
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	fl := &Folder{opts: opts, log: log.With("dir", opts.Dir), queued: map[string]bool{}, seen: map[string]fileStamp{}, pending: map[string]int64{},
		failed: map[string]fileStamp{}, crc: crc32.MakeTable(crc32.Castagnoli)}
	entries, err := os.ReadDir(opts.Dir)
	switch {
	case err != nil && !opts.Watch:
		return nil, fmt.Errorf("folder source: %w", err)
	case err != nil:
		// A watched folder not there yet (a share mounted after the
		// daemon started at boot): waited for as one that went away is,
		// its first poll saying so (ErrUnavailable), not the end of the
		// start (a trial: the unit failed within its start limit).
		fl.unlisted = true
	}
	for _, e := range entries {
		if fl.wanted(e) {
			fl.files = append(fl.files, e.Name())
			if opts.Watch {
				fl.queued[e.Name()] = true
			}
		}
	}
	slices.Sort(fl.files)
	if opts.Loop {
		fl.opts.Ledger = nil // replays are the point
	}
	if l := fl.opts.Ledger; l != nil {
		fl.key = ledgerKey(opts.Dir)
		if n := l.open(fl.key, fl.files); n > 0 {
			fl.log.Info("folder source: going on after the files already inspected", "inspected", n, "files", len(fl.files))
		}
	}
	if len(fl.files) == 0 && !opts.Watch {
		return nil, fmt.Errorf("folder source %s: no image files (%s)", opts.Dir, strings.Join(opts.Extensions, " "))
	}
	fl.queue = fl.files
	return fl, nil
}

// wanted says whether the entry e is one of the folder's files: any
// image name but a folder's. A named pipe or a device under an image's
// name (x.jpg) is listed so that it is answered, once, as unreadable (read
// refuses it unopened), not passed over without a word.
func (fl *Folder) wanted(e fs.DirEntry) bool {
	if e.IsDir() {
		return false
	}
	name := e.Name()
	if strings.HasPrefix(name, ".") {
		return false // editors' and copy tools' temporary files
	}
	ext := strings.ToLower(filepath.Ext(name))
	return slices.Contains(fl.opts.Extensions, ext)
}

// Len is the number of files found at start.
func (fl *Folder) Len() int { return len(fl.files) }

// Counters returns the folder's counters.
func (fl *Folder) Counters() *Counters { return &fl.counters }

// Lossless implements LosslessSource: each file is a part to inspect.
func (fl *Folder) Lossless() bool { return true }

// Next implements Source. It returns ErrEOF after the last file unless the
// folder is watched or looped.
func (fl *Folder) Next(ctx context.Context, f *Frame) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(fl.queue) == 0 {
			switch {
			case fl.opts.Loop:
				if fl.passFrames == 0 {
					// A whole pass without one image that could be
					// inspected: wait before the next, instead of spinning
					// over files that never decode, or that the region of
					// interest never fits in (each answered with an error
					// result as fast as the files could be read).
					if err := sleepCtx(ctx, &fl.timer, fl.opts.PollInterval); err != nil {
						return err
					}
				}
				fl.queue, fl.passFrames, fl.replay = fl.files, 0, true
			case fl.opts.Watch:
				if err := sleepCtx(ctx, &fl.timer, fl.opts.PollInterval); err != nil {
					return err
				}
				if err := fl.poll(); err != nil {
					return err
				}
				continue
			default:
				return ErrEOF
			}
		}
		name := fl.queue[0]
		fl.queue = fl.queue[1:]
		delete(fl.queued, name)
		// Stamped before the read: a file changed while it is read gets a
		// stamp older than its content and is read again, never missed.
		st := fl.stamp(name)
		if l := fl.opts.Ledger; l != nil {
			if prev, ok := l.recorded(fl.key, name); ok && fl.unchanged(prev, st, name) {
				// A source before this one on the folder handed it out.
				st.sum, st.summed = prev.sum, prev.summed
				if fl.opts.Watch {
					fl.seen[name] = st
				}
				continue
			}
		}
		if fl.opts.Watch {
			fl.seen[name] = st
		}
		img, sum, summed, err := fl.read(name)
		if err != nil && fl.opts.Explain != nil {
			err = fl.opts.Explain(filepath.Join(fl.opts.Dir, name), err)
		}
		if st == (fileStamp{}) {
			st = fl.stamp(name) // away when stamped, back by the open
		}
		st.sum, st.summed = sum, summed
		if err != nil {
			if _, lerr := os.Lstat(filepath.Join(fl.opts.Dir, name)); errors.Is(err, fs.ErrNotExist) && fl.opts.Watch && lerr != nil {
				delete(fl.seen, name) // a file put there again under its name is new
				continue              // taken away before we got to it
			}
			// Still there but not readable as a file: a symbolic link to
			// nothing is answered as unreadable, like a corrupt file.
			// Its stamp is from before the read: a file changed while it
			// was read is read again (as a good one is).
			tooLarge := errors.Is(err, ErrImageTooLarge)
			notFile := errors.Is(err, errNotRegular)       // no writer makes a pipe an image
			if !tooLarge && !notFile && fl.unsettled(st) { // a header is final
				// Perhaps still being written: poll gives it again, and
				// it is answered once it has been still for Settle.
				delete(fl.seen, name)
				continue
			}
			reason := "unreadable or corrupt"
			switch {
			case errors.Is(err, ErrImageTooLarge):
				fl.counters.TooLarge.Add(1)
				reason = "too large"
			case st.size == 0 && !st.mtime.IsZero() && !errors.Is(err, errNotRegular):
				fl.counters.DecodeErrors.Add(1)
				reason = "empty"
			default:
				fl.counters.DecodeErrors.Add(1)
			}
			prev, ok := fl.failed[name]
			fl.failed[name] = st
			if !ok || !fl.unchanged(prev, st, name) { // one line per file, not per pass
				fl.log.Warn("folder source: file skipped", "file", name, "reason", reason, "err", err)
				if fl.opts.ReportSkips {
					// Answered: recorded as handed out, so that a restart
					// does not answer it again (a changed file is read again).
					if l := fl.opts.Ledger; l != nil {
						l.record(fl.key, name, st)
					}
					f.Name, f.Label, f.Time, f.Trigger, f.TriggerTime, f.Decode = name, "", time.Now(), "", time.Time{}, 0
					f.Replay = fl.replay
					return &SkippedFileError{Name: name, Reason: reason, Err: err}
				}
			}
			continue
		}
		if fl.opts.Watch {
			fl.seen[name] = st
		}
		delete(fl.failed, name)
		if l := fl.opts.Ledger; l != nil {
			l.record(fl.key, name, st)
		}
		fl.passFrames++
		fl.seq++
		f.setDecoded(convertInto(f.target(), img, fl.opts.Color))
		f.setMask(nil)
		f.Native, f.Decode = image.Point{}, 0
		f.Name, f.Label, f.Replay = name, "", fl.replay
		f.Seq, f.Time = fl.seq, time.Now()
		f.Trigger, f.TriggerTime = "", time.Time{}
		fl.counters.Frames.Add(1)
		return nil
	}
}

// refuse implements frameRefuser: the frame Next gave last could not be
// inspected (Transform: the region of interest does not fit in the file's
// image), so it does not make its pass one that gave a frame.
func (fl *Folder) refuse() {
	if fl.passFrames > 0 {
		fl.passFrames--
	}
}

// read opens name, takes the checksum of its content, then decodes it from
// the same open file: the checksum is of what was there before the decode,
// so a rewrite during the decode (a torn frame) leaves a checksum that the
// new content does not match, and it is read again.
func (fl *Folder) read(name string) (image.Image, uint32, bool, error) {
	path := filepath.Join(fl.opts.Dir, name)
	fh, err := openRegular(path)
	if err != nil {
		return nil, 0, false, err
	}
	defer fh.Close()
	sum, summed := fl.sumOf(fh)
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, 0, false, err
	}
	img, _, err := fl.dec.decode(fh, path, fl.opts.MaxPixels)
	return img, sum, summed, err
}

// errNotRegular is matched by the error for a name that leads to
// something other than a regular file (a link to a named pipe or a
// device): answered as unreadable, never opened for reading.
var errNotRegular = errors.New("not a regular file")

// notImageFileError is openRegular's refusal of a path that leads to
// something other than a regular file; it matches errNotRegular.
type notImageFileError struct {
	path string
	mode fs.FileMode
}

// Error names the path and what it is: "/in/x.jpg is a named pipe, not an
// image file".
func (e *notImageFileError) Error() string {
	return fmt.Sprintf("%s is %s, not an image file", e.path, fileKind(e.mode))
}

// Unwrap makes errors.Is(err, errNotRegular) hold.
func (e *notImageFileError) Unwrap() error { return errNotRegular }

// fileKind words what a file that is not regular is: a folder, or in
// atomicfile.FileKind's words, which a refused model file and
// configuration file share.
func fileKind(m fs.FileMode) string {
	if m.IsDir() {
		return "a folder"
	}
	return atomicfile.FileKind(m)
}

// fileStamp is what tells a changed file: its size and modification time,
// where the system has them its inode and change time, and a checksum of
// the content read (see Folder.unchanged).
type fileStamp struct {
	size   int64
	mtime  time.Time
	ino    uint64
	ctimeN int64
	sum    uint32 // CRC-32C of the content, when summed
	summed bool
}

// unsettled says whether a watched folder's file of stamp st may still be
// being written (with ReportSkips: its failures are answered only once it
// has been still for Settle).
func (fl *Folder) unsettled(st fileStamp) bool {
	age := time.Since(st.mtime) // a file dated ahead of the clock counts as still
	return fl.opts.Watch && fl.opts.ReportSkips && age >= 0 && age < fl.opts.Settle
}

// unchanged says whether the file name, stamped cur now, still holds what
// it held when it was stamped prev: the same size, modification time and
// inode, and when only the change time moved, the same content by its
// checksum. The change time moves with a chmod or chown after the write
// (copy tools and camera software do that: the same part, not to be
// answered twice) and with a rewrite in place that puts the modification
// time back (`cp -p` over the file, a file system that counts time in 2 s
// steps: a new part, to be read). Without a checksum of prev (a file that
// could not be read, a ledger line written before checksums were kept) a
// moved change time is a change: a file made readable by a chmod is read.
// A file that cannot be read now (a chmod took the permission away) is
// the part it was, not a new one to answer again.
func (fl *Folder) unchanged(prev, cur fileStamp, name string) bool {
	switch {
	case prev.size != cur.size || !prev.mtime.Equal(cur.mtime) || prev.ino != cur.ino:
		return false
	case prev.ctimeN == cur.ctimeN:
		return true
	case !prev.summed:
		return false
	}
	fh, err := openRegular(filepath.Join(fl.opts.Dir, name))
	if err != nil {
		return true
	}
	defer fh.Close()
	sum, ok := fl.sumOf(fh)
	return !ok || sum == prev.sum
}

// maxChecksumBytes bounds the files checksummed: a larger one (never an
// image the pixel limit lets through in practice) is told by its stamp.
const maxChecksumBytes = 1 << 30

// sumOf reads the open file f from where it is to its end and returns the
// CRC-32C of what it read (a fraction of a millisecond per megabyte:
// BenchmarkFolderChecksum); false when it cannot be read or is over
// maxChecksumBytes.
func (fl *Folder) sumOf(f *os.File) (uint32, bool) {
	if st, err := f.Stat(); err != nil || st.Size() > maxChecksumBytes {
		return 0, false
	}
	if fl.buf == nil {
		fl.buf = make([]byte, 64<<10)
	}
	var sum uint32
	for {
		n, err := f.Read(fl.buf)
		sum = crc32.Update(sum, fl.crc, fl.buf[:n])
		switch {
		case err == io.EOF:
			return sum, true
		case err != nil:
			return 0, false
		}
	}
}

// stampOf is info's stamp.
func stampOf(info fs.FileInfo) fileStamp {
	st := fileStamp{size: info.Size(), mtime: info.ModTime()}
	st.ino, st.ctimeN = inodeAndChange(info)
	return st
}

// stamp is the stamp of the file name leads to; for a symbolic link to
// nothing, the link's own (never the zero stamp of a file not there, which
// would leave the name unread for good, and which a restart's ledger would
// not match either); for a link to a folder, the link's own too (the
// folder's time moves with every file put in it: each new part answered
// the link again).
func (fl *Folder) stamp(name string) fileStamp {
	path := filepath.Join(fl.opts.Dir, name)
	info, err := os.Stat(path)
	if err != nil || info.IsDir() {
		if info, err = os.Lstat(path); err != nil {
			return fileStamp{}
		}
	}
	return stampOf(info)
}

// poll lists a watched folder and queues, in name order, the new files whose
// size did not change since the previous poll, and those that failed to
// decode and have changed since (a writer that paused half-way).
func (fl *Folder) poll() error {
	entries, err := os.ReadDir(fl.opts.Dir)
	if err != nil {
		// A network share that dropped, a folder moved away and put back:
		// like an unplugged camera, polled again until it is back (the
		// files read before stay read).
		fl.unlisted = true
		return fmt.Errorf("%w: watch folder %s cannot be listed, polled again: %w", ErrUnavailable, fl.opts.Dir, err)
	}
	if fl.unlisted {
		// Back, and perhaps no file to say so for hours: counted as a
		// reopen, which tells the consumer's health check the trouble is
		// over.
		fl.unlisted = false
		fl.counters.Reopens.Add(1)
		fl.log.Info("folder source: the watch folder can be listed again")
	}
	present := make(map[string]bool, len(entries))
	var ready []string
	for _, e := range entries {
		if !fl.wanted(e) {
			continue
		}
		name := e.Name()
		present[name] = true
		if fl.queued[name] {
			continue // read as it is when its turn comes
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			// Judged by the file it leads to, as Next stamps it: its size
			// grows while it is written, the link's does not. A link to a
			// folder by itself, as stamp says.
			if target, err := os.Stat(filepath.Join(fl.opts.Dir, name)); err == nil && !target.IsDir() {
				info = target
			}
		}
		if read, ok := fl.seen[name]; ok {
			cur := stampOf(info)
			prev, failed := fl.failed[name]
			switch {
			case failed && fl.unchanged(prev, cur, name):
				prev.ctimeN = cur.ctimeN // checksummed once per change, not per poll
				fl.failed[name] = prev
				continue
			case !failed && fl.unchanged(read, cur, name):
				read.ctimeN = cur.ctimeN
				fl.seen[name] = read
				continue
			}
			// Changed since it failed (a writer that paused half-way), or
			// replaced or rewritten since it was read: a new part, read
			// again once it is still.
			delete(fl.seen, name)
		}
		if info.Mode()&(fs.ModeNamedPipe|fs.ModeDevice|fs.ModeSocket) != 0 {
			// A named pipe or a device (or a link to one): no bytes come
			// to wait for, and it is never opened; queued at once to be
			// answered as unreadable, and remembered as failed.
			delete(fl.pending, name)
			fl.queued[name] = true
			ready = append(ready, name)
			continue
		}
		size := info.Size()
		// An empty file waits for its bytes; with ReportSkips one that
		// stayed empty for Settle is read, and answered as empty.
		emptyDone := size == 0 && fl.opts.ReportSkips && !fl.unsettled(stampOf(info))
		if prev, ok := fl.pending[name]; ok && prev == size && (size > 0 || emptyDone) {
			delete(fl.pending, name)
			fl.queued[name] = true
			ready = append(ready, name)
			continue
		}
		fl.pending[name] = size
	}
	// Forget files that are gone, so a folder that is emptied as it is
	// processed does not grow these sets forever. A listing with no image
	// at all forgets nothing: a network share that dropped shows its empty
	// mount point, and when it is back its files are the ones inspected
	// (a folder emptied as it is processed forgets its last files with the
	// next one that arrives).
	for name := range fl.seen {
		if len(present) > 0 && !present[name] {
			delete(fl.seen, name)
			if l := fl.opts.Ledger; l != nil {
				l.forget(fl.key, name)
			}
		}
	}
	for name := range fl.pending {
		if !present[name] {
			delete(fl.pending, name)
		}
	}
	for name := range fl.failed {
		if !present[name] {
			delete(fl.failed, name)
		}
	}
	slices.Sort(ready)
	fl.queue = append(fl.queue, ready...)
	return nil
}

// Close implements Source.
func (fl *Folder) Close() error {
	if fl.timer != nil {
		fl.timer.Stop()
	}
	return nil
}
