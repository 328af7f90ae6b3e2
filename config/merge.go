package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// PushMode says how a configuration document pushed to a running daemon
// combines with the configuration in force.
type PushMode string

// The push modes ParsePush accepts.
const (
	// PushMerge sets what the document names on top of the running
	// configuration; everything else stays as it is.
	PushMerge PushMode = "merge"
	// PushReplace makes the document the whole configuration, as if it were
	// the file: what it leaves out takes its default.
	PushReplace PushMode = "replace"
)

// RedactedValue stands for a secret (a field tagged secret:"true", such as
// mqtt.password) in Redacted's output. A pushed document that carries it
// back unchanged keeps the running secret, so that what config-get returned
// can be edited and pushed again.
const RedactedValue = "<redacted>"

// Blank reports whether a configuration document holds no setting at all
// (empty, or only comments): valid as a file, where it means every
// default, but never what a reload of a running daemon's file meant.
func Blank(data []byte) bool {
	root, err := document(data)
	return err == nil && (root == nil || isNull(root))
}

// ParsePush decodes a configuration document pushed over the network (YAML,
// or JSON, which is YAML's flow syntax) with the rules of a file: unknown
// keys, duplicate keys, values of the wrong type and tab indentation are
// refused with their line and field. Anchors and aliases are refused
// outright before any value is decoded, so that a few hundred bytes of
// nested aliases cannot expand into gigabytes. With PushMerge the document
// is applied on top of a copy of running; with PushReplace it stands alone
// (as Parse reads a file). The result is validated completely; running is
// never modified.
//
// remote.trust_keys cannot be changed this way: a document that sets them to
// anything but the running keys is refused naming the field, and a replacing
// document that leaves them out keeps the running ones. Secret fields pushed
// back as RedactedValue keep their running value. name prefixes every
// message, like Parse's. rules run beside Validate, as Parse's do.
func ParsePush(running *Config, data []byte, name string, mode PushMode, rules ...Rule) (*Config, error) {
	d := &decoder{file: name, lines: map[string]int{}, visits: maxVisits, rules: rules}
	if len(data) > MaxFileSize {
		d.fail(0, "", "%d bytes is more than a configuration may hold (%s)", len(data), Size(MaxFileSize))
		return nil, errors.Join(d.probs...)
	}
	root, err := document(data)
	if err != nil {
		return nil, yamlProblem(name, data, err) // names an indenting tab
	}
	if err := refuseAliases(root, name); err != nil {
		return nil, err
	}
	if root != nil && root.Kind != yaml.MappingNode && !isNull(root) {
		d.fail(root.Line, "", "expected a mapping of settings such as \"capture:\" at the top, got %s", describe(root))
		return nil, errors.Join(d.probs...)
	}
	var c *Config
	switch mode {
	case PushReplace:
		if root == nil || isNull(root) {
			d.fail(0, "", "an empty document cannot replace the whole configuration (it would put every setting back to its default: another device id, state folder and source); send the settings, or merge")
			return nil, errors.Join(d.probs...)
		}
		if c, err = Parse(data, name, rules...); err != nil {
			return nil, err
		}
	case PushMerge, "":
		c = running.Clone()
		if root != nil {
			d.section(root, reflect.ValueOf(c).Elem(), "")
		}
		restoreSecrets(reflect.ValueOf(c).Elem(), reflect.ValueOf(running).Elem())
		if d.validate(c); len(d.probs) > 0 {
			return nil, errors.Join(d.probs...)
		}
	default:
		return nil, fmt.Errorf("config push mode %q: want %q or %q", mode, PushMerge, PushReplace)
	}
	if line := keyLine(root, "remote", "trust_keys"); line > 0 {
		if !reflect.DeepEqual(normalizeKeys(c.Remote.TrustKeys), normalizeKeys(running.Remote.TrustKeys)) {
			return nil, &Problem{File: name, Line: line, Field: "remote.trust_keys",
				Msg: "cannot be changed by a configuration push; send the signed trust-keys command"}
		}
	}
	c.Remote.TrustKeys = running.Clone().Remote.TrustKeys
	restoreSecrets(reflect.ValueOf(c).Elem(), reflect.ValueOf(running).Elem()) // PushReplace
	return c, nil
}

// normalizeKeys makes an empty key map compare equal to a nil one.
func normalizeKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// refuseAliases reports the first anchor or alias in the node tree. The
// walk never follows an alias, so it is linear in the document's size.
func refuseAliases(root *yaml.Node, name string) error {
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil {
			continue
		}
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			what := "anchor &" + n.Anchor
			if n.Kind == yaml.AliasNode {
				what = "alias *" + n.Value
			}
			return &Problem{File: name, Line: n.Line,
				Msg: what + ": anchors and aliases are not accepted in a pushed configuration; write the values out"}
		}
		for i := len(n.Content) - 1; i >= 0; i-- { // document order
			stack = append(stack, n.Content[i])
		}
	}
	return nil
}

// keyLine is the line of the key at path in a mapping document, 0 when the
// document does not set it.
func keyLine(root *yaml.Node, path ...string) int {
	n := root
	line := 0
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, next = n.Content[i].Line, n.Content[i+1]
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return line
}

// Clone returns a deep copy of c: the copy shares no list or map with c.
func (c *Config) Clone() *Config {
	out := new(Config)
	deepCopy(reflect.ValueOf(out).Elem(), reflect.ValueOf(c).Elem())
	return out
}

func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			deepCopy(dst.Field(i), src.Field(i))
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, it.Value())
			m.SetMapIndex(it.Key(), v)
		}
		dst.Set(m)
	default:
		dst.Set(src)
	}
}

// Redacted returns a copy of c with every secret (fields tagged
// secret:"true": mqtt.password) that is set replaced by RedactedValue, for
// showing the configuration to someone who must not learn them.
func (c *Config) Redacted() *Config {
	out := c.Clone()
	walkSecrets(reflect.ValueOf(out).Elem(), reflect.Value{}, func(v, _ reflect.Value) {
		if v.String() != "" {
			v.SetString(RedactedValue)
		}
	})
	return out
}

// restoreSecrets sets every secret of dst that holds RedactedValue to its
// value in base (same type).
func restoreSecrets(dst, base reflect.Value) {
	walkSecrets(dst, base, func(v, b reflect.Value) {
		if v.String() == RedactedValue {
			v.SetString(b.String())
		}
	})
}

// walkSecrets calls f for every secret string field of v, with the same
// field of base when base is valid.
func walkSecrets(v, base reflect.Value, f func(v, base reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		fv := v.Field(i)
		var fb reflect.Value
		if base.IsValid() {
			fb = base.Field(i)
		}
		switch {
		case t.Field(i).Tag.Get("secret") == "true" && fv.Kind() == reflect.String:
			f(fv, fb)
		case fv.Kind() == reflect.Struct:
			walkSecrets(fv, fb, f)
		}
	}
}

// Diff lists the settings that differ between a and b as dotted paths
// (model.features, mqtt.groups), in file order. Lists and maps count as one
// setting each. A path setting (tagged diff:"path": state_dir,
// capture.folder.path, capture.file.path) differs only when it names
// another folder or file (SamePath): the one in force spelled otherwise is
// no change, to every caller. The daemon restarts only the parts these
// belong to.
func Diff(a, b *Config) []string {
	var out []string
	diffValue(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", &out)
	return out
}

func diffValue(a, b reflect.Value, path string, out *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := name
		if path != "" {
			p = path + "." + name
		}
		fa, fb := a.Field(i), b.Field(i)
		if fa.Kind() == reflect.Struct && !reflect.PointerTo(fa.Type()).Implements(unmarshalerType) {
			diffValue(fa, fb, p, out)
			continue
		}
		if t.Field(i).Tag.Get("diff") == "path" && fa.Kind() == reflect.String {
			if !SamePath(fa.String(), fb.String()) {
				*out = append(*out, p)
			}
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) && !(emptyValue(fa) && emptyValue(fb)) {
			*out = append(*out, p)
		}
	}
}

// KeepSpelling returns next with the spelling of cur for every path
// setting (tagged diff:"path") where next names the same folder or file
// spelled otherwise (SamePath), else next itself; neither is changed. Diff
// already calls such a setting no change; a daemon keeps the spelling in
// force because its parts compare configurations as text: the state_dir's
// lock, request table and broker's store were taken under it (next's
// spelling claimed, the daemon's own lock refused the change as another
// inspectd's), and a capture folder or file spelled otherwise rebuilt the
// frame source for the same one. A symlink named here and pointed
// elsewhere later is then a change at the next reload, not the same text.
func KeepSpelling(cur, next *Config) *Config {
	var out *Config
	keepSpelling(reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem(), func() reflect.Value {
		if out == nil {
			out = next.Clone()
		}
		return reflect.ValueOf(out).Elem()
	}, nil)
	if out == nil {
		return next
	}
	return out
}

// keepSpelling walks cur and next as diffValue does; at a path setting
// spelled otherwise it sets the field at index (the path of field
// numbers from the root) in the clone dst makes.
func keepSpelling(cur, next reflect.Value, dst func() reflect.Value, index []int) {
	t := cur.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fc, fn := cur.Field(i), next.Field(i)
		at := append(slices.Clip(index), i)
		if fc.Kind() == reflect.Struct && !reflect.PointerTo(fc.Type()).Implements(unmarshalerType) {
			keepSpelling(fc, fn, dst, at)
			continue
		}
		if t.Field(i).Tag.Get("diff") == "path" && fc.Kind() == reflect.String &&
			fc.String() != fn.String() && SamePath(fn.String(), fc.String()) {
			dst().FieldByIndex(at).SetString(fc.String())
		}
	}
}

// SamePath reports whether a and b name the same folder or file: spelled
// alike once made absolute and cleaned (a trailing slash, "/./", a
// relative path from the working folder), or both there and one on disk
// (a symlink, a bind mount, a hard link to a file). An empty path names
// nothing. It was SameDir until capture.file.path was compared with it:
// os.SameFile and a cleaned absolute path hold for a file as for a folder. A daemon's own state_dir
// spelled differently is no change: compared as text it was listed as
// changed, and its own lock refused the change as another inspectd's.
func SamePath(a, b string) bool {
	if a == b || a == "" || b == "" {
		return a == b
	}
	if absClean(a) == absClean(b) {
		return true
	}
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// absClean is p absolute and cleaned, or cleaned where the working folder
// cannot be read.
func absClean(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

// emptyValue is true for nil and empty lists and maps, which the file does
// not tell apart.
func emptyValue(v reflect.Value) bool {
	return (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0
}

// PreviousPath is where SaveKeepPrevious keeps the file it replaced.
func PreviousPath(path string) string { return path + ".prev" }

// SaveKeepPrevious is Save that first keeps the file it replaces, byte for
// byte and with its permissions, at PreviousPath(path) (itself written
// atomically), for rollback. A
// crash between the two writes leaves path as it was. Saving what
// LoadPrevious returned swaps the two files, byte for byte, so a second
// rollback goes forward again: when c is the configuration the previous
// file holds (the same file once written out), that file's own bytes are
// written, not c marshalled, so a revert or rollback to a hand-written
// file gives it back with its comments and layout.
func SaveKeepPrevious(path string, c *Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("save config %s: refusing an invalid configuration:\n%w", path, err)
	}
	data, err := Marshal(c)
	if err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	if prev, err := os.ReadFile(PreviousPath(path)); err == nil {
		if pc, err := Parse(prev, PreviousPath(path)); err == nil {
			if pd, err := Marshal(pc); err == nil && bytes.Equal(pd, data) {
				data = prev
			}
		}
	}
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		// The kept file has the replaced one's permissions, as its bytes:
		// a new .prev was 0600 beside an operator's 0644 file (a trial),
		// and a rollback that swaps the two gives them back as they were.
		var perm fs.FileMode
		if fi, err := os.Stat(path); err == nil {
			perm = fi.Mode().Perm()
		}
		if err := writeFileAtomicMode(PreviousPath(path), old, perm); err != nil {
			return fmt.Errorf("save config %s: keep the previous file: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("save config %s: read the previous file: %w", path, err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	return nil
}

// Checkpoint holds a configuration file and its previous file
// (PreviousPath) as they were, so that a SaveKeepPrevious whose
// configuration could not be applied is undone whole: copying the
// previous file back alone would leave the replaced file as the previous one, and the previous
// file before it, which a rollback or a revert still needs, is lost.
type Checkpoint struct {
	path            string
	cur, prev       []byte
	hasCur, hasPrev bool
}

// NewCheckpoint reads path and PreviousPath(path); a missing file is
// remembered as missing.
func NewCheckpoint(path string) (*Checkpoint, error) {
	c := &Checkpoint{path: path}
	for _, f := range []struct {
		name string
		data *[]byte
		has  *bool
	}{{path, &c.cur, &c.hasCur}, {PreviousPath(path), &c.prev, &c.hasPrev}} {
		b, err := os.ReadFile(f.name)
		switch {
		case err == nil:
			*f.data, *f.has = b, true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("config checkpoint %s: %w", f.name, err)
		}
	}
	return c, nil
}

// Restore puts both files back as NewCheckpoint found them (each written
// atomically; one that was missing is removed).
func (c *Checkpoint) Restore() error {
	for _, f := range []struct {
		name string
		data []byte
		has  bool
	}{{c.path, c.cur, c.hasCur}, {PreviousPath(c.path), c.prev, c.hasPrev}} {
		var err error
		if f.has {
			err = writeFileAtomic(f.name, f.data)
		} else if err = os.Remove(f.name); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("restore config %s: %w", f.name, err)
		}
	}
	return nil
}

// LoadPrevious loads the configuration SaveKeepPrevious kept beside path,
// with rules beside Validate (as Load): a previous file is applied as a
// push is, so it must pass the checks a push does.
func LoadPrevious(path string, rules ...Rule) (*Config, error) {
	prev := PreviousPath(path)
	if _, err := os.Stat(prev); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no previous configuration to roll back to (%s does not exist)", prev)
	}
	return Load(prev, rules...)
}
