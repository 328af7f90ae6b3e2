package cli

import (
	"strings"
	"testing"
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
