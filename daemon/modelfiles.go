package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
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
