package daemon

import (
	"fmt"
	"image"
	"log/slog"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/model/dataset"
)

// OpenSource builds the configured frame source with its ROI, rotation and
// trigger mode. The Triggered wrapper is returned too when the mode is
// external, for the MQTT trigger handler.
func OpenSource(cfg *config.Config, log *slog.Logger) (capture.Source, *capture.Triggered, string, error) {
	src, desc, err := openCapture(cfg, log, sourceOpen{})
	if err != nil {
		return nil, nil, "", err
	}
	if cfg.Capture.Trigger.Mode == config.TriggerExternal {
		tr := capture.NewTriggered(src, triggerOptions(cfg))
		return tr, tr, desc, nil
	}
	return src, nil, desc, nil
}

// triggerOptions maps capture.trigger onto the trigger queue's options.
func triggerOptions(cfg *config.Config) capture.TriggerOptions {
	return capture.TriggerOptions{Queue: cfg.Capture.Trigger.Queue, MaxAge: cfg.Capture.Trigger.MaxAge.Std()}
}

// sourceOpen is what the daemon asks of a frame source beyond its
// configuration.
type sourceOpen struct {
	// ledger records the files a folder source hands out (nil: none); the
	// daemon keeps it across the sources it opens.
	ledger *capture.FolderLedger
	// requireDevice refuses a camera whose device is not there instead of
	// waiting for it (a change of device on a running line).
	requireDevice bool
	// reportSkips makes a folder source return the files it skips
	// (capture.SkippedFileError), for the pipeline to answer each.
	reportSkips bool
	// cameraOpen opens a camera's device (nil: the kernel's V4L2; tests
	// give a capture.FakeCamera's).
	cameraOpen capture.Opener
}

// openCapture builds the configured frame source with its ROI and
// rotation, throttled to capture.trigger.max_rate in free-run; the trigger
// queue, when the mode is external, goes in front of it.
func openCapture(cfg *config.Config, log *slog.Logger, o sourceOpen) (capture.Source, string, error) {
	c := cfg.Capture
	var src capture.Source
	var desc string
	var err error
	switch c.Source {
	case config.SourceSynthetic, "":
		src, err = capture.NewSynthetic(capture.SyntheticOptions{Width: c.Synthetic.Width, Height: c.Synthetic.Height,
			Seed: uint64(c.Synthetic.Seed), DefectRate: c.Synthetic.DefectRate})
		desc = fmt.Sprintf("synthetic %dx%d", c.Synthetic.Width, c.Synthetic.Height)
		if err == nil && c.Synthetic.FPS > 0 {
			// Rendered frames come as fast as asked for; a camera's do not.
			src, err = capture.NewThrottle(src, float64(c.Synthetic.FPS))
		}
	case config.SourceCamera:
		var formats []capture.FourCC
		for _, f := range c.Camera.Formats {
			fc, err := capture.ParseFourCC(f)
			if err != nil {
				return nil, "", &FieldError{Field: "capture.camera.formats", Err: err}
			}
			formats = append(formats, fc)
		}
		src, err = capture.NewCamera(capture.CameraOptions{Device: c.Camera.Device, Formats: formats, Width: c.Camera.Width,
			Height: c.Camera.Height, FPS: float64(c.Camera.FPS), Buffers: c.Camera.Buffers, Controls: c.Camera.Controls,
			FrameTimeout: c.Camera.Timeout.Std(), MaxPixels: int64(c.MaxPixels), Log: log, RequireDevice: o.requireDevice, Open: o.cameraOpen})
		desc = c.Camera.Device
	case config.SourceFolder:
		src, err = capture.NewFolder(capture.FolderOptions{Dir: c.Folder.Path, Watch: c.Folder.Watch, Loop: c.Folder.Loop,
			MaxPixels: int64(c.MaxPixels), Log: log, Ledger: o.ledger, ReportSkips: o.reportSkips, Explain: dataset.ImageFileError})
		desc = "folder " + c.Folder.Path
	case config.SourceFile:
		src, err = capture.NewFile(capture.FileOptions{Path: c.File.Path, Loop: true, MaxPixels: int64(c.MaxPixels)})
		// A link that leads to nothing or round in a loop was refused as
		// "stat /x.jpg: no such file or directory" of a file ls shows:
		// said where it leads, as the folder source and fit say it.
		err = dataset.ImageFileError(c.File.Path, err)
		desc = "file " + c.File.Path
	default:
		return nil, "", fmt.Errorf("capture.source %q: want synthetic, camera, folder or file", c.Source)
	}
	if err != nil {
		// Named by the key that set what failed: "capture.source file:
		// file source: stat /x.jpg: …" did not name capture.file.path. A
		// FieldError, so that a push's refusal carries the key in its
		// field (keyed), as every other refusal of a value does.
		switch c.Source {
		case config.SourceFile:
			return nil, "", &FieldError{Field: "capture.file.path", Err: err}
		case config.SourceFolder:
			return nil, "", &FieldError{Field: "capture.folder.path", Err: err}
		}
		return nil, "", fmt.Errorf("capture.source %s: %w", c.Source, err)
	}
	t := TransformOptions(cfg)
	if !t.Identity() {
		cut, err := capture.NewTransform(src, t)
		if err != nil {
			// A file's image the roi does not fit in: capture.rotate and
			// the roi's own form were validated with the file. Keyed, so
			// that a push's refusal carries capture.roi in its field, as
			// the file's own refusals carry capture.file.path.
			_ = src.Close()
			return nil, "", &FieldError{Field: "capture.roi", Err: err}
		}
		src = cut
	}
	if c.Trigger.Mode == config.TriggerExternal {
		return src, desc, nil
	}
	throttled, err := capture.NewThrottle(src, c.Trigger.MaxRate)
	if err != nil {
		_ = src.Close()
		return nil, "", &FieldError{Field: "capture.trigger.max_rate", Err: err}
	}
	return throttled, desc, nil
}

// keepsROISize reports whether a frame source opened for next cuts the
// same capture.roi out of the same camera, asked for the same frame size,
// as the one running for cur: its region cutter then holds the roi to the
// frame size the running one holds it to (capture.HoldSize). A change of
// the roi, the device or capture.camera.width/height says the roi is given
// for the size the camera sends next; the device is compared as the node
// it resolves to (a /dev/v4l/by-id link given for /dev/video0 is the same
// camera).
func keepsROISize(cur, next *config.Config) bool {
	a, b := cur.Capture, next.Capture
	return a.Source == config.SourceCamera && b.Source == config.SourceCamera && a.ROI == b.ROI &&
		capture.SameDevice(a.Camera.Device, b.Camera.Device) && a.Camera.Width == b.Camera.Width && a.Camera.Height == b.Camera.Height
}

// TransformOptions maps capture.roi and capture.rotate onto the region of
// interest and rotation of capture.Transform.
func TransformOptions(cfg *config.Config) capture.TransformOptions {
	c := cfg.Capture
	t := capture.TransformOptions{Rotate: c.Rotate}
	if c.ROI.Width > 0 || c.ROI.Height > 0 || c.ROI.X > 0 || c.ROI.Y > 0 {
		t.ROI = image.Rect(c.ROI.X, c.ROI.Y, c.ROI.X+c.ROI.Width, c.ROI.Y+c.ROI.Height)
		if c.ROI.Width == 0 {
			t.ROI.Max.X = capture.ToEdge
		}
		if c.ROI.Height == 0 {
			t.ROI.Max.Y = capture.ToEdge
		}
	}
	return t
}
