package dataset

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// BrokenLink of a → b/c where b is itself a link to nothing said "a is a
// link to D/b/c, which does not exist", naming no b: one looked for c in
// a folder b that is a link elsewhere. It names b, and where b leads, as
// the link to nothing on the way (through more such links too); a plain
// folder missing on the way is said as before.
func TestBrokenLinkNamesALinkToNothingOnTheWay(t *testing.T) {
	dir := t.TempDir()
	at := func(p string) string { return filepath.Join(dir, p) }
	for _, l := range [][2]string{
		{"b/c", "a"}, {"x", "b"}, // a → b/c, b → x: not there
		{"m/c", "n"}, {"k/d", "m"}, {"gone", "k"}, // n → m/c, m → k/d, k → gone
		{"nofolder/c", "p"}, // p → nofolder/c: a plain folder missing
		{"a", "q"},          // q → a: the chain ends at b/c
	} {
		if err := os.Symlink(l[0], at(l[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ link, want string }{
		{"a", at("a") + " is a link to " + at("b/c") + ", through " + at("b") + ", a link to " + at("x") + ", which does not exist"},
		{"n", at("n") + " is a link to " + at("m/c") + ", through " + at("m") + ", a link to " + at("k/d") + ", through " + at("k") + ", a link to " + at("gone") + ", which does not exist"},
		{"p", at("p") + " is a link to " + at("nofolder/c") + ", which does not exist"},
		{"q", at("q") + " is a link to " + at("b/c") + ", through " + at("b") + ", a link to " + at("x") + ", which does not exist"},
	} {
		err := BrokenLink(at(c.link))
		if err == nil || err.Error() != c.want || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: BrokenLink: %v\nwant %q", c.link, err, c.want)
		}
		if dl := DanglingLink(at(c.link)); dl == nil || dl.Error() != c.want {
			t.Errorf("%s: DanglingLink: %v\nwant %q", c.link, dl, c.want)
		}
	}
}
