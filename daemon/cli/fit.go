package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/padim"
)

// normalImages lists the normal images of DIR: train/good in the MVTec AD
// layout, or DIR's own images.
func normalImages(dir string) ([]string, error) {
	s, err := dataset.Scan(dir)
	if err == nil {
		var out []string
		for _, it := range s.Train {
			out = append(out, it.Path)
		}
		return out, nil
	}
	// A train/good (or DIR) that is a link to nothing, or one that leads
	// round in a loop, is named with where it leads, not taken for a
	// folder of images without that layout.
	var dl *dataset.DanglingLinkError
	var ll *dataset.LinkLoopError
	var ni *dataset.NoImagesError
	switch {
	case errors.As(err, &dl):
		return nil, fmt.Errorf("data %s: %w", dir, dl)
	case errors.As(err, &ll):
		return nil, fmt.Errorf("data %s: %w", dir, ll)
	case errors.As(err, &ni):
		// A train/good that is there but holds no image is a data set
		// whose images went elsewhere, not a folder of images: DIR's own
		// (stray copies, a preview) were fitted in its place.
		return nil, fmt.Errorf("data %s: %w: put the normal images in it%s", dir, ni, ownImagesNote(dir, "train/good"))
	}
	// A train/good (or train) that is there but no folder of images is a
	// data set gone wrong, not a folder of images: DIR's own were fitted
	// in its place without a word.
	good := filepath.Join(dir, "train", dataset.Good)
	if st, err := os.Stat(good); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("data %s: %s is a file, not a folder: put the normal images in a folder train/good%s", dir, good, ownImagesNote(dir, "train/good"))
	}
	if st, err := os.Stat(filepath.Join(dir, "train")); err == nil {
		if !st.IsDir() {
			return nil, fmt.Errorf("data %s: %s is a file, not a folder: put the normal images in a folder train/good%s", dir, filepath.Join(dir, "train"), ownImagesNote(dir, "train"))
		}
		if _, err := os.Stat(good); os.IsNotExist(err) {
			return nil, fmt.Errorf("data %s: %s has no folder good in it: put the normal images in %s%s", dir, filepath.Join(dir, "train"), good, ownImagesNote(dir, "train"))
		}
	}
	out, err := folderImages(dir)
	if err != nil {
		return nil, fmt.Errorf("data %s: %w", dir, err)
	}
	if len(out) == 0 {
		// Say what the folder holds: an empty copy, images of another
		// kind and a folder too deep each want another mend.
		return nil, fmt.Errorf("data %s: no train/good folder in it, and %w", dir, dataset.NoImagesIn(dir))
	}
	return out, nil
}

// checkModelOutsideFitData refuses, before the fit, a model file (given
// by flag) named as an image in the folder fit reads data's images from
// (train/good, or data itself without one; links followed as outputLands
// does): the next fit would read the model as one of its images (a
// trial's --out SET/train/good/x.png; eval refuses its outputs in a
// set's folders likewise, checkOutputsOutsideSets).
func checkModelOutsideFitData(data, out, flag string) error {
	if !imageName(out) {
		return nil
	}
	read := data
	if st, err := os.Stat(filepath.Join(data, "train", dataset.Good)); err == nil && st.IsDir() {
		read = filepath.Join(data, "train", dataset.Good)
	}
	if filepath.Dir(outputLands(out)) != outputLands(read) {
		return nil
	}
	return usagef("%s %s lies in %s, the folder fit reads its images from, named as an image: the next fit would read it as one; name it model.safetensors, say, or put it outside %s",
		flag, out, read, read)
}

// folderImages lists the images in dir itself.
func folderImages(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && dataset.IsImageFile(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// ownImagesNote says that the images in dir itself, when it has any, are
// not fitted in the place of train/good (empty, or no folder), and how to
// fit on them: removing what stands in the way (in, relative to dir).
func ownImagesNote(dir, in string) string {
	own, _ := folderImages(dir)
	if len(own) == 0 {
		return ""
	}
	return fmt.Sprintf(" (the %d images in %s itself are not fitted in its place: move them into train/good, or remove %s to fit on them)", len(own), dir, in)
}

// progressBar draws fit progress on a terminal (steps/s, ETA); elsewhere
// it stays silent and the fit's own log line reports the result.
func progressBar(w io.Writer, label string) model.Progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	start := time.Now()
	return func(done, total int) {
		el := time.Since(start).Seconds()
		rate := float64(done) / max(el, 1e-9)
		eta := time.Duration(float64(total-done)/max(rate, 1e-9)) * time.Second
		const width = 30
		n := done * width / max(total, 1)
		// Steps are image passes (the recipe search passes over each
		// image several times), not images. The cursor is left at the
		// line's start: a log line written meanwhile replaces the bar
		// instead of running on after it, and the next draw comes below.
		fmt.Fprintf(w, "\r%s [%s%s] %d/%d steps %.1f/s ETA %s\r", label, strings.Repeat("#", n), strings.Repeat(".", width-n),
			done, total, rate, eta.Round(time.Second))
		if done == total {
			fmt.Fprintln(w)
		}
	}
}

func cmdFit() *Command {
	return &Command{
		Name:    "fit",
		Summary: "fit a PaDiM model on normal images and save it",
		Usage:   "--data DIR [--out MODEL] [--config FILE] [--max-train N] [--force]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "fit")
			data := fs.String("data", "", "normal images: a folder in MVTec AD layout (train/good) or a folder of images")
			out := fs.String("out", "", "model file to write (default: model.path of the configuration)")
			cfgPath := fs.String("config", "", "configuration file (default: built-in defaults)")
			maxTrain := fs.Int("max-train", 0, "fit on at most this many images (spread over the folder; 0: all)")
			force := fs.Bool("force", false, "save the model even when the recipe search finds it separating synthetic defects from good images no better than chance")
			cfg, err := parseDataCommand(fs, args, data, cfgPath)
			if err != nil {
				return err
			}
			if *maxTrain < 0 {
				return usagef("--max-train %d: want a count ≥ 0 (0: all)", *maxTrain)
			}
			outGiven := false
			fs.Visit(func(f *flag.Flag) { outGiven = outGiven || f.Name == "out" })
			switch {
			case outGiven && strings.TrimSpace(*out) == "":
				// A variable that expanded to nothing: not the system's
				// model.path (a trial wrote /var/lib/inspectd's model so).
				return usagef("--out is empty: give the model file to write, or leave --out out for model.path (%s)", cfg.ModelPath())
			case *out == "":
				*out = cfg.ModelPath()
			}
			// A path from the configuration is named by its key, as the
			// daemon names it: the user did not type it.
			what, key := "model file", "--out"
			if !outGiven {
				key = modelKey(cfg)
				what = key + ": model file"
			}
			if err := checkModelOutsideFitData(*data, *out, key); err != nil {
				return err
			}
			made, err := prepareModelFile(cfg, what, key, *out)
			if err != nil {
				return err
			}
			// A fit that ends without a model file leaves no folders it
			// made for it: a typo in --out would otherwise leave a tree.
			saved := false
			defer func() {
				if !saved {
					removeEmptyFolders(made)
				}
			}()
			// The model's noisy-line warning is held back: stdout says it
			// below, in more words (a refit's log keeps it), and it came
			// twice; logged after all where the fit ends before that.
			noisy, log := holdWarning(env.Log.Handler(), noisyLineLog)
			defer noisy.release(ctx)
			fitEnv := *env
			fitEnv.Log = log
			// As eval's fits: no backbone cache kept in a state_dir the
			// daemon would not make.
			opts, err := benchOptions(cfg, &fitEnv, "")
			if err != nil {
				return err
			}
			daemon.WarnIgnoredSettings(cfg, env.Log)
			paths, err := normalImages(*data)
			if err != nil {
				return err
			}
			sk := newSkipped(cfg.Capture.MaxPixels)
			src := imageFiles{paths: admitImages(paths, int64(cfg.Capture.MaxPixels), env.Log, sk), maxPixels: int64(cfg.Capture.MaxPixels)}
			capped := ""
			if *maxTrain > 0 && *maxTrain < len(src.paths) {
				capped = fmt.Sprintf("--max-train %d kept %d of the %d images", *maxTrain, *maxTrain, len(src.paths))
				src.paths = spread(src.paths, *maxTrain)
			}
			det, rep, err := model.Fit(ctx, opts, src, progressBar(env.Stderr, "fit"))
			if err != nil {
				if capped != "" && errors.Is(err, model.ErrTooFewImages) {
					err = fmt.Errorf("%w (%s)", err, capped)
				}
				if sk.count() > 0 {
					return fmt.Errorf("%w (%s)", err, sk)
				}
				return err
			}
			defer det.Close()
			if rep.Search != nil {
				printSearch(env.Stdout, rep.Search)
			}
			if err := checkSeparation(env.Stdout, rep, *out, *force); err != nil {
				return err
			}
			if err := daemon.SaveModelFile(det, *out); err != nil {
				return err
			}
			saved = true
			info := det.Info()
			for k, m := range info.Members {
				fmt.Fprintf(env.Stdout, "ensemble member %d: %s, d=%d, grid %dx%d, state %.1f MiB, its threshold %.4g (the unit of its map in the mean)\n",
					k+1, m.Recipe, m.Features, m.GridH, m.GridW, float64(m.StateBytes)/(1<<20), m.ImageThreshold)
			}
			ctxGrid := "no context scale"
			if info.ContextPool > 0 {
				ctxGrid = fmt.Sprintf("context grid %dx%d d=%d weight %g", info.ContextGridH, info.ContextGridW, info.ContextFeatures, info.ContextWeight)
			}
			if s := rep.Search; s != nil && s.Fallback != "" && s.Chosen.Recipe.ZScore && !info.PositionZScore && rep.Images < model.MinZScoreImages {
				fmt.Fprintf(env.Stdout, "fitted %s instead of %s: the position z-score and the context scale need at least %d images (this fit had %d)\n",
					info.Recipe, s.Chosen.Name, model.MinZScoreImages, rep.Images)
			}
			fmt.Fprintf(env.Stdout, "fitted %s with recipe %s on %d images: d=%d, grid %dx%d, %s, state %.1f MiB, %s, %s\n",
				*out, info.Recipe, rep.Images, rep.Features, info.GridH, info.GridW, ctxGrid, float64(rep.StateBytes)/(1<<20),
				thresholdNote(info.ImageThreshold, rep.ThresholdImages), rep.Wall.Round(time.Millisecond))
			if sk.count() > 0 {
				fmt.Fprintln(env.Stdout, sk)
			}
			if n := rep.ThresholdImages; n > 0 && n < model.FewThresholdImages { // 0: model.threshold.value
				fmt.Fprintf(env.Stdout, "WARNING: the threshold rests on %d good images: with fewer than %d it is the largest of a few scores and good parts will be flagged; fit on 200 or more\n",
					n, model.FewThresholdImages)
			}
			printHighest(env.Stdout, rep, info.ImageThreshold)
			if rep.Noise.Images > 0 {
				fmt.Fprintf(env.Stdout, "line noise: %s\n", lineNoiseText(rep.Noise))
			} else {
				// Said, not left out: every fit says the line's noise, and
				// a silent one reads as a step skipped.
				fmt.Fprintln(env.Stdout, "line noise: not measured: the training images measured are clipped black or white nearly everywhere (a backlit silhouette, say), where no sensor noise shows")
			}
			if rep.Noise.Low() {
				fmt.Fprintf(env.Stdout, "WARNING: %s\n", noisyLineAdvice)
				noisy.drop()
			}
			return nil
		},
	}
}

// printHighest names the training images with the highest leave-one-out
// scores (model.FitReport.Highest), which the threshold (image) is taken
// from: a hair, dirt or a defect in a "good" image lifts the threshold for
// every part, and only the user can tell such an image from the line's
// normal variation (the score alone cannot: measured on the shared sets,
// screw's top training scores come from hairs on the background that its
// test images do not show, kolektorsdd's from variation its good test
// images share).
func printHighest(w io.Writer, rep model.FitReport, image float64) {
	if len(rep.Highest) == 0 {
		return
	}
	fmt.Fprintf(w, "the good images the threshold rests on most (leave-one-out score ÷ threshold; the median of the %d is %.2f):\n",
		rep.ThresholdImages, rep.MedianScore/image)
	for _, h := range rep.Highest {
		name := h.Name
		if name == "" {
			name = fmt.Sprintf("image %d", h.Index)
		}
		fmt.Fprintf(w, "  %5.2f  %s\n", h.Score/image, name)
	}
	fmt.Fprintln(w, "  a hair, dirt, a defect or a pose the line never shows in one of these lifts the threshold for every part: look at them, move any that is not a good part out of the training images and fit again")
}

// checkSeparation refuses a fit whose chosen recipe does not separate the
// search's synthetic defects (model.FitReport.Separates): the model would
// pass defective parts. With force it is written, after a warning on w.
func checkSeparation(w io.Writer, rep model.FitReport, out string, force bool) error {
	err := rep.Separates()
	switch {
	case err == nil:
		return nil
	case !force:
		return fmt.Errorf("%s not written: %w (--force writes it anyway)", out, err)
	}
	fmt.Fprintf(w, "WARNING: %v\n", err)
	return nil
}

// modelKey is the setting that names cfg's model file: model.path, or
// state_dir where model.path is unset and the file lives there.
func modelKey(cfg *config.Config) string {
	if cfg.Model.Path == "" {
		return "state_dir"
	}
	return "model.path"
}

// thresholdNote says where the image threshold came from: the leave-one-out
// scores of images good images, or (none) model.threshold.value.
func thresholdNote(th float64, images int) string {
	if images == 0 {
		return fmt.Sprintf("threshold %.4g (model.threshold.value)", th)
	}
	return fmt.Sprintf("threshold %.4g from %d good images (each scored leave one out)", th, images)
}

// prepareModelFile readies path, the model file a fit is to write (fit
// --out, eval --save-model), before the fit, so that minutes of fitting
// do not end on a file that cannot be saved: state_dir is created (0750)
// where path lies in it, as the daemon's first start would; the missing
// folders above path are made (0755) and returned, deepest first, for
// removeEmptyFolders where no model is saved after all; and a folder that
// cannot be made or written, a device or pipe at path, an immutable or
// append-only file or folder are refused, in what's words (the file) and
// key's (the flag or configuration key), with the folders made removed.
func prepareModelFile(cfg *config.Config, what, key, path string) ([]string, error) {
	if filepath.Clean(filepath.Dir(path)) == filepath.Clean(cfg.StateDir) {
		// The daemon creates state_dir at its first start (config
		// check says so); a fit before that first start does too, but
		// only where the daemon would: one made in an append-only
		// folder, which the daemon refuses to make, stayed there for
		// good.
		if err := stateDirRefusal(cfg.StateDir); err != nil {
			return nil, err
		}
		if err := atomicfile.MkdirAll(cfg.StateDir, 0o750); err != nil {
			return nil, fmt.Errorf("state_dir %s: %w", cfg.StateDir, err)
		}
	}
	// config check's advice for a missing model is "fit one first with
	// inspectd fit --out <model.path>": its folder may not be there yet
	// (a trial ended on the write check's temp file); eval --save-model
	// refused such a folder where fit --out made it.
	made, err := makeFolderOf(what, path)
	if err != nil {
		return nil, err
	}
	if err := canWriteBeside(what, path, "model.safetensors"); err != nil {
		removeEmptyFolders(made)
		return nil, err
	}
	// A device or a pipe, or a link to one or into a process's open
	// files (/dev/stdout), would be replaced by the model file: Save
	// refuses it, but only after the fit.
	if err := model.CheckSaveTarget(path); err != nil {
		removeEmptyFolders(made)
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	// An immutable or append-only file (or folder) refuses the model's
	// rename at the end: in the same words, before the fit.
	if err := atomicfile.CheckTarget(path); err != nil {
		removeEmptyFolders(made)
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return made, nil
}

// canWriteBeside checks that a file can be created in path's folder (a
// model is saved there atomically: a temporary file, then a rename) and
// that path is not a folder; what names the file in the error, example a
// file name to suggest in a folder.
func canWriteBeside(what, path, example string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		// The file is renamed into place at the end: onto a folder that
		// fails only after the whole fit.
		return fmt.Errorf("%s %s is a folder: give a file in it, such as %s", what, path, filepath.Join(path, example))
	}
	dir := absFolder(filepath.Dir(path))
	// An append-only folder takes the check's file but refuses its
	// removal (it stayed, and the error was remove's), an immutable one
	// takes none, root or not: name the attribute and what clears it,
	// before anything is written there.
	if err := atomicfile.CheckFolder(dir); err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	f, err := os.CreateTemp(dir, ".inspectd-write-check-*")
	if err != nil {
		// The check's temp file is no name the user knows: the folder
		// and why it takes no file are.
		if why := folderRefusal(dir, err); why != "" {
			return fmt.Errorf("%s %s: %s", what, path, why)
		}
		return fmt.Errorf("%s %s: cannot write in %s: %s", what, path, dir, folderProblem(dir, err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("%s %s: the write check's file cannot be removed from %s: %w", what, path, dir, err)
	}
	return nil
}

// makeFolderOf creates path's folder and the missing ones above it (0755)
// and returns those it created, deepest first; what names the file in the
// error, which says in plain words which folder cannot be made and why.
func makeFolderOf(what, path string) ([]string, error) {
	dir := filepath.Dir(path)
	made, err := makeFolder(dir, true)
	if err != nil {
		return nil, fmt.Errorf("%s %s: cannot create its folder %s: %w", what, path, dir, err)
	}
	return made, nil
}

// makeFolder creates dir and the missing folders above it (0755) and
// returns those it created, deepest first. Its error says in plain words
// why dir cannot be made (a plain file on the way, a folder that takes no
// new folder), without naming dir. undo says the folders made are to be
// removed again where the run writes nothing in them (removeEmptyFolders):
// an append-only folder to make them in is then refused.
func makeFolder(dir string, undo bool) ([]string, error) {
	dir = absFolder(dir)
	if _, err := os.Stat(dir); err == nil {
		return nil, nil // a file there is canWriteBeside's to name
	}
	// A plain file on the way is named as one: mkdir says only "not a
	// directory", of the folder it could not make.
	if f := fileOnTheWay(dir); f != "" {
		return nil, fmt.Errorf("%s is a file, not a folder", f)
	}
	var made []string
	base := dir // the nearest of dir and the folders above it that is there
	for ; ; base = filepath.Dir(base) {
		if _, err := os.Lstat(base); err == nil || filepath.Dir(base) == base {
			break
		}
		made = append(made, base)
	}
	// A link to nothing (or round in a loop) on the way: mkdir says "file
	// exists" of it, which read as its folder taking no new files, or
	// "too many levels of symbolic links", naming no link.
	if err := dataset.BrokenLink(base); err != nil {
		return nil, err
	}
	// An append-only folder lets a folder be made in it but never removed:
	// one made for a run that then saves no model would stay for good. It
	// is refused by its attribute, as a state_dir to be made in one is (an
	// immutable one refuses the mkdir: said alike below).
	if undo && len(made) > 0 && errors.As(atomicfile.CheckFolder(base), new(*atomicfile.AttrError)) {
		if why := folderRefusal(base, syscall.EPERM); why != "" {
			return nil, errors.New(why)
		}
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		// The folder that refused is the parent of the one mkdir made.
		in := filepath.Dir(dir)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			in = filepath.Dir(pe.Path)
		}
		why := folderRefusal(in, err)
		if why == "" {
			why = folderProblem(in, err)
		}
		return nil, errors.New(why)
	}
	return made, nil
}

// absFolder is dir made absolute for the errors that name it: a relative
// --out, --json or --report named the working folder "folder .". dir as
// given where the working folder cannot be found.
func absFolder(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

// removeEmptyFolders removes the folders makeFolderOf made (deepest first)
// that are still empty; one something was put in stays, and so do those
// above it.
func removeEmptyFolders(made []string) {
	for _, d := range made {
		if os.Remove(d) != nil {
			return
		}
	}
}

// folderRefusal says why dir, when it is a folder that is there, refused a
// new file (err), and what mends it, in the daemon's words
// (daemon.FolderUnwritable); "" when dir is not such a folder, or it is
// full (folderProblem says those). A kernel file system such as /proc
// answers "no such file or directory" for a folder that is there: fit
// said "/proc does not exist".
func folderRefusal(dir string, err error) string {
	if st, serr := os.Stat(dir); serr != nil || !st.IsDir() || errors.Is(err, syscall.ENOSPC) {
		return ""
	}
	why, mend := daemon.FolderUnwritable(dir, err)
	if mend != "" {
		why += "; " + mend
	}
	return why
}

// folderProblem says in plain words why a file could not be made in dir
// when folderRefusal does not: dir is missing, a file, out of reach, or
// full.
func folderProblem(dir string, err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return dir + " cannot be reached (permission denied)"
	case errors.Is(err, syscall.ENOTDIR):
		if f := fileOnTheWay(dir); f != "" {
			return f + " is a file, not a folder"
		}
	case errors.Is(err, fs.ErrNotExist):
		return dir + " does not exist"
	case errors.Is(err, syscall.ENOSPC):
		return "no space left on its device"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error() // without the path of what was being made
	}
	return err.Error()
}

// fileOnTheWay returns the nearest of dir and the folders above it that
// exists, when it is not a folder; "" otherwise.
func fileOnTheWay(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil {
			if !st.IsDir() {
				return d
			}
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// printSearch prints the recipe search's table: every candidate's
// validation figures on held-out good images with synthetic defects, the
// chosen one marked.
func printSearch(w io.Writer, s *model.SearchReport) {
	if s.Fallback != "" {
		fmt.Fprintf(w, "recipe search skipped (%s): fixed recipe %s\n", s.Fallback, s.Chosen.Name)
		return
	}
	// The ensemble is built from the best candidate after the others
	// (model.Options.tryEnsemble): counted among them, the header said
	// one candidate more than the search tried.
	singles := 0
	for _, c := range s.Candidates {
		if !c.Recipe.Ensemble() {
			singles++
		}
	}
	ensemble := ""
	if singles < len(s.Candidates) {
		ensemble = " and the ensemble of the best (the last row)"
	}
	fmt.Fprintf(w, "recipe search: %s%s, each fitted on %d images and judged on %d held-out good images, untouched and with %d synthetic defects (%.1f s)\n",
		plural(singles, "candidate"), ensemble, s.FitImages, s.Good, s.Defects, s.Wall.Seconds())
	switch {
	case s.Configured:
		fmt.Fprintf(w, "registration (%s, capture.align) on every candidate\n", s.Align)
	case s.Align != "":
		fmt.Fprintf(w, "registration (%s) tried with every candidate beside unregistered frames: the good images' parts move (%.1f%% of the frame's diagonal, %.1f° rms)\n",
			s.Align, 100*s.Pose.Shift, s.Pose.Angle)
	}
	if s.Denoise {
		fmt.Fprintln(w, "median filter (3×3, -med) tried with every candidate beside unfiltered frames, the margin keeping the filtered fixed recipe: the line is noisy (see line noise)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "recipe\tscore\timage AUROC\tpixel AUROC\tPRO\tfalse alarms\tmisses\tthreshold\tregion IoU\tpixel ratio\t")
	for _, c := range s.Candidates {
		mark := "  "
		switch {
		case c.Name == s.Chosen.Name:
			mark = " *"
		case c.Name == s.Reference:
			mark = " ="
		}
		if c.Err != "" {
			fmt.Fprintf(tw, "%s%s\t%s\t\t\t\t\t\t\t\t\t\n", c.Name, mark, "failed: "+c.Err)
			continue
		}
		f := c.Figures
		iou := "n/a" // no synthetic defect flagged
		if f.RegionImages > 0 {
			iou = fmt.Sprintf("%.4f", f.RegionIoU)
		}
		fmt.Fprintf(tw, "%s%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f%%\t%.1f%%\t%.4g\t%s\t%.2f\t\n", c.Name, mark, f.Score, f.ImageAUROC, f.PixelAUROC, f.PRO,
			100*f.FalseAlarms, 100*f.Misses, c.Threshold, iou, f.PixelRatio)
	}
	tw.Flush()
	if s.Chosen.Recipe.Ensemble() {
		fmt.Fprintf(w, "chosen: %s (*), an ensemble: scored at least as high as the single recipe the search chose; it runs %d backbones per frame (model.ensemble: false keeps one)\n",
			s.Chosen.Name, len(s.Chosen.Recipe.Members))
	} else if ref, ok := s.Candidate(s.Reference); ok && s.Reference != s.Chosen.Name && ref.Figures.FalseAlarms > s.FalseAlarms {
		fmt.Fprintf(w, "chosen: %s (*), the best ranked: the fixed recipe %s (=) flagged %.1f%% of the held-out good images, more than the %.0f%% allowed, so no margin kept it\n",
			s.Chosen.Name, s.Reference, 100*ref.Figures.FalseAlarms, 100*s.FalseAlarms)
	} else if s.Reference != "" && s.Reference != s.Chosen.Name {
		fmt.Fprintf(w, "chosen: %s (*), more than the margin (%.2g) above the fixed recipe %s (=)\n", s.Chosen.Name, s.Margin, s.Reference)
	} else if s.Reference != "" {
		fmt.Fprintf(w, "chosen: %s (*), the fixed recipe: no candidate beat it by more than the margin\n", s.Chosen.Name)
	} else {
		fmt.Fprintf(w, "chosen: %s (* above)\n", s.Chosen.Name)
	}
	printPixelRatio(w, s.Chosen.Figures)
}

// printPixelRatio says how far the chosen recipe's alarm regions reach
// (model.PixelRatios) and what the choice rests on.
func printPixelRatio(w io.Writer, f model.RecipeFigures) {
	switch {
	case f.RegionImages == 0:
		fmt.Fprintf(w, "alarm regions: grown to %.2g × the image threshold (the default: no synthetic defect was flagged to measure them on)\n", padim.DefaultPixelRatio)
	case f.RegionImages < model.MinPixelRatioImages:
		fmt.Fprintf(w, "alarm regions: grown to %.2g × the image threshold (the default: %s, too few to choose another share on; region IoU %.4f)\n",
			padim.DefaultPixelRatio, plural(f.RegionImages, "flagged synthetic defect"), f.RegionIoU)
	case f.PixelRatio == padim.DefaultPixelRatio:
		fmt.Fprintf(w, "alarm regions: grown to %.2g × the image threshold (the default: region IoU %.4f over %s, no other share more than %.2g above it)\n",
			f.PixelRatio, f.RegionIoU, plural(f.RegionImages, "flagged synthetic defect"), model.PixelRatioMargin)
	default:
		fmt.Fprintf(w, "alarm regions: grown to %.2g × the image threshold, where they matched the synthetic defects best (region IoU %.4f over %s)\n",
			f.PixelRatio, f.RegionIoU, plural(f.RegionImages, "flagged synthetic defect"))
	}
}

// lineNoiseText gives a line's noise figures (model.LineNoise) and, for a
// noisy line, says so.
func lineNoiseText(n model.LineNoise) string {
	if n.Low() {
		return fmt.Sprintf("%s: a noisy line (ratio under %d)", n, model.LowSignalToNoise)
	}
	return n.String()
}

// noisyLineAdvice is what fit says of a noisy line (model.LineNoise.Low).
const noisyLineAdvice = "the line is noisy: its sensor noise is a large share of what its frames show, and faint defects may drown in it. " +
	"The recipe search judges recipes on synthetic defects that stand far above any sensor's noise, so it cannot tell how they fare on faint ones; " +
	"where it runs (40 images or more) it tries each recipe again with every frame filtered by a 3×3 median first (-med in its name) and keeps the filtered fixed recipe " +
	"unless another beats it clearly (on darkened, noisy copies of screw its choice went from 0.011 under plain PaDiM's image AUROC to 0.014 above). " +
	"Check the model on real defective images (inspectd eval --data SET --compare plain) and fit the better recipe by name " +
	"(model.recipe, such as v1-fit-med-std-z-ctx2, the default recipe filtered); more light, or less camera gain, helps most"
