package capture

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/gif"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// The decompression bombs of ../shared/cases/image-bombs: headers that
// declare 200000×200000 (PNG, 69 bytes) and 100000×100000 (BMP, 70 bytes)
// pixels and carry no data. Decoding them used to end the process with
// "fatal error: runtime: out of memory".
const (
	pngBomb = "testdata/png-200000x200000-gray.png"
	bmpBomb = "testdata/bmp-100000x100000.bmp"
)

func readTestdata(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sharedCase is a file of ../shared/cases beside the checkout, or skips
// the test when it is absent (a user's clone).
func sharedCase(t *testing.T, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("module root not found")
		}
		dir = filepath.Dir(dir)
	}
	p := filepath.Join(dir, "..", "shared", "cases", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not found beside the checkout", p)
	}
	return p
}

// allocated is the memory allocated on the heap while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// tiffBomb is a real TIFF whose header is rewritten to declare w×h pixels
// (ImageWidth and ImageLength, tags 256 and 257; at most 65535 each, as
// the encoder writes them as SHORT).
func tiffBomb(t testing.TB, w, h uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2)), nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if string(b[:4]) != "II*\x00" {
		t.Fatalf("tiff header %q", b[:4])
	}
	ifd := int(binary.LittleEndian.Uint32(b[4:]))
	n := int(binary.LittleEndian.Uint16(b[ifd:]))
	set := 0
	for i := range n {
		e := b[ifd+2+12*i:]
		tag, typ := binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:])
		v, ok := map[uint16]uint32{256: w, 257: h}[tag]
		if !ok {
			continue
		}
		switch typ {
		case 3: // SHORT
			binary.LittleEndian.PutUint16(e[8:], uint16(min(v, 65535)))
		case 4: // LONG
			binary.LittleEndian.PutUint32(e[8:], v)
		default:
			t.Fatalf("tag %d has type %d", tag, typ)
		}
		set++
	}
	if set != 2 {
		t.Fatal("width and height tags not found")
	}
	return b
}

// tiffStripBomb is a Deflate TIFF of 8×8 pixels whose single strip
// declares RowsPerStrip 4294967295 and holds 32 MB of zeros compressed to
// 32 KB: golang.org/x/image/tiff inflates a strip up to its declared size
// (measured: a 261 KB file of this kind with 256 MB inside made it
// allocate 1 GB), whatever the image's own size.
func tiffStripBomb(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 32<<20))
	zw.Close()
	off := len(b)
	b = append(b, z.Bytes()...)
	ifd := int(binary.LittleEndian.Uint32(b[4:]))
	for i := range int(binary.LittleEndian.Uint16(b[ifd:])) {
		e := b[ifd+2+12*i:]
		switch binary.LittleEndian.Uint16(e) {
		case 273: // StripOffsets
			binary.LittleEndian.PutUint16(e[2:], 4)
			binary.LittleEndian.PutUint32(e[8:], uint32(off))
		case 279: // StripByteCounts
			binary.LittleEndian.PutUint16(e[2:], 4)
			binary.LittleEndian.PutUint32(e[8:], uint32(z.Len()))
		case 278: // RowsPerStrip, as LONG
			binary.LittleEndian.PutUint16(e[2:], 4)
			binary.LittleEndian.PutUint32(e[8:], 0xffffffff)
		}
	}
	return b
}

// gifBomb is a GIF whose logical screen is 65535×65535 (4.3 gigapixels):
// header, screen descriptor, a 2-colour table, then a 1×1 frame.
func gifBomb() []byte {
	b := []byte("GIF89a\xff\xff\xff\xff\x80\x00\x00\x00\x00\x00\xff\xff\xff")
	return append(b, ",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;"...)
}

// jpegBomb is a real JPEG whose SOF is rewritten to declare w×h pixels.
func jpegBomb(t testing.TB, w, h uint16) []byte {
	t.Helper()
	b := encodeJPEG(t, testImage(16, 16))
	i := bytes.Index(b, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

func TestDecodeImageRefusesBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("decoders alone, no goroutines: 35 s under -race (make test's race run is -short)")
	}
	for _, c := range []struct {
		name, format string
		data         []byte
		w, h         int
	}{
		{pngBomb, "png", readTestdata(t, pngBomb), 200000, 200000},
		{bmpBomb, "bmp", readTestdata(t, bmpBomb), 100000, 100000},
		{"tiff bomb", "tiff", tiffBomb(t, 65535, 65535), 65535, 65535},
		{"gif bomb", "gif", gifBomb(), 65535, 65535},
		{"jpeg bomb", "jpeg", jpegBomb(t, 65500, 65500), 65500, 65500},
		{"just over", "png", encodePNG(t, image.NewGray(image.Rect(0, 0, 5001, 8000))), 5001, 8000},
		{"tiff strip bomb", "tiff", tiffStripBomb(t), 8, 0xffffffff},
	} {
		t.Run(c.name, func(t *testing.T) {
			var img image.Image
			var err error
			n := allocated(func() { img, _, err = DecodeImage(bytes.NewReader(c.data), c.name, 40_000_000) })
			var tl *ImageTooLargeError
			if img != nil || !errors.Is(err, ErrImageTooLarge) || !errors.As(err, &tl) {
				t.Fatalf("got %v, %v; want ErrImageTooLarge", img, err)
			}
			if tl.Width != int64(c.w) || tl.Height != int64(c.h) || tl.Format != c.format || tl.Limit != 40_000_000 || tl.Name != c.name {
				t.Errorf("error fields %+v", tl)
			}
			for _, want := range []string{c.name, c.format, "40000000 (capture.max_pixels)"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q lacks %q", err, want)
				}
			}
			// The header alone was read: a few buffers, nowhere near the
			// gigabytes the header asks for.
			if n > 1<<20 {
				t.Errorf("refusing it allocated %d bytes", n)
			}
		})
	}
	// The exact message of the field case.
	_, _, err := DecodeImageFile(pngBomb, 0)
	want := "image " + pngBomb + ": png header declares 200000×200000 = 40000000000 pixels, over the limit of 40000000 (capture.max_pixels)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// The 400-megapixel PNG of the field report is a real, decodable image of
// 389 KB: it is refused from its header, with memory flat.
func TestDecodeImageRefusesDecodable400MP(t *testing.T) {
	path := sharedCase(t, "image-bombs/png-20000x20000-decodable.png")
	var err error
	n := allocated(func() { _, _, err = DecodeImageFile(path, 0) })
	if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "20000×20000") {
		t.Fatalf("got %v", err)
	}
	if n > 1<<20 {
		t.Errorf("refusing it allocated %d bytes (decoding it takes 1.35 GB)", n)
	}
	cfg, format, err := CheckImageFile(path, 0)
	if !errors.Is(err, ErrImageTooLarge) || cfg.Width != 20000 || format != "png" {
		t.Errorf("CheckImageFile: %+v %s %v", cfg, format, err)
	}
}

// Every format the decoders accept decodes up to the limit, exactly.
func TestDecodeImageFormatsAtTheLimit(t *testing.T) {
	src := testImage(30, 20)
	enc := map[string]func(io.Writer, image.Image) error{
		"png":  png.Encode,
		"bmp":  bmp.Encode,
		"tiff": func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) },
		"gif":  func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) },
		"jpeg": func(w io.Writer, m image.Image) error { _, err := w.Write(encodeJPEG(t, m)); return err },
	}
	dir := t.TempDir()
	for format, e := range enc {
		var b bytes.Buffer
		if err := e(&b, src); err != nil {
			t.Fatal(err)
		}
		img, got, err := DecodeImage(bytes.NewReader(b.Bytes()), format, 600)
		if err != nil || got != format || img.Bounds().Dx() != 30 || img.Bounds().Dy() != 20 {
			t.Errorf("%s at the limit: %v %s %v", format, img, got, err)
		}
		if _, _, err := DecodeImage(bytes.NewReader(b.Bytes()), format, 599); !errors.Is(err, ErrImageTooLarge) {
			t.Errorf("%s one pixel over: %v", format, err)
		}
		// From a file too, and from a reader that starts mid-stream.
		p := filepath.Join(dir, "x."+format)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if img, _, err := DecodeImageFile(p, 0); err != nil || img.Bounds().Dx() != 30 {
			t.Errorf("%s file: %v", format, err)
		}
		r := bytes.NewReader(append([]byte("skip"), b.Bytes()...))
		r.Seek(4, io.SeekStart)
		if img, _, err := DecodeImage(r, format, 0); err != nil || img.Bounds().Dy() != 20 {
			t.Errorf("%s at an offset: %v", format, err)
		}
	}
	for _, c := range []struct {
		data []byte
		want string
	}{
		{[]byte("not an image"), "image: unknown format"},
		{tiffBomb(t, 0, 7), "want a positive width and height"},
		{encodePNG(t, src)[:60], "decode"},
	} {
		if _, _, err := DecodeImage(bytes.NewReader(c.data), "bad", 0); err == nil || errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

// A folder holding bombs of every kind skips each one with one log line
// naming it, counts it, and goes on to the good files, in a plain and in a
// watched folder (the field case: a bomb dropped into a watched folder).
func TestFolderSkipsBombs(t *testing.T) {
	good := encodePNG(t, testImage(40, 30))
	var tb bytes.Buffer
	if err := tiff.Encode(&tb, testImage(40, 30), &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	goodTIFF := tb.Bytes()
	bombs := map[string][]byte{
		"b_png-bomb.png":  readTestdata(t, pngBomb),
		"c_bmp-bomb.bmp":  readTestdata(t, bmpBomb),
		"d_tiff-bomb.tif": tiffBomb(t, 65535, 40000),
		"e_gif-bomb.gif":  gifBomb(),
		"g_strips.tiff":   tiffStripBomb(t),
	}
	t.Run("listed", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(filepath.Join(dir, "a_good.png"), good)
		writeFile(filepath.Join(dir, "f_good.png"), good)
		writeFile(filepath.Join(dir, "h_good.tif"), goodTIFF)
		for name, b := range bombs {
			writeFile(filepath.Join(dir, name), b)
		}
		var log bytes.Buffer // written only inside Next, read after it
		fl, err := NewFolder(FolderOptions{Dir: dir, Log: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		var f Frame
		var names []string
		n := allocated(func() {
			for {
				if err := fl.Next(context.Background(), &f); err != nil {
					if !errors.Is(err, ErrEOF) {
						t.Fatal(err)
					}
					break
				}
				names = append(names, f.Name)
			}
		})
		if strings.Join(names, " ") != "a_good.png f_good.png h_good.tif" {
			t.Errorf("frames %v", names)
		}
		if c := fl.Counters().Snapshot(); c.TooLarge != 5 || c.DecodeErrors != 0 || c.Frames != 3 {
			t.Errorf("counters %+v", c)
		}
		lines := strings.Split(strings.TrimSpace(log.String()), "\n")
		if len(lines) != 5 {
			t.Fatalf("%d log lines, want one per bomb:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		for i, name := range []string{"b_png-bomb.png", "c_bmp-bomb.bmp", "d_tiff-bomb.tif", "e_gif-bomb.gif", "g_strips.tiff"} {
			if !strings.Contains(lines[i], "file="+name) || !strings.Contains(lines[i], "reason=\"too large\"") || !strings.Contains(lines[i], "capture.max_pixels") {
				t.Errorf("log line %q", lines[i])
			}
		}
		if n > 8<<20 {
			t.Errorf("reading the folder allocated %d bytes", n)
		}
	})
	t.Run("watched", func(t *testing.T) {
		dir := t.TempDir()
		fl, err := NewFolder(FolderOptions{Dir: dir, Watch: true, PollInterval: 5 * time.Millisecond, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for name, b := range bombs {
			writeFile(filepath.Join(dir, name), b)
		}
		writeFile(filepath.Join(dir, "z_good.png"), good)
		var f Frame
		if err := fl.Next(ctx, &f); err != nil || f.Name != "z_good.png" {
			t.Fatalf("after the bombs: %v %q", err, f.Name)
		}
		if c := fl.Counters().Snapshot(); c.TooLarge != 5 {
			t.Errorf("counters %+v", c)
		}
	})
}

// The file source refuses a bomb at once, naming it: a single-file source
// has nothing else to inspect.
func TestFileRefusesBomb(t *testing.T) {
	_, err := NewFile(FileOptions{Path: bmpBomb})
	if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), bmpBomb) || !strings.Contains(err.Error(), "100000×100000") {
		t.Fatalf("got %v", err)
	}
	p := filepath.Join(t.TempDir(), "ok.png")
	writeFile(p, encodePNG(t, testImage(40, 30)))
	if _, err := NewFile(FileOptions{Path: p, MaxPixels: 1199}); !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("under a small limit: %v", err)
	}
	if _, err := NewFile(FileOptions{Path: p, MaxPixels: 1200}); err != nil {
		t.Error(err)
	}
}

// An MJPEG frame whose SOF declares more than the limit is refused before
// decoding, counted as too large, and the camera goes on.
func TestCameraRefusesHugeMJPEGFrame(t *testing.T) {
	var d MJPEGDecoder
	var err error
	bomb := jpegBomb(t, 60000, 60000)
	noDHT, _ := stripDHT(t, bomb)
	for _, frame := range [][]byte{bomb, noDHT} {
		n := allocated(func() { _, err = d.Decode(nil, frame, ColorAuto) })
		if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "MJPEG frame") || !strings.Contains(err.Error(), "60000×60000") {
			t.Fatalf("got %v", err)
		}
		if n > 64<<10 {
			t.Errorf("refusing a frame allocated %d bytes", n)
		}
	}
	d.MaxPixels = 48*32 - 1
	if _, err := d.Decode(nil, encodeJPEG(t, testImage(48, 32)), ColorAuto); !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("a 48×32 frame under a limit of %d: %v", d.MaxPixels, err)
	}

	w := NewFakeCamera()
	w.oneAtATime = true
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatMJPEG}})
	good := encodeJPEG(t, testImage(48, 32))
	w.Push(bomb, noDHT, good)
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil || f.Image.Bounds().Dx() != 48 {
		t.Fatalf("after the huge frames: %v", err)
	}
	if got := c.Counters().Snapshot(); got.TooLarge != 2 || got.DecodeErrors != 0 || got.Frames != 1 {
		t.Errorf("counters %+v", got)
	}
}

// Folder and file sources are lossless, cameras and the synthetic source
// are not, and every wrapper says what the source it wraps says.
func TestLossless(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.png")
	writeFile(p, encodePNG(t, testImage(40, 30)))
	fl, err := NewFolder(FolderOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	file, err := NewFile(FileOptions{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	syn, err := NewSynthetic(SyntheticOptions{Width: 32, Height: 32})
	if err != nil {
		t.Fatal(err)
	}
	cam := newTestCamera(t, NewFakeCamera(), CameraOptions{})
	wrap := func(src Source) []Source {
		tr, err := NewTransform(src, TransformOptions{Rotate: 90})
		if err != nil {
			t.Fatal(err)
		}
		th, err := NewThrottle(src, 5)
		if err != nil {
			t.Fatal(err)
		}
		return []Source{src, tr, th, NewTriggered(tr, TriggerOptions{})}
	}
	for _, c := range []struct {
		src  Source
		want bool
	}{{fl, true}, {file, true}, {syn, false}, {cam, false}} {
		for i, s := range wrap(c.src) {
			if got := IsLossless(s); got != c.want {
				t.Errorf("%T, wrapper %d (%T): IsLossless %v, want %v", c.src, i, s, got, c.want)
			}
		}
	}
	var plain struct{ Source }
	if IsLossless(plain) {
		t.Error("a source that does not say is lossless")
	}
}

// onlySeeker hides every method of its reader but Read and Seek.
type onlySeeker struct{ io.ReadSeeker }

// A TIFF names the offsets of its directory and data in its header;
// golang.org/x/image/tiff, given a stream, grows a buffer to any such
// offset at once. Found by FuzzDecodeImage: an 8-byte file pointing its
// directory at 2 GB allocated 2 GB. The bounded decode gives it random
// access, so it reads only what is there.
func TestDecodeImageTIFFOffsets(t *testing.T) {
	far := []byte("II*\x00\x00\x00\x00\x78")
	src := testImage(24, 16)
	var ok bytes.Buffer
	if err := tiff.Encode(&ok, src, &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    func([]byte) io.ReadSeeker
	}{
		{"random access", func(b []byte) io.ReadSeeker { return bytes.NewReader(b) }},
		{"seek only", func(b []byte) io.ReadSeeker { return onlySeeker{bytes.NewReader(b)} }},
	} {
		var err error
		n := allocated(func() { _, _, err = DecodeImage(c.r(far), "far", 0) })
		if err == nil || errors.Is(err, ErrImageTooLarge) || n > 1<<20 {
			t.Errorf("%s: %v after allocating %d bytes, want an error and next to nothing", c.name, err, n)
		}
		img, _, err := DecodeImage(c.r(ok.Bytes()), "ok", 0)
		if err != nil || img.Bounds() != src.Bounds() {
			t.Errorf("%s: a good TIFF: %v", c.name, err)
		}
		if d := maxDiff(t, src, convertInto(nil, img, ColorRGB).(*image.RGBA)); d != 0 {
			t.Errorf("%s: decoded TIFF differs by %d", c.name, d)
		}
	}
}
