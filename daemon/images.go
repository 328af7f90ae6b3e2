package daemon

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"time"

	xdraw "golang.org/x/image/draw"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/internal/jpegcomment"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model/render"
)

// imageEncoder encodes the mask PNG and the heatmap JPEG of the publish
// stage into reused buffers, bounded in size: the longer side of both to
// Policy.ImageMaxSide, and both to the broker's payload limit (a broker
// drops the connection on a packet over its limit, taking alarms and
// results in flight with it). The JPEG is libjpeg-turbo's where the build
// has it (capture.EncodeJPEG): a few milliseconds, where image/jpeg took
// several times that on the publish goroutine.
type imageEncoder struct {
	pngEnc    png.Encoder
	pngBuf    bytes.Buffer
	jpg       []byte
	overlay   *image.RGBA // at the frame's size
	small     *image.RGBA // overlay scaled down to the size bound
	smallMask *image.Gray // mask scaled down to the size bound
	flat      image.Image // the frame as plain pixels (capture.Flatten)
	// taggedPNG and taggedJPG are the last mask and heatmap with their
	// tags inserted, apart: both may be held until published.
	taggedPNG, taggedJPG []byte
	// lastErr is the last failure logged per image kind (Pipeline.sendImage),
	// by its class for images over the payload limit, whose sizes change
	// with every part.
	lastErr map[string]string
}

// tooLargeError is an image that does not fit the payload limit at any
// size or quality tried.
type tooLargeError struct{ msg string }

func (e *tooLargeError) Error() string { return e.msg }

// minMaskSide is the smallest longer side a mask is shrunk to to fit the
// payload limit: below it a mask no longer says where on the part.
const minMaskSide = 16

// ImageTagKey names the tag in a mask PNG (the keyword of its iTXt chunk);
// a heatmap JPEG carries the same text as its comment (COM segment).
const ImageTagKey = "inspectd"

// imageTag is what a published mask or heatmap says of its inspection, as
// JSON in the image itself: the images go on topics of their own, after
// the result, and are the first dropped when the publish stage falls
// behind or the payload is over the limit, so their order does not tell a
// subscriber which result they belong to. (BootID, Seq) names the
// inspection, as in the result.
type imageTag struct {
	Seq       uint64    `json:"seq"`
	BootID    string    `json:"boot_id,omitempty"`
	FrameTime time.Time `json:"frame_time"`
	TriggerID string    `json:"trigger_id,omitempty"`
	File      string    `json:"file,omitempty"`
	FileBytes []byte    `json:"file_bytes,omitempty"` // as the result's (mqttpub.Header.SetFile)
}

// tagOf is the tag of the inspection h, as JSON.
func tagOf(h *mqttpub.Header) []byte {
	b, err := json.Marshal(imageTag{Seq: h.Seq, BootID: h.BootID, FrameTime: h.FrameTime, TriggerID: h.TriggerID, File: h.File, FileBytes: h.FileBytes})
	if err != nil { // strings and a time: only an unrepresentable year fails
		b, _ = json.Marshal(imageTag{Seq: h.Seq, BootID: h.BootID})
	}
	return b
}

// pngText returns the PNG data with an iTXt chunk (keyword ImageTagKey,
// uncompressed UTF-8 text) inserted after its IHDR chunk (PNG
// specification, 11.3.4.5), into e.taggedPNG.
func (e *imageEncoder) pngText(data, text []byte) ([]byte, error) {
	const ihdrEnd = 8 + 4 + 4 + 13 + 4 // signature, IHDR's length, type, data, CRC
	if len(data) < ihdrEnd || string(data[12:16]) != "IHDR" {
		return nil, fmt.Errorf("tag mask: not a PNG from the encoder")
	}
	// keyword, NUL, compression flag and method 0, empty language tag and
	// translated keyword (each NUL-terminated), then the text.
	body := len(ImageTagKey) + 5 + len(text)
	e.taggedPNG = append(e.taggedPNG[:0], data[:ihdrEnd]...)
	e.taggedPNG = binary.BigEndian.AppendUint32(e.taggedPNG, uint32(body))
	start := len(e.taggedPNG)
	e.taggedPNG = append(e.taggedPNG, "iTXt"...)
	e.taggedPNG = append(e.taggedPNG, ImageTagKey...)
	e.taggedPNG = append(e.taggedPNG, 0, 0, 0, 0, 0)
	e.taggedPNG = append(e.taggedPNG, text...)
	e.taggedPNG = binary.BigEndian.AppendUint32(e.taggedPNG, crc32.ChecksumIEEE(e.taggedPNG[start:]))
	e.taggedPNG = append(e.taggedPNG, data[ihdrEnd:]...)
	return e.taggedPNG, nil
}

// jpegComment returns the JPEG data with text as its comment
// (jpegcomment.Append), into e.taggedJPG.
func (e *imageEncoder) jpegComment(data, text []byte) ([]byte, error) {
	b, err := jpegcomment.Append(e.taggedJPG[:0], data, text)
	if err != nil {
		return nil, fmt.Errorf("tag heatmap: %w", err)
	}
	e.taggedJPG = b
	return b, nil
}

// picture is the frame as image/draw reads quickly: plain RGBA or gray
// as they are, camera layouts and views (Y'CbCr, YUYV, rotated) flattened
// into a reused buffer.
func (e *imageEncoder) picture(frame image.Image) image.Image {
	switch frame.(type) {
	case *image.RGBA, *image.Gray:
		return frame
	}
	e.flat = capture.Flatten(e.flat, frame)
	return e.flat
}

// minHeatmapSide is the smallest longer side a heatmap is shrunk to to
// fit the payload limit (halving stopped after three sizes: 4000 px
// frames stopped at 1000 px where 500 px fit).
const minHeatmapSide = 64

// heatmapQualities are tried in turn until the JPEG fits the payload limit;
// below the last the picture no longer shows where the defect is.
var heatmapQualities = [...]int{80, 60, 40}

// heatmap renders the anomaly map over the frame, scaled so that its
// longer side is at most maxSide (0: no bound), as a JPEG of at most limit
// bytes (0: no limit) with tag as its comment, halving the size once more
// when the lowest quality still does not fit. The returned bytes are valid
// until the next call.
func (e *imageEncoder) heatmap(frame image.Image, amap []float32, w, h int, threshold float64, maxSide, limit int, tag []byte) ([]byte, error) {
	e.overlay = render.Overlay(e.overlay, e.picture(frame), amap, w, h, threshold)
	side := max(w, h)
	if maxSide > 0 && maxSide < side {
		side = maxSide
	}
	for attempt := 0; attempt < 3 || side >= minHeatmapSide; attempt++ {
		img := e.scaled(side)
		for _, q := range heatmapQualities {
			var err error
			if e.jpg, err = capture.EncodeJPEG(e.jpg[:0], img, q, image.YCbCrSubsampleRatio420); err != nil {
				return nil, fmt.Errorf("encode heatmap: %w", err)
			}
			if limit <= 0 || len(e.jpg)+jpegcomment.Overhead+len(tag) <= limit {
				return e.jpegComment(e.jpg, tag)
			}
		}
		side /= 2
	}
	return nil, &tooLargeError{fmt.Sprintf("heatmap JPEG of %d bytes at %d px exceeds the %d-byte payload limit (mqtt.max_payload, or lower as learned from the broker)", len(e.jpg)+jpegcomment.Overhead+len(tag), side*2, limit)}
}

// scaled returns the overlay with its longer side at most side pixels.
func (e *imageEncoder) scaled(side int) image.Image {
	w, h := e.overlay.Rect.Dx(), e.overlay.Rect.Dy()
	if max(w, h) <= side {
		return e.overlay
	}
	sw, sh := w*side/max(w, h), h*side/max(w, h)
	sw, sh = max(sw, 1), max(sh, 1)
	if e.small == nil || e.small.Rect.Dx() != sw || e.small.Rect.Dy() != sh {
		e.small = image.NewRGBA(image.Rect(0, 0, sw, sh))
	}
	xdraw.ApproxBiLinear.Scale(e.small, e.small.Rect, e.overlay, e.overlay.Rect, xdraw.Src, nil)
	return e.small
}

// mask encodes the binary mask as a PNG whose longer side is at most
// maxSide (0: the mask's own size; a smaller mask is the same picture at
// a lower resolution, a pixel anomalous where any pixel it covers is, so
// that no defect vanishes) and of at most limit bytes (0: no limit), with
// tag in an iTXt chunk. A binary mask compresses well; one that does not
// fit at the best compression is halved in size until it does, down to
// minMaskSide (a *tooLargeError then). The returned bytes are valid until
// the next call.
func (e *imageEncoder) mask(m *image.Gray, maxSide, limit int, tag []byte) ([]byte, error) {
	src := m
	side := max(m.Rect.Dx(), m.Rect.Dy())
	if maxSide > 0 {
		side = min(side, maxSide)
	}
	chunk := 12 + len(ImageTagKey) + 5 + len(tag) // the iTXt chunk's bytes
	for {
		m = e.shrinkMask(src, side)
		e.pngEnc.CompressionLevel = png.BestSpeed
		e.pngBuf.Reset()
		if err := e.pngEnc.Encode(&e.pngBuf, m); err != nil {
			return nil, fmt.Errorf("encode mask: %w", err)
		}
		if limit <= 0 || e.pngBuf.Len()+chunk <= limit {
			break
		}
		e.pngEnc.CompressionLevel = png.BestCompression
		e.pngBuf.Reset()
		if err := e.pngEnc.Encode(&e.pngBuf, m); err != nil {
			return nil, fmt.Errorf("encode mask: %w", err)
		}
		if e.pngBuf.Len()+chunk <= limit {
			break
		}
		if side/2 < minMaskSide {
			return nil, &tooLargeError{fmt.Sprintf("mask PNG of %d bytes at %d px exceeds the %d-byte payload limit (mqtt.max_payload, or lower as learned from the broker)", e.pngBuf.Len()+chunk, side, limit)}
		}
		side /= 2
	}
	return e.pngText(e.pngBuf.Bytes(), tag)
}

// shrinkMask is m with its longer side at most side (maxPool), in a
// buffer reused between calls; m itself when it is that small.
func (e *imageEncoder) shrinkMask(m *image.Gray, side int) *image.Gray {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	if max(w, h) <= side {
		return m
	}
	sw, sh := max(w*side/max(w, h), 1), max(h*side/max(w, h), 1)
	if e.smallMask == nil || e.smallMask.Rect.Dx() != sw || e.smallMask.Rect.Dy() != sh {
		e.smallMask = image.NewGray(image.Rect(0, 0, sw, sh))
	}
	maxPool(e.smallMask, m)
	return e.smallMask
}

// maxPool shrinks src into dst: each pixel of dst is the largest of the
// pixels of src it covers.
func maxPool(dst, src *image.Gray) {
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := dst.Rect.Dx(), dst.Rect.Dy()
	for y := 0; y < dh; y++ {
		y0, y1 := y*sh/dh, max((y+1)*sh/dh, y*sh/dh+1)
		d := dst.Pix[y*dst.Stride : y*dst.Stride+dw]
		clear(d)
		for sy := y0; sy < y1; sy++ {
			row := src.Pix[sy*src.Stride : sy*src.Stride+sw]
			for x := range d {
				x0, x1 := x*sw/dw, max((x+1)*sw/dw, x*sw/dw+1)
				for _, v := range row[x0:x1] {
					d[x] = max(d[x], v)
				}
			}
		}
	}
}
