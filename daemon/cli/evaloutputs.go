package cli

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/model"
)

// checkOutputsApart refuses eval's outputs (--json's file, --save-model's,
// --report's folder; "" where not given) where two of them land on one
// path (outputLands): the results, written last, would replace the model
// saved, and a file cannot be written where the report made its folder
// (a whole run, then "rename …: file exists").
func checkOutputsApart(jsonOut, saveModel, reportDir string) error {
	if jsonOut != "" && saveModel != "" && sameOutputFile(jsonOut, saveModel) {
		return usagef("--json and --save-model name the same file (%s): the results would be written over the model; give each a file of its own", landing(jsonOut, saveModel))
	}
	for _, f := range []struct{ flag, path, what, example string }{
		{"--json", jsonOut, "the results", "eval.json"},
		{"--save-model", saveModel, "the model", "model.safetensors"},
	} {
		if f.path != "" && reportDir != "" && outputLands(f.path) == outputLands(reportDir) {
			return usagef("%s and --report name the same path (%s): --report makes a folder there, and %s cannot be written onto it; give %s a file of its own, such as %s",
				f.flag, landing(f.path, reportDir), f.what, f.what, filepath.Join(reportDir, f.example))
		}
		// The report writes PNG files (roc.png, the overlays named by
		// label and score) in its folder and those it makes below it, over
		// any file there of the name: a trial's --save-model REP/roc.png
		// was saved, then overwritten by the ROC curve, exit 0.
		if f.path != "" && reportDir != "" && strings.EqualFold(filepath.Ext(f.path), ".png") {
			if rel, err := filepath.Rel(outputLands(reportDir), outputLands(f.path)); err == nil && filepath.IsLocal(rel) {
				return usagef("%s %s lies in the --report folder %s, whose PNG files (roc.png, the overlays) would be written over %s; give %s a name that does not end in .png, such as %s, or a file outside it",
					f.flag, f.path, reportDir, f.what, f.what, filepath.Join(reportDir, f.example))
			}
		}
	}
	return nil
}

// landing names the path two outputs a and b land on: a where they are
// given alike, else where a link took them.
func landing(a, b string) string {
	if filepath.Clean(a) == filepath.Clean(b) {
		return a
	}
	return a + " and " + b + " both lead to " + outputLands(a)
}

// sameOutputFile says whether the JSON results written to jsonPath would
// land in the model file saved at modelPath: the same path, once links are
// followed (outputLands), or the same file where both are there (a hard
// link).
func sameOutputFile(jsonPath, modelPath string) bool {
	if outputLands(jsonPath) == outputLands(modelPath) {
		return true
	}
	js, err := os.Stat(jsonPath)
	if err != nil {
		return false
	}
	ms, err := os.Stat(modelPath)
	return err == nil && os.SameFile(js, ms)
}

// outputLands is the path an output given as path lands on, for telling
// two outputs apart: absolute, the links in its folders followed (a
// --json through a linked folder wrote over the model saved in the
// folder itself), and a link at path itself followed too, to a file that
// is not there yet included. Each output is renamed into place and
// replaces such a link rather than writing through it, but a user who
// names the model file through a link means that file; where its target
// was there it was caught already, and not where it was yet to be made.
// Folders that are not there yet stay as given.
func outputLands(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	for range 40 { // the kernel's bound on the links in one path
		dir := resolveFolder(filepath.Dir(p))
		p = filepath.Join(dir, filepath.Base(p))
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&fs.ModeSymlink == 0 {
			return p
		}
		to, err := os.Readlink(p)
		if err != nil {
			return p
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(dir, to)
		}
		p = filepath.Clean(to)
	}
	return p
}

// resolveFolder is dir (absolute) with its links followed as far as its
// folders are there; those below, yet to be made, are kept as given.
func resolveFolder(dir string) string {
	rest := ""
	for d := dir; ; d = filepath.Dir(d) {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(r, rest)
		}
		if filepath.Dir(d) == d {
			return dir
		}
		rest = filepath.Join(filepath.Base(d), rest)
	}
}

// checkResultsTarget refuses, before any fit, a --json path that the
// results, renamed into place at the end, would replace rather than be
// written into (model.ReplaceRefusal: a device, a pipe, a link to one or
// into a process's open files). A trial's `--json /dev/null`, run as
// root, put a regular file in the place of the device /dev/null, and
// `--json /dev/stdout` the link itself; --save-model and fit --out are
// refused alike (model.CheckSaveTarget).
func checkResultsTarget(path string) error {
	if why := model.ReplaceRefusal(path); why != "" {
		return fmt.Errorf("--json file %s %s: the results, written to a new file and renamed into place, would put a regular file in its place; name a file, such as eval.json", path, why)
	}
	return nil
}

// checkOutputsOutsideSets refuses, before any fit, a --report folder that
// is or lies in a data set's train, test or ground_truth folder, and a
// --json or --save-model file named as an image there (links followed, as
// outputLands does): what is written there becomes part of the set. A
// trial's --report SET/train/good left its overlays there, and the next
// fit trained on them as good parts; one under SET/test is a test label
// of its own, of defects without masks.
func checkOutputsOutsideSets(data []string, jsonOut, saveModel, reportDir string) error {
	for _, dir := range data {
		set := outputLands(dir)
		for _, sub := range []string{"train", "test", "ground_truth"} {
			in := filepath.Join(set, sub)
			within := func(path string) bool {
				rel, err := filepath.Rel(in, outputLands(path))
				return err == nil && (rel == "." || filepath.IsLocal(rel))
			}
			if reportDir != "" && within(reportDir) {
				return usagef("--report %s lies in %s, the data set %s's own folder: its PNG files would become images of the set (read by the next fit or eval); give it a folder outside %s", reportDir, filepath.Join(dir, sub), dir, filepath.Join(dir, sub))
			}
			for _, f := range []struct{ flag, path string }{{"--json", jsonOut}, {"--save-model", saveModel}} {
				if f.path != "" && imageName(f.path) && within(f.path) {
					return usagef("%s %s lies in %s, the data set %s's own folder, named as an image: it would be read as one of the set's; give it a file outside %s", f.flag, f.path, filepath.Join(dir, sub), dir, filepath.Join(dir, sub))
				}
			}
		}
	}
	return nil
}

// imageName says whether path ends as the image files a data set's
// folders are read for (any case).
func imageName(path string) bool {
	return slices.Contains(capture.DefaultExtensions(), strings.ToLower(filepath.Ext(path)))
}
