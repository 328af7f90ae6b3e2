package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"time"
)

// FileOptions configure a File.
type FileOptions struct {
	// Path is the image file. Required.
	Path string
	// Loop returns the image again and again instead of ErrEOF after it.
	Loop bool
	// Color selects RGBA or gray frames; ColorAuto keeps gray files gray.
	Color Color
	// MaxPixels refuses, from its header and before decoding, an image of
	// more pixels (0: DefaultMaxPixels).
	MaxPixels int64
}

// File is a Source returning one image file, once or (Loop) forever. The
// file is decoded once, when the source is made. It is Lossless: each
// frame stands for the file, so none may be dropped.
type File struct {
	opts     FileOptions
	img      image.Image
	name     string
	seq      uint64
	counters Counters
}

// NewFile reads and decodes the file. A file whose header declares more
// than MaxPixels pixels is refused before decoding with an error matching
// ErrImageTooLarge: a single-file source has nothing else to go on with.
func NewFile(opts FileOptions) (*File, error) {
	if opts.Path == "" {
		return nil, errors.New("file source: no file given")
	}
	img, _, err := DecodeImageFile(opts.Path, opts.MaxPixels)
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	// Convert once so that each Next is a plain copy.
	return &File{opts: opts, img: convertInto(nil, img, opts.Color), name: filepath.Base(opts.Path)}, nil
}

// Counters returns the source's counters.
func (s *File) Counters() *Counters { return &s.counters }

// Lossless implements LosslessSource.
func (s *File) Lossless() bool { return true }

// Next implements Source.
func (s *File) Next(ctx context.Context, f *Frame) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.seq > 0 && !s.opts.Loop {
		return ErrEOF
	}
	s.seq++
	f.setDecoded(convertInto(f.target(), s.img, ColorAuto))
	f.setMask(nil)
	f.Native, f.Decode = image.Point{}, 0
	f.Name, f.Label, f.Replay = s.name, "", s.seq > 1
	f.Seq, f.Time = s.seq, time.Now()
	f.Trigger, f.TriggerTime = "", time.Time{}
	s.counters.Frames.Add(1)
	return nil
}

// Close implements Source.
func (s *File) Close() error { return nil }
