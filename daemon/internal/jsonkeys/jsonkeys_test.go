package jsonkeys

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string `json:"name"`
	N    int    `json:"n,omitempty"`
}

type Embedded struct {
	Seq int `json:"seq"`
}

type outer struct {
	Embedded
	ID      string            `json:"id"`
	Image   *float64          `json:"image"`
	Inner   inner             `json:"inner"`
	List    []*inner          `json:"list"`
	ByName  map[string]inner  `json:"by_name"`
	Labels  map[string]string `json:"labels"`
	Raw     json.RawMessage   `json:"raw"`
	Any     any               `json:"any"`
	At      time.Time         `json:"at"`
	Quoted  int               `json:"quoted,string"`
	Skipped string            `json:"-"`
	Plain   bool
	hidden  bool
}

func TestCheck(t *testing.T) {
	typ := reflect.TypeFor[outer]()
	for _, ok := range []string{
		`{"id":"a","image":1.5,"seq":3,"Plain":true}`,
		`{"inner":{"name":"x","n":2},"list":[{"name":"y"},null,{"n":1}]}`,
		`{"by_name":{"A":{"name":"a"},"a":{"name":"b"}},"labels":{"K":"1","k":"2"}}`,
		// Not looked into: their keys are theirs.
		`{"raw":{"ID":1,"id":2},"any":{"X":1,"x":2},"at":"2026-01-02T03:04:05Z","quoted":"7"}`,
		// Values of the wrong kind are the decoder's to refuse.
		`{"inner":[{"NAME":1}],"list":{"X":1},"image":{"X":1}}`,
		// Malformed: left to the decoder.
		`{"id":"a",`, `[1,2]`, `"x"`, ``,
	} {
		if err := Check([]byte(ok), typ); err != nil {
			t.Errorf("Check(%s) = %v, want nil", ok, err)
		}
	}
	for _, tc := range []struct {
		in        string
		kind      Kind
		path, key string
		want      string
		msg       string
	}{
		{`{"ID":"t7","Image":18}`, Case, "", "ID", "id", `unknown field "ID" (did you mean "id"?)`},
		{`{"id":"t9","image":19,"IMAGE":25}`, Duplicate, "", "IMAGE", "image", `duplicate key "IMAGE" (also given as "image")`},
		{`{"id":"t10","ID":"t11"}`, Duplicate, "", "ID", "id", `duplicate key "ID" (also given as "id")`},
		{`{"id":"a","id":"b"}`, Duplicate, "", "id", "id", `duplicate key "id"`},
		{`{"Seq":1}`, Case, "", "Seq", "seq", `unknown field "Seq" (did you mean "seq"?)`},
		{`{"plain":true}`, Case, "", "plain", "Plain", `(did you mean "Plain"?)`},
		{`{"hidden":true}`, Unknown, "", "hidden", "", `unknown field "hidden"`},
		{`{"Skipped":"x"}`, Unknown, "", "Skipped", "", `unknown field "Skipped"`},
		{`{"inner":{"name":"x","Name":"y"}}`, Duplicate, "inner", "Name", "name", `duplicate key "inner.Name" (also given as "name")`},
		{`{"list":[{"name":"y"},{"NAME":"z"}]}`, Case, "list[1]", "NAME", "name", `unknown field "list[1].NAME"`},
		{`{"by_name":{"k":{"nmae":"a"}}}`, Unknown, "by_name.k", "nmae", "", `unknown field "by_name.k.nmae"`},
		{`{"labels":{"k":"1","k":"2"}}`, Duplicate, "labels", "k", "k", `duplicate key "labels.k"`},
		// Unicode case folding, as encoding/json's: U+212A KELVIN SIGN
		// folds to k, U+017F LONG S to s.
		{"{\"\u017feq\":1}", Case, "", "\u017feq", "seq", `did you mean "seq"?`},
		{"{\"labels\":{},\"LABEL\u017f\":{}}", Duplicate, "", "LABEL\u017f", "labels", `also given as "labels"`},
		// The first problem in document order.
		{`{"zz":1,"ID":2}`, Unknown, "", "zz", "", `unknown field "zz"`},
	} {
		err := Check([]byte(tc.in), typ)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Check(%s) = %v, want a %v error", tc.in, err, tc.kind)
			continue
		}
		if e.Kind != tc.kind || e.Path != tc.path || e.Key != tc.key || e.Want != tc.want {
			t.Errorf("Check(%s) = %+v, want kind %v path %q key %q want %q", tc.in, e, tc.kind, tc.path, tc.key, tc.want)
		}
		if !strings.Contains(e.Error(), tc.msg) {
			t.Errorf("Check(%s): %q lacks %q", tc.in, e.Error(), tc.msg)
		}
	}
	// Fields are what the object takes, for a message listing them.
	var e *Error
	if !errors.As(Check([]byte(`{"inner":{"x":1}}`), typ), &e) || !reflect.DeepEqual(e.Fields, []string{"n", "name"}) {
		t.Errorf("fields of inner: %+v", e)
	}
}

// FuzzCheck: whatever Check accepts has, at the top level, only exact
// field names (so encoding/json's case folding has nothing to fold);
// nested objects are covered by TestCheck's cases.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"id":"a","image":1}`, `{"ID":"a"}`, `{"id":"a","Id":"b"}`, `{"inner":{"NAME":"x"}}`,
		`{"list":[{"name":"a"},{"N":1}]}`, "{\"\u212a\":1}", `{"by_name":{"a":{"name":"b"}}}`} {
		f.Add([]byte(s))
	}
	typ := reflect.TypeFor[outer]()
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data, typ) != nil {
			return
		}
		var got outer
		if json.Unmarshal(data, &got) != nil {
			return
		}
		// Accepted: the top-level keys are exact field names, each once.
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) != nil {
			return
		}
		fields := shapeOf(typ).fields
		for k := range top {
			if _, ok := fields[k]; !ok {
				t.Fatalf("accepted key %q of %s, which is no field", k, data)
			}
		}
	})
}
