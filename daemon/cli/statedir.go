package cli

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"

	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
)

// stateDirRefusal is what `inspectd run` and `config check` say of a
// state_dir dir that is not there and that they would not create
// (daemon.StateDirError: the nearest folder above it takes no new file,
// or is append-only or immutable, where a folder made could never be
// removed), in their words. nil where dir is there: its own checks (the
// model file's, the cache's) name what is wrong with it.
func stateDirRefusal(dir string) error {
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return daemon.StateDirError(dir)
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
