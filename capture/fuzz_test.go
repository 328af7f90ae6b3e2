package capture

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// FuzzFixMJPEG feeds arbitrary camera frames to the Huffman-table fix-up
// and the decoder behind it: they must fail cleanly, never panic, and an
// inserted table must be the only change.
func FuzzFixMJPEG(f *testing.F) {
	orig := encodeJPEG(f, testImage(24, 16))
	noDHT, _ := stripDHT(f, orig)
	gray := encodeJPEG(f, image.NewGray(image.Rect(0, 0, 9, 9)))
	grayNoDHT, _ := stripDHT(f, gray)
	f.Add(orig)
	f.Add(noDHT)
	f.Add(grayNoDHT)
	f.Add(noDHT[:len(noDHT)/2])
	f.Add([]byte{0xff, 0xd8, 0xff, 0xff, 0xff, 0xda, 0, 2})
	f.Add([]byte{0xff, 0xd8, 0xff, 0xd0, 0xff, 0x01, 0xff, 0xda})
	f.Add([]byte("garbage"))
	var dec MJPEGDecoder
	f.Fuzz(func(t *testing.T, data []byte) {
		out, inserted, err := FixMJPEG(nil, data)
		if err != nil {
			if out != nil || inserted {
				t.Fatal("error with output")
			}
			return
		}
		if !inserted {
			if len(out) != len(data) || (len(data) > 0 && &out[0] != &data[0]) {
				t.Fatal("frame without insertion was copied or changed")
			}
		} else {
			i := bytes.Index(out, stdDHT)
			if i < 0 || len(out) != len(data)+len(stdDHT) {
				t.Fatal("inserted table missing or size wrong")
			}
			if !bytes.Equal(append(append([]byte(nil), out[:i]...), out[i+len(stdDHT):]...), data) {
				t.Fatal("fix-up changed more than the inserted table")
			}
		}
		// The decoder must turn any input into an image or an error.
		if len(data) < 1<<16 {
			if cfg, err := jpeg.DecodeConfig(bytes.NewReader(out)); err == nil && cfg.Width*cfg.Height <= 1<<20 {
				_, _ = dec.Decode(nil, data, ColorAuto)
				// Reduced in the DCT domain, and converted by libjpeg-turbo.
				img, r, err := dec.DecodeScaled(nil, data, ColorRGB, func(w, h int) (int, int) { return 8, 8 })
				if err == nil && (img.Bounds().Dx() != (cfg.Width+r-1)/r || img.Bounds().Dy() != (cfg.Height+r-1)/r) {
					t.Fatalf("%dx%d decoded at 1/%d as %v", cfg.Width, cfg.Height, r, img.Bounds())
				}
				_, _, _ = dec.DecodeScaled(nil, data, ColorGray, func(w, h int) (int, int) { return 8, 8 })
			}
		}
	})
}

// FuzzSplitMJPEG cuts arbitrary streams into frames: each frame it
// returns runs from an SOI to an EOI, in order, without overlap.
func FuzzSplitMJPEG(f *testing.F) {
	a := encodeJPEG(f, testImage(24, 16))
	f.Add(append(append([]byte(nil), a...), a...))
	f.Add(a[:len(a)-3])
	f.Add([]byte{0xff, 0xd8, 0xff, 0xda, 0, 2, 0xff, 0, 0xff, 0xd0, 0xff, 0xd9})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, err := SplitMJPEG(data)
		if err != nil {
			return
		}
		pos := 0
		for _, fr := range frames {
			i := bytes.Index(data[pos:], fr)
			if len(fr) < 4 || fr[0] != 0xff || fr[1] != markerSOI || fr[len(fr)-2] != 0xff || fr[len(fr)-1] != markerEOI || i < 0 {
				t.Fatalf("frame of %d bytes is not an SOI..EOI slice of the stream after byte %d", len(fr), pos)
			}
			pos += i + len(fr)
		}
	})
}

// FuzzDecodeYUYV checks the YUYV decoder on arbitrary buffers and sizes
// against a floating-point reference of the same transform.
func FuzzDecodeYUYV(f *testing.F) {
	f.Add(toYUYV(testImage(8, 4), 0), uint8(4), uint8(4), false)
	f.Add(toYUYV(testImage(8, 4), 6), uint8(4), uint8(4), true)
	f.Add([]byte{0, 0, 255, 255, 16, 128, 235, 128}, uint8(1), uint8(2), false)
	f.Add([]byte{1, 2, 3}, uint8(3), uint8(1), false)
	f.Fuzz(func(t *testing.T, data []byte, halfW, h uint8, full bool) {
		w := 2 * int(halfW)
		rng := YUVLimited
		if full {
			rng = YUVFull
		}
		img, err := DecodeYUYV(nil, data, w, int(h), rng)
		if err != nil {
			if w > 0 && h > 0 && len(data) >= w*int(h)*2 {
				t.Fatalf("%dx%d with %d bytes: %v", w, h, len(data), err)
			}
			return
		}
		stride, _ := packedStride(data, w, int(h), 2)
		for y := 0; y < int(h); y++ {
			for x := 0; x < w; x++ {
				o := y*stride + (x/2)*4
				Y, U, V := float64(data[o+(x%2)*2]), float64(data[o+1])-128, float64(data[o+3])-128
				var r, g, b float64
				if full {
					r, g, b = Y+1.402*V, Y-0.344136*U-0.714136*V, Y+1.772*U
				} else {
					c := (Y - 16) * 255 / 219
					r, g, b = c+1.596027*V, c-0.391762*U-0.812968*V, c+2.017232*U
				}
				p := img.RGBAAt(x, y)
				for i, want := range []float64{r, g, b} {
					got := float64([]uint8{p.R, p.G, p.B}[i])
					want = math.Min(math.Max(want, 0), 255)
					if math.Abs(got-want) > 1.01 {
						t.Fatalf("pixel %d,%d channel %d = %v, want %.2f (Y %v U %v V %v)", x, y, i, got, want, Y, U, V)
					}
				}
				if p.A != 255 {
					t.Fatal("alpha not opaque")
				}
			}
		}
	})
}

// FuzzDecodeImage feeds the bounded decode arbitrary files, seeded with
// the decompression bombs of the field report and one of each format:
// under a pixel limit it must return an image within the limit or an
// error, never panic, and an ImageTooLargeError must be true.
func FuzzDecodeImage(f *testing.F) {
	f.Add(readTestdata(f, pngBomb))
	f.Add(readTestdata(f, bmpBomb))
	f.Add(tiffBomb(f, 65535, 65535))
	f.Add(gifBomb())
	f.Add(jpegBomb(f, 60000, 60000))
	src := testImage(24, 16)
	for _, enc := range []func(io.Writer, image.Image) error{
		png.Encode, bmp.Encode,
		func(w io.Writer, m image.Image) error {
			return tiff.Encode(w, m, &tiff.Options{Compression: tiff.Deflate})
		},
		func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) },
		func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) },
	} {
		var b bytes.Buffer
		if err := enc(&b, src); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	// Small enough that whatever is accepted decodes in a blink.
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		img, format, err := DecodeImage(bytes.NewReader(data), "fuzz", limit)
		cfg, cformat, cerr := CheckImage(bytes.NewReader(data), "fuzz", limit)
		var tl *ImageTooLargeError
		if errors.As(cerr, &tl) != errors.Is(err, ErrImageTooLarge) {
			t.Fatalf("CheckImage says %v, DecodeImage %v", cerr, err)
		}
		if errors.As(err, &tl) {
			if tl.Width <= 0 || tl.Height <= 0 || tl.Width <= limit/tl.Height || tl.Limit != limit {
				t.Fatalf("refused %dx%d under a limit of %d", tl.Width, tl.Height, limit)
			}
		}
		if err != nil {
			if img != nil {
				t.Fatal("image with an error")
			}
			return
		}
		if cerr != nil || cformat != format {
			t.Fatalf("decoded as %s, but CheckImage says %s, %v", format, cformat, cerr)
		}
		b := img.Bounds()
		if b.Dx() <= 0 || b.Dy() <= 0 || b.Dx()*b.Dy() > limit || b.Dx() > cfg.Width || b.Dy() > cfg.Height {
			t.Fatalf("decoded %v, header %dx%d, limit %d", b, cfg.Width, cfg.Height, limit)
		}
	})
}
