package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // folders may hold GIF
	_ "image/jpeg" // and JPEG
	_ "image/png"  // and PNG files
	"io"

	_ "golang.org/x/image/bmp" // line-scan systems often drop BMP
	"golang.org/x/image/tiff"  // or TIFF files
)

// DefaultMaxPixels is the pixel limit of a decoded image when options leave
// it at 0: 40 megapixels, twice a 20 MP industrial sensor (5472×3648), and
// 160 MB as RGBA. Without a limit, a 69-byte PNG whose header declares
// 200000×200000 pixels makes the decoder allocate 40 GB and the Go runtime
// end the process ("out of memory" is not a panic that recover sees).
const DefaultMaxPixels = 40_000_000

// ErrImageTooLarge is matched (errors.Is) by every *ImageTooLargeError: an
// image refused before decoding because its header declares more pixels
// than the limit.
var ErrImageTooLarge = errors.New("image too large")

// ImageTooLargeError says which image was refused, what its header
// declares and the limit it exceeds. No pixel memory was allocated for it.
type ImageTooLargeError struct {
	// Name is the file, or what the bytes were (an MJPEG camera frame).
	Name string
	// Format is the decoder's name for it: png, jpeg, gif, bmp, tiff.
	Format string
	// Part is "" when the image's size is too large, or "strip" or "tile"
	// for a compressed TIFF whose strips or tiles are: the decoder lets
	// each one inflate to its declared size, whatever the image's size.
	Part string
	// Width and Height are what the header declares (of the image, or of
	// one strip or tile).
	Width, Height int64
	// Limit is the pixel limit in force.
	Limit int64
}

// Error reads like `image x.png: png header declares 200000×200000 =
// 40000000000 pixels, over the limit of 40000000 (capture.max_pixels)`.
func (e *ImageTooLargeError) Error() string {
	what := ""
	if e.Part != "" {
		what = "compressed " + e.Part + "s of "
	}
	return fmt.Sprintf("image %s: %s header declares %s%d×%d = %d pixels, over the limit of %d (capture.max_pixels)",
		e.Name, e.Format, what, e.Width, e.Height, uint64(e.Width)*uint64(e.Height), e.Limit)
}

// Is makes errors.Is(err, ErrImageTooLarge) hold.
func (e *ImageTooLargeError) Is(target error) bool { return target == ErrImageTooLarge }

// pixelLimit maps an option's 0 to DefaultMaxPixels.
func pixelLimit(maxPixels int64) int64 {
	if maxPixels <= 0 {
		return DefaultMaxPixels
	}
	return maxPixels
}

// checkSize refuses a declared size that is not positive or exceeds limit.
func checkSize(name, format string, w, h int, limit int64) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("image %s: %s header declares %d×%d pixels, want a positive width and height", name, format, w, h)
	}
	if int64(w) > limit/int64(h) {
		return &ImageTooLargeError{Name: name, Format: format, Width: int64(w), Height: int64(h), Limit: limit}
	}
	return nil
}

// CheckImage reads only the header of the image in r (PNG, JPEG, GIF, BMP
// or TIFF) and returns its size and format, or an *ImageTooLargeError when
// it declares more than maxPixels pixels (0: DefaultMaxPixels), or, for a
// compressed TIFF, strips or tiles of more. It allocates no pixel memory,
// whatever the header says. r is read from its current offset, which is
// not restored.
func CheckImage(r io.ReadSeeker, name string, maxPixels int64) (image.Config, string, error) {
	var d imageDecoder
	defer d.release()
	_, cfg, format, err := d.check(r, name, maxPixels)
	return cfg, format, err
}

// CheckImageFile is CheckImage on a file: it reads the file's header only.
// A path that leads to anything but a regular file is refused unopened
// ("/x/a.png is a named pipe, not an image file"): opening a named pipe
// waits for a writer, and a device such as /dev/zero reads without end.
func CheckImageFile(path string, maxPixels int64) (image.Config, string, error) {
	f, err := openRegular(path)
	if err != nil {
		return image.Config{}, "", err
	}
	defer f.Close()
	return CheckImage(f, path, maxPixels)
}

// DecodeImage decodes the image in r (PNG, JPEG, GIF, BMP or TIFF) after
// reading its header and refusing (see CheckImage), before any pixel
// memory is allocated, one that declares more than maxPixels pixels (0:
// DefaultMaxPixels) with an *ImageTooLargeError. r is read twice from its
// current offset (header, then image). name is used in messages.
func DecodeImage(r io.ReadSeeker, name string, maxPixels int64) (image.Image, string, error) {
	var d imageDecoder
	return d.decode(r, name, maxPixels)
}

// DecodeImageFile is DecodeImage on a file. Like CheckImageFile, it
// refuses a path that leads to anything but a regular file unopened.
func DecodeImageFile(path string, maxPixels int64) (image.Image, string, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	return DecodeImage(f, path, maxPixels)
}

// imageDecoder is the bounded decode with a read buffer kept across calls
// (a folder source decodes one file after another).
type imageDecoder struct {
	br *bufio.Reader
}

func (d *imageDecoder) reader(r io.Reader) *bufio.Reader {
	if d.br == nil {
		d.br = bufio.NewReaderSize(r, 64<<10)
	} else {
		d.br.Reset(r)
	}
	return d.br
}

// release drops the reference to the last reader.
func (d *imageDecoder) release() {
	if d.br != nil {
		d.br.Reset(nil)
	}
}

// check is CheckImage; it returns r's offset at the start too.
func (d *imageDecoder) check(r io.ReadSeeker, name string, maxPixels int64) (start int64, cfg image.Config, format string, err error) {
	if start, err = r.Seek(0, io.SeekCurrent); err != nil {
		return 0, cfg, "", fmt.Errorf("image %s: %w", name, err)
	}
	limit := pixelLimit(maxPixels)
	br := d.reader(r)
	magic, perr := br.Peek(4)
	if len(magic) == 0 && perr == io.EOF {
		// Said as it is: the decoders call nothing at all "unknown
		// format", which sends one looking for a codec.
		return start, cfg, "", fmt.Errorf("image %s: empty file (0 bytes)", name)
	}
	if isTIFF(magic) {
		format = "tiff"
		var ra *io.SectionReader
		if ra, err = sectionOf(r, start); err == nil {
			cfg, err = tiff.DecodeConfig(ra)
		}
	} else {
		cfg, format, err = image.DecodeConfig(br)
	}
	if err != nil {
		return start, cfg, format, fmt.Errorf("image %s: %w", name, err)
	}
	if err := checkSize(name, format, cfg.Width, cfg.Height, limit); err != nil {
		return start, cfg, format, err
	}
	if format == "tiff" {
		if err := checkTIFFBlocks(r, start, name, limit); err != nil {
			return start, cfg, format, err
		}
	}
	return start, cfg, format, nil
}

func (d *imageDecoder) decode(r io.ReadSeeker, name string, maxPixels int64) (img image.Image, format string, err error) {
	defer d.release() // keep no reference to r
	start, _, format, err := d.check(r, name, maxPixels)
	if err != nil {
		return nil, format, err
	}
	if format == "tiff" {
		var ra *io.SectionReader
		if ra, err = sectionOf(r, start); err == nil {
			img, err = tiff.Decode(ra)
		}
	} else {
		if _, err := r.Seek(start, io.SeekStart); err != nil {
			return nil, format, fmt.Errorf("image %s: %w", name, err)
		}
		var f2 string
		img, f2, err = image.Decode(d.reader(r))
		if err == nil && f2 != format {
			// The header was sniffed once already; a second sniff that
			// disagrees means the file changed under us.
			err = fmt.Errorf("format changed from %s to %s while reading", format, f2)
		}
	}
	if err != nil {
		return nil, format, fmt.Errorf("decode %s: %w", name, err)
	}
	return img, format, nil
}

// isTIFF reports the byte-order marks and magic number that start a TIFF.
func isTIFF(b []byte) bool {
	return len(b) == 4 && (string(b) == "II*\x00" || string(b) == "MM\x00*")
}

// sectionOf gives golang.org/x/image/tiff the random access it wants over
// r from start to its end. Given a plain io.Reader, the TIFF decoder
// buffers it and grows that buffer at once to any offset the header names:
// an 8-byte file pointing its directory at 2 GB allocates 2 GB. With
// random access it reads only what is there, in chunks.
func sectionOf(r io.ReadSeeker, start int64) (*io.SectionReader, error) {
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	ra, ok := r.(io.ReaderAt)
	if !ok {
		ra = &seekReaderAt{r: r}
	}
	return io.NewSectionReader(ra, start, end-start), nil
}

// seekReaderAt is io.ReaderAt over an io.ReadSeeker (not for concurrent
// use, which the decoders do not need).
type seekReaderAt struct{ r io.ReadSeeker }

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := s.r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(s.r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// TIFF tags and values checkTIFFBlocks reads (TIFF 6.0, section 8).
const (
	tiffImageWidth   = 256
	tiffImageLength  = 257
	tiffCompression  = 259
	tiffRowsPerStrip = 278
	tiffTileWidth    = 322
	tiffTileLength   = 323
)

// checkTIFFBlocks refuses a compressed TIFF whose strips or tiles are
// larger than limit pixels. golang.org/x/image/tiff lets each compressed
// (LZW, Deflate, CCITT) strip or tile inflate to its declared size, 8
// bytes a pixel, before it looks at the image's size: an 8×8 image
// declaring RowsPerStrip 4294967295 can inflate a few MB of Deflate data to
// gigabytes. r holds the TIFF from offset start; only the first IFD is
// read (the one the decoder reads), a few KB at most.
func checkTIFFBlocks(r io.ReadSeeker, start int64, name string, limit int64) error {
	read := func(off int64, n int) ([]byte, error) {
		if _, err := r.Seek(start+off, io.SeekStart); err != nil {
			return nil, err
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	hdr, err := read(0, 8)
	if err != nil {
		return fmt.Errorf("image %s: tiff header: %w", name, err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if hdr[0] == 'M' {
		bo = binary.BigEndian
	}
	ifd := int64(bo.Uint32(hdr[4:]))
	cnt, err := read(ifd, 2)
	if err != nil {
		return fmt.Errorf("image %s: tiff IFD: %w", name, err)
	}
	entries, err := read(ifd+2, 12*int(bo.Uint16(cnt)))
	if err != nil {
		return fmt.Errorf("image %s: tiff IFD: %w", name, err)
	}
	// The first value of each tag, as the decoder reads it (0 if absent).
	val := map[uint16]int64{}
	for e := entries; len(e) >= 12; e = e[12:] {
		tag, typ, n := bo.Uint16(e), bo.Uint16(e[2:]), bo.Uint32(e[4:])
		switch tag {
		case tiffImageWidth, tiffImageLength, tiffCompression, tiffRowsPerStrip, tiffTileWidth, tiffTileLength:
		default:
			continue
		}
		if _, seen := val[tag]; seen || n == 0 {
			continue
		}
		v := e[8:12]
		size := map[uint16]uint32{3: 2, 4: 4}[typ] // SHORT, LONG
		if size == 0 {
			continue // the decoder refuses other types for these tags
		}
		if size*n > 4 {
			if v, err = read(int64(bo.Uint32(v)), int(size)); err != nil {
				return fmt.Errorf("image %s: tiff tag %d: %w", name, tag, err)
			}
		}
		if size == 2 {
			val[tag] = int64(bo.Uint16(v))
		} else {
			val[tag] = int64(bo.Uint32(v))
		}
	}
	switch val[tiffCompression] {
	case 0, 1, 32773:
		// None and PackBits read at most the stored bytes (PackBits
		// expands them at most 64-fold): bounded by the file.
		return nil
	}
	part, bw, bh := "strip", val[tiffImageWidth], val[tiffImageLength]
	if val[tiffTileWidth] != 0 {
		part, bw, bh = "tile", val[tiffTileWidth], val[tiffTileLength]
	} else if val[tiffRowsPerStrip] != 0 {
		bh = val[tiffRowsPerStrip]
	}
	if bw > 0 && bh > 0 && bw > limit/bh {
		return &ImageTooLargeError{Name: name, Format: "tiff", Part: part, Width: bw, Height: bh, Limit: limit}
	}
	return nil
}
