package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/inspectd/inspectd/config"
)

// PreviousModelPath is where the model file in force before the last
// install, threshold change or rollback is kept.
func PreviousModelPath(modelPath string) string { return modelPath + ".prev" }

// installModelFile makes the complete file at src the model at dst and
// keeps the file dst held as PreviousModelPath(dst). Each step is one
// atomic rename, so a process killed at any point leaves a complete model
// at dst: the old one or the new one, never a mix or nothing.
func installModelFile(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		if err := keepCopy(dst, PreviousModelPath(dst)); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("model %s: %w", dst, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("install model %s: %w", dst, err)
	}
	return syncDir(filepath.Dir(dst))
}

// swapWithPrevious makes PreviousModelPath(dst) the model at dst and the
// model at dst the previous one (a rollback; a second one goes forward
// again), again one atomic rename at a time.
func swapWithPrevious(dst string) error {
	prev := PreviousModelPath(dst)
	if _, err := os.Stat(prev); err != nil {
		return fmt.Errorf("no previous model to roll back to (%s): %w", prev, err)
	}
	hold := tempName(dst, "cur")
	if err := keepCopy(dst, hold); err != nil {
		return err
	}
	if err := os.Rename(prev, dst); err != nil {
		_ = os.Remove(hold)
		return fmt.Errorf("roll back model %s: %w", dst, err)
	}
	if err := os.Rename(hold, prev); err != nil {
		return fmt.Errorf("keep the replaced model as %s: %w", prev, err)
	}
	return syncDir(filepath.Dir(dst))
}

// keepCopy makes dst a durable copy of src: a hard link where the file
// system has them (no bytes copied), else a copy that is fsynced, then
// renamed into place.
func keepCopy(src, dst string) error {
	tmp := tempName(dst, "tmp")
	if err := os.Link(src, tmp); err != nil {
		if err := copyFile(src, tmp); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("keep %s as %s: %w", src, dst, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("keep %s as %s: %w", src, dst, err)
	}
	return nil
}

func tempName(path, kind string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+kind+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// modelFolderError says why the folder of cfg's model file cannot hold it,
// as a *FieldError naming the key (model.path, or state_dir) and the
// folder, or nil: a folder that is a file or lies under one (the file can
// be neither loaded nor saved there, whatever the source), or, where the
// file is missing and a model would be fitted on synthetic frames and
// saved in its place, a folder that does not exist or cannot be written
// (the save failed only after the whole fit, seconds to minutes). A start,
// a reload, a push, its dry run and config check all refuse with it, so
// that each says the same. The folder is not created (nor does a start
// create it), except state_dir, which start and Apply create before the
// model is opened and Preflight checks on its own: it is left out here.
func modelFolderError(cfg *config.Config) error {
	path := cfg.ModelPath()
	dir := filepath.Dir(path)
	if filepath.Clean(dir) == filepath.Clean(cfg.StateDir) {
		return nil
	}
	why := ""
	switch _, err := os.Stat(path); {
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		// Stat fails on the way to the file, not on the file: a file
		// where a folder should be (ENOTDIR), a folder that cannot be
		// searched.
		why = fmt.Sprintf("folder %s cannot be reached (%v); set model.path to a file in a folder inspectd can read", dir, err)
		if file := fileInPath(dir); file == dir {
			why = fmt.Sprintf("folder %s is a file, not a folder; set model.path to a file in a folder, or move %s aside", dir, file)
		} else if file != "" {
			why = fmt.Sprintf("folder %s is not a folder: %s is a file; set model.path to a file in a folder, or move %s aside", dir, file, file)
		}
		return &FieldError{Field: modelKey(cfg), Err: fmt.Errorf("model file %s cannot be there: %s", path, why)}
	case cfg.Capture.Source != config.SourceSynthetic:
		return nil // nothing is fitted: noModelError says the file is missing
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		why = "folder " + dir + " does not exist"
	} else if err := tryWrite(dir); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the test file's random name is no help
		}
		why = fmt.Sprintf("folder %s cannot be written (%v)", dir, err)
	}
	if why == "" {
		return nil
	}
	return &FieldError{Field: modelKey(cfg), Err: fmt.Errorf("no model file at %s, and the model inspectd would fit on synthetic frames in its place could not be saved: %s; create the folder for the user that runs inspectd, or name a file in a folder it can write", path, why)}
}

// fileInPath is the nearest of dir and the folders above it that is there,
// when it is not a folder ("" otherwise).
func fileInPath(dir string) string {
	for p := dir; ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil {
			if st.IsDir() {
				return ""
			}
			return p
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}
