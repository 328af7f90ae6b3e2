package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
)

// stateDirRefusal is what `inspectd run` and `config check` say of a
// state_dir dir that is not there and that they would not create: the
// nearest folder above it that is there takes no new file, or is
// append-only or immutable (a folder made in an append-only one could
// never be removed), in their words. nil where dir is there (its own
// checks name what is wrong with it), or can be made.
func stateDirRefusal(dir string) error {
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	parent := filepath.Dir(dir)
	for {
		if _, err := os.Stat(parent); err == nil || filepath.Dir(parent) == parent {
			break
		}
		parent = filepath.Dir(parent)
	}
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return nil // a file on the way: the mkdir's error names it
	}
	err := atomicfile.CheckFolder(parent)
	if err == nil {
		f, cerr := os.CreateTemp(parent, ".inspectd-check-*")
		if cerr != nil {
			err = cerr
		} else {
			f.Close()
			if rerr := os.Remove(f.Name()); rerr != nil {
				return fmt.Errorf("state_dir: %s: the check's file %s cannot be removed from %s: %w", dir, f.Name(), parent, rerr)
			}
		}
	}
	if err == nil {
		return nil
	}
	why, mend := daemon.FolderUnwritable(parent, err)
	other := "set state_dir to another folder"
	if mend != "" {
		other = mend + ", or " + other
	}
	return fmt.Errorf("state_dir: %s does not exist and cannot be created: %s; %s", dir, why, other)
}

// uncachedWhereRefused leaves the backbone variant's choice uncached
// (measured again at each run) where opts would keep it in a folder that
// is not there and that the daemon would not create (stateDirRefusal):
// saving the cache made state_dir in an append-only folder, which `run`
// refuses to make, even for a fit whose model went elsewhere. The model
// file's own folder is prepareModelFile's to refuse.
func uncachedWhereRefused(opts *model.Options, log *slog.Logger) {
	dir := opts.Backbone.StateDir
	if dir == "" {
		return
	}
	if err := stateDirRefusal(dir); err != nil {
		log.Debug("backbone variant choice not cached", "dir", dir, "err", err)
		opts.Backbone.StateDir = ""
	}
}
