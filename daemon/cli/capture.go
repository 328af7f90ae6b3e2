package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config/atomicfile"
)

func cmdCaptureList() *Command {
	return &Command{
		Name:    "capture list",
		Summary: "list V4L2 cameras with their formats, sizes and controls",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "capture list")
			dir := fs.String("dev", "/dev", "folder holding the video device nodes")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return usagef("unexpected argument %q", fs.Arg(0))
			}
			devs, err := capture.ListDevices(capture.ListOptions{Dir: *dir})
			if err != nil {
				return err
			}
			printDevices(env.Stdout, devs)
			return nil
		},
	}
}

// printDevices writes the device list for people.
func printDevices(w io.Writer, devs []capture.DeviceInfo) {
	if len(devs) == 0 {
		fmt.Fprintln(w, "no V4L2 devices found")
		return
	}
	for i, d := range devs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if d.Err != nil {
			fmt.Fprintf(w, "%s: not usable: %v\n", d.Path, d.Err)
			continue
		}
		fmt.Fprintf(w, "%s: %s (%s)\n", d.Path, d.Card, d.Bus)
		for _, l := range d.Links {
			fmt.Fprintf(w, "  also %s\n", l)
		}
		fmt.Fprintln(w, "  formats:")
		for _, f := range d.Formats {
			fmt.Fprintf(w, "    %-4s %s\n", f.Format, f.Description)
			for _, s := range f.Sizes {
				fps := make([]string, len(s.FPS))
				for i, r := range s.FPS {
					fps[i] = strconv.FormatFloat(r, 'g', 4, 64)
				}
				if len(fps) > 0 {
					fmt.Fprintf(w, "         %s @ %s fps\n", s.Size, strings.Join(fps, ", "))
				} else {
					fmt.Fprintf(w, "         %s\n", s.Size)
				}
			}
		}
		if len(d.Controls) > 0 {
			fmt.Fprintln(w, "  controls (name for --control and 'capture set': kind, values, current):")
			for _, c := range d.Controls {
				fmt.Fprintf(w, "    %-32s %s\n", c.Key, describeControl(c))
			}
		}
	}
}

// describeControl says what values a control takes and what it is now.
func describeControl(c capture.ControlInfo) string {
	var b strings.Builder
	switch c.Kind {
	case capture.ControlButton:
		fmt.Fprintf(&b, "button: set it to 1 to press it")
	case capture.ControlBool:
		fmt.Fprintf(&b, "bool 0/1, default %d", c.Default)
	case capture.ControlMenu:
		items := make([]string, len(c.Menu))
		for i, m := range c.Menu {
			items[i] = fmt.Sprintf("%d %s", m.Value, m.Name)
		}
		fmt.Fprintf(&b, "menu %s; default %d", strings.Join(items, ", "), c.Default)
	case capture.ControlBitmask:
		fmt.Fprintf(&b, "bitmask of %#x, default %#x", uint32(c.Max), uint32(c.Default))
	default:
		fmt.Fprintf(&b, "%s %d..%d step %d, default %d", c.Kind, c.Min, c.Max, c.Step, c.Default)
	}
	switch {
	case c.WriteOnly:
	case c.ValueErr != nil:
		fmt.Fprintf(&b, ", now unreadable (%v)", c.ValueErr)
	default:
		fmt.Fprintf(&b, ", now %d", c.Value)
		for _, m := range c.Menu {
			if m.Value == c.Value {
				fmt.Fprintf(&b, " (%s)", m.Name)
			}
		}
	}
	if c.ReadOnly {
		b.WriteString(", read-only")
	}
	if c.Inactive {
		b.WriteString(", inactive (an automatic mode overrides it)")
	}
	return b.String()
}

// controlFlags collects repeated --control name=value flags.
type controlFlags map[string]int32

func (c controlFlags) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c[k])
	}
	return strings.Join(parts, ",")
}

func (c controlFlags) Set(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("control %q: want name=value", s)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(val), 10, 32)
	if err != nil {
		return fmt.Errorf("control %q: value %q is not an integer", s, val)
	}
	c[strings.TrimSpace(name)] = int32(v)
	return nil
}

func cmdCaptureSet() *Command {
	return &Command{
		Name:    "capture set",
		Summary: "set camera controls by name (buttons too) and print what the driver reads back",
		Usage:   "--device PATH name=value...",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "capture set")
			device := fs.String("device", "", "V4L2 camera: /dev/videoN or a /dev/v4l/by-id name (required)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if *device == "" {
				return usagef("--device is required")
			}
			if fs.NArg() == 0 {
				return usagef("name which controls to set: name=value (names as 'capture list' shows them)")
			}
			want := controlFlags{}
			for _, a := range fs.Args() {
				if err := want.Set(a); err != nil {
					return usagef("%v", err)
				}
			}
			path := *device
			if !strings.Contains(path, "/") {
				path = filepath.Join("/dev/v4l/by-id", path)
			}
			dev, err := capture.OpenV4L2(path)
			if err != nil {
				return err
			}
			defer dev.Close()
			failed := 0
			for _, r := range capture.SetControls(dev, want, env.Log) {
				switch {
				case r.Err != nil:
					failed++
					fmt.Fprintf(env.Stdout, "%s: not set: %v\n", r.Asked, r.Err)
				case r.Control.Kind == capture.ControlButton && r.Value == 0:
					fmt.Fprintf(env.Stdout, "%s: button left alone (0)\n", r.Asked)
				case r.Control.Kind == capture.ControlButton:
					fmt.Fprintf(env.Stdout, "%s: pressed\n", r.Asked)
				default:
					v, err := dev.GetControl(r.Control.ID)
					if err != nil {
						fmt.Fprintf(env.Stdout, "%s = %d (written; reading it back failed: %v)\n", r.Asked, r.Value, err)
						continue
					}
					fmt.Fprintf(env.Stdout, "%s = %d\n", r.Asked, v)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of the controls asked for were not set", failed)
			}
			return nil
		},
	}
}

func cmdCaptureSnapshot() *Command {
	return &Command{
		Name:    "capture snapshot",
		Summary: "save one frame from a camera, folder, file or the synthetic scene",
		Usage:   "--out FILE.jpg|FILE.png (--device PATH | --folder DIR | --file IMAGE | --synthetic) [flags]",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "capture snapshot")
			out := fs.String("out", "", "output image: .jpg, .jpeg or .png (required)")
			device := fs.String("device", "", "V4L2 camera: /dev/videoN or a /dev/v4l/by-id name")
			folder := fs.String("folder", "", "read the first image of this folder")
			file := fs.String("file", "", "read this image file")
			synthetic := fs.Bool("synthetic", false, "render the synthetic inspection scene")
			formats := fs.String("format", "MJPEG,YUYV,GREY", "camera pixel formats in order of preference")
			width := fs.Int("width", 0, "camera frame width (nearest supported; default 1280) or synthetic width (default 256)")
			height := fs.Int("height", 0, "camera frame height (default 720) or synthetic height (default 256)")
			fpsFlag := fs.Float64("fps", 0, "camera frame rate (0 keeps the driver's)")
			controls := controlFlags{}
			fs.Var(controls, "control", "camera control `name=value` (exposure, gain, white_balance, focus or a name from 'capture list'; 1 presses a button); repeatable")
			colorFlag := fs.String("color", "auto", "pixel layout: auto, rgb or gray")
			roi := fs.String("roi", "", "region of interest `x,y,width,height` in frame pixels")
			rotate := fs.Int("rotate", 0, "clockwise rotation: 0, 90, 180 or 270")
			seed := fs.Uint64("seed", 1, "synthetic: seed of the frame sequence")
			defectRate := fs.Float64("defect-rate", 0.5, "synthetic: probability of a defect")
			kinds := fs.String("defects", "", "synthetic: defect kinds (scratch,spot,chip,contamination; default all)")
			warmup := fs.Int("warmup", -1, "frames to skip first so auto exposure settles; -1: 5 for cameras, 0 otherwise")
			timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
			quality := fs.Int("quality", 92, "JPEG quality 1..100")
			maskOut := fs.String("mask", "", "also write the ground-truth mask (synthetic only) to this PNG")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return usagef("unexpected argument %q", fs.Arg(0))
			}
			if *out == "" {
				return usagef("--out is required")
			}
			ext := strings.ToLower(filepath.Ext(*out))
			if ext != ".jpg" && ext != ".jpeg" && ext != ".png" {
				return usagef("--out %s: want a .jpg, .jpeg or .png file", *out)
			}
			if *quality < 1 || *quality > 100 {
				return usagef("--quality %d: want 1..100", *quality)
			}
			n := 0
			for _, set := range []bool{*device != "", *folder != "", *file != "", *synthetic} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usagef("choose exactly one source: --device, --folder, --file or --synthetic")
			}
			if err := checkSourceFlags(fs, *device != "", *synthetic, *folder != ""); err != nil {
				return err
			}
			color, err := capture.ParseColor(*colorFlag)
			if err != nil {
				return usagef("--color: %v", err)
			}
			rect, err := capture.ParseROI(*roi)
			if err != nil {
				return usagef("--roi: %v", err)
			}
			topts := capture.TransformOptions{ROI: rect, Rotate: *rotate}
			if err := topts.Validate(); err != nil {
				return usagef("--rotate/--roi: %v", err)
			}
			if *maskOut != "" && !*synthetic {
				return usagef("--mask needs --synthetic: only the synthetic source knows its defects")
			}
			if *maskOut != "" && strings.ToLower(filepath.Ext(*maskOut)) != ".png" {
				// JPEG would blur the mask's edges into values a truth
				// mask does not hold; the mask was written as one.
				return usagef("--mask %s: want a .png file (a JPEG would blur the mask)", *maskOut)
			}
			if *maskOut != "" && samePath(*maskOut, *out) {
				return usagef("--mask %s is the --out file: the mask would replace the snapshot; give it a file of its own", *maskOut)
			}
			if err := checkSizeFlags(*device != "", *synthetic, width, height, *fpsFlag, *defectRate); err != nil {
				return err
			}
			if *timeout <= 0 {
				// No frame can come in no time: it failed after the
				// source was opened, saying "no frame within 0s".
				return usagef("--timeout %v: want a positive duration, such as 10s", *timeout)
			}
			// Before a frame is taken (a camera's warmup, its exposure).
			for _, o := range []struct{ flag, path string }{{"--out", *out}, {"--mask", *maskOut}} {
				if o.path == "" {
					continue
				}
				if err := checkImageTarget(o.flag, o.path); err != nil {
					return err
				}
			}

			var src capture.Source
			skip := max(*warmup, 0)
			switch {
			case *device != "":
				var fmts []capture.FourCC
				for _, s := range strings.Split(*formats, ",") {
					f, err := capture.ParseFourCC(s)
					if err != nil {
						return usagef("--format: %v", err)
					}
					fmts = append(fmts, f)
				}
				cam, err := capture.NewCamera(capture.CameraOptions{
					Device: *device, Formats: fmts, Width: *width, Height: *height, FPS: *fpsFlag,
					Controls: controls, Color: color, Log: env.Log,
					// One frame, now: a path that is no camera, not there
					// or not ours to open fails at once, not after
					// --timeout (a line's camera waits for such a node).
					FailFast: true,
				})
				if err != nil {
					return err
				}
				src = cam
				if *warmup < 0 {
					skip = 5
				}
			case *folder != "":
				src, err = capture.NewFolder(capture.FolderOptions{Dir: *folder, Color: color, Log: env.Log})
			case *file != "":
				src, err = capture.NewFile(capture.FileOptions{Path: *file, Color: color})
			default:
				var ks []capture.DefectKind
				if *kinds != "" {
					for _, s := range strings.Split(*kinds, ",") {
						k, err := capture.ParseDefectKind(strings.TrimSpace(s))
						if err != nil {
							return usagef("--defects: %v", err)
						}
						ks = append(ks, k)
					}
				}
				src, err = capture.NewSynthetic(capture.SyntheticOptions{
					Width: *width, Height: *height, Seed: *seed, DefectRate: *defectRate, Kinds: ks, Color: color,
				})
			}
			if err != nil {
				return err
			}
			defer src.Close()
			// The options were checked above: what is left is the image (a
			// file the region does not fit in), not the command line.
			src, err = capture.NewTransform(src, topts)
			if err != nil {
				return err
			}

			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			var f capture.Frame
			var lastErr error
			for got := 0; got <= skip; {
				err := src.Next(ctx, &f)
				switch {
				case err == nil:
					got++
					continue
				case errors.Is(err, capture.ErrEOF) && got > 0:
					// A file or folder has no more frames than images:
					// the last one read is the snapshot (--warmup waits
					// out a camera's exposure; "source exhausted" it was).
					got = skip + 1
					continue
				case errors.Is(err, capture.ErrEOF) && *folder != "":
					// "capture: source exhausted: EOF" of a folder whose
					// every image was skipped (each logged above).
					return fmt.Errorf("--folder %s: no image in it could be read (the files skipped are logged above)", *folder)
				case capture.Temporary(err) && ctx.Err() == nil:
					// Cameras may need a moment (or a reopen) to deliver.
					if lastErr == nil {
						env.Log.Warn("capture snapshot: retrying", "err", err)
					}
					lastErr = err
					continue
				case ctx.Err() != nil && lastErr != nil:
					return fmt.Errorf("no frame within %v: %w", *timeout, lastErr)
				case ctx.Err() != nil:
					return fmt.Errorf("no frame within %v", *timeout)
				default:
					return err
				}
			}
			if err := writeImage(*out, f.Image, *quality); err != nil {
				return err
			}
			b := f.Image.Bounds()
			desc := f.Name
			if f.Label != "" {
				desc = "defect " + f.Label
			}
			fmt.Fprintf(env.Stdout, "wrote %s (%dx%d, frame %d%s)\n", *out, b.Dx(), b.Dy(), f.Seq, prefixComma(desc))
			if *maskOut != "" {
				if f.Mask == nil {
					return fmt.Errorf("source gave no mask for %s", *maskOut)
				}
				if err := writeImage(*maskOut, f.Mask, 0); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "wrote %s (ground-truth mask)\n", *maskOut)
			}
			return nil
		},
	}
}

// checkImageTarget refuses an output image path (flag names it) that the
// image, written to a new file in its folder and renamed over it, cannot
// or must not take. A named pipe, a device or a socket there (or a link
// to one, or into a process's open files) would be replaced by a regular
// file, as fit --out and eval --json refuse it. A folder, or a folder
// that is not there, failed only after the frame was taken, in the words
// of the temporary file ("open x/.a.jpg.tmp-1069761019: no such file or
// directory", "rename ./.d.jpg.tmp-904420131 d.jpg: file exists").
func checkImageTarget(flag, path string) error {
	if why := atomicfile.ReplaceRefusal(path); why != "" {
		return fmt.Errorf("%s %s %s: the image, written to a new file and renamed into place, would put a regular file in its place; name an image file, such as frame%s",
			flag, path, why, imageExt(path))
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s %s is a folder: name an image file in it, such as %s", flag, path, filepath.Join(path, "frame"+imageExt(path)))
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: folder %s does not exist; create it first (mkdir -p %s)", flag, path, dir, dir)
	case err != nil:
		return fmt.Errorf("%s %s: %w", flag, path, err)
	case !st.IsDir():
		return fmt.Errorf("%s %s: %s is a file, not a folder", flag, path, dir)
	}
	return nil
}

// samePath says whether a and b name the same file: the same path once
// made absolute, or the same file where both are there.
func samePath(a, b string) bool {
	aa, errA := filepath.Abs(a)
	bb, errB := filepath.Abs(b)
	if errA == nil && errB == nil && aa == bb {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// imageExt is path's extension as written, or .png where it has none
// (a --mask).
func imageExt(path string) string {
	if ext := filepath.Ext(path); ext != "" {
		return ext
	}
	return ".png"
}

func prefixComma(s string) string {
	if s == "" {
		return ""
	}
	return ", " + s
}

// writeImage encodes img by the file's extension and replaces path with it
// atomically, so a reader never sees half a file.
func writeImage(path string, img image.Image, quality int) error {
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		if strings.ToLower(filepath.Ext(path)) == ".png" {
			return png.Encode(w, img)
		}
		return jpeg.Encode(w, img, &jpeg.Options{Quality: quality})
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkSizeFlags fills the side of the frame not given with its default,
// as the flags' help says (synthetic 256, camera 1280x720): `--synthetic
// --width 320` failed "synthetic source: size 320x0", and a camera's lone
// --width 640 was dropped for 1280x720 without a word. Values no source
// takes are usage errors naming the flag, where they failed after the
// source was built in its words ("camera /dev/video0: negative width,
// height, fps or buffers").
func checkSizeFlags(camera, synthetic bool, width, height *int, fps, defectRate float64) error {
	switch {
	case synthetic:
		for _, s := range []struct {
			flag string
			v    *int
		}{{"width", width}, {"height", height}} {
			if *s.v == 0 {
				*s.v = 256
			}
			if *s.v < capture.SyntheticMinSide || *s.v > capture.SyntheticMaxSide {
				return usagef("--%s %d: want %d..%d for --synthetic", s.flag, *s.v, capture.SyntheticMinSide, capture.SyntheticMaxSide)
			}
		}
		if !(defectRate >= 0 && defectRate <= 1) {
			return usagef("--defect-rate %v: want 0..1", defectRate)
		}
	case camera:
		for _, s := range []struct {
			flag string
			v    *int
			def  int
		}{{"width", width, 1280}, {"height", height, 720}} {
			if *s.v < 0 {
				return usagef("--%s %d: want a positive number of pixels (the camera's nearest size is used)", s.flag, *s.v)
			}
			if *s.v == 0 {
				*s.v = s.def
			}
		}
		if fps < 0 {
			return usagef("--fps %v: want a positive frame rate, or 0 for the driver's", fps)
		}
	}
	return nil
}

// checkSourceFlags refuses, as a usage error, a flag given that the
// chosen source does not act on: `--file F --width 100` wrote the image
// at its own size and said nothing, as if it had been scaled. camera and
// synthetic say which source was chosen (folder, else a file).
func checkSourceFlags(fs *flag.FlagSet, camera, synthetic, folder bool) error {
	// The flags that act on some sources only, with those they act on.
	sourceFlags := []struct {
		flag              string
		camera, synthetic bool
	}{
		{"width", true, true}, {"height", true, true},
		{"fps", true, false}, {"format", true, false}, {"control", true, false},
		{"seed", false, true}, {"defect-rate", false, true}, {"defects", false, true},
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, sf := range sourceFlags {
		if !given[sf.flag] || (camera && sf.camera) || (synthetic && sf.synthetic) {
			continue
		}
		var to []string
		if sf.camera {
			to = append(to, "--device")
		}
		if sf.synthetic {
			to = append(to, "--synthetic")
		}
		src := "--file"
		switch {
		case camera:
			src = "--device"
		case synthetic:
			src = "--synthetic"
		case folder:
			src = "--folder"
		}
		why := ""
		if !camera && !synthetic && (sf.flag == "width" || sf.flag == "height") {
			why = ": --file gives the image at its own size (--roi crops it)"
			if folder {
				why = ": --folder gives each image at its own size (--roi crops it)"
			}
		}
		return usagef("--%s applies to %s only, not to %s%s", sf.flag, strings.Join(to, " and "), src, why)
	}
	return nil
}
