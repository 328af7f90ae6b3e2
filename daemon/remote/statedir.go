package remote

import (
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
)

// SameStateDir returns next with the state_dir of running when both name
// one folder spelled differently (a trailing slash, "/./", a symlink to
// it), else next itself; next is not changed. The folder in force is no
// change of state_dir: compared as strings it was listed as changed and
// refused as "in use by another inspectd", the daemon's own lock.
func SameStateDir(running, next *config.Config) *config.Config {
	if next.StateDir == running.StateDir || !statelock.SameDir(next.StateDir, running.StateDir) {
		return next
	}
	c := next.Clone()
	c.StateDir = running.StateDir
	return c
}
