package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png" // live frames are kept for the fit as PNG files
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
)

// Bounds of a folder refit, checked before an image is decoded.
const (
	// maxImageBytes bounds one image file.
	maxImageBytes = 256 << 20
	// maxImagePixels bounds one image's pixels (read from its header
	// first), so that a decompression bomb is refused unread.
	maxImagePixels = 40_000_000
	// refitTempName is the new model's file in the state directory until
	// the daemon installs it.
	refitTempName = ".refit-model.safetensors"
	// progressEvery paces progress messages.
	progressEvery = time.Second
)

// folderImages is a folder refit's images: all usable ones in name order,
// then (pick) those chosen to fit on and to validate with.
type folderImages struct {
	dir      string
	paths    []string // usable images, sorted
	skipped  int
	reasons  []string // the first few reasons files were skipped, for the reply
	fit, val []string
	// files are all the files skipped, in the order they were, for the
	// log (logSkipped): the reply names only the first few, and an
	// operator could not find the others; logged is how many of them
	// were logged.
	files  []skippedFile
	logged int
}

// skippedFile is a file a folder refit skipped, and why.
type skippedFile struct{ path, reason string }

// maxSkippedReasons is how many reasons a refit's reply gives beside its
// skipped count; the log names every skipped file.
const maxSkippedReasons = 5

// skip counts the file at path as skipped for err.
func (f *folderImages) skip(path string, err error) {
	reason := skipReason(f.dir, path, err)
	f.skipped++
	if len(f.reasons) < maxSkippedReasons {
		f.reasons = append(f.reasons, reason)
	}
	f.files = append(f.files, skippedFile{path, reason})
}

// skipReason words err, the refusal of the file at path in dir (the folder
// the refit reads), in the one style of the reply's skipped_reasons: the
// file's name in dir, then why, the path not said again. capture's
// refusals named the full path, in the OS's words or its own ("stat
// /srv/good/a.png: permission denied", "image /srv/good/a.png: image:
// unknown format", "/srv/good/p.png is a named pipe, not an image file",
// "decode /srv/good/a.png: unexpected EOF"), beside the refit's own that
// named the file alone ("bomb.png: …"), so that one reply mixed both.
func skipReason(dir, path string, err error) string {
	name := filepath.Base(path)
	if rel, rerr := filepath.Rel(dir, path); rerr == nil && filepath.IsLocal(rel) {
		name = rel
	}
	why := err.Error()
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) && pe.Path == path && why == pe.Error() {
		why = pe.Err.Error() // the OS's words, without its operation and the path
	}
	for _, c := range []struct{ prefix, by string }{
		{name + ": ", ""},
		{filepath.Base(path) + ": ", ""},
		{"image " + path + ": ", ""},
		{"decode " + path + ": ", "does not decode: "},
		{path + " is ", ""},
		{path + ": ", ""},
	} {
		if rest, ok := strings.CutPrefix(why, c.prefix); ok {
			why = c.by + rest
			break
		}
	}
	// Anything else that names the path names the file.
	return name + ": " + strings.ReplaceAll(why, path, name)
}

// logSkipped logs each skipped file not logged yet, one warning a file
// (its path and why, as its reason reads in the reply), as the folder
// source and 'inspectd fit' log theirs: each is an event of its own, and a
// line a file is what grep, journalctl and a log shipper's filter take;
// one line listing them all would run to thousands of paths (a folder
// holds up to 10 × remote.max_refit_frames entries). The refit's job logs
// them once it has decoded its picks, each file once per refit.
func (f *folderImages) logSkipped(log *slog.Logger) {
	for _, s := range f.files[f.logged:] {
		log.Warn("file skipped", "file", s.path, "reason", s.reason)
	}
	f.logged = len(f.files)
}

// logNote says, where the reply's reasons name only the first few skipped
// files, that the log names every one; "" where they name them all.
func (f *folderImages) logNote() string {
	if f.skipped <= len(f.reasons) {
		return ""
	}
	return fmt.Sprintf(" (the log names each, a 'file skipped' line a file; the first %d reasons here)", len(f.reasons))
}

// listFolder lists the usable images of dir (or of dir/train/good, the
// MVTec AD layout), reading each file's header only: files that are not
// images, too large, over maxImagePixels or under model.MinFrameSide a
// side are skipped and counted. Refused for holding no usable image, it
// returns the listing with its refusal, so that the refusal's caller logs
// the files it skipped (logSkipped) as a refit that runs does: the reply
// names only the first few.
func listFolder(dir string, maxFrames int) (*folderImages, error) {
	if !filepath.IsAbs(dir) {
		return nil, invalidf("folder", "%q is not an absolute path on the box", truncate(dir, 200))
	}
	dir = filepath.Clean(dir)
	good := filepath.Join(dir, "train", dataset.Good)
	if st, err := os.Stat(good); err == nil && st.IsDir() {
		dir = good
	} else {
		// A train/good, train or folder that is a link to nothing is
		// named with where it leads, as fit names it: the refit fell back
		// to the folder's own images ("holds no usable images", or fitted
		// on those), or said "no such file or directory" of a link that
		// is there.
		for _, p := range []string{good, filepath.Join(dir, "train"), dir} {
			if dl := dataset.DanglingLink(p); dl != nil {
				return nil, invalidf("folder", "%v: mend the link, or name the folder the images are in", dl)
			}
		}
		// A train/good that is no folder, or a train with no good in it,
		// is a data set gone wrong, as fit refuses it: the refit fitted
		// the folder's own images in its place.
		if err == nil {
			return nil, invalidf("folder", "%s is %s, not a folder: put the images in a folder train/good, or name the folder they are in", good, kindOf(st.Mode()))
		}
		if st, err := os.Stat(filepath.Join(dir, "train")); err == nil {
			if !st.IsDir() {
				return nil, invalidf("folder", "%s is %s, not a folder: put the images in a folder train/good, or name the folder they are in", filepath.Join(dir, "train"), kindOf(st.Mode()))
			}
			return nil, invalidf("folder", "%s has no folder good in it: put the images in %s, or name the folder they are in", filepath.Join(dir, "train"), good)
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, invalidf("folder", "%v", err)
	}
	if !st.IsDir() {
		// Refused unopened: opening a named pipe waits for a writer, and
		// the command handler with it.
		return nil, invalidf("folder", "%s is %s, not a folder of images", dir, kindOf(st.Mode()))
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, invalidf("folder", "%v", err)
	}
	defer d.Close()
	// A folder may hold other files besides its images, within bounds.
	limit := 10*maxFrames + 100
	var names []string
	seen := 0
	for {
		ents, err := d.ReadDir(512)
		for _, e := range ents {
			seen++
			if seen > limit {
				return nil, invalidf("folder", "%s holds more than %d entries; put the images for the refit in a folder of their own", dir, limit)
			}
			name := e.Name()
			if !dataset.IsImageFile(name) { // as fit reads a folder: hidden files left out
				continue
			}
			// Every name but a folder's: what a link leads to, and what is
			// not a regular file (a named pipe, a device), is refused by
			// checkImage, counted and named among the skipped.
			if !e.IsDir() {
				names = append(names, name)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(ents) == 0) {
			break
		}
		if err != nil {
			return nil, invalidf("folder", "list %s: %v", dir, err)
		}
	}
	slices.Sort(names)
	f := &folderImages{dir: dir}
	for _, name := range names {
		p := filepath.Join(dir, name)
		if err := checkImage(p); err != nil {
			f.skip(p, err)
			continue
		}
		f.paths = append(f.paths, p)
	}
	if len(f.paths) == 0 {
		if f.skipped == 0 {
			// Nothing named like an image: say what the folder holds (an
			// empty copy, files of another kind, a folder too deep), as
			// fit says it.
			return f, invalidf("folder", "%v", dataset.NoImagesIn(dir))
		}
		return f, invalidf("folder", "%s holds no usable images (%s); %d skipped%s: %s", dir, dataset.ImageKinds, f.skipped, f.logNote(), strings.Join(f.reasons, "; "))
	}
	return f, nil
}

// kindOf names what a path that is not a folder is: "a file", or its
// kind (a named pipe, a device).
func kindOf(m os.FileMode) string {
	if m.IsRegular() {
		return "a file"
	}
	return model.FileKind(m)
}

// pick chooses count images to fit on and validate images to check the
// model with, both spread evenly over the folder (its name order often
// follows time).
func (f *folderImages) pick(count, validate int) {
	total := count + validate
	n := len(f.paths)
	f.fit, f.val = nil, nil
	for j := range total {
		p := f.paths[j*n/total]
		if (j+1)*validate/total > j*validate/total {
			f.val = append(f.val, p)
		} else {
			f.fit = append(f.fit, p)
		}
	}
}

// admit decodes every picked image and leaves out (counted, with the
// first reasons) those that do not decode: a file cut short reads as an
// image by its header, which is all listFolder reads, and one such file
// would fail the whole refit where a fit from the command line skips it.
// It runs in the refit's job, not while the command is checked: a few
// milliseconds per image. An error when fewer than 3 images to fit on or
// none to validate with remain.
func (f *folderImages) admit() error {
	keep := func(paths []string) []string {
		out := paths[:0:0]
		for _, p := range paths {
			if _, err := loadImage(p); err != nil { // its header's size is checked again there
				f.skip(p, err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	f.fit, f.val = keep(f.fit), keep(f.val)
	if len(f.fit) < 3 || len(f.val) < 1 {
		return fmt.Errorf("%s: %d images to fit on and %d to validate with remain after decoding, a refit needs at least 3 and 1 (%d skipped, the first reasons: %s)",
			f.dir, len(f.fit), len(f.val), f.skipped, strings.Join(f.reasons, "; "))
	}
	return nil
}

// checkImage reads an image file's header: its format and size must be
// known and within bounds. It reads it as the folder source does
// (capture.CheckImageFile): a path that leads to anything but a regular
// file is refused unopened (a named pipe's open waited for a writer, and
// the refit job with it, for good; a device such as /dev/zero reads
// without end), and a compressed TIFF whose strips or tiles would inflate
// past maxImagePixels is refused by its header too.
func checkImage(path string) error {
	name := filepath.Base(path)
	// The byte bound is refit's own (capture bounds pixels, which bound
	// the memory a decode takes; the bytes bound the time its read takes).
	// What is not a regular file is left to capture, to refuse in its
	// words.
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() > maxImageBytes {
		return fmt.Errorf("%s: %d bytes, over %d", name, st.Size(), maxImageBytes)
	}
	cfg, _, err := capture.CheckImageFile(path, maxImagePixels)
	if err != nil {
		return imageError(name, brokenLinkError(path, err))
	}
	if err := model.CheckFrameSize(cfg.Width, cfg.Height); err != nil {
		// Told by the header, before the fit and validation images are
		// picked: thumbnails once took every validation pick (a trial).
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// loadImage decodes an image file after checking its header again (it may
// have changed since listFolder). capture.DecodeImageFile checks what it
// opens once more: a named pipe or a larger image put in its place since
// is refused there.
func loadImage(path string) (image.Image, error) {
	if err := checkImage(path); err != nil {
		return nil, err
	}
	img, _, err := capture.DecodeImageFile(path, maxImagePixels)
	if err != nil {
		return nil, imageError(filepath.Base(path), brokenLinkError(path, err))
	}
	return img, nil
}

// brokenLinkError is err, capture's refusal of the image file at path,
// worded as a link that leads nowhere is where path is one
// (dataset.ImageFileError: where it leads, and that it leads to nothing or
// round in a loop), under the file's name as checkImage's own refusals
// are: a train/good that is such a link is named so, where a file in it
// was skipped as "stat /srv/good/a.png: no such file or directory" or
// "… too many levels of symbolic links". err otherwise.
func brokenLinkError(path string, err error) error {
	name := filepath.Base(path)
	var dl *dataset.DanglingLinkError
	var ll *dataset.LinkLoopError
	switch bl := dataset.ImageFileError(path, err); {
	case errors.As(bl, &dl):
		return fmt.Errorf("%s: %s", name, dl.Leads())
	case errors.As(bl, &ll):
		return fmt.Errorf("%s: %s", name, ll.Leads())
	}
	return err
}

// imageError words capture's refusal of an image over maxImagePixels as a
// refit says it ("bomb.png: 200000x200000 pixels, over the limit of
// 40000000"): capture's words name its own setting, capture.max_pixels,
// which does not bound a refit. Other errors are capture's.
func imageError(name string, err error) error {
	var big *capture.ImageTooLargeError
	if !errors.As(err, &big) {
		return err
	}
	if big.Part != "" {
		return fmt.Errorf("%s: compressed %ss of %dx%d pixels, over the limit of %d", name, big.Part, big.Width, big.Height, maxImagePixels)
	}
	return fmt.Errorf("%s: %dx%d pixels, over the limit of %d", name, big.Width, big.Height, maxImagePixels)
}

// refit is one running refit job.
type refit struct {
	env     *Env
	p       *refitPlan
	opts    model.Options
	started time.Time
	// dir is the state directory when the refit started: its frames and
	// model file stay there if state_dir changes meanwhile (a reload).
	dir string

	mu        sync.Mutex
	prog      Progress
	lastEmit  time.Time
	collected int
	// fitDone and fitTotal are the fit's own steps (model.Progress): the
	// fit reads every image several times (the recipe search), so once
	// its images are in, its steps say how far it is, not the frames.
	fitDone, fitTotal int
	// done is the share of the job reported last: progress never goes
	// back.
	done float64
}

// frames hands out a refit's images: live frames (paced by the interval)
// or the folder's chosen files. A fit reads every image more than once
// (its Gaussians, then each image's leave-one-out score; the recipe search
// more), so image i is the same every time it is asked for: a live frame
// is collected once, in order, and kept as a PNG file in keep.
type frames struct {
	r     *refit
	ctx   context.Context
	paths []string // nil: live
	n     int
	next  int       // live: frames collected; folder: files read so far
	last  time.Time // the last live frame's time (zero: none yet, no wait)
	keep  string    // live frames' folder ("": not kept, each read once)
}

// Len implements model.ImageSource.
func (f *frames) Len() int { return f.n }

// Image implements model.ImageSource.
func (f *frames) Image(i int) (image.Image, error) {
	if i < 0 || i >= f.n {
		return nil, fmt.Errorf("image %d of %d", i, f.n)
	}
	if f.paths != nil {
		img, err := loadImage(f.paths[i])
		if i >= f.next {
			f.next = i + 1
			f.r.took()
		}
		return img, err
	}
	if f.keep != "" && i < f.next {
		return loadImage(f.kept(i))
	}
	var img image.Image
	for f.next <= i {
		var err error
		if img, err = f.live(); err != nil {
			return nil, err
		}
		if f.keep != "" {
			if err := savePNG(f.kept(f.next-1), img); err != nil {
				return nil, fmt.Errorf("keep live frame %d for the fit: %w", f.next, err)
			}
		}
	}
	return img, nil
}

// ImageName implements model.ImageNamer: a folder's file, or a live
// frame's place in the refit (its kept copy goes with the refit).
func (f *frames) ImageName(i int) string {
	if f.paths != nil && i >= 0 && i < len(f.paths) {
		return f.paths[i]
	}
	return fmt.Sprintf("live frame %d", i+1)
}

// kept is the file of live frame i.
func (f *frames) kept(i int) string { return filepath.Join(f.keep, fmt.Sprintf("frame-%05d.png", i)) }

// live collects the next live frame, waiting out the interval.
func (f *frames) live() (image.Image, error) {
	if !f.last.IsZero() && f.r.p.interval > 0 {
		wait := time.Until(f.last.Add(f.r.p.interval))
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.ctx.Done():
				t.Stop()
				return nil, f.ctx.Err()
			}
		}
	}
	f.next++
	f.last = time.Now()
	img, err := f.r.env.Ctl.NextFrame(f.ctx)
	if err != nil {
		return nil, fmt.Errorf("live frame %d: %w", f.next, err)
	}
	f.r.took()
	return img, nil
}

// savePNG writes img losslessly (the fit must read what the camera gave).
func savePNG(path string, img image.Image) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(fh, img); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// took counts a frame and publishes progress.
func (r *refit) took() {
	r.mu.Lock()
	r.collected++
	r.prog.Frames = r.collected
	// A live refit's fit frames are all in: what is left of the fit is
	// the fitting itself.
	collected := r.prog.Phase == "collecting" && r.collected == r.p.count
	if collected {
		r.prog.Phase = "fitting"
	}
	r.mu.Unlock()
	r.publish(collected)
}

// jobShare is how much of a refit is done, 0 to 1: the frames taken of
// total, except while fitting, when the fit's share of the job (its count
// frames) goes as far as its own steps (fitDone of fitTotal).
func jobShare(phase string, frames, total, count, fitDone, fitTotal int) float64 {
	done := float64(frames) / float64(total)
	if phase == "fitting" && fitTotal > 0 {
		done = float64(count) / float64(total) * float64(fitDone) / float64(fitTotal)
	}
	return min(max(done, 0), 1)
}

// fitProgress records the fit's own progress (model.Progress).
func (r *refit) fitProgress(done, total int) {
	r.mu.Lock()
	r.fitDone, r.fitTotal = done, total
	r.mu.Unlock()
	r.publish(false)
}

// phase moves the job to a new phase and publishes it.
func (r *refit) phase(name string) {
	r.mu.Lock()
	r.prog.Phase = name
	r.mu.Unlock()
	r.publish(true)
}

// publish updates the job's progress (for status) and publishes it on the
// refit topic at most once per progressEvery, and at every phase change.
func (r *refit) publish(force bool) {
	now := r.env.Now()
	r.mu.Lock()
	p := &r.prog
	p.Elapsed = math.Round(now.Sub(r.started).Seconds()*10) / 10
	if p.Total > 0 {
		r.done = max(r.done, jobShare(p.Phase, p.Frames, p.Total, r.p.count, r.fitDone, r.fitTotal))
		p.Percent = math.Round(1000*r.done) / 10
		if r.done > 0 && r.done < 1 {
			p.ETA = math.Round(p.Elapsed*(1-r.done)/r.done*10) / 10
		} else {
			p.ETA = 0
		}
	}
	snap := *p
	due := force || now.Sub(r.lastEmit) >= progressEvery
	if due {
		r.lastEmit = now
	}
	r.mu.Unlock()
	if j := r.env.running(); j != nil && j.id == r.env.ID {
		j.setProgress(snap)
	}
	if due {
		if b, err := json.Marshal(snap); err == nil {
			r.env.emit("refit", b, 0)
		}
	}
}

// run is the job: it publishes the final state (done, failed or
// cancelled) with the reply's figures at QoS 1.
func (r *refit) run(ctx context.Context) (map[string]any, error) {
	source := "live"
	if r.p.folder != nil {
		source = "folder " + r.p.folder.dir
	}
	r.prog = Progress{ID: r.env.ID, Phase: "starting", Total: r.p.count + r.p.validate, Source: source}
	data, err := r.do(ctx)
	if data == nil {
		data = map[string]any{}
	}
	data["source"] = source
	final := map[string]any{"id": r.env.ID, "phase": "done", "elapsed_s": math.Round(r.env.Now().Sub(r.started).Seconds()*10) / 10}
	switch {
	case err != nil && ctx.Err() != nil:
		// In the reply's words, cancel reason first: progress and reply
		// are read side by side.
		if j := r.env.running(); j != nil && j.id == r.env.ID {
			err = r.env.d.cancelled(j, err)
		}
		final["phase"], final["error"] = "cancelled", err.Error()
	case err != nil:
		final["phase"], final["error"] = "failed", err.Error()
	}
	for k, v := range data {
		final[k] = v
	}
	if b, merr := json.Marshal(final); merr == nil {
		r.env.emit("refit", b, 1)
	}
	return data, err
}

func (r *refit) do(ctx context.Context) (map[string]any, error) {
	ctl := r.env.Ctl
	prev := ctl.ModelInfo()
	keeps := fmt.Sprintf("the model in force (%s) stays", orNone(prev.ID))
	opts := r.opts
	// One core for the refit's backbone and sums: inspection keeps the rest.
	opts.Workers, opts.Backbone.Threads = 1, 1
	opts.Logger = r.env.Log
	opts.Backbone.Logger = r.env.Log
	// Settings the fit drops without a word (a context scale without the
	// z-score it needs), said in the log of the fit they change.
	for _, w := range ctl.Config().Warnings() {
		r.env.Log.Warn("setting left out of the fit", "field", w.Field, "why", w.Msg, "refit", r.env.ID)
	}

	count, validate := r.p.count, r.p.validate
	src := &frames{r: r, ctx: ctx, n: count}
	if f := r.p.folder; f != nil {
		err := f.admit()
		f.logSkipped(r.env.Log)
		if err != nil {
			return nil, errorf(CodeFailed, "folder", "%v; %s", err, keeps)
		}
		count, validate = len(f.fit), len(f.val)
		src.paths, src.n = f.fit, count
		r.phase("fitting")
	} else {
		base := r.dir
		if base != "" {
			os.RemoveAll(filepath.Join(base, refitFramesName)) // an interrupted refit's
		}
		keep, err := keepDir(base)
		if err != nil {
			return nil, errorf(CodeFailed, "", "a folder for the live frames: %v; %s", err, keeps)
		}
		defer os.RemoveAll(keep)
		src.keep = keep
		r.phase("collecting")
	}
	det, rep, err := model.Fit(ctx, opts, src, r.fitProgress)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s", keeps)
		}
		return nil, errorf(CodeFailed, "", "%v; %s", err, keeps)
	}
	defer func() {
		if det != nil {
			det.Close()
		}
	}()
	if err := rep.Separates(); err != nil {
		return nil, errorf(CodeFailed, "", "refit rejected: %v; %s", err, keeps)
	}
	info := det.Info()
	out := map[string]any{"previous_model_id": prev.ID, "image_threshold": info.ImageThreshold, "pixel_threshold": info.PixelThreshold,
		"features": info.Features, "grid": fmt.Sprintf("%dx%d", info.GridH, info.GridW), "images": rep.Images, "threshold_images": rep.ThresholdImages,
		"recipe":      info.Recipe,
		"state_bytes": info.StateBytes, "fit_s": math.Round(rep.Wall.Seconds()*10) / 10}
	if len(rep.Highest) > 0 && info.ImageThreshold > 0 {
		// What the threshold rests on most, as fit prints it: a "good"
		// image with dirt or a defect lifts it for every part.
		hs := make([]map[string]any, 0, len(rep.Highest))
		for _, h := range rep.Highest {
			hs = append(hs, map[string]any{"image": h.Name, "score": math.Round(h.Score/info.ImageThreshold*1000) / 1000})
		}
		out["threshold_highest"] = hs
	}
	if n := rep.Noise; n.Images > 0 {
		// As fit prints it: faint defects may drown in a noisy line's
		// noise, and the recipe search cannot see that.
		out["line_noise"] = n // the fit logged its warning
	}
	if f := r.p.folder; f != nil && f.skipped > 0 {
		out["skipped"] = f.skipped
		out["skipped_reasons"] = f.reasons
	}

	// The new model judged on frames the fit never saw.
	r.phase("validating")
	// Live: the first frame waits the interval after the last fit frame.
	vsrc := &frames{r: r, ctx: ctx, n: validate, last: time.Now()}
	if r.p.folder != nil {
		vsrc.paths = r.p.folder.val
	}
	var alarms int
	var worst float64
	for i := range validate {
		img, err := vsrc.Image(i)
		if err != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("%s", keeps)
			}
			return out, errorf(CodeFailed, "", "validation frame %d: %v; %s", i+1, err, keeps)
		}
		ins, err := det.Inspect(img)
		if err != nil {
			return out, errorf(CodeFailed, "", "validation frame %d: %v; %s", i+1, err, keeps)
		}
		if math.IsNaN(ins.Score) || math.IsInf(ins.Score, 0) {
			return out, errorf(CodeFailed, "", "validation frame %d scored %v: the new model is broken; %s", i+1, ins.Score, keeps)
		}
		if ins.Anomalous {
			alarms++
		}
		worst = max(worst, ins.Normalized)
	}
	far := float64(alarms) / float64(validate)
	out["validation"] = map[string]any{"frames": validate, "false_alarms": alarms, "false_alarm_rate": round3(far),
		"max_normalized_score": round3(worst), "max_false_alarm_rate": r.p.maxFAR}
	if far > r.p.maxFAR {
		return out, errorf(CodeFailed, "", "refit rejected: %d of %d validation frames (%.1f%%) score above the new threshold %.4g, more than max_false_alarm_rate %.1f%% allows: the frames were not all normal, or the line changed during collection; %s",
			alarms, validate, 100*far, info.ImageThreshold, 100*r.p.maxFAR, keeps)
	}
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("%s", keeps)
	}

	r.phase("installing")
	dir := r.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "inspectd-refit-"); err != nil {
			return out, errorf(CodeFailed, "", "%v; %s", err, keeps)
		}
		defer os.RemoveAll(dir)
	}
	tmp := filepath.Join(dir, refitTempName)
	// 0600: the install gives it the permissions of the model file it
	// replaces (0644 where there is none); saved 0644, a model meant to be
	// 0600 was readable by others until then.
	err = det.SaveWith(tmp, atomicfile.Options{Perm: 0o600})
	det.Close()
	det = nil
	if err != nil {
		os.Remove(tmp)
		return out, errorf(CodeFailed, "", "%v; %s", err, keeps)
	}
	installed, err := ctl.InstallModel(ctx, tmp)
	os.Remove(tmp) // gone after a successful install (renamed into place)
	if err != nil {
		// The daemon's refusals of the model files say that the model in
		// force stays: said twice, it read as two failures.
		if strings.Contains(err.Error(), "the model in force stays") {
			return out, refusedKey(err, "install: %v", err)
		}
		return out, refusedKey(err, "install: %v; %s", err, keeps)
	}
	out["model_id"] = installed.ID
	out["model"] = modelSummary(installed)
	r.env.Log.Info("refit installed", "model_id", installed.ID, "previous_model_id", prev.ID, "threshold", installed.ImageThreshold,
		"false_alarm_rate", far, "wall", r.env.Now().Sub(r.started).Round(time.Millisecond))
	return out, nil
}

func orNone(id string) string {
	if id == "" {
		return "none"
	}
	return id
}

// removeStaleRefitFile deletes a new model left behind by a refit that a
// kill interrupted before its install.
func removeStaleRefitFile(dir string, log interface{ Info(string, ...any) }) {
	if dir == "" {
		return
	}
	p := filepath.Join(dir, refitTempName)
	if err := os.Remove(p); err == nil {
		log.Info("removed the model file of an interrupted refit", "file", p)
	}
	if p := filepath.Join(dir, refitFramesName); !absent(p) {
		if err := os.RemoveAll(p); err == nil {
			log.Info("removed the live frames of an interrupted refit", "folder", p)
		}
	}
}

// refitFramesName is the folder in the state directory that holds a live
// refit's frames while it fits.
const refitFramesName = "refit-frames"

// keepDir makes the folder for a live refit's frames: refitFramesName in
// the state directory, or a temporary folder without one.
func keepDir(stateDir string) (string, error) {
	if stateDir == "" {
		return os.MkdirTemp("", "inspectd-refit-frames-")
	}
	p := filepath.Join(stateDir, refitFramesName)
	return p, os.MkdirAll(p, 0o700)
}
