//go:build !cgo || noturbojpeg

package capture

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
)

// turboAvailable says that MJPEG frames are decoded by libjpeg-turbo: not in
// this build (no cgo, or the noturbojpeg tag), which decodes with Go's
// image/jpeg at full resolution.
const turboAvailable = false

// JPEGDecoderName names the JPEG decoder this build uses for camera frames,
// for the log and `inspectd version`.
func JPEGDecoderName() string { return "image/jpeg (Go; built without libjpeg-turbo)" }

// errNoTurbo is never returned while turboAvailable is false: the decoder
// takes the image/jpeg path before any turbo method.
var errNoTurbo = errors.New("built without libjpeg-turbo")

type turbo struct{}

type jpegInfo struct {
	width, height int
	subsamp       image.YCbCrSubsampleRatio
	gray, ycc     bool
}

func (in jpegInfo) planes(w, h int) (yStride, yRows, cStride, cRows int) { return w, h, w, h }

func (t *turbo) close()                                                     {}
func (t *turbo) header([]byte) (jpegInfo, error)                            { return jpegInfo{}, errNoTurbo }
func (t *turbo) decodeYCbCr([]byte, *image.YCbCr, int) error                { return errNoTurbo }
func (t *turbo) decodePacked([]byte, []byte, int, int, int, int, int) error { return errNoTurbo }

const (
	turboGray = 0
	turboRGBA = 1
)

func scaled(d, reduce int) int { return (d + reduce - 1) / reduce }

// EncodeJPEG encodes img with Go's image/jpeg at quality 1..100,
// appending to dst. image/jpeg writes 4:2:0 only: another subsampling is
// an error in this build.
func EncodeJPEG(dst []byte, img image.Image, quality int, subsampling image.YCbCrSubsampleRatio) ([]byte, error) {
	if _, gray := img.(*image.Gray); !gray && subsampling != image.YCbCrSubsampleRatio420 {
		return nil, fmt.Errorf("encode JPEG: built without libjpeg-turbo, image/jpeg writes 4:2:0 only, not %v", subsampling)
	}
	b := bytes.NewBuffer(dst)
	if err := jpeg.Encode(b, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("encode JPEG: %w", err)
	}
	return b.Bytes(), nil
}
