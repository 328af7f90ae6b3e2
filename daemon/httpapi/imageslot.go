package httpapi

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"sync"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/jpegcomment"
)

// imageSlot holds the latest image of one kind. The pipeline writes it
// once per inspection and people fetch it rarely, so writes only copy
// pixels into a reused buffer and JPEG encoding happens on request, outside
// the lock the pipeline takes.
type imageSlot struct {
	name    string
	quality int

	mu      sync.Mutex
	live    draw.Image // latest image handed over with setImage
	comment []byte     // live's JPEG comment (its inspection's tag), if any
	dirty   bool       // live is newer than cached
	gen     uint64     // bumps on every set
	at      time.Time
	jpeg    []byte // cached or handed-over encoding

	encMu        sync.Mutex // one encoder at a time; it owns spare and spareComment
	spare        draw.Image
	spareComment []byte
}

func newImageSlot(name string, quality int) *imageSlot {
	return &imageSlot{name: name, quality: quality}
}

func (s *imageSlot) setJPEG(data []byte) {
	s.mu.Lock()
	s.jpeg, s.dirty, s.at = data, false, time.Now()
	s.gen++
	s.mu.Unlock()
}

// setImage copies src, and comment, which the JPEG of src will carry.
func (s *imageSlot) setImage(src image.Image, comment []byte) {
	s.mu.Lock()
	s.live = copyInto(s.live, src)
	s.comment = append(s.comment[:0], comment...)
	s.dirty, s.at = true, time.Now()
	s.gen++
	s.mu.Unlock()
}

// get returns the latest JPEG, encoding the latest image if needed; nil
// data means nothing was handed over yet.
func (s *imageSlot) get() ([]byte, time.Time, error) {
	s.encMu.Lock()
	defer s.encMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		data, at := s.jpeg, s.at
		s.mu.Unlock()
		return data, at, nil
	}
	// Snapshot the pixels (a memcpy) and encode without holding mu.
	s.spare = copyInto(s.spare, s.live)
	s.spareComment = append(s.spareComment[:0], s.comment...)
	gen, at := s.gen, s.at
	s.mu.Unlock()

	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, s.spare, &jpeg.Options{Quality: s.quality}); err != nil {
		return nil, at, err
	}
	data := buf.Bytes()
	if len(s.spareComment) > 0 {
		var err error
		if data, err = jpegcomment.Append(make([]byte, 0, len(data)+jpegcomment.Overhead+len(s.spareComment)), data, s.spareComment); err != nil {
			return nil, at, fmt.Errorf("tag the %s: %w", s.name, err)
		}
	}
	s.mu.Lock()
	if s.gen == gen { // nothing newer arrived meanwhile
		s.jpeg, s.dirty = data, false
	}
	s.mu.Unlock()
	return data, at, nil
}

// copyInto copies src into dst, reusing dst when it has the right kind and
// size. Gray stays gray (smaller JPEGs); everything else becomes RGBA.
func copyInto(dst draw.Image, src image.Image) draw.Image {
	b := src.Bounds()
	if g, ok := src.(*image.Gray); ok {
		d, ok := dst.(*image.Gray)
		if !ok || d.Rect != b {
			d = image.NewGray(b)
		}
		if g.Stride == d.Stride && len(g.Pix) == len(d.Pix) {
			copy(d.Pix, g.Pix)
		} else {
			draw.Draw(d, b, src, b.Min, draw.Src)
		}
		return d
	}
	d, ok := dst.(*image.RGBA)
	if !ok || d.Rect != b {
		d = image.NewRGBA(b)
	}
	if r, ok := src.(*image.RGBA); ok && r.Stride == d.Stride && len(r.Pix) == len(d.Pix) {
		copy(d.Pix, r.Pix)
	} else {
		draw.Draw(d, b, src, b.Min, draw.Src)
	}
	return d
}
