package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestDiffStateDirAsTheFolder: Diff compares state_dir as the folder it
// names, so every caller (a push's and a rollback's "changed", the
// config-revert event's) agrees that the running state_dir spelled
// differently (a trailing slash, "/./", a symlink to it, relative where
// the other is absolute) is no change. Compared as text it was listed as
// changed, e.g. "changed":["mqtt.result_qos","state_dir"] in the event of
// a push reverted at a start.
func TestDiffStateDirAsTheFolder(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "st")
	other := filepath.Join(dir, "st2")
	for _, p := range []string{st, other} {
		if err := os.Mkdir(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(st, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	with := func(stateDir string) *Config {
		c := Default()
		c.StateDir = stateDir
		c.MQTT.ResultQoS = 1
		return c
	}
	same := []string{st, st + "/", dir + "/./st", link, link + "/", "st", "./st/", "link",
		"missing/../st"} // not there, but cleaned it is st
	for _, s := range same {
		if got := Diff(with(st), with(s)); len(got) != 0 {
			t.Errorf("Diff of state_dir %q and %q: %v, want nothing", st, s, got)
		}
		if !SamePath(s, st) || !SamePath(st, s) {
			t.Errorf("SamePath(%q, %q) = false, want true", s, st)
		}
	}
	// Neither there: spelled alike once made absolute and cleaned.
	if got := Diff(with("/nowhere/x"), with("/nowhere/./x/")); len(got) != 0 {
		t.Errorf("Diff of two spellings of a missing folder: %v, want nothing", got)
	}
	for _, s := range []string{other, filepath.Join(dir, "missing"), dir, "st2", ""} {
		b := with(s)
		b.MQTT.ResultQoS = 2
		if got := Diff(with(st), b); !reflect.DeepEqual(got, []string{"state_dir", "mqtt.result_qos"}) {
			t.Errorf("Diff of state_dir %q and %q: %v, want [state_dir mqtt.result_qos]", st, s, got)
		}
		if SamePath(s, st) {
			t.Errorf("SamePath(%q, %q) = true, want false", s, st)
		}
	}
}
