package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
)

// recording is a camera's frames as it sent them: MJPEG (without Huffman
// tables, as USB cameras send it) or packed YUYV, all of one size.
type recording struct {
	format        capture.FourCC
	width, height int
	frames        [][]byte
	// subsampling of the MJPEG frames ("" for YUYV).
	subsampling string
	// skipped names the entries of a recording folder that are named like
	// a recording's files but were not read, not being regular files:
	// "b.mjpeg (a named pipe)".
	skipped []string
}

// meanBytes is the frames' mean size.
func (r *recording) meanBytes() int {
	n := 0
	for _, f := range r.frames {
		n += len(f)
	}
	return n / max(len(r.frames), 1)
}

// parseSize reads "1280x720".
func parseSize(s string) (image.Point, error) {
	w, h, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	if !ok {
		return image.Point{}, fmt.Errorf("size %q: want WIDTHxHEIGHT, like 1280x720", s)
	}
	x, err1 := strconv.Atoi(w)
	y, err2 := strconv.Atoi(h)
	if err1 != nil || err2 != nil || x <= 0 || y <= 0 || x > 16384 || y > 16384 {
		return image.Point{}, fmt.Errorf("size %q: want two positive integers up to 16384, like 1280x720", s)
	}
	return image.Pt(x, y), nil
}

// recordingExt says what a file of a recording holds, by its extension.
func recordingExt(name string) (capture.FourCC, bool) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".mjpeg", ".mjpg", ".jpg", ".jpeg":
		return capture.FormatMJPEG, true
	case ".yuyv", ".yuv":
		return capture.FormatYUYV, true
	}
	return 0, false
}

// loadRecording reads a recording: a file (an MJPEG stream, JPEG frames
// back to back; or raw YUYV frames back to back, of size) or a folder of
// such files, taken in name order. size is needed for YUYV only. A path
// that leads to neither a regular file nor a folder is refused unopened
// ("/x/line.mjpeg is a named pipe, not a recording"): a named pipe's open
// waited for a writer, and the command with it, for good, and a device
// such as /dev/zero read without end.
func loadRecording(path string, size image.Point) (*recording, error) {
	st, err := os.Stat(path)
	if err != nil {
		// A link to nothing is named with where it leads ("no such file or
		// directory" of a link that is there misleads), a link that leads
		// round in a loop with its loop.
		if bl := dataset.BrokenLink(path); bl != nil {
			return nil, bl
		}
		return nil, err
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a recording", path, model.FileKind(st.Mode()))
	}
	rec := &recording{}
	files := []string{path}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		files = files[:0]
		for _, e := range ents {
			if _, ok := recordingExt(e.Name()); !ok {
				continue
			}
			if !e.Type().IsRegular() {
				// Not read (a pipe's open would wait for a writer), but
				// said: a recording that silently lacks a file misleads.
				rec.skipped = append(rec.skipped, fmt.Sprintf("%s (%s)", e.Name(), entryKind(e.Type())))
				continue
			}
			files = append(files, filepath.Join(path, e.Name()))
		}
		slices.Sort(files)
		if len(files) == 0 {
			if len(rec.skipped) > 0 {
				return nil, fmt.Errorf("%s: no recorded frames: only regular files are read (not read: %s)", path, strings.Join(rec.skipped, ", "))
			}
			return nil, fmt.Errorf("%s: no recorded frames (*.mjpeg, *.jpg, *.yuyv)", path)
		}
	}
	// Every file is sized before any is read: the bench holds the whole
	// recording in memory, and a huge file (a video named .mjpg, a disk
	// image) was read whole before it was found to be no recording. Its
	// kind is said first, by its extension: a 3 GiB line.mp4 is no
	// recording, and "record fewer frames" misled.
	var total int64
	for _, name := range files {
		format, ok := recordingExt(name)
		if !ok {
			return nil, fmt.Errorf("%s: not a recording: want .mjpeg, .mjpg, .jpg, .jpeg, .yuyv or .yuv", name)
		}
		if rec.format != 0 && format != rec.format {
			return nil, fmt.Errorf("%s: %s frames among %s ones: a camera sends one format", name, format, rec.format)
		}
		rec.format = format
		st, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		if total+st.Size() > maxRecordingBytes {
			return nil, recordingTooLarge(name, st.Size(), total)
		}
		total += st.Size()
	}
	var read int64
	for _, name := range files {
		data, err := readRecordingFile(name, maxRecordingBytes-read)
		if err != nil {
			return nil, err
		}
		read += int64(len(data))
		if err := rec.add(name, data, size); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// entryKind words what a folder entry that is not a regular file is.
func entryKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a folder"
	}
	return model.FileKind(m)
}

// maxRecordingBytes bounds a recording, all its files together: the
// bench holds every frame in memory (120 frames of 720p MJPEG are 15 MB;
// 300, as many as it fits a model on, of 1080p YUYV 1.2 GB).
const maxRecordingBytes = 1 << 30

// recordingMend is what to do with a recording over maxRecordingBytes.
const recordingMend = "the bench holds every frame in memory: record fewer frames (capture encode --frames)"

// recordingTooLarge refuses the recording file name of size bytes, after
// files of the recording that hold before bytes.
func recordingTooLarge(name string, size, before int64) error {
	if before == 0 {
		return fmt.Errorf("%s is %d bytes, more than the %d (1 GiB) a recording may hold: %s", name, size, int64(maxRecordingBytes), recordingMend)
	}
	return fmt.Errorf("%s is %d bytes: with the %d of the recording's files before it, more than the %d (1 GiB) a recording may hold: %s",
		name, size, before, int64(maxRecordingBytes), recordingMend)
}

// readRecordingFile reads a file of a recording, at most limit bytes (what
// is left of maxRecordingBytes): one that has grown past it since it was
// sized is refused, not read on. The open does not wait (O_NONBLOCK): a
// named pipe put in the file's place since it was looked at is refused, as
// the open file is checked, instead of blocking.
func readRecordingFile(name string, limit int64) ([]byte, error) {
	fh, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a recording", name, model.FileKind(st.Mode()))
	}
	if st.Size() > limit {
		return nil, recordingTooLarge(name, st.Size(), maxRecordingBytes-limit)
	}
	// Sized as os.ReadFile sizes it: a recording may be hundreds of MB.
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+512))
	if _, err := buf.ReadFrom(io.LimitReader(fh, limit+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s grew while it was read, past the %d bytes left of the %d (1 GiB) a recording may hold: %s",
			name, limit, int64(maxRecordingBytes), recordingMend)
	}
	return buf.Bytes(), nil
}

// add appends a file's frames, checking that their size is the
// recording's.
func (r *recording) add(name string, data []byte, size image.Point) error {
	if r.format == capture.FormatYUYV {
		if size == (image.Point{}) {
			return fmt.Errorf("%s: raw YUYV frames carry no size: give --size WIDTHxHEIGHT", name)
		}
		n := 2 * size.X * size.Y
		if size.X%2 != 0 {
			return fmt.Errorf("%s: --size %dx%d: YUYV frames have an even width (two pixels share their chroma)", name, size.X, size.Y)
		}
		if len(data) == 0 || len(data)%n != 0 {
			return fmt.Errorf("%s: %d bytes is not a whole number of %dx%d YUYV frames (%d bytes each)", name, len(data), size.X, size.Y, n)
		}
		r.width, r.height = size.X, size.Y
		for o := 0; o < len(data); o += n {
			r.frames = append(r.frames, data[o:o+n:o+n])
		}
		return nil
	}
	frames, err := capture.SplitMJPEG(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for i, f := range frames {
		fixed, _, err := capture.FixMJPEG(nil, f)
		if err != nil {
			return fmt.Errorf("%s: frame %d: %w", name, i+1, err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(fixed))
		if err != nil {
			return fmt.Errorf("%s: frame %d: %w", name, i+1, err)
		}
		if r.width == 0 {
			r.width, r.height = cfg.Width, cfg.Height
			r.subsampling = jpegSubsampling(fixed)
		}
		if size != (image.Point{}) && (cfg.Width != size.X || cfg.Height != size.Y) {
			// JPEG frames carry their size: --size is for raw YUYV, and a
			// different one here is a mistake worth naming.
			return fmt.Errorf("%s: frame %d is %dx%d, --size says %dx%d (JPEG frames carry their own size: --size is for raw YUYV)",
				name, i+1, cfg.Width, cfg.Height, size.X, size.Y)
		}
		if cfg.Width != r.width || cfg.Height != r.height {
			return fmt.Errorf("%s: frame %d is %dx%d, the recording's frames %dx%d: a camera sends one size", name, i+1, cfg.Width, cfg.Height, r.width, r.height)
		}
		r.frames = append(r.frames, f)
	}
	return nil
}

// jpegSubsampling names a colour JPEG's chroma subsampling from its
// decoded layout ("gray" for one component).
func jpegSubsampling(frame []byte) string {
	img, err := jpeg.Decode(bytes.NewReader(frame))
	if err != nil {
		return "?"
	}
	switch m := img.(type) {
	case *image.YCbCr:
		return strings.TrimPrefix(m.SubsampleRatio.String(), "YCbCrSubsampleRatio")
	case *image.Gray:
		return "gray"
	}
	return "?"
}

// encodeOptions are the settings of `inspectd capture encode`.
type encodeOptions struct {
	Out         string
	Size        image.Point
	Frames      int
	Data        string // image folder; "" for the synthetic scene
	Quality     int
	Subsampling image.YCbCrSubsampleRatio
	Seed        uint64
	DefectRate  float64
}

// subsamplings are the chroma subsamplings `capture encode` writes.
var subsamplings = map[string]image.YCbCrSubsampleRatio{
	"444": image.YCbCrSubsampleRatio444, "422": image.YCbCrSubsampleRatio422, "420": image.YCbCrSubsampleRatio420,
}

// cmdCaptureEncode writes frames as a camera sends them, for the replay
// bench and tests: real images (a data set's, tiled over the frame at
// their own resolution, or the synthetic scene's) encoded by a real JPEG
// encoder and stripped of their Huffman tables, or packed as YUYV.
func cmdCaptureEncode() *Command {
	return &Command{
		Name:    "capture encode",
		Summary: "write frames as a camera sends them (MJPEG without Huffman tables, or YUYV) for bench --camera-replay",
		Usage:   "--out FILE.mjpeg|FILE.yuyv [--size 1280x720] [--frames 60] [--data DIR] [--quality 85] [--subsampling 422]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "capture encode")
			var o encodeOptions
			fs.StringVar(&o.Out, "out", "", "file to write: .mjpeg (JPEG frames back to back) or .yuyv (raw frames back to back)")
			size := fs.String("size", "1280x720", "frame size")
			fs.IntVar(&o.Frames, "frames", 60, "frames to write")
			fs.StringVar(&o.Data, "data", "", "images to make the frames of (a folder, or a data set's train/good); default: the synthetic scene")
			fs.IntVar(&o.Quality, "quality", 85, "JPEG quality, 1..100 (USB cameras send 70..95)")
			sub := fs.String("subsampling", "422", "JPEG chroma subsampling: 422 (most USB cameras), 420 or 444")
			fs.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic scene")
			fs.Float64Var(&o.DefectRate, "defect-rate", 0, "fraction of synthetic frames with a defect, 0..1")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			var err error
			if o.Size, err = parseSize(*size); err != nil {
				return usagef("--size: %v", err)
			}
			ss, ok := subsamplings[*sub]
			switch {
			case fs.NArg() > 0:
				return usagef("unexpected argument %q", fs.Arg(0))
			case o.Out == "":
				return usagef("--out is required")
			case o.Frames <= 0:
				return usagef("--frames %d: want at least 1", o.Frames)
			case o.Quality < 1 || o.Quality > 100:
				return usagef("--quality %d: want 1..100", o.Quality)
			case !ok:
				return usagef("--subsampling %q: want 422, 420 or 444", *sub)
			case !(o.DefectRate >= 0 && o.DefectRate <= 1):
				return usagef("--defect-rate %v: want 0..1", o.DefectRate)
			}
			o.Subsampling = ss
			format, ok := recordingExt(o.Out)
			if !ok {
				return usagef("--out %s: want a .mjpeg or .yuyv file", o.Out)
			}
			if format == capture.FormatYUYV && o.Size.X%2 != 0 {
				return usagef("--size %s: YUYV frames have an even width", *size)
			}
			frames, err := encodeFrames(ctx, o, format)
			if err != nil {
				return err
			}
			var out []byte
			for _, f := range frames {
				out = append(out, f...)
			}
			if err := os.WriteFile(o.Out, out, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "wrote %d %s frames of %dx%d to %s (%d KB per frame)\n", len(frames), format, o.Size.X, o.Size.Y,
				o.Out, len(out)/len(frames)/1024)
			return nil
		},
	}
}

// encodeFrames makes o.Frames frames of o.Size in format.
func encodeFrames(ctx context.Context, o encodeOptions, format capture.FourCC) ([][]byte, error) {
	next, err := frameImages(o)
	if err != nil {
		return nil, err
	}
	frames := make([][]byte, 0, o.Frames)
	for i := 0; i < o.Frames; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := next(i)
		if err != nil {
			return nil, err
		}
		var f []byte
		if format == capture.FormatYUYV {
			f, err = capture.EncodeYUYV(nil, img)
		} else {
			var j []byte
			if j, err = capture.EncodeJPEG(nil, img, o.Quality, o.Subsampling); err == nil {
				f, err = capture.StripHuffmanTables(nil, j)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("frame %d: %w", i+1, err)
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// frameImages returns the source of frame i's picture: the synthetic
// scene, or a data set's images tiled over the frame.
func frameImages(o encodeOptions) (func(i int) (image.Image, error), error) {
	if o.Data == "" {
		sy, err := capture.NewSynthetic(capture.SyntheticOptions{Width: o.Size.X, Height: o.Size.Y, Seed: o.Seed,
			DefectRate: o.DefectRate, NormalOnly: o.DefectRate == 0})
		if err != nil {
			return nil, err
		}
		return func(int) (image.Image, error) {
			var f capture.Frame
			if err := sy.Next(context.Background(), &f); err != nil {
				return nil, err
			}
			return f.Image, nil
		}, nil
	}
	paths, err := normalImages(o.Data)
	if err != nil {
		return nil, err
	}
	return func(i int) (image.Image, error) { return tileImages(paths, i, o.Size) }, nil
}

// tileImages fills a frame of size with images from paths at their own
// resolution, row by row, starting with image i: real texture at its real
// scale, as a camera sees a part, whatever the data set's image size.
func tileImages(paths []string, i int, size image.Point) (*image.RGBA, error) {
	out := image.NewRGBA(image.Rectangle{Max: size})
	x, y, rowH := 0, 0, 0
	for k := 0; y < size.Y; k++ {
		if k > 4*len(paths)+size.X*size.Y {
			return nil, errors.New("tiling the frame made no progress")
		}
		img, _, err := capture.DecodeImageFile(paths[(i+k)%len(paths)], 0)
		if err != nil {
			return nil, err
		}
		b := img.Bounds()
		if b.Empty() {
			continue
		}
		draw.Draw(out, image.Rectangle{Min: image.Pt(x, y), Max: image.Pt(x, y).Add(b.Size())}, img, b.Min, draw.Src)
		x += b.Dx()
		rowH = max(rowH, b.Dy())
		if x >= size.X {
			x, y, rowH = 0, y+rowH, 0
		}
	}
	return out, nil
}
