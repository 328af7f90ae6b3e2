// Package dataset reads inspection data sets in the MVTec AD folder layout,
// which most anomaly-detection data sets (and inspectd's own synthetic
// exports) follow:
//
//	train/good/*.{jpg,png}
//	test/good/*.{jpg,png}
//	test/<defect>/*.{jpg,png}
//	ground_truth/<defect>/<name>_mask.png
package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"  // decoders for Load
	_ "image/jpeg" // (the data set's images)
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	_ "golang.org/x/image/bmp"  // BMP and TIFF data sets too,
	_ "golang.org/x/image/tiff" // as the folder source reads them
)

// Good is the label of defect-free images.
const Good = "good"

// Item is one image of the data set.
type Item struct {
	Path string
	// Label is "good" or the defect type (the test sub-folder's name).
	Label string
	// MaskPath is the ground-truth mask, "" for good images or when the
	// data set has none for this image; a mask file that is a link
	// leading nowhere is one (loading it names the link).
	MaskPath string
	// MaskMissing is where a defective image's mask was looked for when
	// there is none there ("" otherwise): which of its pixels are the
	// defect is unknown, so pixel metrics must leave the image out.
	MaskMissing string
}

// Anomalous reports whether the item is a defect.
func (it Item) Anomalous() bool { return it.Label != Good }

// Set is a scanned data set.
type Set struct {
	Dir   string
	Train []Item
	Test  []Item
	// BrokenTest are the entries of test/ that are symbolic links leading
	// nowhere (a *DanglingLinkError or a *LinkLoopError each, from
	// BrokenLink): a test/<label> linked to a copy that was moved or is
	// not mounted. Their images are not in Test, and what was meant by
	// them cannot be told, so an evaluation must say so: fitting, which
	// needs only train/good, may go on without them.
	BrokenTest []error
	// BrokenTruth are ground_truth, or the ground_truth/<label> of a
	// defect label with test images, where it is a symbolic link leading
	// nowhere (from BrokenLink, as BrokenTest). Its masks were counted as
	// missing, the warning naming the first mask file, not the link: an
	// evaluation must name it, as it names a test/<label> link.
	BrokenTruth []error
}

// imageExt are the file endings of images a data set may hold: those the
// capture folder source reads (capture.DefaultExtensions, which this
// package may not import).
var imageExt = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".tif": true, ".tiff": true, ".gif": true}

// imageExtList is imageExt's endings in the order messages list them.
const imageExtList = ".jpg .jpeg .png .bmp .tif .tiff .gif"

// IsImageFile reports whether name ends like an image file a data set may
// hold (case-insensitive) and is not hidden: a name starting with a dot is
// an editor's or a copy tool's temporary file (".~tmp003.jpg"), which the
// folder source skips too, so fit must not learn from it either.
func IsImageFile(name string) bool {
	return !strings.HasPrefix(name, ".") && imageExt[strings.ToLower(filepath.Ext(name))]
}

// ImageKinds names the image file endings, for messages.
const ImageKinds = "JPEG, PNG, BMP, TIFF or GIF"

func listImages(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !isDir(dir, e) && IsImageFile(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// isDir reports whether the entry e of dir is a folder or a symbolic link
// to one: a set assembled from links (test/<label> linked to another
// copy) read as having no test images. A link that leads nowhere is no
// folder: as a file it is named where it fails to load.
func isDir(dir string, e os.DirEntry) bool {
	if e.Type()&os.ModeSymlink == 0 {
		return e.IsDir()
	}
	st, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && st.IsDir()
}

// NoImagesError is a folder that is there but holds no image to read:
// a data set's train/good left empty (its images copied elsewhere), or
// holding only other files, hidden ones or sub-folders. It says what the
// folder does hold, so that one can tell an empty copy from images of
// another kind or one folder too deep.
type NoImagesError struct {
	// Dir is the folder.
	Dir string
	// Files are its files that are not images by their names, Hidden
	// those named like images but hidden (a leading dot: a temporary
	// file's, left out as IsImageFile says), Folders its sub-folders.
	Files, Hidden, Folders int
}

// Error reads "/d/train/good holds no images: it is empty" or "/d/train/good
// holds no images: 3 files, none an image (.jpg .jpeg .png .bmp .tif .tiff
// .gif); 2 sub-folders (images go in the folder itself, not below it)".
func (e *NoImagesError) Error() string {
	if e.Files+e.Hidden+e.Folders == 0 {
		return fmt.Sprintf("%s holds no images: it is empty", e.Dir)
	}
	var what []string
	if e.Files > 0 {
		what = append(what, fmt.Sprintf("%s, none an image (%s)", count(e.Files, "file"), imageExtList))
	}
	if e.Hidden > 0 {
		what = append(what, fmt.Sprintf("%s named like an image but hidden (a name that starts with a dot is a temporary file's, left out)", count(e.Hidden, "file")))
	}
	if e.Folders > 0 {
		what = append(what, fmt.Sprintf("%s (images go in the folder itself, not below it)", count(e.Folders, "sub-folder")))
	}
	return fmt.Sprintf("%s holds no images: %s", e.Dir, strings.Join(what, "; "))
}

// count is "1 file", "3 files".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// NoImagesIn says what dir, a folder with no image in it, holds.
func NoImagesIn(dir string) *NoImagesError { return noImages(dir) }

// noImages says what dir, which listImages found no image in, holds.
func noImages(dir string) *NoImagesError {
	e := &NoImagesError{Dir: dir}
	ents, _ := os.ReadDir(dir) // listImages has just read it
	for _, en := range ents {
		switch {
		case isDir(dir, en):
			e.Folders++
		case strings.HasPrefix(en.Name(), ".") && imageExt[strings.ToLower(filepath.Ext(en.Name()))]:
			e.Hidden++
		default:
			e.Files++
		}
	}
	return e
}

// Scan lists a data set's images. train/good is required; test is optional
// (fitting needs only normal images). A train/good that holds no image is
// refused with a *NoImagesError. Entries of test/ that are links leading
// nowhere are named in BrokenTest, not refused here.
func Scan(dir string) (*Set, error) {
	s := &Set{Dir: dir}
	train, err := listImages(filepath.Join(dir, "train", Good))
	if err != nil {
		// A link to nothing on the way is named with where it leads, and a
		// link that leads round in a loop with its loop: "no such file or
		// directory" of a link that is there misleads, and "too many
		// levels of symbolic links" names no link.
		for _, p := range []string{filepath.Join(dir, "train", Good), filepath.Join(dir, "train"), dir} {
			if bl := BrokenLink(p); bl != nil {
				err = bl
				break
			}
		}
		return nil, fmt.Errorf("data set %s: want normal images in train/good: %w", dir, err)
	}
	if len(train) == 0 {
		return nil, fmt.Errorf("data set %s: %w", dir, noImages(filepath.Join(dir, "train", Good)))
	}
	for _, p := range train {
		s.Train = append(s.Train, Item{Path: p, Label: Good})
	}
	ents, err := os.ReadDir(filepath.Join(dir, "test"))
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", dir, err)
	}
	s.BrokenTest = BrokenTestLinks(dir)
	truth := filepath.Join(dir, "ground_truth")
	truthChecked, truthBroken := false, false
	for _, e := range ents {
		if !isDir(filepath.Join(dir, "test"), e) {
			continue // a link of test/ leading nowhere: BrokenTestLinks below
		}
		label := e.Name()
		imgs, err := listImages(filepath.Join(dir, "test", label))
		if err != nil {
			return nil, fmt.Errorf("data set %s: %w", dir, err)
		}
		if label != Good && len(imgs) > 0 {
			// ground_truth (once), then this label's masks folder: a link
			// to nothing left every mask missing, named by the first file.
			if !truthChecked {
				truthChecked = true
				if bl := BrokenLink(truth); bl != nil {
					truthBroken = true
					s.BrokenTruth = append(s.BrokenTruth, bl)
				}
			}
			if !truthBroken {
				if bl := BrokenLink(filepath.Join(truth, label)); bl != nil {
					s.BrokenTruth = append(s.BrokenTruth, bl)
				}
			}
		}
		for _, p := range imgs {
			it := Item{Path: p, Label: label}
			if label != Good {
				base := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
				m := filepath.Join(dir, "ground_truth", label, base+"_mask.png")
				if _, err := os.Stat(m); err == nil {
					it.MaskPath = m
				} else if BrokenLink(m) != nil {
					// A mask file that is a link leading nowhere is there:
					// taken for none, it was warned of as missing by a name
					// ls shows. Loading it names the link (ImageFileError).
					it.MaskPath = m
				} else {
					it.MaskMissing = m
				}
			}
			s.Test = append(s.Test, it)
		}
	}
	return s, nil
}

// Labels lists the test labels, "good" first.
func (s *Set) Labels() []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range s.Test {
		if !seen[it.Label] {
			seen[it.Label] = true
			out = append(out, it.Label)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == Good) != (out[j] == Good) {
			return out[i] == Good
		}
		return out[i] < out[j]
	})
	return out
}

// Load decodes an image file, trusting its header: for files from
// outside, use a bounded Loader. A path that is not a regular file is
// refused unread (see OpenImageFile).
func Load(path string) (image.Image, error) {
	f, err := OpenImageFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if b, err := br.Peek(1); len(b) == 0 && err == io.EOF {
		// Said as it is: the decoders call nothing at all "unknown
		// format", which sends one looking for a codec.
		return nil, fmt.Errorf("decode %s: empty file (0 bytes)", path)
	}
	img, _, err := image.Decode(br)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// Loader decodes one image file of a data set. Load is the plain decoder;
// the CLI plugs in capture's bounded one, which refuses a decompression
// bomb from its header (model does not import capture).
type Loader func(path string) (image.Image, error)

// ErrMaskShape is wrapped by LoadMask's error for a mask whose shape is
// not its image's.
var ErrMaskShape = errors.New("mask does not fit its image")

// LoadMask reads a ground-truth mask as 0/1 bytes at w×h (the image's size).
// An empty path gives an all-normal mask; a mask of another size but the
// same shape (aspect ratio within 1%) is scaled by nearest neighbour, one
// of another shape is refused: it cannot be the image's.
func LoadMask(path string, w, h int, dst []uint8) ([]uint8, error) {
	return LoadMaskWith(Load, path, w, h, dst)
}

// LoadMaskWith is LoadMask with the mask decoded by load.
func LoadMaskWith(load Loader, path string, w, h int, dst []uint8) ([]uint8, error) {
	dst = append(dst[:0], make([]uint8, w*h)...)
	if path == "" {
		return dst, nil
	}
	img, err := load(path)
	if err != nil {
		return nil, fmt.Errorf("mask: %w", err)
	}
	b := img.Bounds()
	if r := float64(b.Dx()) * float64(h) / (float64(max(b.Dy(), 1)) * float64(w)); !(r > 0.99 && r < 1.01) {
		return nil, fmt.Errorf("%w: mask %s is %dx%d, its image %dx%d: want the image's size (or its shape, scaled)", ErrMaskShape, path, b.Dx(), b.Dy(), w, h)
	}
	for y := 0; y < h; y++ {
		sy := b.Min.Y + y*b.Dy()/h
		for x := 0; x < w; x++ {
			sx := b.Min.X + x*b.Dx()/w
			if color.GrayModel.Convert(img.At(sx, sy)).(color.Gray).Y >= 128 {
				dst[y*w+x] = 1
			}
		}
	}
	return dst, nil
}

// BrokenTestLinks returns the entries of dir's test/ that are symbolic
// links leading nowhere (to nothing, or round in a loop), as BrokenLink
// names them, in the folder's order; none where dir has no test/ to read.
// A test/<label> linked to nothing was left out of an evaluation without a
// word, its defects with it: Scan files them in Set.BrokenTest, and a
// folder that is not a whole data set (bench --data) asks here.
func BrokenTestLinks(dir string) []error {
	test := filepath.Join(dir, "test")
	ents, err := os.ReadDir(test)
	if err != nil {
		return nil
	}
	var broken []error
	for _, e := range ents {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if bl := BrokenLink(filepath.Join(test, e.Name())); bl != nil {
			broken = append(broken, bl)
		}
	}
	return broken
}
