package cli

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
)

// imageFiles is a model.ImageSource over image files, decoded through
// capture's bounded decode: a file whose header declares more than
// maxPixels pixels (capture.max_pixels) is refused before any pixel
// memory is taken for it.
type imageFiles struct {
	paths     []string
	maxPixels int64
	// misalign, when set, moves every image by its Rd-MVTec transform
	// (eval --misalign), keyed by its path under root.
	misalign *dataset.Misalign
	// dim, when set, takes every image as the dark line's sensor would
	// (eval --dim): its noise keyed by the image's path under root, after
	// the misalignment (the two are not combined by eval).
	dim  *dataset.Dim
	root string
}

func (s imageFiles) Len() int { return len(s.paths) }

func (s imageFiles) Image(i int) (image.Image, error) { return s.load(s.paths[i]) }

// ImageName is image i's path (model.ImageNamer: fit errors name it).
func (s imageFiles) ImageName(i int) string { return s.paths[i] }

// load is a dataset.Loader: the image as the evaluation sees it (moved
// by its misalignment transform, darkened by the dark-line protocol, when
// there is one).
func (s imageFiles) load(path string) (image.Image, error) {
	img, err := s.loadRaw(path)
	if p, ok := s.params(path); ok && err == nil {
		img = p.Apply(img)
	}
	if s.dim != nil && err == nil {
		img = s.dim.Apply(img, s.key(path))
	}
	return img, err
}

// loadRaw decodes an image file as it is.
func (s imageFiles) loadRaw(path string) (image.Image, error) {
	img, _, err := capture.DecodeImageFile(path, s.maxPixels)
	// A link to nothing, or round in a loop, is named as one.
	return img, dataset.ImageFileError(path, err)
}

// params is the misalignment transform of the image at path (false
// without --misalign). The key is the path under the data set's folder,
// so a draw moves each image the same way whatever folder the set lies in.
func (s imageFiles) params(path string) (dataset.MisalignParams, bool) {
	if s.misalign == nil {
		return dataset.MisalignParams{}, false
	}
	return s.misalign.Params(s.key(path)), true
}

// key is the image's path under the data set's folder, with forward
// slashes: the transforms' key, the same whatever folder the set lies in.
func (s imageFiles) key(path string) string {
	if rel, err := filepath.Rel(s.root, path); err == nil {
		return filepath.ToSlash(rel)
	}
	return path
}

// skipped counts the files a command left out, by reason, for its summary
// line; each one is also named in a log line when it is skipped.
type skipped struct {
	tooLarge, unreadable, misshapen, tiny int
	// broken counts links leading nowhere (to nothing or round in a
	// loop): the log names each as one, and the summary counted them as
	// unreadable files, which sent one looking for corrupt images.
	broken    int
	maxPixels int64
	// named are the files already named in the log: eval meets a set's
	// test files once per draw and recipe column, and named each skipped
	// one as often (K warnings for one file with --train-draws K). The
	// copies of a set's tally share it, and count each file every time.
	named map[string]bool
}

// add counts path as skipped for err and logs it, once per tally (and
// its copies).
func (s *skipped) add(log *slog.Logger, path string, err error) {
	reason := "unreadable or not an image"
	switch {
	case errors.Is(err, capture.ErrImageTooLarge):
		s.tooLarge++
		reason = "too large"
	case errors.Is(err, model.ErrFrameTooSmall):
		s.tiny++
		reason = "too small"
	case errors.Is(err, dataset.ErrMaskShape):
		s.misshapen++
		reason = "mask of another shape than its image"
	case isBrokenLink(err):
		s.broken++
		reason = "broken link"
	default:
		s.unreadable++
	}
	if s.named[path] {
		return
	}
	if s.named != nil {
		s.named[path] = true
	}
	log.Warn("file skipped", "file", path, "reason", reason, "err", err)
}

func (s *skipped) count() int { return s.tooLarge + s.unreadable + s.misshapen + s.tiny + s.broken }

// isBrokenLink reports whether err says that a file is a link leading
// nowhere (dataset.ImageFileError's words for it).
func isBrokenLink(err error) bool {
	var dl *dataset.DanglingLinkError
	var ll *dataset.LinkLoopError
	return errors.As(err, &dl) || errors.As(err, &ll)
}

// String is the summary, "" when nothing was skipped.
func (s *skipped) String() string {
	if s.count() == 0 {
		return ""
	}
	var why []string
	if s.tooLarge > 0 {
		why = append(why, fmt.Sprintf("%d over capture.max_pixels (%d pixels)", s.tooLarge, s.maxPixels))
	}
	if s.unreadable > 0 {
		why = append(why, fmt.Sprintf("%d unreadable or not an image", s.unreadable))
	}
	if s.broken > 0 {
		why = append(why, plural(s.broken, "broken link")+" (to nothing or round in a loop)")
	}
	if s.tiny > 0 {
		why = append(why, fmt.Sprintf("%d under %d pixels a side", s.tiny, model.MinFrameSide))
	}
	if s.misshapen > 0 {
		why = append(why, fmt.Sprintf("%d with a mask of another shape", s.misshapen))
	}
	plural := "s"
	if s.count() == 1 {
		plural = ""
	}
	return fmt.Sprintf("skipped %d file%s: %s (the log names each)", s.count(), plural, strings.Join(why, ", "))
}

// admitImages decodes each file through the bounded decode and keeps
// those that decode, in order; the others are counted in sk and logged.
// The header alone is not enough: a file cut short reads as an image until
// its body runs out, and the fit meets it in every candidate family. The
// header check comes first, so a decompression bomb is refused before any
// pixel memory is taken; a decode costs a few milliseconds per training
// image, once, against the fit's backbone passes.
func admitImages(paths []string, maxPixels int64, log *slog.Logger, sk *skipped) []string {
	kept := paths[:0:0]
	for _, p := range paths {
		img, err := imageFiles{maxPixels: maxPixels}.loadRaw(p)
		if err == nil {
			err = model.CheckFrameSize(img.Bounds().Dx(), img.Bounds().Dy())
		}
		if err != nil {
			sk.add(log, p, err)
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// newSkipped starts the tally for a command run under cfgMaxPixels
// (capture.max_pixels).
func newSkipped(cfgMaxPixels int) *skipped {
	return &skipped{maxPixels: int64(cfgMaxPixels), named: map[string]bool{}}
}
