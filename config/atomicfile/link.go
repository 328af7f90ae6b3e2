package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The links that lead nowhere are named here, in a package that config,
// capture and model all import, so that a configuration file, an image
// and a data set's folder that is such a link are named in the same
// words (model/dataset aliases these).

// DanglingLinkError is a path that is a symbolic link to something that
// does not exist. The system says only "no such file or directory" of
// the link, which is there: this says where it leads.
type DanglingLinkError struct {
	// Path is the link.
	Path string
	// Target is where it leads in the end (through any further links),
	// resolved against the folder of the link that names it.
	Target string
	// Via is the link to nothing on the way to Target (for a → b/c, b
	// where b is such a link), nil when Target's folders are there or a
	// plain folder of them is missing: "D/b/c does not exist" alone sent
	// one looking for c in a folder b that is a link elsewhere.
	Via *DanglingLinkError
}

// Error reads "/d/train/good is a link to /x/y, which does not exist";
// with Via, "/d/a is a link to /d/b/c, through /d/b, a link to /d/x,
// which does not exist".
func (e *DanglingLinkError) Error() string { return e.Path + " is " + e.Leads() }

// Leads is Error without the link's own name: where it leads ("a link to
// /x/y, which does not exist"), for a message that names the link its own
// way (a refit's skipped file by its name in the folder).
func (e *DanglingLinkError) Leads() string {
	if e.Via != nil {
		return fmt.Sprintf("a link to %s, through %s, %s", e.Target, e.Via.Path, e.Via.Leads())
	}
	return fmt.Sprintf("a link to %s, which does not exist", e.Target)
}

// Unwrap makes errors.Is(err, fs.ErrNotExist) hold, as for the system's
// error it stands for.
func (e *DanglingLinkError) Unwrap() error { return fs.ErrNotExist }

// LinkLoopError is a path that is a symbolic link whose chain of links
// comes back round to a link it passed, or runs on past the links the
// system follows; or one whose way to its target passes a link (a folder
// of the target's path, Via) that does so. The system says only "too many
// levels of symbolic links": this names the links of the loop.
type LinkLoopError struct {
	// Path is the link.
	Path string
	// Loop is the loop's links in the order they lead, the first one
	// again at the end; nil for a chain of more than MaxLinks links that
	// did not come back round within them.
	Loop []string
	// Via is the link on the way to Target that leads round in the loop
	// (for a → b/c, b where b is such a link), "" when the chain of Path's
	// own links does; Target is then where that chain led.
	Via, Target string
}

// MaxLinks is how many symbolic links in a row the system follows (40 on
// Linux) before it gives up on a path.
const MaxLinks = 40

// Error reads "/d/train/good is a link that leads round in a loop (la →
// lb → la)", the loop's links named from the link's folder when they
// lie in it (or below it), and in full otherwise; with Via, "/d/a is a
// link to /d/b/c, through /d/b, a link that leads round in a loop (b → x
// → b)".
func (e *LinkLoopError) Error() string { return e.Path + " is " + e.Leads() }

// Leads is Error without the link's own name ("a link that leads round in
// a loop (la → lb → la)"), as DanglingLinkError's.
func (e *LinkLoopError) Leads() string {
	what := "a link that"
	if e.Via != "" {
		what = fmt.Sprintf("a link to %s, through %s, a link that", e.Target, e.Via)
	}
	if len(e.Loop) == 0 {
		return fmt.Sprintf("%s leads on through more than %d links (the system follows no more)", what, MaxLinks)
	}
	from := filepath.Dir(e.Path)
	names := make([]string, len(e.Loop))
	for i, p := range e.Loop {
		names[i] = p
		if rel, err := filepath.Rel(from, p); err == nil && filepath.IsLocal(rel) {
			names[i] = rel
		}
	}
	return fmt.Sprintf("%s leads round in a loop (%s)", what, strings.Join(names, " → "))
}

// DanglingLink returns a *DanglingLinkError when path is a symbolic link
// that leads to nothing (directly or through further links), and nil
// otherwise: when path is not there itself, leads somewhere, or cannot be
// looked at. BrokenLink also names a link that leads round in a loop.
func DanglingLink(path string) error {
	var dl *DanglingLinkError
	if err := BrokenLink(path); errors.As(err, &dl) {
		return dl
	}
	return nil
}

// BrokenLink returns an error naming path when it is a symbolic link that
// leads nowhere: to nothing (a *DanglingLinkError, directly or through
// further links) or round in a loop (a *LinkLoopError, its own links or a
// link on the way to its target: a → b/c where b loops); and nil
// otherwise: when path leads somewhere, is not there itself, is no link
// (a folder above it may be the broken link), or cannot be looked at.
func BrokenLink(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return brokenLink(path, nil)
}

// passedLink is a link whose target is being followed: its name, and what
// it is, to tell it again under another name.
type passedLink struct {
	name string
	st   fs.FileInfo
}

// brokenLink is BrokenLink for path, which does not lead anywhere, on the
// way to the target of the links outer (outermost first; nil for the path
// BrokenLink was given).
func brokenLink(path string, outer []passedLink) error {
	target := path
	// Followed by hand, as far as the system would. The links passed are
	// kept to tell a loop: by what they are, not by their names, which
	// may differ for one link ("a/../b" where a is itself a link).
	var passed []passedLink
	for range MaxLinks + 1 {
		st, err := os.Lstat(target)
		if err != nil {
			if target == path {
				return nil // not there at all, or cannot be looked at
			}
			if errors.Is(err, fs.ErrNotExist) {
				// The end of the chain, which is not there: through a
				// link to nothing on its way, that link is named too.
				via := danglingOnTheWay(target, append(outer[:len(outer):len(outer)], passed...))
				return &DanglingLinkError{Path: path, Target: target, Via: via}
			}
			// A folder on the way to the target may be a link that loops
			// ("too many levels of symbolic links" of the target): said
			// with no link named, it was taken for a link that leads
			// somewhere.
			if via, ll := loopOnTheWay(target, append(outer[:len(outer):len(outer)], passed...)); ll != nil {
				return &LinkLoopError{Path: path, Loop: ll.Loop, Via: via, Target: target}
			}
			return nil
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			return nil // there: what is missing is further on (a folder above it is a link to nothing)
		}
		for i, seen := range passed {
			if os.SameFile(seen.st, st) {
				loop := make([]string, 0, len(passed)-i+1)
				for _, l := range passed[i:] {
					loop = append(loop, l.name)
				}
				return &LinkLoopError{Path: path, Loop: append(loop, target)}
			}
		}
		passed = append(passed, passedLink{target, st})
		to, err := os.Readlink(target)
		if err != nil {
			return nil
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(target), to)
		}
		target = to
	}
	return &LinkLoopError{Path: path}
}

// loopOnTheWay finds the first folder of target's path that leads nowhere
// and returns it with its *LinkLoopError when it is a link that leads
// round in a loop: itself, further on its own way, or back through one of
// the links outer whose targets are being followed (a → b/c where b → a/x:
// the loop b → a → b). nil when there is none, or the links followed run
// on past any the system would follow.
func loopOnTheWay(target string, outer []passedLink) (string, *LinkLoopError) {
	p, st, err := linkOnTheWay(target, outer)
	if p == "" || errors.Is(err, fs.ErrNotExist) {
		return "", nil // a folder missing, or a link to nothing: no loop
	}
	for j, o := range outer {
		if os.SameFile(o.st, st) {
			// Back through a link whose target is being followed.
			loop := make([]string, 0, len(outer)-j+1)
			for _, l := range outer[j:] {
				loop = append(loop, l.name)
			}
			return p, &LinkLoopError{Path: p, Loop: append(loop, p)}
		}
	}
	var ll *LinkLoopError
	if errors.As(brokenLink(p, outer), &ll) {
		return p, ll
	}
	return "", nil
}

// danglingOnTheWay finds the first folder of target's path that is not
// there and returns its *DanglingLinkError when it is a link to nothing
// (a → b/c where b → x, and x is not there); nil when the first one
// missing is a plain folder, or the links followed run on past any the
// system would follow. outer are the links whose targets are being
// followed, as loopOnTheWay takes them.
func danglingOnTheWay(target string, outer []passedLink) *DanglingLinkError {
	p, _, err := linkOnTheWay(target, outer)
	if p == "" || !errors.Is(err, fs.ErrNotExist) {
		return nil // a plain folder missing: target names it
	}
	var dl *DanglingLinkError
	if errors.As(brokenLink(p, outer), &dl) {
		return dl
	}
	return nil
}

// linkOnTheWay walks target's folders from the root down to the first
// that leads nowhere (its Stat fails) and returns it, what it is (its
// Lstat) and why it leads nowhere (the Stat's error: fs.ErrNotExist for a
// link to nothing, another for a loop), when it is a link: the link on the
// way that loopOnTheWay and danglingOnTheWay then follow. p is "" when
// every folder leads somewhere, the first that does not is no link (a
// plain folder missing) or cannot be looked at, or the links outer being
// followed run on past any the system would follow.
func linkOnTheWay(target string, outer []passedLink) (p string, st fs.FileInfo, err error) {
	if len(outer) > 4*MaxLinks {
		return "", nil, nil
	}
	var ways []string // target's folders, the deepest first
	for d := filepath.Dir(target); ; d = filepath.Dir(d) {
		ways = append(ways, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(ways) - 1; i >= 0; i-- {
		dir := ways[i]
		_, err := os.Stat(dir)
		if err == nil {
			continue
		}
		st, lerr := os.Lstat(dir)
		if lerr != nil || st.Mode()&fs.ModeSymlink == 0 {
			return "", nil, nil
		}
		return dir, st, err
	}
	return "", nil, nil
}
