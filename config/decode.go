package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// MaxFileSize bounds a configuration file. A real one is a few KiB; a larger
// input is a mistake (or an attack on a config pushed over MQTT).
const MaxFileSize = 1 << 20

// maxVisits bounds the keys and list items one Parse visits, so that merge
// keys stacked through aliases cannot make a small document expensive.
const maxVisits = 10_000

// maxMergeDepth bounds merge keys within merged mappings.
const maxMergeDepth = 32

// Problem is one thing wrong with a configuration: a YAML syntax error, an
// unknown or duplicate key, a value of the wrong type, or a value that
// Validate refuses. Parse and Validate return every Problem they find,
// joined with errors.Join; Problems splits them again.
type Problem struct {
	// File is the name given to Parse (the path for Load); empty for Validate.
	File string
	// Line is the 1-based line in File; 0 when unknown.
	Line int
	// Column is the 1-based column (in characters) in Line, when a problem is
	// one character (a tab that indents) or a caller places it in a JSON
	// message (a remote push's object, where one line may hold it all);
	// 0 otherwise.
	Column int
	// Field is the dotted path of the offending setting, such as
	// model.features or mqtt.brokers[1]; empty for syntax and key errors.
	Field string
	// Key is the dotted path of an unknown or duplicate key (the key as
	// written, model.treshold), for a caller that must point at it, such
	// as a remote push's reply; Field stays empty, since no setting has
	// that path, and Error does not repeat it (the message names the key
	// and its section).
	Key string
	// Msg says what is wrong and what is allowed.
	Msg string
	// In names the text that Line and Column count in when it is not the
	// document File names as a whole: a remote push's YAML, given as one
	// JSON string inside the command (`the "config" text (a string at
	// line 1, column 21 of the command)`), whose line 2 is not the
	// command's. Error then says "line N of " In; empty for a file.
	In string
	// also is another setting the problem concerns (a warning about
	// model.context_pool because of model.position_zscore): its line
	// stands for the problem's when the document does not write Field.
	also string
}

// Error reads like `config FILE: line N: model.features: 5000 is out of
// range 1..2048`, or `config FILE: line N, column C: ...` when the column
// is known, and `config FILE: line N of IN: ...` when In is set.
func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString("config " + p.File + ": ")
	}
	if p.Line > 0 {
		b.WriteString("line " + strconv.Itoa(p.Line))
		if p.Column > 0 {
			b.WriteString(", column " + strconv.Itoa(p.Column))
		}
		if p.In != "" {
			b.WriteString(" of " + p.In)
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems lists the Problems in an error returned by Parse, Load or
// Validate, in the order they were found; nil for nil.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// Rule is a check a caller adds to Validate's own, for what this package
// cannot judge by itself: config imports no other inspectd package, so a
// recipe name, whose grammar is the model's, is checked by a Rule that the
// daemon passes in. It returns the problems it finds with Field (and Msg)
// set; Parse gives them their file and line and lists them in file order
// with the others, leaving out those on a setting that did not decode or
// that Validate already refused.
type Rule func(c *Config) []*Problem

// Load reads and parses the configuration file at path; see Parse.
func Load(path string, rules ...Rule) (*Config, error) {
	c, _, err := LoadWithWarnings(path, rules...)
	return c, err
}

// LoadWithWarnings is Load that also returns the file's warnings
// (settings that are valid but do not act as written: Config.Warnings and
// mqtt.tls with no TLS broker),
// with their lines; also beside problems, for the settings that decoded,
// so that `inspectd config check` lists everything in one run.
func LoadWithWarnings(path string, rules ...Rule) (*Config, []*Problem, error) {
	if path == "" {
		// The open said "open : no such file or directory", which
		// named no file and read as a file gone.
		return nil, nil, errors.New("config: the configuration path is empty: name a configuration file")
	}
	if err := fileKindError(path); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		// A link to a file that is not there (or round in a loop) was
		// "open x: no such file or directory", as if the link itself
		// were gone: it is named, with where it leads.
		if bl := atomicfile.BrokenLink(path); bl != nil {
			return nil, nil, fmt.Errorf("config: %w", bl)
		}
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		// Only the limit and one byte were read: the file's own size is
		// its stat's (a device or a file still growing has none).
		size := fmt.Sprintf("more than %d bytes", MaxFileSize)
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
			size = fmt.Sprintf("%d bytes", fi.Size())
		}
		return nil, nil, tooLarge(path, size)
	}
	return parse(data, path, rules)
}

// fileKindError refuses, before it is opened, a configuration path that
// leads to neither a regular file nor a folder (a folder is named by the
// read that fails on it): opening a named pipe waited for a writer, so
// that `config check`, a start or a SIGHUP reload hung for good (SIGTERM
// too), and a device such as /dev/zero was read up to the limit and
// called a file of 1048577 bytes (opening a device may act on it). Here,
// where every load passes (the daemon's start and reload, config check,
// a rollback's previous file, fit's and eval's -config), so that all of
// them refuse it in the same words. nil for anything else, a path not
// there included, which the open names.
func fileKindError(path string) error {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || st.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("config %s: is %s, not a configuration file", path, atomicfile.FileKind(st.Mode()))
}

// tooLarge is the refusal of a document over MaxFileSize; size says how
// large it is ("3145728 bytes").
func tooLarge(name, size string) error {
	d := &decoder{file: name}
	d.fail(0, "", "%s is more than a configuration file may hold (%s)", size, Size(MaxFileSize))
	return errors.Join(d.probs...)
}

// Parse decodes a configuration over Default and validates it, with rules
// beside Validate's. Keys the document leaves out, or sets to null, keep
// their defaults, so an empty document is the default configuration. name
// (a file path, or where the bytes came from) prefixes every message. The
// error lists every problem found; Problems splits it.
func Parse(data []byte, name string, rules ...Rule) (*Config, error) {
	c, _, err := parse(data, name, rules)
	return c, err
}

// parse is Parse, returning the warnings too.
func parse(data []byte, name string, rules []Rule) (*Config, []*Problem, error) {
	d := &decoder{file: name, lines: map[string]int{}, visits: maxVisits, rules: rules}
	if len(data) > MaxFileSize {
		return nil, nil, tooLarge(name, fmt.Sprintf("%d bytes", len(data)))
	}
	root, err := document(data)
	if err != nil {
		d.probs = append(d.probs, yamlProblem(name, data, err))
		return nil, nil, errors.Join(d.probs...)
	}
	c := Default()
	if root != nil {
		if root.Kind != yaml.MappingNode && !isNull(root) {
			d.fail(root.Line, "", "expected a mapping of settings such as \"capture:\" at the top, got %s", describe(root))
		} else {
			d.section(root, reflect.ValueOf(c).Elem(), "")
		}
	}
	if d.validate(c); len(d.probs) > 0 {
		return nil, d.warnings, errors.Join(d.probs...)
	}
	return c, d.warnings, nil
}

// validate adds c's validation problems and those of the caller's rules
// to the decoding's, in file order, and keeps c's warnings with their
// lines. It runs also after decoding problems, so that one check names
// every mistake (a value out of its set beside a value of the wrong type
// was found only at the next run), leaving out those on a setting that did
// not decode (it holds its default meanwhile), and all of them when the
// document's shape was wrong.
func (d *decoder) validate(c *Config) {
	var failed []string // the settings (or keys) that did not decode
	for _, e := range d.probs {
		p := e.(*Problem)
		if p.Field == "" && p.Key == "" {
			return
		}
		failed = append(failed, p.Field, p.Key)
	}
	isFailed := func(field string) bool {
		return slices.ContainsFunc(failed, func(f string) bool { return f != "" && related(f, field) })
	}
	var found []error
	refused := Problems(c.Validate())
	for _, p := range refused {
		if !isFailed(p.Field) {
			found = append(found, &Problem{File: d.file, Line: d.lineOf(p.Field), Field: p.Field, Msg: p.Msg})
		}
	}
	// The callers' rules, on settings that decoded and that Validate let
	// pass (a recipe name Validate refused is not parsed again).
	for _, rule := range d.rules {
		for _, p := range rule(c) {
			if !isFailed(p.Field) && !slices.ContainsFunc(refused, func(r *Problem) bool { return related(r.Field, p.Field) }) {
				found = append(found, &Problem{File: d.file, Line: d.lineFor(p), Field: p.Field, Msg: p.Msg})
			}
		}
	}
	isRefused := func(field string) bool {
		return slices.ContainsFunc(found, func(e error) bool { return related(e.(*Problem).Field, field) })
	}
	for _, w := range c.fileWarnings() {
		if !isFailed(w.Field) && !isFailed(w.also) && !isRefused(w.Field) && !isRefused(w.also) {
			d.warnings = append(d.warnings, &Problem{File: d.file, Line: d.lineFor(w), Field: w.Field, Msg: w.Msg})
		}
	}
	if len(found) == 0 {
		return
	}
	// In file order, which is how a person fixes them; problems without a
	// line (settings the file leaves out) come last. After the decoding's
	// own: the first problem is what a push's reply names.
	slices.SortStableFunc(found, func(a, b error) int {
		la, lb := a.(*Problem).Line, b.(*Problem).Line
		if la == 0 || lb == 0 {
			return lb - la // a nonzero line sorts first
		}
		return la - lb
	})
	d.probs = append(d.probs, found...)
}

// related says whether settings a and b are one, or one holds the other.
func related(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".") ||
		strings.HasPrefix(a, b+"[") || strings.HasPrefix(b, a+"[")
}

// document returns the root node of the only YAML document in data, nil
// when data holds no document.
func document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("line %d: a second YAML document starts here; a configuration file holds one", max(next.Line, 1))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLineRE = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblem turns a yaml syntax error into a Problem with its line. When
// a tab indents a line at or before the one the parser stopped at, that is
// the problem: YAML allows only spaces for indentation, and the parser's
// own words ("found character that cannot start any token") do not say so.
func yamlProblem(file string, data []byte, err error) *Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := &Problem{File: file, Msg: msg}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = m[2]
	}
	// yaml.v3 places "found a tab character that violates indentation" on
	// the line before the tab's: look one line further.
	if line, col := indentingTab(data, p.Line+1); line > 0 && (line <= p.Line || strings.Contains(p.Msg, "tab character")) {
		return &Problem{File: file, Line: line, Column: col,
			Msg: fmt.Sprintf("a tab character indents this line; YAML indents with spaces only: replace the tab with spaces (the YAML parser said: %s)", p.Msg)}
	}
	return p
}

// indentingTab returns the line and column (1-based) of the first tab in
// the leading white space of a line, looking at lines up to maxLine (all
// lines when 0); 0, 0 if there is none.
func indentingTab(data []byte, maxLine int) (line, col int) {
	for i, l := range bytes.Split(data, []byte("\n")) {
		if maxLine > 0 && i+1 > maxLine {
			break
		}
		for j, c := range l {
			if c == '\t' {
				return i + 1, j + 1
			}
			if c != ' ' {
				break
			}
		}
	}
	return 0, 0
}

// decoder walks the YAML node tree alongside the Config struct, so that
// every unknown key, duplicate key and badly typed value is reported with
// its line and field path (yaml.v3's own strict mode names neither the
// section nor the field), and so that it learns each field's line for
// Validate's messages.
type decoder struct {
	file   string
	probs  []error
	lines  map[string]int
	visits int
	rules  []Rule // the caller's, run by validate beside Validate
	// warnings are the file's warnings (fileWarnings) with their lines, found by validate.
	warnings []*Problem
}

func (d *decoder) fail(line int, field, format string, args ...any) {
	d.probs = append(d.probs, &Problem{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// failKey records a problem with the key at path itself (unknown,
// duplicate): Problem.Key, not Field.
func (d *decoder) failKey(line int, path, format string, args ...any) {
	d.probs = append(d.probs, &Problem{File: d.file, Line: line, Key: path, Msg: fmt.Sprintf(format, args...)})
}

// spend counts one visit; false once the budget is gone (reported once).
func (d *decoder) spend(line int) bool {
	if d.visits == 0 {
		return false
	}
	d.visits--
	if d.visits == 0 {
		d.fail(line, "", "document is too complex: more than %d keys and items through aliases and merge keys", maxVisits)
		return false
	}
	return true
}

// lineFor is the line of p: its field's, or when the document does not
// write that field but writes the other setting p concerns, that one's.
func (d *decoder) lineFor(p *Problem) int {
	if _, ok := d.lines[p.Field]; !ok && p.also != "" {
		if l, ok := d.lines[p.also]; ok {
			return l
		}
	}
	return d.lineOf(p.Field)
}

// lineOf is the line a field was set on or, for a field the document
// leaves out (mqtt.tls.key when only mqtt.tls.cert is written), the line
// of the nearest enclosing section it does write. 0 if none.
func (d *decoder) lineOf(field string) int {
	for field != "" {
		if l, ok := d.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return 0
		}
		field = field[:i]
	}
	return 0
}

// pair is one key/value of a mapping after merge keys are expanded.
type pair struct{ key, val *yaml.Node }

// pairs lists the entries of the mapping at path with YAML merge keys
// ("<<: *base") expanded: the mapping's own keys first, then merged keys
// that nothing before set. Duplicate own keys are reported.
func (d *decoder) pairs(n *yaml.Node, path, where string, depth int) []pair {
	var out []pair
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.spend(k.Line) {
			return nil
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k.Line, "", "a key %s must be a plain name, not %s", where, describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.failKey(k.Line, joinKey(path, k.Value), "duplicate key %q %s (first set at line %d)", k.Value, where, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k, v})
	}
	for _, m := range merges {
		m = resolve(m)
		var srcs []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, s := range m.Content {
				srcs = append(srcs, resolve(s))
			}
		}
		for _, s := range srcs {
			if s.Kind != yaml.MappingNode {
				d.fail(s.Line, "", "merge key \"<<\" %s needs a mapping or a list of mappings, got %s", where, describe(s))
				continue
			}
			if depth >= maxMergeDepth {
				d.fail(s.Line, "", "merge keys %s are nested more than %d deep", where, maxMergeDepth)
				continue
			}
			for _, p := range d.pairs(s, path, where, depth+1) {
				if _, dup := seen[p.key.Value]; dup {
					continue
				}
				seen[p.key.Value] = p.key.Line
				out = append(out, p)
			}
		}
		if len(srcs) == 0 {
			d.fail(m.Line, "", "merge key \"<<\" %s needs a mapping or a list of mappings, got %s", where, describe(m))
		}
	}
	return out
}

// section decodes a mapping onto the struct v (a Config section) whose
// dotted path is path ("" for the top level).
func (d *decoder) section(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		// Name the keys: "model.threshold: 17.5" means model.threshold.value.
		keys := orderedKeys(v.Type())
		if len(keys) > 6 {
			keys = append(keys[:6:6], "...")
		}
		d.fail(n.Line, path, "expected a mapping of keys (%s), got %s", strings.Join(keys, ", "), describe(n))
		return
	}
	where := "at the top level"
	if path != "" {
		where = fmt.Sprintf("in section %q", path)
	}
	fields := yamlFields(v.Type())
	for _, p := range d.pairs(n, path, where, 0) {
		fp := joinKey(path, p.key.Value)
		idx, ok := fields[p.key.Value]
		if !ok {
			d.failKey(p.key.Line, fp, "unknown key %q %s%s", p.key.Value, where, suggest(p.key.Value, fields))
			continue
		}
		d.lines[fp] = p.key.Line
		d.field(p.val, v.Field(idx), fp)
	}
}

// joinKey is the dotted path of key in the section or map at path ("":
// the top level).
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// field decodes a setting's value; null keeps the default.
func (d *decoder) field(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if v.Kind() == reflect.Struct && !reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		d.section(n, v, path)
		return
	}
	d.value(n, v, path)
}

// value decodes a leaf setting (scalar, list or map) into v.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	t := v.Type()
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType):
		tmp := reflect.New(t)
		if err := n.Decode(tmp.Interface()); err != nil {
			d.fail(n.Line, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return
		}
		v.Set(tmp.Elem())
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, path, "expected a list of %s, got %s", expectPlural(t.Elem()), describe(n))
			return
		}
		out := reflect.MakeSlice(t, 0, len(n.Content))
		for i, e := range n.Content {
			ep := fmt.Sprintf("%s[%d]", path, i)
			e = resolve(e)
			if !d.spend(e.Line) {
				return
			}
			d.lines[ep] = e.Line
			ev := reflect.New(t.Elem()).Elem()
			if isNull(e) {
				d.fail(e.Line, ep, "expected %s, got null", expect(t.Elem()))
				continue
			}
			d.value(e, ev, ep)
			out = reflect.Append(out, ev)
		}
		if out.Len() == 0 {
			out = reflect.Zero(t) // nil, like an unset list, so Default compares equal
		}
		v.Set(out)
	case t.Kind() == reflect.Array:
		if n.Kind != yaml.SequenceNode || len(n.Content) != t.Len() {
			d.fail(n.Line, path, "expected a list of %d %s, got %s", t.Len(), expectPlural(t.Elem()), describe(n))
			return
		}
		for i, e := range n.Content {
			ep := fmt.Sprintf("%s[%d]", path, i)
			e = resolve(e)
			d.lines[ep] = e.Line
			if isNull(e) {
				d.fail(e.Line, ep, "expected %s, got null", expect(t.Elem()))
				continue
			}
			d.value(e, v.Index(i), ep)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, "expected a mapping of names to %s, got %s", expectPlural(t.Elem()), describe(n))
			return
		}
		out := reflect.MakeMap(t)
		for _, p := range d.pairs(n, path, fmt.Sprintf("in %q", path), 0) {
			ep := path + "." + p.key.Value
			d.lines[ep] = p.key.Line
			val := resolve(p.val)
			if isNull(val) {
				d.fail(val.Line, ep, "expected %s, got null", expect(t.Elem()))
				continue
			}
			ev := reflect.New(t.Elem()).Elem()
			d.value(val, ev, ep)
			out.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), ev)
		}
		if out.Len() == 0 {
			out = reflect.Zero(t)
		}
		v.Set(out)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, path, "expected %s, got %s", expect(t), describe(n))
			return
		}
		// yaml.v3 truncates 2.5 into an int; a setting must not. It also
		// reads a quoted "yes" or "on" into a bool but refuses a quoted
		// "true": a quoted value is a string, for a bool setting too.
		isInt := t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
		quotedBool := t.Kind() == reflect.Bool && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
		tmp := reflect.New(t)
		if isInt && n.ShortTag() != "!!int" || quotedBool || n.Decode(tmp.Interface()) != nil {
			if outOfRange(n.Value, t) {
				d.fail(n.Line, path, "expected %s, got %s: out of range", expect(t), n.Value)
				return
			}
			d.fail(n.Line, path, "expected %s, got %s", expect(t), describe(n))
			return
		}
		v.Set(tmp.Elem())
	}
}

// outOfRange says whether v is a number written as YAML writes them that
// does not fit t: YAML reads 1e400 as a string, and "expected a number,
// got \"1e400\"" left a user wondering what else a number looks like.
func outOfRange(v string, t reflect.Type) bool {
	var err error
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		_, err = strconv.ParseFloat(v, t.Bits())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err = strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, t.Bits())
	default:
		return false
	}
	return errors.Is(err, strconv.ErrRange)
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe shows a node in a message: a scalar's value (quoted when YAML
// reads it as a string), or what kind of node it is.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil || n.Kind == 0:
		return "nothing"
	case n.Kind == yaml.SequenceNode:
		return fmt.Sprintf("a list of %d", len(n.Content))
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case isNull(n):
		return "null"
	}
	v := n.Value
	if len(v) > 60 {
		v = v[:60] + "..."
	}
	if n.Tag == "!!str" || n.Tag == "" || strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return strconv.Quote(v)
	}
	return v
}

// expect says in words what a value of type t looks like.
func expect(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int32:
		return "an integer between -2147483648 and 2147483647"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return "a " + t.Name()
}

// expectPlural is expect for a list of things.
func expectPlural(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Int32, reflect.Int, reflect.Int64:
		return "integers"
	case reflect.Float64, reflect.Float32:
		return "numbers"
	}
	return t.Name() + " values"
}

// yamlFields maps a struct's YAML keys to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

// orderedKeys are a section's keys in the order of its fields.
func orderedKeys(t reflect.Type) []string {
	fields := yamlFields(t)
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return fields[names[i]] < fields[names[j]] })
	return names
}

// suggest names the known key closest to an unknown one, or lists the
// known keys when none is close: most unknown keys are typos.
func suggest(key string, fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return fields[names[i]] < fields[names[j]] })
	best, bestD := "", 3
	for _, k := range names {
		if dist := editDistance(strings.ToLower(key), k); dist < bestD {
			best, bestD = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (known keys: " + strings.Join(names, ", ") + ")"
}

// editDistance is the Levenshtein distance, giving up (returning a large
// value) for long inputs where a suggestion would be noise anyway.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
