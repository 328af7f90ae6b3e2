package remote

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/inspectd/inspectd/daemon/internal/jsonkeys"
)

// Error codes in replies ("code"), for machines; "error" says the same in words.
const (
	// CodeInvalid: the request is malformed, of the wrong type, out of
	// bounds, or refused by validation; "field" names what.
	CodeInvalid = "invalid"
	// CodeTooLarge: the message is over remote.max_payload.
	CodeTooLarge = "too_large"
	// CodeUnknownCommand: no command of that name.
	CodeUnknownCommand = "unknown_command"
	// CodeUnauthorized: unsigned where a signature is needed, a bad or
	// unknown signature, a stale timestamp, a replayed nonce, or remote
	// commands off.
	CodeUnauthorized = "unauthorized"
	// CodeBusy: a refit runs (or the queue is full); try again later.
	CodeBusy = "busy"
	// CodeRetained: a retained message, never executed.
	CodeRetained = "retained"
	// CodeFailed: the command ran and failed; what is in force is unchanged
	// unless the error says otherwise.
	CodeFailed = "failed"
	// CodeCancelled: a refit stopped by refit-cancel or shutdown.
	CodeCancelled = "cancelled"
	// CodeInterrupted: the daemon stopped (restart, power cut) while the
	// command ran.
	CodeInterrupted = "interrupted"
)

// Error is a refusal or failure with its code and, where one is to blame,
// the field of the request.
type Error struct {
	Code  string
	Field string
	Msg   string
	// named: Msg names the field(s) itself, Error does not prefix it.
	named bool
	// key: the refusal is of the key Field itself (unknown, a duplicate),
	// not of its value; placeField points at the key.
	key bool
	// placed: Msg says where in the message already.
	placed bool
	// wrongType: Field's value is of the wrong JSON type ("many" for an
	// integer); the dispatcher places it in the command (placeCommand),
	// as an envelope's own fields and a pushed document's are placed.
	wrongType bool
}

func (e *Error) Error() string {
	if e.Field != "" && !e.named {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

func errorf(code, field, format string, a ...any) *Error {
	return &Error{Code: code, Field: field, Msg: fmt.Sprintf(format, a...)}
}

func invalidf(field, format string, a ...any) *Error { return errorf(CodeInvalid, field, format, a...) }

// typef is invalidf for a value of the wrong JSON type (Error.wrongType).
func typef(field, format string, a ...any) *Error {
	e := invalidf(field, format, a...)
	e.wrongType = true
	return e
}

// placeCommand places a refusal of a command body's value of the wrong
// type where the value starts ("count at line 1, column 20: expected an
// integer, got string"), as signed envelopes' fields and pushed
// documents' problems are placed; other errors are returned as they are.
func placeCommand(err error, body []byte) error {
	var e *Error
	if !errors.As(err, &e) || !e.wrongType {
		return err
	}
	return placeField(err, body, "")
}

// maxJSONDepth bounds the nesting of a request; configurations nest about
// five deep.
const maxJSONDepth = 32

// maxIDLen is the longest request id, in characters.
const maxIDLen = 128

// checkJSON checks that data is one JSON object with no duplicate key at
// any depth and at most maxJSONDepth levels of nesting. Errors name the line
// and the path of the offending key; encoding/json itself keeps the last of
// two equal keys silently, which would let a signed payload mean two
// things to two parsers.
func checkJSON(data []byte) error {
	if !utf8.Valid(data) {
		// encoding/json would replace the bytes by U+FFFD silently: an id
		// so mangled comes back unlike the one sent, and no client could
		// match its reply.
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return invalidf("", "the message is not valid UTF-8 (byte %d): JSON text must be UTF-8", i)
	}
	type frame struct {
		obj       bool
		keys      map[string]bool
		path, key string
		expectKey bool // an object's next token is a key (or its end)
		index     int  // a list's next index
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	// place is "line L, column C" of offset off, as pushed objects'
	// problems are placed.
	place := func(off int) string {
		l, c := lineColumn(data, off)
		return fmt.Sprintf("line %d, column %d", l, c)
	}
	var stack []*frame
	started := false
	for {
		at := tokenAt(data, dec.InputOffset())
		tok, err := dec.Token()
		switch {
		case err == io.EOF && !started:
			return invalidf("", "empty message; expected a JSON object like {\"id\": \"...\"}")
		case err == io.EOF && len(stack) > 0:
			return invalidf("", "malformed JSON at %s: unexpected end of the message", place(len(data)))
		case err == io.EOF:
			return nil
		case err != nil:
			off := int(dec.InputOffset())
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = syntaxAt(data, se)
			}
			return invalidf("", "malformed JSON at %s: %s", place(off), strings.TrimPrefix(err.Error(), "json: "))
		}
		if !started {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return invalidf("", "expected a JSON object like {\"id\": \"...\"}, got %s", describeToken(tok))
			}
			started = true
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expectKey: true})
			continue
		}
		if len(stack) == 0 {
			return invalidf("", "unexpected data after the JSON object at line %d", lineAt(dec.InputOffset()))
		}
		top := stack[len(stack)-1]
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top.obj && top.expectKey {
			k := tok.(string) // the decoder allows nothing else here
			if top.keys[k] {
				e := invalidf(joinPath(top.path, k), "duplicate key at %s", place(at))
				e.placed = true
				return e
			}
			top.keys[k] = true
			top.key, top.expectKey = k, false
			continue
		}
		var path string
		if top.obj {
			path = joinPath(top.path, top.key)
			top.expectKey = true
		} else {
			path = top.path + "[" + strconv.Itoa(top.index) + "]"
			top.index++
		}
		if d, ok := tok.(json.Delim); ok {
			if len(stack) >= maxJSONDepth {
				return invalidf(path, "nested more than %d levels deep", maxJSONDepth)
			}
			stack = append(stack, &frame{obj: d == '{', keys: map[string]bool{}, path: path, expectKey: d == '{'})
		}
	}
}

// syntaxAt is the offset in data of the character a SyntaxError names:
// its Offset is that character's in some errors and one off either way in
// others (a token's, a value's inside an object, the first value's).
func syntaxAt(data []byte, se *json.SyntaxError) int {
	off := min(int(se.Offset), len(data))
	rest, ok := strings.CutPrefix(se.Error(), "invalid character '")
	end := strings.Index(rest, "' ")
	if !ok || end < 1 {
		return off
	}
	lit := rest[:end]
	switch lit {
	case `\'`:
		lit = "'"
	case `"`:
	default:
		u, err := strconv.Unquote(`"` + lit + `"`)
		if err != nil {
			return off
		}
		lit = u
	}
	for _, i := range []int{off, off + 1, off - 1} {
		if i >= 0 && i < len(data) && bytes.HasPrefix(data[i:], []byte(lit)) {
			return i
		}
	}
	return off
}

// jsonPlace is where, in bytes from the start of a message, a key and its
// value start; key is the value's for a list item.
type jsonPlace struct{ key, value int }

// jsonPlaces indexes the keys and list items of the JSON object data (one
// that checkJSON let pass) by their path, named as checkJSON names them
// (config.mqtt.brokers[0]); "" is the object itself.
func jsonPlaces(data []byte) map[string]jsonPlace {
	type frame struct {
		obj       bool
		path, key string
		keyAt     int
		expectKey bool
		index     int
	}
	places := map[string]jsonPlace{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*frame
	for {
		at := tokenAt(data, dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return places
		}
		d, delim := tok.(json.Delim)
		if len(stack) == 0 {
			if !delim || d != '{' {
				return places
			}
			places[""] = jsonPlace{at, at}
			stack = append(stack, &frame{obj: true, expectKey: true})
			continue
		}
		top := stack[len(stack)-1]
		switch {
		case delim && (d == '}' || d == ']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return places
			}
			continue
		case top.obj && top.expectKey:
			top.key, top.keyAt, top.expectKey = tok.(string), at, false
			continue
		}
		path, keyAt := top.path+"["+strconv.Itoa(top.index)+"]", at
		if top.obj {
			path, keyAt = joinPath(top.path, top.key), top.keyAt
			top.expectKey = true
		} else {
			top.index++
		}
		if _, seen := places[path]; !seen {
			places[path] = jsonPlace{keyAt, at}
		}
		if delim {
			stack = append(stack, &frame{obj: d == '{', path: path, expectKey: d == '{'})
		}
	}
}

// tokenAt is where the JSON token after offset end (a decoder's
// InputOffset: the end of the last token) starts in data, after the white
// space and the ':' or ',' between them.
func tokenAt(data []byte, end int64) int {
	i := int(end)
	for i < len(data) && strings.IndexByte(" \t\r\n:,", data[i]) >= 0 {
		i++
	}
	return i
}

// lineColumn is the 1-based line and column of offset off in data, the
// column in characters (as an editor shows it), not bytes: "é" is one.
func lineColumn(data []byte, off int) (line, col int) {
	off = min(off, len(data))
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	return 1 + bytes.Count(data[:off], []byte("\n")), 1 + utf8.RuneCount(data[start:off])
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describeToken names a JSON token in a message.
func describeToken(tok any) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "a list"
		}
		return string(v)
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// decodeStrict decodes a request body into v (a pointer to a struct with
// json tags) after checkJSON: unknown fields and values of the wrong type
// are refused naming the field and what it takes. Keys must name fields
// exactly (see keyError), at every depth that decodes into a struct.
func decodeStrict(data []byte, v any) error {
	if err := checkJSON(data); err != nil {
		return err
	}
	if err := jsonkeys.Check(data, reflect.TypeOf(v)); err != nil {
		return keyError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(message)"
		}
		got := te.Value
		if num, ok := strings.CutPrefix(got, "number "); ok {
			// A number that does not fit the field: 1e400 for a float,
			// 3000000000 for an int32, 2.5 for an integer.
			got = num
			if numericOverflow(num, te.Type) {
				got += ": out of range"
			}
		}
		return typef(field, "expected %s, got %s", expectJSON(te.Type), got)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		// jsonkeys.Check found every unknown key first; kept for a type
		// it does not look into.
		name, _ = strconv.Unquote(name)
		e := invalidf(fieldName(name), "unknown field (this command takes: %s)", strings.Join(jsonFields(reflect.TypeOf(v).Elem()), ", "))
		e.key = true
		return e
	}
	return invalidf("", "%s", strings.TrimPrefix(err.Error(), "json: "))
}

// keyError words a jsonkeys refusal as the other refusals of a request:
// the key's path as the field. encoding/json matches keys regardless of
// case and keeps the last of two that match one field, so without it
// {"ID":"t7","Image":18} set a threshold, and {"id":"t10","ID":"t11"}
// was answered as t11 while its sender waited for t10.
func keyError(err error) error {
	var e *jsonkeys.Error
	if !errors.As(err, &e) {
		return invalidf("", "%v", err)
	}
	takes := strings.Join(e.Fields, ", ")
	var out *Error
	switch {
	case e.Kind == jsonkeys.Case:
		out = invalidf(fieldName(e.Name()), "unknown field (did you mean %q? keys are case-sensitive; this command takes: %s)", e.Want, takes)
	case e.Kind == jsonkeys.Duplicate && e.Want != e.Key:
		out = invalidf(fieldName(e.Name()), "duplicate key (also given as %q, which differs only in case)", truncate(e.Want, 64))
	case e.Kind == jsonkeys.Duplicate:
		out = invalidf(fieldName(e.Name()), "duplicate key")
	default:
		out = invalidf(fieldName(e.Name()), "unknown field (this command takes: %s)", takes)
	}
	out.key = true
	return out
}

// placeField says where in data, the JSON object a refusal is of, the
// key or value that err's Field names starts (its key for an unknown or
// duplicate key), as the refusals of checkJSON and of a pushed
// configuration do, and names the field as prefix+Field: "envelope.sig
// at line 1, column 150: is not ...". A refusal without a field, one
// placed already, and one whose field data does not hold (a key left
// out) are returned with the prefix alone; other errors as they are.
func placeField(err error, data []byte, prefix string) error {
	var e *Error
	if !errors.As(err, &e) || e.Field == "" {
		return err
	}
	q := *e
	q.Field = prefix + e.Field
	if e.placed || e.named {
		return &q
	}
	pl, ok := jsonPlaces(data)[e.Field]
	if !ok {
		return &q
	}
	at := pl.value
	if e.key {
		at = pl.key
	}
	l, c := lineColumn(data, at)
	q.Msg = fmt.Sprintf("%s at line %d, column %d: %s", q.Field, l, c, e.Msg)
	q.named, q.placed = true, true
	return &q
}

// fieldName is a key from a request as a reply's field names it: control
// characters dropped and at most 64 bytes, so that a key of ten thousand
// characters (the sender's own typo or worse) makes no reply of its size.
func fieldName(key string) string {
	return truncate(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, key), 64)
}

// withUnknownFields adds the top-level fields of body that the request
// struct v does not take to err, a refusal of the request's id (answered
// before the command decodes its body): {"idd": "s2"} would otherwise be
// told only that its id is missing, not that it misspelt it. The refusal
// then names the first unknown field, and says both. Other errors are
// returned as they are.
func withUnknownFields(err error, body []byte, v any) error {
	var e *Error
	if !errors.As(err, &e) || e.Field != "id" {
		return err
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return err
	}
	known := jsonFields(reflect.TypeOf(v).Elem())
	var unknown []string
	for k := range top {
		// Exactly: the command refuses "ID" for "id" (decodeStrict).
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return err
	}
	slices.Sort(unknown)
	var quoted []string
	for i, k := range unknown {
		if i == 5 { // a body of many keys gets a reply of a few lines
			quoted = append(quoted, fmt.Sprintf("and %d more", len(unknown)-i))
			break
		}
		q := strconv.Quote(truncate(k, 40))
		if i := slices.IndexFunc(known, func(f string) bool { return strings.EqualFold(f, k) }); i >= 0 {
			q += fmt.Sprintf(" (did you mean %q?)", known[i])
		}
		quoted = append(quoted, q)
	}
	what := "unknown field "
	if len(unknown) > 1 {
		what = "unknown fields "
	}
	return &Error{Code: e.Code, Field: fieldName(unknown[0]), named: true,
		Msg: fmt.Sprintf("%s%s (this command takes: %s); %s", what, strings.Join(quoted, ", "), strings.Join(known, ", "), e.Error())}
}

// numericOverflow says whether the JSON number num failed to fit t for its
// size alone (not for a fraction in an integer field).
func numericOverflow(num string, t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return !strings.ContainsAny(num, ".eE")
	}
	return false
}

// expectJSON says in words what JSON value fits a Go type.
func expectJSON(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "a " + t.String()
}

// jsonFields lists a struct's JSON field names.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// checkID checks a request id: 1 to 128 characters of UTF-8, no control
// characters.
func checkID(id string) error {
	n := utf8.RuneCountInString(id)
	switch {
	case id == "":
		return invalidf("id", "missing or empty; every request needs an id of 1 to %d characters to match its reply", maxIDLen)
	case !utf8.ValidString(id):
		return invalidf("id", "is not valid UTF-8")
	case n > maxIDLen:
		return invalidf("id", "is %d characters long; at most %d", n, maxIDLen)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return invalidf("id", "holds a control character")
	}
	return nil
}

// peekID reads the id of a request body without judging anything else, so
// that even a refused request's reply can carry it; "" when there is none.
// Only the key "id" spelt exactly counts: a body refused for holding "ID"
// beside it is answered to the id its sender used, never to "ID"'s.
func peekID(body []byte) string {
	var id, payload string
	if raw, ok := jsonkeys.Lookup(body, "id"); ok {
		json.Unmarshal(raw, &id)
	}
	if raw, ok := jsonkeys.Lookup(body, "payload"); ok {
		json.Unmarshal(raw, &payload)
	}
	if id == "" && payload != "" {
		// A signed envelope refused before its payload was read: the
		// command's own id, for the refusal to be matched by its sender.
		if b, err := base64.StdEncoding.DecodeString(payload); err == nil && len(b) < len(body) {
			return peekID(b)
		}
	}
	if checkID(id) != nil {
		return ""
	}
	return id
}

// human writes a byte count for people: 25.1 GiB, 62.0 MiB, 900 KiB.
func human(n int64) string {
	f := float64(max(n, 0))
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if f < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%.0f B", f)
			}
			return fmt.Sprintf("%.1f %s", f, u)
		}
		f /= 1024
	}
	return ""
}
