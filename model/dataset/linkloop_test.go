package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data set whose train/good (or train, or the set's folder) was a link
// that leads round in a loop was refused with "open DIR/train/good: too
// many levels of symbolic links", naming no link; fit took it for a folder
// without the MVTec AD layout and fitted the folder's own images instead.
// Scan now names the link and its loop.
func TestScanNamesALinkLoop(t *testing.T) {
	base := t.TempDir()
	for _, c := range []struct {
		name string
		at   func(dir string) string // the link made to lead into the loop
	}{
		{"good", func(dir string) string { return filepath.Join(dir, "train", "good") }},
		{"train", func(dir string) string { return filepath.Join(dir, "train") }},
		{"set", func(dir string) string { return dir }},
	} {
		at := c.at(filepath.Join(base, c.name, "set"))
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			t.Fatal(err)
		}
		// at → la, la → lb → la, beside it.
		for _, l := range [][2]string{{"la", at}, {"lb", filepath.Join(filepath.Dir(at), "la")}, {"la", filepath.Join(filepath.Dir(at), "lb")}} {
			if err := os.Symlink(l[0], l[1]); err != nil {
				t.Fatal(err)
			}
		}
		dir := filepath.Join(base, c.name, "set")
		// Images of the set's own folder (for "set", the folder is the loop).
		if c.name != "set" {
			for i := range 3 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.jpg", i)), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, err := Scan(dir)
		want := at + " is a link that leads round in a loop (la → lb → la)"
		var ll *LinkLoopError
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &ll) {
			t.Errorf("%s: Scan: %v, want %q", c.name, err, want)
		}
		if DanglingLink(at) != nil {
			t.Errorf("%s: DanglingLink of a loop: %v, want nil (it leads round, not to nothing)", c.name, DanglingLink(at))
		}
	}

	// A link that is itself in the loop, and one whose loop lies in
	// another folder (named in full).
	self := filepath.Join(base, "self", "good")
	os.MkdirAll(filepath.Dir(self), 0o755)
	os.Symlink("other", self)
	os.Symlink("good", filepath.Join(base, "self", "other"))
	if err, want := BrokenLink(self), self+" is a link that leads round in a loop (good → other → good)"; err == nil || err.Error() != want {
		t.Errorf("self: %v, want %q", err, want)
	}
	far := filepath.Join(base, "far", "good")
	os.MkdirAll(filepath.Dir(far), 0o755)
	loop := filepath.Join(base, "good", "set", "train") // the first case's
	os.Symlink(filepath.Join(loop, "la"), far)
	if err, want := BrokenLink(far), far+" is a link that leads round in a loop ("+filepath.Join(loop, "la")+" → "+
		filepath.Join(loop, "lb")+" → "+filepath.Join(loop, "la")+")"; err == nil || err.Error() != want {
		t.Errorf("far: %v, want %q", err, want)
	}

	// A chain longer than the system follows, without a loop.
	chain := filepath.Join(base, "chain")
	os.MkdirAll(chain, 0o755)
	os.Mkdir(filepath.Join(chain, "end"), 0o755)
	prev := "end"
	for i := range MaxLinks + 1 {
		name := fmt.Sprintf("l%d", i)
		os.Symlink(prev, filepath.Join(chain, name))
		prev = name
	}
	long := filepath.Join(chain, prev)
	if _, err := os.Stat(long); err == nil {
		t.Skipf("this system follows more than %d links", MaxLinks)
	}
	if err, want := BrokenLink(long), long+" is a link that leads on through more than 40 links"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("long chain: %v, want %q", err, want)
	}
	// One link fewer is followed: no error.
	if err := BrokenLink(filepath.Join(chain, fmt.Sprintf("l%d", MaxLinks-1))); err != nil {
		t.Errorf("a chain of %d links: %v", MaxLinks, err)
	}
}

// A link whose target lies through a link that leads round in a loop (a →
// b/c, where b → x → b) was taken for a link that leads somewhere:
// BrokenLink returned nil, and its callers said only "too many levels of
// symbolic links", naming no link. It now names the link on the way that
// loops, and its loop, as it does for a loop at the link itself.
func TestBrokenLinkNamesALoopOnTheWay(t *testing.T) {
	dir := t.TempDir()
	at := func(p string) string { return filepath.Join(dir, p) }
	links := [][2]string{
		// a → b/c: b in the loop.
		{"b/c", "a"}, {"x", "b"}, {"b", "x"},
		// into → in/c: in leads into the loop la → lb → la.
		{"in/c", "into"}, {"la", "in"}, {"lb", "la"}, {"la", "lb"},
		// deep → sub/s/c/d: sub a folder, sub/s in a loop of its own.
		{"sub/s/c/d", "deep"}, {"t", "sub/s"}, {"s", "sub/t"},
		// m → a: the loop on the way to where the chain ends.
		{"a", "m"},
		// p → q/c, q → p/x: the way to each goes back through the other.
		{"q/c", "p"}, {"p/x", "q"},
		// gone → missing/c: a link to nothing on the way, named too.
		{"missing/c", "gone"}, {"nowhere", "missing"},
	}
	if err := os.Mkdir(at("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if err := os.Symlink(l[0], at(l[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ link, want string }{
		{"a", at("a") + " is a link to " + at("b/c") + ", through " + at("b") + ", a link that leads round in a loop (b → x → b)"},
		{"into", at("into") + " is a link to " + at("in/c") + ", through " + at("in") + ", a link that leads round in a loop (la → lb → la)"},
		{"deep", at("deep") + " is a link to " + at("sub/s/c/d") + ", through " + at("sub/s") + ", a link that leads round in a loop (sub/s → sub/t → sub/s)"},
		{"m", at("m") + " is a link to " + at("b/c") + ", through " + at("b") + ", a link that leads round in a loop (b → x → b)"},
		{"p", at("p") + " is a link to " + at("q/c") + ", through " + at("q") + ", a link that leads round in a loop (p → q → p)"},
		{"gone", at("gone") + " is a link to " + at("missing/c") + ", through " + at("missing") + ", a link to " + at("nowhere") + ", which does not exist"},
	} {
		err := BrokenLink(at(c.link))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: BrokenLink: %v\nwant %q", c.link, err, c.want)
		}
		var ll *LinkLoopError
		if c.link != "gone" && (!errors.As(err, &ll) || DanglingLink(at(c.link)) != nil) {
			t.Errorf("%s: %T, DanglingLink %v: want a *LinkLoopError, and no dangling link", c.link, err, DanglingLink(at(c.link)))
		}
	}
	// A data set whose train/good is such a link is refused naming it.
	set := at("set")
	if err := os.MkdirAll(filepath.Join(set, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(at("b/good"), filepath.Join(set, "train", "good")); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(set); err == nil || !strings.Contains(err.Error(), "through "+at("b")+", a link that leads round in a loop") {
		t.Errorf("Scan: %v, want the loop on the way named", err)
	}
}
