package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/daemon"
)

// TestConfigCheckOfAnEmptyPath: `config check ""` said "config: open :
// no such file or directory" and "  is not valid", which named no file
// and read as a file gone; it says the configuration path is empty.
func TestConfigCheckOfAnEmptyPath(t *testing.T) {
	code, out, errs := runConfigCLI("config", "check", "")
	if want := "config: the configuration path is empty: name a configuration file"; code != 1 || !strings.Contains(errs, want) ||
		!strings.Contains(errs, `"" is not valid`) || strings.Contains(errs, "open :") {
		t.Errorf("config check \"\": exit %d, want 1 and %q; stdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}
}

// TestConfigCheckOfADanglingLink: `config check` (and a start, which
// loads through the same config.Load) of a configuration path that is a
// symbolic link to a file not there said "config: open x: no such file
// or directory", as if the link were gone; it names the link and where it
// leads (atomicfile.BrokenLink, the words a data set's folder gets).
func TestConfigCheckOfADanglingLink(t *testing.T) {
	dir := t.TempDir()
	link, to := filepath.Join(dir, "inspectd.yaml"), filepath.Join(dir, "gone.yaml")
	if err := os.Symlink("gone.yaml", link); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	code, out, errs := runConfigCLI("config", "check", link)
	if want := "config: " + link + " is a link to " + to + ", which does not exist"; code != 1 || !strings.Contains(errs, want) || strings.Contains(errs, "no such file") {
		t.Errorf("config check of a dangling link: exit %d, want 1 and %q; stdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}
	if _, err := daemon.LoadConfig(link); err == nil || !strings.Contains(err.Error(), " is a link to "+to+", which does not exist") {
		t.Errorf("daemon.LoadConfig (a start's) of a dangling link: %v", err)
	}
}
