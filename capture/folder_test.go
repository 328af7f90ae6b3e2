package capture

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/image/bmp"
)

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// folderFixture writes a real JPEG, a colour PNG, a gray PNG, a corrupt
// JPEG and files that are not images.
func folderFixture(t *testing.T) (string, *image.RGBA) {
	t.Helper()
	dir := t.TempDir()
	col := testImage(40, 30)
	gray := image.NewGray(image.Rect(0, 0, 20, 10))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i)
	}
	files := map[string][]byte{
		"b_color.png":  encodePNG(t, col),
		"a_photo.JPG":  encodeJPEG(t, col),
		"c_gray.png":   encodePNG(t, gray),
		"d_broken.jpg": []byte("\xff\xd8 this is not really a jpeg"),
		"notes.txt":    []byte("not an image"),
		".hidden.png":  encodePNG(t, gray),
	}
	for name, data := range files {
		if err := writeFile(filepath.Join(dir, name), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, col
}

func TestFolderReadsSortedAndSkipsCorrupt(t *testing.T) {
	dir, col := folderFixture(t)
	fl, err := NewFolder(FolderOptions{Dir: dir, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if fl.Len() != 4 {
		t.Errorf("found %d images, want 4", fl.Len())
	}
	ctx := context.Background()
	var f Frame
	var names []string
	for {
		err := fl.Next(ctx, &f)
		if errors.Is(err, ErrEOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
		switch f.Name {
		case "b_color.png":
			if d := maxDiff(t, col, f.Image.(*image.RGBA)); d != 0 {
				t.Errorf("PNG differs by %d", d)
			}
		case "c_gray.png":
			g, ok := f.Image.(*image.Gray)
			if !ok || g.GrayAt(3, 0).Y != 3 {
				t.Errorf("gray PNG came back as %T", f.Image)
			}
		case "a_photo.JPG":
			if f.Image.Bounds().Dx() != 40 {
				t.Errorf("JPEG size %v", f.Image.Bounds())
			}
		}
	}
	want := []string{"a_photo.JPG", "b_color.png", "c_gray.png"}
	if len(names) != len(want) {
		t.Fatalf("read %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("read %v, want %v", names, want)
		}
	}
	if got := fl.Counters().Snapshot(); got.Frames != 3 || got.DecodeErrors != 1 {
		t.Errorf("counters %+v: want 3 frames and 1 decode error", got)
	}
	if !errors.Is(fl.Next(ctx, &f), io.EOF) {
		t.Error("ErrEOF should also be io.EOF")
	}
}

func TestFolderColorModes(t *testing.T) {
	dir, _ := folderFixture(t)
	for _, c := range []struct {
		color Color
		gray  bool
	}{{ColorGray, true}, {ColorRGB, false}} {
		fl, err := NewFolder(FolderOptions{Dir: dir, Color: c.color, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		var f Frame
		for fl.Next(context.Background(), &f) == nil {
			if _, isGray := f.Image.(*image.Gray); isGray != c.gray {
				t.Errorf("%v: %s came back as %T", c.color, f.Name, f.Image)
			}
		}
	}
}

func TestFolderLoop(t *testing.T) {
	dir, _ := folderFixture(t)
	fl, err := NewFolder(FolderOptions{Dir: dir, Loop: true, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	var names []string
	for i := 0; i < 7; i++ {
		if err := fl.Next(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
		// The first pass reads files, the later ones replay them.
		if want := i >= 3; f.Replay != want {
			t.Errorf("frame %d (%s): Replay %v, want %v", i+1, f.Name, f.Replay, want)
		}
	}
	if names[3] != names[0] || names[6] != names[0] || f.Seq != 7 {
		t.Errorf("loop order %v (seq %d)", names, f.Seq)
	}
}

func TestFolderWatch(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(filepath.Join(dir, "0001.png"), encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var f Frame
	if err := fl.Next(ctx, &f); err != nil || f.Name != "0001.png" {
		t.Fatalf("first file: %v %q", err, f.Name)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = writeFile(filepath.Join(dir, "0003.png"), encodePNG(t, testImage(8, 8)))
		_ = writeFile(filepath.Join(dir, "0002.png"), encodePNG(t, testImage(8, 8)))
	}()
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		if err := fl.Next(ctx, &f); err != nil {
			t.Fatalf("waiting for new files: %v", err)
		}
		got[f.Name] = true
	}
	if !got["0002.png"] || !got["0003.png"] {
		t.Errorf("new files read: %v", got)
	}
	// Nothing new: Next waits until the context ends.
	short, cancel2 := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel2()
	if err := fl.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("idle watch: err %v", err)
	}
}

// A folder source opened again on the same folder with the ledger of the
// one before (a capture restart) goes on after the files that one handed
// out; a file rewritten since is read again, a looped folder replays.
func TestFolderLedgerAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"0001.png", "0002.png", "0003.png"} {
		if err := writeFile(filepath.Join(dir, n), encodePNG(t, testImage(8, 8))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ledger := NewFolderLedger()
	open := func(o FolderOptions) *Folder {
		t.Helper()
		o.Dir, o.PollInterval, o.Log, o.Ledger = dir, 5*time.Millisecond, quietLog(), ledger
		fl, err := NewFolder(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fl.Close() })
		return fl
	}
	names := func(fl *Folder, n int) []string {
		t.Helper()
		var out []string
		var f Frame
		for range n {
			if err := fl.Next(ctx, &f); err != nil {
				t.Fatalf("after %v: %v", out, err)
			}
			out = append(out, f.Name)
		}
		return out
	}
	first := open(FolderOptions{Watch: true})
	if got := names(first, 1); got[0] != "0001.png" {
		t.Fatalf("first source: %v", got)
	}
	// The restart: the new source opens while the old one still hands
	// out a file (a capture reload builds the new source first); the new
	// one skips it.
	second := open(FolderOptions{Watch: true})
	if got := names(first, 1); got[0] != "0002.png" {
		t.Fatalf("first source after the second opened: %v", got)
	}
	if got := names(second, 1); got[0] != "0003.png" {
		t.Fatalf("after the restart: %v, want 0003.png (0001 and 0002 were inspected)", got)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "0001.png"), later, later); err != nil {
		t.Fatal(err)
	}
	third := open(FolderOptions{Watch: true})
	if got := names(third, 1); got[0] != "0001.png" {
		t.Errorf("a file changed since it was inspected: %v, want 0001.png again", got)
	}
	short, cancel2 := context.WithTimeout(ctx, 40*time.Millisecond)
	defer cancel2()
	var f Frame
	if err := third.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("nothing new after the restart: %q, %v", f.Name, err)
	}
	// The same folder written another way is the same folder.
	if err := open(FolderOptions{}).Next(ctx, &f); !errors.Is(err, ErrEOF) {
		t.Errorf("once, every file inspected: %q, %v", f.Name, err)
	}
	if fl, err := NewFolder(FolderOptions{Dir: dir + "/", Ledger: ledger, Log: quietLog()}); err != nil || !errors.Is(fl.Next(ctx, &f), ErrEOF) {
		t.Errorf("the folder as %s/: %v, read %q", dir, err, f.Name)
	}
	// Looped: every file, every pass.
	if got := names(open(FolderOptions{Loop: true}), 4); strings.Join(got, " ") != "0001.png 0002.png 0003.png 0001.png" {
		t.Errorf("looped: %v", got)
	}
	// A file that is gone is forgotten; a source refused on another folder
	// (a reload to an empty one) or opened on one leaves this folder's
	// records alone.
	if err := os.Remove(filepath.Join(dir, "0002.png")); err != nil {
		t.Fatal(err)
	}
	open(FolderOptions{Watch: true})
	if ledger.Len() != 2 {
		t.Errorf("ledger holds %d files, want the 2 still there", ledger.Len())
	}
	if _, err := NewFolder(FolderOptions{Dir: t.TempDir(), Ledger: ledger, Log: quietLog()}); err == nil {
		t.Error("an empty folder read once was accepted")
	}
	other := t.TempDir()
	if err := writeFile(filepath.Join(other, "x.png"), encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFolder(FolderOptions{Dir: other, Ledger: ledger, Log: quietLog()}); err != nil {
		t.Fatal(err)
	}
	if err := open(FolderOptions{}).Next(ctx, &f); !errors.Is(err, ErrEOF) || ledger.Len() != 2 {
		t.Errorf("back on the folder after a refused and another one: read %q (%v), ledger %d files", f.Name, err, ledger.Len())
	}
}

// A file replaced by one of the same size with its modification time kept
// (cp -p, unpacking) is a new part: the inode and change time tell it.
func TestFolderLedgerSeesReplacedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0001.png")
	data := encodePNG(t, testImage(8, 8))
	if err := writeFile(path, data); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ledger := NewFolderLedger()
	ctx := context.Background()
	var f Frame
	fl, err := NewFolder(FolderOptions{Dir: dir, Ledger: ledger, Log: quietLog()})
	if err != nil || fl.Next(ctx, &f) != nil {
		t.Fatalf("first read: %v", err)
	}
	tmp := filepath.Join(dir, ".new")
	if err := writeFile(tmp, data); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		t.Skip("size and modification time alone here")
	}
	fl, err = NewFolder(FolderOptions{Dir: dir, Ledger: ledger, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Next(ctx, &f); err != nil || f.Name != "0001.png" {
		t.Errorf("a replaced file with the same size and time: %q, %v; want it read again", f.Name, err)
	}
}

func TestFolderErrors(t *testing.T) {
	if _, err := NewFolder(FolderOptions{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing folder: want an error")
	}
	if _, err := NewFolder(FolderOptions{Dir: t.TempDir()}); err == nil {
		t.Error("folder without images: want an error")
	}
	if _, err := NewFolder(FolderOptions{Dir: t.TempDir(), Watch: true, Loop: true}); err == nil {
		t.Error("watch and loop: want an error")
	}
	if _, err := NewFolder(FolderOptions{Dir: t.TempDir(), Watch: true}); err != nil {
		t.Errorf("empty watched folder: %v", err)
	}
}

// TestFolderMagneticTile reads the shared data set when this checkout has
// it (clones elsewhere do not).
func TestFolderMagneticTile(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data", "magnetic_tile", "test", "good")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no data set at %s", dir)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	for i := 0; i < 5; i++ {
		if err := fl.Next(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
		g, ok := f.Image.(*image.Gray)
		if !ok {
			t.Fatalf("%s: %T, want gray", f.Name, f.Image)
		}
		if b := g.Bounds(); b.Dx() < 50 || b.Dy() < 50 {
			t.Errorf("%s: size %v", f.Name, b)
		}
	}
	if fl.Counters().DecodeErrors.Load() != 0 {
		t.Error("decode errors on the data set")
	}
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "part.png")
	src := testImage(16, 8)
	if err := writeFile(p, encodePNG(t, src)); err != nil {
		t.Fatal(err)
	}
	s, err := NewFile(FileOptions{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := s.Next(context.Background(), &f); err != nil || f.Name != "part.png" {
		t.Fatalf("%v %q", err, f.Name)
	}
	if d := maxDiff(t, src, f.Image.(*image.RGBA)); d != 0 {
		t.Errorf("differs by %d", d)
	}
	if err := s.Next(context.Background(), &f); !errors.Is(err, ErrEOF) {
		t.Errorf("second Next: %v, want ErrEOF", err)
	}
	loop, err := NewFile(FileOptions{Path: p, Loop: true, Color: ColorGray})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := loop.Next(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.Image.(*image.Gray); !ok || f.Seq != 3 {
		t.Errorf("looped gray file: %T seq %d", f.Image, f.Seq)
	}
	if allocs := testing.AllocsPerRun(10, func() { _ = loop.Next(context.Background(), &f) }); allocs != 0 {
		t.Errorf("looped file allocates %v per frame", allocs)
	}
	if _, err := NewFile(FileOptions{Path: filepath.Join(dir, "none.png")}); err == nil {
		t.Error("missing file: want an error")
	}
	bad := filepath.Join(dir, "bad.png")
	_ = writeFile(bad, []byte("nope"))
	if _, err := NewFile(FileOptions{Path: bad}); err == nil {
		t.Error("corrupt file: want an error")
	}
}

func TestConvertIntoNRGBA(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	src.SetNRGBA(0, 0, color.NRGBA{200, 100, 50, 255})
	src.SetNRGBA(1, 0, color.NRGBA{200, 100, 50, 128})
	out := convertInto(nil, src, ColorAuto).(*image.RGBA)
	if c := out.RGBAAt(0, 0); c != (color.RGBA{200, 100, 50, 255}) {
		t.Errorf("opaque pixel %v", c)
	}
	if c := out.RGBAAt(1, 0); c.A != 128 || c.R != 100 {
		t.Errorf("translucent pixel %v, want premultiplied", c)
	}
}

// TestFolderLoopOfFilesThatNeverDecode: a looped folder whose files are
// all garbage logs each file once, not once per pass, and waits a poll
// interval between passes instead of spinning (a field report: 363,654 log
// lines in 18 s at full CPU).
func TestFolderLoopOfFilesThatNeverDecode(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.jpg", "b.jpg", "c.jpg"} {
		if err := writeFile(filepath.Join(dir, n), []byte("nope")); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	fl, err := NewFolder(FolderOptions{Dir: dir, Loop: true, PollInterval: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var f Frame
	if err := fl.Next(ctx, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next over garbage: %v", err)
	}
	if n := strings.Count(logs.String(), "file skipped"); n != 3 {
		t.Errorf("%d log lines for 3 bad files:\n%s", n, logs.String())
	}
	if n := fl.Counters().DecodeErrors.Load(); n < 3 || n > 3*12 {
		t.Errorf("%d decode errors in 0.5 s with passes 50 ms apart", n)
	}
}

// TestFolderWatchRereadsAFileCompletedLater: a file that a writer paused
// over (half a PNG, still for longer than a poll) fails to decode; once it
// is complete it is read, not lost.
func TestFolderWatchRereadsAFileCompletedLater(t *testing.T) {
	dir := t.TempDir()
	data := encodePNG(t, testImage(16, 16))
	path := filepath.Join(dir, "part.png")
	if err := writeFile(path, data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 10 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		for fl.Counters().DecodeErrors.Load() == 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // a new modification time
		_ = writeFile(path, data)
	}()
	var f Frame
	if err := fl.Next(ctx, &f); err != nil || f.Name != "part.png" {
		t.Fatalf("the completed file: %v %q", err, f.Name)
	}
}

// With ReportSkips a watched folder answers a file that fails to decode or
// stays empty only once it has been still for Settle: a copy that paused
// half-way is read again when complete and answered once, as the part it
// is; a corrupt file and an empty one are answered after Settle, each
// once.
func TestFolderWatchSettlesBeforeAnswering(t *testing.T) {
	dir := t.TempDir()
	data := encodePNG(t, testImage(16, 16))
	written := time.Now()
	half := filepath.Join(dir, "a-half.png")
	if err := writeFile(half, data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"b-corrupt.png": []byte("not a PNG"), "c-empty.png": nil} {
		if err := writeFile(filepath.Join(dir, name), b); err != nil {
			t.Fatal(err)
		}
	}
	const settle = 400 * time.Millisecond
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 10 * time.Millisecond, Log: quietLog(), ReportSkips: true, Settle: settle})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	go func() {
		time.Sleep(settle / 2) // the writer pauses, then completes the file
		_ = writeFile(half, data)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	for len(got) < 3 {
		var f Frame
		err := fl.Next(ctx, &f)
		var sf *SkippedFileError
		switch {
		case errors.As(err, &sf):
			if el := time.Since(written); el < settle-20*time.Millisecond { // file times are a little coarse
				t.Errorf("%s answered after %v, before it was still for %v", sf.Name, el, settle)
			}
			got = append(got, sf.Name+" skipped ("+sf.Reason+")")
		case err != nil:
			t.Fatalf("after %q: %v", got, err)
		default:
			got = append(got, f.Name)
		}
	}
	slices.Sort(got)
	want := []string{"a-half.png", "b-corrupt.png skipped (unreadable or corrupt)", "c-empty.png skipped (empty)"}
	if !slices.Equal(got, want) {
		t.Errorf("answered %q, want %q", got, want)
	}
	if c := fl.Counters().Snapshot(); c.DecodeErrors != 2 || c.Frames != 1 {
		t.Errorf("counters %+v: want 2 decode errors (the corrupt and the empty file) and 1 frame", c)
	}
}

// A ledger kept in a file goes on across a restart of the process: the
// files handed out before are skipped, a changed one is read again; lines
// it cannot read (a crash cut the last one short) cost at most their
// files being inspected again; a file it cannot write leaves it in memory.
func TestFolderLedgerFile(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	for _, n := range []string{"0001.png", "0002.png", "0003.png"} {
		if err := writeFile(filepath.Join(dir, n), encodePNG(t, testImage(8, 8))); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(state, "ledger.jsonl")
	ctx := context.Background()
	read := func(l *FolderLedger) []string {
		t.Helper()
		fl, err := NewFolder(FolderOptions{Dir: dir, Ledger: l, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var f Frame
		for fl.Next(ctx, &f) == nil {
			got = append(got, f.Name)
		}
		return got
	}
	first := OpenFolderLedger(path, quietLog())
	fl, err := NewFolder(FolderOptions{Dir: dir, Ledger: first, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	for range 2 {
		if err := fl.Next(ctx, &f); err != nil {
			t.Fatal(err)
		}
	}
	first.Close()
	// A crash cut the last line short.
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(`{"dir":"` + dir + `","name":"0003.p`)
	fh.Close()
	if got := read(OpenFolderLedger(path, quietLog())); strings.Join(got, " ") != "0003.png" {
		t.Errorf("after a restart: read %v, want only 0003.png", got)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "0002.png"), later, later); err != nil {
		t.Fatal(err)
	}
	if got := read(OpenFolderLedger(path, quietLog())); strings.Join(got, " ") != "0002.png" {
		t.Errorf("after a change to 0002.png: read %v, want it alone", got)
	}
	// Garbage in the middle: its files only are read again.
	if err := os.WriteFile(path, []byte("not json\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := read(OpenFolderLedger(path, quietLog())); len(got) != 3 {
		t.Errorf("a ledger file of garbage: read %v, want all 3", got)
	}
	// A folder it cannot write in: kept in memory.
	mem := OpenFolderLedger(filepath.Join(state, "no-such-dir", "ledger.jsonl"), quietLog())
	if got := read(mem); len(got) != 3 || len(read(mem)) != 0 {
		t.Errorf("unwritable ledger: first read %v, the second should read nothing", got)
	}
}

// With ReportSkips a skipped file is said, in its place among the files,
// once: the next call goes on with the next file, and a looped folder does
// not say it again on its next pass.
func TestFolderReportsSkips(t *testing.T) {
	dir, _ := folderFixture(t)
	fl, err := NewFolder(FolderOptions{Dir: dir, Log: quietLog(), ReportSkips: true, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	ctx := context.Background()
	var f Frame
	var got []string
	for range 8 { // two passes of three images and the corrupt file
		err := fl.Next(ctx, &f)
		var sf *SkippedFileError
		switch {
		case errors.As(err, &sf):
			if sf.Name != f.Name || sf.Reason != "unreadable or corrupt" || f.Time.IsZero() {
				t.Errorf("skip %+v, frame name %q time %v", sf, f.Name, f.Time)
			}
			got = append(got, "skipped "+sf.Name)
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, f.Name)
		}
	}
	want := "a_photo.JPG b_color.png c_gray.png skipped d_broken.jpg a_photo.JPG b_color.png c_gray.png a_photo.JPG"
	if strings.Join(got, " ") != want {
		t.Errorf("read %q, want %q", strings.Join(got, " "), want)
	}
}

// A watched folder reads a file again when it is replaced under a name it
// has read: overwritten in place, or another file renamed over it (the
// upload the README recommends). A file left as it was is read once. (A
// new user's trial: both replacements were skipped until a restart, and
// the parts they showed got no result.)
func TestFolderWatchRereadsAReplacedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "part.png")
	if err := writeFile(path, encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "other.png"), encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Ledger: NewFolderLedger(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var f Frame
	next := func(want string, size int) {
		t.Helper()
		err := fl.Next(ctx, &f)
		if err != nil || f.Name != want || f.Image.Bounds().Dx() != size {
			t.Fatalf("Next: %v %q, want %s of width %d", err, f.Name, want, size)
		}
	}
	next("other.png", 8)
	next("part.png", 8)
	// Overwritten in place with another image.
	if err := writeFile(path, encodePNG(t, testImage(12, 12))); err != nil {
		t.Fatal(err)
	}
	next("part.png", 12)
	// Renamed over it.
	tmp := filepath.Join(dir, ".upload")
	if err := writeFile(tmp, encodePNG(t, testImage(16, 16))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	next("part.png", 16)
	// Its mode changed after the read (a copy tool's chmod): the same
	// part, not read again.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing changed since: nothing more.
	short, cancel2 := context.WithTimeout(ctx, 60*time.Millisecond)
	defer cancel2()
	if err := fl.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("idle watch: %v %q", err, f.Name)
	}
}

// A watched folder that cannot be listed (a network share that dropped, a
// folder moved away) is an ErrUnavailable naming it, which the daemon
// retries as it does an unplugged camera's; when it is back the source
// goes on with the new files and not the old ones. (A trial: the daemon
// exited.)
func TestFolderWatchSurvivesTheFolderGoingAway(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "watch")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "a.png"), encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var f Frame
	if err := fl.Next(ctx, &f); err != nil || f.Name != "a.png" {
		t.Fatalf("first file: %v %q", err, f.Name)
	}
	gone := filepath.Join(parent, "gone")
	if err := os.Rename(dir, gone); err != nil {
		t.Fatal(err)
	}
	err = fl.Next(ctx, &f)
	if !errors.Is(err, ErrUnavailable) || !Temporary(err) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("folder gone: %v, want a temporary ErrUnavailable naming %s", err, dir)
	}
	// An empty folder at its place for a while (a network share's mount
	// point while it is down) forgets nothing: when the folder is back,
	// a.png is not read again (a trial: every file answered again).
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
		if err := fl.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("empty folder: %v %q", err, f.Name)
		}
		cancel2()
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(gone, dir); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "b.png"), encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	for {
		err := fl.Next(ctx, &f)
		if errors.Is(err, ErrUnavailable) {
			continue // polled before the folder came back
		}
		if err != nil || f.Name != "b.png" {
			t.Fatalf("after the folder came back: %v %q, want b.png", err, f.Name)
		}
		break
	}
}

// A symbolic link to nothing in a watched folder is answered once as
// unreadable, naming it, and not read again at every poll (a trial: it was
// passed over without a word).
func TestFolderWatchAnswersADanglingLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "part.jpg")
	if err := os.Symlink(filepath.Join(dir, "gone.png"), link); err != nil {
		t.Fatal(err)
	}
	ledger := NewFolderLedger()
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, ReportSkips: true, PollInterval: 5 * time.Millisecond, Settle: 50 * time.Millisecond, Ledger: ledger, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var f Frame
	var sf *SkippedFileError
	if err := fl.Next(ctx, &f); !errors.As(err, &sf) || sf.Name != "part.jpg" || sf.Reason != "unreadable or corrupt" {
		t.Fatalf("dangling link: %v, want a SkippedFileError naming part.jpg", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 60*time.Millisecond)
	defer cancel2()
	if err := fl.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("answered again: %v", err)
	}
	// A restart (a new source on the same ledger) does not answer it again.
	again, err := NewFolder(FolderOptions{Dir: dir, Watch: true, ReportSkips: true, PollInterval: 5 * time.Millisecond, Settle: 50 * time.Millisecond, Ledger: ledger, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	short2, cancel3 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel3()
	if err := again.Next(short2, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("answered again after a restart: %v", err)
	}
	// A real file put under the name (within one poll) is read (a trial:
	// the name stayed dead until a restart).
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(link, encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	if err := fl.Next(ctx, &f); err != nil || f.Name != "part.jpg" {
		t.Errorf("the file put under the link's name: %v %q", err, f.Name)
	}
}

// A symbolic link to an image is read once, as the image it leads to, and
// again when that image changes: the poll compares the target's stamp, as
// the read took it (the link's own stamp differs and would read it at
// every poll).
func TestFolderWatchReadsALinkOnce(t *testing.T) {
	dir, store := t.TempDir(), t.TempDir()
	target := filepath.Join(store, "img.png")
	if err := writeFile(target, encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "part.png")); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var f Frame
	if err := fl.Next(ctx, &f); err != nil || f.Name != "part.png" {
		t.Fatalf("the link: %v %q", err, f.Name)
	}
	short, cancel2 := context.WithTimeout(ctx, 60*time.Millisecond)
	defer cancel2()
	if err := fl.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read again unchanged: %v %q", err, f.Name)
	}
	if err := writeFile(target, encodePNG(t, testImage(12, 12))); err != nil {
		t.Fatal(err)
	}
	if err := fl.Next(ctx, &f); err != nil || f.Image.Bounds().Dx() != 12 {
		t.Errorf("the changed target: %v", err)
	}
}

// A name replaced by delete-then-create over and over (a writer that does
// it that way) is never stuck: its last version is read (a review: a name
// missing when stamped and back when opened was stamped as "queued" and
// every later version of it ignored).
func TestFolderWatchNameRecreatedIsNeverStuck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "part.png")
	small := encodePNG(t, testImage(8, 8))
	if err := os.WriteFile(path, small, 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 200 * time.Microsecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			os.Remove(path)
			os.WriteFile(path, small, 0o644)
		}
	}()
	var f Frame
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_ = fl.Next(ctx, &f)
		cancel()
	}
	stop.Store(true)
	<-done
	// The last version, different from every one before: read.
	if err := writeFile(path, encodePNG(t, testImage(12, 12))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		if err := fl.Next(ctx, &f); err != nil {
			t.Fatalf("the last version of a name replaced many times was not read: %v", err)
		}
		if f.Image.Bounds().Dx() == 12 {
			return
		}
	}
}

// One rule decides whether a file was changed, while the source runs and
// across a restart (the ledger): a chmod after the read is the same part,
// a rewrite in place that keeps the size and puts the modification time
// back is a new one, told by the content's checksum (a review: the poll
// and the ledger disagreed, and such a rewrite was missed).
func TestFolderChangedByOneRule(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "part.bmp")
	a, b := bmpOf(t, 10), bmpOf(t, 200)
	if len(a) != len(b) {
		t.Fatal("the two versions differ in size")
	}
	if err := os.WriteFile(path, a, 0o644); err != nil {
		t.Fatal(err)
	}
	ledger := NewFolderLedger()
	opts := FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Ledger: ledger, Log: quietLog()}
	fl, err := NewFolder(opts)
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := nextWithin(fl, &f, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := nextWithin(fl, &f, 150*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after a chmod: %v, %q read again", err, f.Name)
	}
	again, err := NewFolder(opts) // a restart: the ledger decides
	if err != nil {
		t.Fatal(err)
	}
	if err := nextWithin(again, &f, 150*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after a chmod and a restart: %v, %q read again", err, f.Name)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil { // in place: the same inode
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := nextWithin(again, &f, 2*time.Second); err != nil {
		t.Fatalf("new content of the same size and modification time not read: %v", err)
	}
	if got := f.Image.At(0, 0); got != (color.RGBA{200, 0, 0, 255}) {
		t.Errorf("read %v, want the new content", got)
	}
	if err := nextWithin(again, &f, 150*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read twice: %v", err)
	}
}

// A symbolic link is judged by the file it leads to while that is written:
// it is read once the file stops growing, not half-written (a review: the
// link's own size never changes, so it was queued after one poll).
func TestFolderWatchWaitsForALinksTarget(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "part.png")
	data := encodePNG(t, testImage(16, 16))
	half := len(data) / 2
	if err := os.WriteFile(target, data[:half], 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 10 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "part.png")); err != nil {
		t.Fatal(err)
	}
	// Polled by hand: the file grows between two listings.
	if err := fl.poll(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, data[:half+half/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fl.poll(); err != nil {
		t.Fatal(err)
	}
	if len(fl.queue) != 0 {
		t.Fatalf("queued %v while the file it leads to grows", fl.queue)
	}
	if err := os.WriteFile(target, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var f Frame
	if err := fl.Next(ctx, &f); err != nil {
		t.Fatal(err)
	}
	if n := fl.Counters().DecodeErrors.Load(); n != 0 {
		t.Errorf("%d decode errors: the link was read before its file was whole", n)
	}
}

func bmpOf(t *testing.T, c uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range img.Pix {
		img.Pix[i] = c
	}
	img.Set(0, 0, color.RGBA{c, 0, 0, 255})
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A file name that is not UTF-8 keeps its record across a restart of the
// process (a review: encoding/json wrote U+FFFD for its bad byte, so the
// file did not match its record and was inspected again).
func TestFolderLedgerKeepsNamesThatAreNotUTF8(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "in\xfe")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "p\xff.png"), encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	var f Frame
	for run := range 2 {
		l := OpenFolderLedger(path, quietLog())
		fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Ledger: l, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), map[int]time.Duration{0: 2 * time.Second, 1: 150 * time.Millisecond}[run])
		err = fl.Next(ctx, &f)
		cancel()
		switch {
		case run == 0 && (err != nil || f.Name != "p\xff.png"):
			t.Fatalf("first start: %v %q", err, f.Name)
		case run == 1 && !errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("after a restart %q was inspected again: %v", f.Name, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A symbolic link to a named pipe is answered as unreadable, not opened:
// the open would wait for a writer, and the folder source with it.
func TestFolderLinkToAPipeDoesNotBlock(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	fifo := filepath.Join(elsewhere, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	if err := os.Symlink(fifo, filepath.Join(dir, "a.png")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "b.png"), encodePNG(t, testImage(16, 16))); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var f Frame
	if err := fl.Next(ctx, &f); err != nil || f.Name != "b.png" {
		t.Fatalf("%v %q, want b.png after the link to a pipe", err, f.Name)
	}
	if n := fl.Counters().DecodeErrors.Load(); n != 1 {
		t.Errorf("%d decode errors, want the link counted once", n)
	}
	// Answered as unreadable, not as empty (a review: its size is 0).
	rs, err := NewFolder(FolderOptions{Dir: dir, ReportSkips: true, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	var skipped *SkippedFileError
	if err := rs.Next(ctx, &f); !errors.As(err, &skipped) || skipped.Reason != "unreadable or corrupt" || !strings.Contains(err.Error(), "a.png is a named pipe, not an image file") {
		t.Errorf("link to a pipe: %v", err)
	}
}

// grayBMP is an n×n BMP of one grey level.
func grayBMP(t *testing.T, c uint8, n int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, n, n))
	for i := range img.Pix {
		img.Pix[i] = c
	}
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A rewrite in place (the same size, the modification time put back)
// while the file is decoded is read again whole: the checksum is taken
// before the decode, so the new content does not match it (a review: the
// checksum taken after the decode was the new content's, and a torn frame
// stood for it).
func TestFolderRewriteDuringTheDecodeIsReadAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("9 MB files rewritten during their decode, 4 times")
	}
	a, b := grayBMP(t, 10, 3000), grayBMP(t, 200, 3000)
	for trial := range 4 {
		dir := t.TempDir()
		path := filepath.Join(dir, "part.bmp")
		if err := os.WriteFile(path, a, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		frames := make(chan [2]uint8, 16)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			defer close(frames)
			var f Frame
			for fl.Next(ctx, &f) == nil {
				bd := f.Image.Bounds()
				first := color.GrayModel.Convert(f.Image.At(bd.Min.X, bd.Min.Y)).(color.Gray)
				last := color.GrayModel.Convert(f.Image.At(bd.Max.X-1, bd.Max.Y-1)).(color.Gray)
				frames <- [2]uint8{first.Y, last.Y}
			}
		}()
		time.Sleep(time.Duration(5+trial*10) * time.Millisecond)
		fh, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fh.WriteAt(b, 0)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		// The new content whole must come, however slow the decode (a
		// loaded machine, -race): wait for it, up to a bound.
		var last [2]uint8
		deadline := time.After(20 * time.Second)
	wait:
		for last != [2]uint8{200, 200} {
			select {
			case last = <-frames:
			case <-deadline:
				break wait
			}
		}
		cancel()
		for range frames {
		}
		if last != [2]uint8{200, 200} {
			t.Errorf("trial %d: the last frame read shows %v, not the new content whole", trial, last)
		}
	}
}

// A file made unreadable after it was inspected (a chmod) is the part it
// was, not answered again; a file that could not be read and is made
// readable by a chmod is read (a review: the first was answered twice, the
// second never read). Root reads anything: run as another user.
func TestFolderChmodTakingOrGivingReadPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads anything")
	}
	dir := t.TempDir()
	read, unread := filepath.Join(dir, "a.bmp"), filepath.Join(dir, "b.bmp")
	if err := os.WriteFile(read, bmpOf(t, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, ReportSkips: true, Settle: 10 * time.Millisecond, PollInterval: 5 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := nextWithin(fl, &f, 2*time.Second); err != nil || f.Name != "a.bmp" {
		t.Fatalf("%v %q", err, f.Name)
	}
	if err := os.Chmod(read, 0); err != nil {
		t.Fatal(err)
	}
	if err := nextWithin(fl, &f, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a file made unreadable after it was inspected: %v (%q): answered again", err, f.Name)
	}
	if err := os.WriteFile(unread, bmpOf(t, 20), 0); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute) // settled: answered as unreadable at once
	if err := os.Chtimes(unread, old, old); err != nil {
		t.Fatal(err)
	}
	var skipped *SkippedFileError
	if err := nextWithin(fl, &f, 2*time.Second); !errors.As(err, &skipped) || skipped.Name != "b.bmp" {
		t.Fatalf("an unreadable file: %v", err)
	}
	if err := os.Chmod(unread, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := nextWithin(fl, &f, 2*time.Second); err != nil || f.Name != "b.bmp" {
		t.Errorf("made readable by a chmod: %v %q, want it read", err, f.Name)
	}
}

// A start on a watched folder that is not there yet, or is an empty mount
// point, waits for it and forgets nothing: when the files come back, the
// ones inspected before are not inspected again (a trial: a restart while
// the share was down answered every file again; a folder missing at start
// ended the start).
func TestFolderWatchStartsBeforeItsShare(t *testing.T) {
	parent := t.TempDir()
	dir, away := filepath.Join(parent, "share"), filepath.Join(parent, "away")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "a.png"), encodePNG(t, testImage(16, 16))); err != nil {
		t.Fatal(err)
	}
	ledger := NewFolderLedger()
	opts := FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Ledger: ledger, Log: quietLog()}
	fl, err := NewFolder(opts)
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := nextWithin(fl, &f, 2*time.Second); err != nil || f.Name != "a.png" {
		t.Fatalf("%v %q", err, f.Name)
	}
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	for _, empty := range []bool{false, true} { // not there; an empty mount point
		if empty {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		again, err := NewFolder(opts) // a restart
		if err != nil {
			t.Fatalf("a start with the folder away (empty %v): %v", empty, err)
		}
		err = nextWithin(again, &f, 100*time.Millisecond)
		if !empty && !errors.Is(err, ErrUnavailable) || empty && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("folder away (empty %v): %v", empty, err)
		}
		if empty {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(away, dir); err != nil {
				t.Fatal(err)
			}
			if err := writeFile(filepath.Join(dir, "b.png"), encodePNG(t, testImage(16, 16))); err != nil {
				t.Fatal(err)
			}
			for {
				err := nextWithin(again, &f, 2*time.Second)
				if errors.Is(err, ErrUnavailable) {
					continue
				}
				if err != nil || f.Name != "b.png" {
					t.Fatalf("the share back: %v %q, want b.png alone", err, f.Name)
				}
				break
			}
			if err := nextWithin(again, &f, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("then %v %q: a file inspected before read again", err, f.Name)
			}
		}
	}
}

// nextWithin is src's next frame into f, or the error of a wait of d.
func nextWithin(src *Folder, f *Frame, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return src.Next(ctx, f)
}

// TestFolderWatchAnswersALinkToAFolderOnce: a symbolic link among a
// watched folder's files that leads to a folder (part.jpg → the watched
// folder itself, or a share's folder) is answered once as unreadable; it
// was stamped by the folder it leads to, whose time moves with every file
// put in it, so every part that arrived answered it again as a new one.
func TestFolderWatchAnswersALinkToAFolderOnce(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, l := range [][2]string{{dir, "self.jpg"}, {other, "other.jpg"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, ReportSkips: true, PollInterval: 5 * time.Millisecond, Settle: 50 * time.Millisecond, Ledger: NewFolderLedger(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	for range 2 {
		var sf *SkippedFileError
		if err := nextWithin(fl, &f, 5*time.Second); !errors.As(err, &sf) {
			t.Fatalf("a link to a folder: %v, want a SkippedFileError", err)
		}
	}
	time.Sleep(20 * time.Millisecond) // the folders' times move on
	if err := writeFile(filepath.Join(other, "x.txt"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "b.png"), encodePNG(t, testImage(8, 8))); err != nil {
		t.Fatal(err)
	}
	for {
		err := nextWithin(fl, &f, 500*time.Millisecond)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil || f.Name != "b.png" {
			t.Fatalf("after a file was put in the folders the links lead to: %v %q, want only b.png", err, f.Name)
		}
	}
}
