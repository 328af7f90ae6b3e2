package capture

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const benchW, benchH = 1280, 720

func reportFPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// benchScene is a 1280×720 frame of the synthetic scene: textured, like a
// camera image, so JPEG sizes and decode times are realistic.
func benchScene(b *testing.B) *image.RGBA {
	b.Helper()
	sy, err := NewSynthetic(SyntheticOptions{Width: benchW, Height: benchH, Seed: 1, DefectRate: 1})
	if err != nil {
		b.Fatal(err)
	}
	var f Frame
	if err := sy.Next(context.Background(), &f); err != nil {
		b.Fatal(err)
	}
	return f.Image.(*image.RGBA)
}

// BenchmarkYUYV converts 1280×720 YUYV frames. The baseline is the standard
// library's fastest path for the same job: image/draw from a planar 4:2:2
// image.YCbCr into RGBA.
func BenchmarkYUYV(b *testing.B) {
	buf := toYUYV(benchScene(b), 0)
	b.Run("to-RGBA", func(b *testing.B) {
		dst, _ := DecodeYUYV(nil, buf, benchW, benchH, YUVLimited)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			dst, _ = DecodeYUYV(dst, buf, benchW, benchH, YUVLimited)
		}
		reportFPS(b)
	})
	b.Run("to-Gray", func(b *testing.B) {
		dst, _ := DecodeYUYVGray(nil, buf, benchW, benchH, YUVLimited)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			dst, _ = DecodeYUYVGray(dst, buf, benchW, benchH, YUVLimited)
		}
		reportFPS(b)
	})
	b.Run("baseline-image-draw-YCbCr422", func(b *testing.B) {
		src := image.NewYCbCr(image.Rect(0, 0, benchW, benchH), image.YCbCrSubsampleRatio422)
		dst := image.NewRGBA(src.Rect)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			draw.Draw(dst, dst.Rect, src, image.Point{}, draw.Src)
		}
		reportFPS(b)
	})
}

// BenchmarkMJPEG decodes a 1280×720 MJPEG frame. The baseline is plain
// image/jpeg on the same frame with its Huffman tables; the others are the
// camera path: insert the tables, decode with image/jpeg, convert into a
// reused buffer.
func BenchmarkMJPEG(b *testing.B) {
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, benchScene(b), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	withDHT := jb.Bytes()
	noDHT, _ := stripDHT(b, withDHT)
	b.Run("baseline-image-jpeg", func(b *testing.B) {
		b.SetBytes(int64(len(withDHT)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := jpeg.Decode(bytes.NewReader(withDHT)); err != nil {
				b.Fatal(err)
			}
		}
		reportFPS(b)
	})
	for _, c := range []struct {
		name  string
		color Color
	}{{"no-DHT-to-RGBA", ColorRGB}, {"no-DHT-to-Gray", ColorGray}} {
		b.Run(c.name, func(b *testing.B) {
			var d MJPEGDecoder
			img, err := d.Decode(nil, noDHT, c.color)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(noDHT)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				img, _ = d.Decode(img, noDHT, c.color)
			}
			reportFPS(b)
		})
	}
	b.Run("fix-up-only", func(b *testing.B) {
		buf := make([]byte, 0, len(withDHT)+len(stdDHT))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			buf, _, _ = FixMJPEG(buf, noDHT)
		}
	})
}

// BenchmarkROI cuts a 640×640 region out of a 1280×720 frame and rotates
// it: views of the decoded frame, no copy. The baseline is the copy of the
// whole frame's pixels that a copying ROI would cost at least.
func BenchmarkROI(b *testing.B) {
	scene := benchScene(b)
	roi := image.Rect(320, 40, 960, 680)
	for _, c := range []struct {
		name string
		opts TransformOptions
	}{
		{"view-640x640", TransformOptions{ROI: roi}},
		{"view-640x640-rot90", TransformOptions{ROI: roi, Rotate: 90}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr, err := NewTransform(&staticSource{img: scene}, c.opts)
			if err != nil {
				b.Fatal(err)
			}
			var f Frame
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = tr.Next(ctx, &f)
			}
		})
	}
	b.Run("baseline-copy-full-frame", func(b *testing.B) {
		pix := scene.Pix
		dst := make([]byte, len(pix))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			copy(dst, pix)
		}
	})
}

// loopDevice has the same frame ready whenever the camera waits (and none
// queued behind it), to time the camera's own per-frame work.
type loopDevice struct {
	fakeDevice
	frame []byte
}

func (d *loopDevice) WaitFrame(t time.Duration) (bool, error) { return t > 0, nil }
func (d *loopDevice) GetFrame() (Buffer, error)               { return Buffer{Data: d.frame}, nil }
func (d *loopDevice) ReleaseFrame(uint32) error               { return nil }
func (d *loopDevice) Close() error                            { return nil }

// BenchmarkCameraNext is the whole camera path for 1280×720 YUYV: wait,
// dequeue, skip to the newest buffer, decode, requeue.
func BenchmarkCameraNext(b *testing.B) {
	w := NewFakeCamera()
	w.sizes[FormatYUYV] = []FrameSize{{MinWidth: benchW, MaxWidth: benchW, MinHeight: benchH, MaxHeight: benchH}}
	dev := &loopDevice{fakeDevice: fakeDevice{w: w}, frame: toYUYV(benchScene(b), 0)}
	c, err := NewCamera(CameraOptions{Device: "/dev/video0", Formats: []FourCC{FormatYUYV}, Width: benchW, Height: benchH,
		Open: func(string) (Device, error) { return dev, nil }, Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	var f Frame
	ctx := context.Background()
	if err := c.Next(ctx, &f); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Next(ctx, &f); err != nil {
			b.Fatal(err)
		}
	}
	reportFPS(b)
}

func BenchmarkSynthetic(b *testing.B) {
	for _, size := range []image.Point{{256, 256}, {benchW, benchH}} {
		b.Run(image.Rect(0, 0, size.X, size.Y).Size().String(), func(b *testing.B) {
			sy, _ := NewSynthetic(SyntheticOptions{Width: size.X, Height: size.Y, DefectRate: 0.5})
			var f Frame
			_ = sy.Next(context.Background(), &f)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = sy.Next(context.Background(), &f)
			}
			reportFPS(b)
		})
	}
}

// BenchmarkFolderChecksum measures what the watched folder's checksum of a
// file it read (fileStamp.sum, CRC-32C, read once more from the page
// cache) adds to reading the file, against the read itself (the decode)
// in the same run: a 1280×960 PNG and a 1280×960 JPEG.
func BenchmarkFolderChecksum(b *testing.B) {
	img := testImage(1280, 960)
	for _, kind := range []string{"png", "jpeg"} {
		dir := b.TempDir()
		var buf bytes.Buffer
		var err error
		if kind == "png" {
			err = png.Encode(&buf, img)
		} else {
			err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
		}
		if err != nil {
			b.Fatal(err)
		}
		name := "part." + kind
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		fl, err := NewFolder(FolderOptions{Dir: dir, Log: quietLog()})
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(dir, name)
		each := func(b *testing.B, use func(fh *os.File) error) {
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				fh, err := openRegular(path)
				if err != nil {
					b.Fatal(err)
				}
				err = use(fh)
				fh.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(kind+"/decode", func(b *testing.B) {
			each(b, func(fh *os.File) error {
				_, _, err := fl.dec.decode(fh, path, 0)
				return err
			})
		})
		b.Run(kind+"/checksum", func(b *testing.B) {
			each(b, func(fh *os.File) error {
				if _, ok := fl.sumOf(fh); !ok {
					return errors.New("no checksum")
				}
				return nil
			})
		})
	}
}
