// Package jsonkeys makes the keys of a JSON request match its Go struct
// exactly. encoding/json matches an object's keys to struct fields
// regardless of case and keeps the last of two keys that land on one
// field, so {"ID":"t7"} sets the field tagged "id", and
// {"id":"t10","ID":"t11"} means t11 to encoding/json and t10 to a sender
// (or a parser) that reads the exact key: one message, two meanings.
// Check refuses such keys before the message is decoded.
package jsonkeys

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// Kind says what is wrong with a key.
type Kind int

const (
	// Unknown: the struct has no field of that name, in any case.
	Unknown Kind = iota + 1
	// Case: the key names a field only when case is ignored ("ID" for
	// "id"); Error.Want is the field's name.
	Case
	// Duplicate: the object gave the key before, exactly or in another
	// case; Error.Want is the earlier spelling.
	Duplicate
)

// Error is the first key, in document order, that does not name a field
// of the struct its object decodes into exactly once.
type Error struct {
	Kind Kind
	// Path is the dotted path of the key's object ("" at the top level,
	// "a.b[2]" below); Key the key as it was given.
	Path, Key string
	// Want is the field's name (Case) or the key's earlier spelling
	// (Duplicate).
	Want string
	// Fields are the JSON names of the object's struct, sorted.
	Fields []string
}

// Name is the key's full path: Path and Key joined by a dot.
func (e *Error) Name() string {
	if e.Path == "" {
		return e.Key
	}
	return e.Path + "." + e.Key
}

// Error says what is wrong with the key, naming it by its full path.
func (e *Error) Error() string {
	switch e.Kind {
	case Case:
		return fmt.Sprintf("unknown field %q (did you mean %q?)", e.Name(), e.Want)
	case Duplicate:
		if e.Want != e.Key {
			return fmt.Sprintf("duplicate key %q (also given as %q)", e.Name(), e.Want)
		}
		return fmt.Sprintf("duplicate key %q", e.Name())
	}
	return fmt.Sprintf("unknown field %q", e.Name())
}

// Check walks data, a JSON value that decodes into a value of type t,
// and returns an *Error for the first key, in document order, of an
// object that decodes into a struct (at any depth: through fields,
// pointers, lists and map values) that is not exactly one of the
// struct's JSON field names, or that the object gives twice, exactly or
// in another case (encoding/json's case folding). Objects that decode
// into maps are held to exact duplicates only (their keys are data, and
// "a" and "A" two of them); values of interface type, or of a type with
// its own UnmarshalJSON or UnmarshalText, are not looked into, nor are
// values of the wrong kind for their type (the decoder refuses those).
// Malformed JSON is left to the decoder: Check returns nil at the first
// syntax error.
func Check(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are skipped, never converted
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or malformed: the decoder says what
		}
		want, path := t, ""
		if n := len(stack); n > 0 {
			top := stack[n-1]
			if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
				if stack = stack[:n-1]; len(stack) == 0 {
					return nil
				}
				continue
			}
			if top.obj && top.expectKey {
				key, _ := tok.(string) // the decoder allows nothing else here
				top.expectKey, top.key = false, key
				if e := top.member(key); e != nil {
					return e
				}
				continue
			}
			if top.obj {
				want, path = top.next, joinPath(top.path, top.key)
				top.expectKey = true
			} else {
				want, path = top.elem, top.path+"["+strconv.Itoa(top.index)+"]"
				top.index++
			}
		}
		d, ok := tok.(json.Delim)
		if !ok {
			if len(stack) == 0 {
				return nil // a scalar at the top: the decoder's to judge
			}
			continue
		}
		f := &frame{obj: d == '{', path: path, seen: map[string]string{}, expectKey: d == '{'}
		want = deref(want)
		switch {
		case want == nil || opaque(want):
			f = nil
		case d == '{' && want.Kind() == reflect.Struct:
			f.s = shapeOf(want)
		case d == '{' && want.Kind() == reflect.Map, d == '[' && (want.Kind() == reflect.Slice || want.Kind() == reflect.Array):
			f.elem = want.Elem()
		default:
			f = nil
		}
		if f == nil {
			// Nothing below is judged.
			if len(stack) == 0 || skipRest(dec) != nil {
				return nil
			}
			continue
		}
		stack = append(stack, f)
	}
}

// frame is an object or a list that Check is in.
type frame struct {
	obj       bool
	s         *shape       // the object's struct; nil for a map or a list
	elem      reflect.Type // a map's values or a list's elements
	seen      map[string]string
	path      string
	expectKey bool
	key       string       // an object's current key
	next      reflect.Type // and the type of its value
	index     int          // a list's next index
}

// member takes an object's next key: an *Error when it is not exactly one
// field of the struct, or is given twice.
func (f *frame) member(key string) *Error {
	if f.s == nil {
		// A map: keys are data; only an exact repeat is refused.
		if _, ok := f.seen[key]; ok {
			return &Error{Kind: Duplicate, Path: f.path, Key: key, Want: key}
		}
		f.seen[key] = key
		f.next = f.elem
		return nil
	}
	folded := foldKey(key)
	if prev, ok := f.seen[folded]; ok {
		return &Error{Kind: Duplicate, Path: f.path, Key: key, Want: prev, Fields: f.s.names}
	}
	f.seen[folded] = key
	if ft, ok := f.s.fields[key]; ok {
		f.next = ft
		return nil
	}
	for _, name := range f.s.names {
		if strings.EqualFold(name, key) {
			return &Error{Kind: Case, Path: f.path, Key: key, Want: name, Fields: f.s.names}
		}
	}
	return &Error{Kind: Unknown, Path: f.path, Key: key, Fields: f.s.names}
}

// foldKey maps every rune of key to the least rune of its case-folding
// orbit (unicode.SimpleFold), so that two keys fold alike exactly when
// strings.EqualFold, and encoding/json, take them for one.
func foldKey(key string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, key)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// skipRest consumes the rest of a list or object whose opening delimiter
// was just read.
func skipRest(dec *json.Decoder) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// opaque reports whether t decodes itself (json.RawMessage, time.Time):
// its keys are its own business.
func opaque(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

// shape is a struct's JSON fields.
type shape struct {
	fields map[string]reflect.Type // JSON name → the field's type
	names  []string                // sorted
}

// shapes caches shapeOf per type, as encoding/json caches its own field
// lists: a pure function of the type, so sharing it changes nothing but
// the time a request takes.
var shapes sync.Map // reflect.Type → *shape

// shapeOf lists the JSON fields of struct type t as encoding/json names
// them: the tag's name, else the Go name; "-" and unexported fields left
// out; the fields of an untagged embedded struct promoted.
func shapeOf(t reflect.Type) *shape {
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s := &shape{fields: map[string]reflect.Type{}}
	var tagged [][]int // embedded structs named by a tag: their fields stay inside
	for _, f := range reflect.VisibleFields(t) {
		if slices.ContainsFunc(tagged, func(idx []int) bool {
			return len(f.Index) > len(idx) && slices.Equal(f.Index[:len(idx)], idx)
		}) {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous {
			st := deref(ft)
			if name == "" && st != nil && st.Kind() == reflect.Struct {
				continue // promoted: VisibleFields lists its fields
			}
			if name != "" {
				tagged = append(tagged, f.Index)
			}
		}
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if slices.Contains(strings.Split(opts, ","), "string") {
			ft = reflect.TypeFor[string]() // the value is quoted
		}
		if _, dup := s.fields[name]; !dup {
			s.fields[name] = ft
			s.names = append(s.names, name)
		}
	}
	slices.Sort(s.names)
	v, _ := shapes.LoadOrStore(t, s)
	return v.(*shape)
}

// Lookup returns the value of key at the top level of the JSON object
// data, the key matched exactly (never "ID" for "id"), and whether it is
// there. Given twice, the last is returned, as encoding/json would take
// it. Data that is malformed further on still yields a key read before
// the fault, so that even a refused request's id can be found.
func Lookup(data []byte, key string) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var val json.RawMessage
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		if k, _ := tok.(string); k == key {
			val, found = v, true
		}
	}
	return val, found
}
