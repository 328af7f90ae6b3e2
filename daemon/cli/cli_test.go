package cli

import (
	"strings"
	"testing"
)

// TestFlagErrorSaidOnce: a flag the command does not have (or a value its
// flag cannot take) was printed twice, by the flag package and again by
// Main, with two usages between them. It is said once, then the usage
// line and the command's flags; -h still prints the flags.
func TestFlagErrorSaidOnce(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"run", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"fit", []string{"--max-train", "many"}, `invalid value "many" for flag -max-train`},
		{"config check", []string{"--here=perhaps", "x.yaml"}, `invalid boolean value "perhaps" for -here`},
	} {
		code, out, errs := runConfigCLI(append(strings.Fields(c.name), c.args...)...)
		name := c.name
		if code != 2 || out != "" || strings.Count(errs, c.msg) != 1 || !strings.HasPrefix(errs, "inspectd "+name+": "+c.msg) ||
			!strings.Contains(errs, "\nusage: inspectd "+name+" ") || strings.Contains(errs, "Usage of") || !strings.Contains(errs, "\n  -") {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and the error once, first, then the usage and the flags", c.args, code, out, errs)
		}
	}
	code, _, errs := runConfigCLI("run", "-h")
	if code != 0 || !strings.Contains(errs, "Usage of inspectd run") || !strings.Contains(errs, "-config string") {
		t.Errorf("run -h: exit %d, stderr:\n%s", code, errs)
	}
}

// TestUsageLinesClean: a group's subcommands leave out the internal ones
// (`inspectd model` offered `probe`, a child process's probe), and a
// usage line of a command without flags ends without a space.
func TestUsageLinesClean(t *testing.T) {
	code, _, errs := runConfigCLI("model")
	if code != 2 || !strings.Contains(errs, "give a subcommand: info, inspect, optimize (") || strings.Contains(errs, "probe") {
		t.Errorf("inspectd model: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runConfigCLI("version", "--x")
	if code != 2 || !strings.Contains(errs, "usage: inspectd version\n") {
		t.Errorf("inspectd version --x: exit %d, stderr %q", code, errs)
	}
}
