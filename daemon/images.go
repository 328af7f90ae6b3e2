package daemon

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"

	xdraw "golang.org/x/image/draw"

	"github.com/inspectd/inspectd/model/render"
)

// imageEncoder encodes the mask PNG and the heatmap JPEG of the publish
// stage into reused buffers, bounded in size: the heatmap's longer side to
// Policy.ImageMaxSide, and both to the broker's payload limit (a broker
// drops the connection on a packet over its limit, taking alarms and
// results in flight with it).
type imageEncoder struct {
	pngEnc  png.Encoder
	pngBuf  bytes.Buffer
	jpgBuf  bytes.Buffer
	overlay *image.RGBA // at the frame's size
	small   *image.RGBA // overlay scaled down to the size bound
	lastErr string
}

// heatmapQualities are tried in turn until the JPEG fits the payload limit;
// below the last the picture no longer shows where the defect is.
var heatmapQualities = [...]int{80, 60, 40}

// heatmap renders the anomaly map over the frame, scaled so that its
// longer side is at most maxSide (0: no bound), as a JPEG of at most limit
// bytes (0: no limit), halving the size once more when the lowest quality
// still does not fit. The returned bytes are valid until the next call.
func (e *imageEncoder) heatmap(frame image.Image, amap []float32, w, h int, threshold float64, maxSide, limit int) ([]byte, error) {
	e.overlay = render.Overlay(e.overlay, frame, amap, w, h, threshold)
	side := max(w, h)
	if maxSide > 0 && maxSide < side {
		side = maxSide
	}
	for attempt := 0; attempt < 3; attempt++ {
		img := e.scaled(side)
		for _, q := range heatmapQualities {
			e.jpgBuf.Reset()
			if err := jpeg.Encode(&e.jpgBuf, img, &jpeg.Options{Quality: q}); err != nil {
				return nil, fmt.Errorf("encode heatmap: %w", err)
			}
			if limit <= 0 || e.jpgBuf.Len() <= limit {
				return e.jpgBuf.Bytes(), nil
			}
		}
		side /= 2
	}
	return nil, fmt.Errorf("heatmap JPEG of %d bytes at %d px exceeds the %d-byte payload limit (mqtt.max_payload)", e.jpgBuf.Len(), side*2, limit)
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

// mask encodes the binary mask as a PNG of at most limit bytes (0: no
// limit). A binary mask compresses well; one that does not fit is refused
// rather than scaled, since a scaled mask no longer lines up with the
// frame's pixels.
func (e *imageEncoder) mask(m *image.Gray, limit int) ([]byte, error) {
	e.pngEnc.CompressionLevel = png.BestSpeed
	e.pngBuf.Reset()
	if err := e.pngEnc.Encode(&e.pngBuf, m); err != nil {
		return nil, fmt.Errorf("encode mask: %w", err)
	}
	if limit > 0 && e.pngBuf.Len() > limit {
		e.pngEnc.CompressionLevel = png.BestCompression
		e.pngBuf.Reset()
		if err := e.pngEnc.Encode(&e.pngBuf, m); err != nil {
			return nil, fmt.Errorf("encode mask: %w", err)
		}
		if e.pngBuf.Len() > limit {
			return nil, fmt.Errorf("mask PNG of %d bytes exceeds the %d-byte payload limit (mqtt.max_payload)", e.pngBuf.Len(), limit)
		}
	}
	return e.pngBuf.Bytes(), nil
}
