package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// running is a non-default configuration to push onto.
func running(t *testing.T) *Config {
	t.Helper()
	c, err := Parse([]byte(`device_id: box1
mqtt:
  brokers: ["tcp://10.0.0.5:1883"]
  username: plant
  password: s3cret
  groups: [line3]
model:
  features: 80
capture:
  source: folder
  folder: {path: /srv/images}
`), "running.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func problemStrings(err error) []string {
	var out []string
	for _, p := range Problems(err) {
		out = append(out, p.Error())
	}
	return out
}

func TestParsePushMerge(t *testing.T) {
	base := running(t)
	before := base.Clone()
	for _, doc := range []string{
		"model:\n  features: 120\nmqtt:\n  result_qos: 1\n",
		`{"model": {"features": 120}, "mqtt": {"result_qos": 1}}`,
		"{\n\t\"model\": {\"features\": 120},\n\t\"mqtt\": {\"result_qos\": 1}\n}", // tabs are JSON whitespace
	} {
		c, err := ParsePush(base, []byte(doc), "push", PushMerge)
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		want := base.Clone()
		want.Model.Features = 120
		want.MQTT.ResultQoS = 1
		if !reflect.DeepEqual(c, want) {
			t.Errorf("%q: merged\n%+v\nwant\n%+v", doc, c, want)
		}
		if got := Diff(base, c); !reflect.DeepEqual(got, []string{"model.features", "mqtt.result_qos"}) {
			t.Errorf("Diff = %v", got)
		}
	}
	if !reflect.DeepEqual(base, before) {
		t.Error("ParsePush modified the running configuration")
	}
	// An empty document or null changes nothing.
	for _, doc := range []string{"", "null\n", "model: null\n"} {
		c, err := ParsePush(base, []byte(doc), "push", PushMerge)
		if err != nil || !reflect.DeepEqual(c, base) {
			t.Errorf("%q: %v, changed: %v", doc, err, Diff(base, c))
		}
	}
	// Lists are replaced as a whole.
	c, err := ParsePush(base, []byte("mqtt: {groups: [hall-b, line4]}"), "push", PushMerge)
	if err != nil || !reflect.DeepEqual(c.MQTT.Groups, []string{"hall-b", "line4"}) {
		t.Errorf("groups = %v, %v", c.MQTT.Groups, err)
	}
}

func TestParsePushReplace(t *testing.T) {
	base := running(t)
	c, err := ParsePush(base, []byte("device_id: box1\nmodel: {features: 64}\n"), "push", PushReplace)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DeviceID = "box1"
	want.Model.Features = 64
	if !reflect.DeepEqual(c, want) {
		t.Errorf("replaced config differs from the defaults in %v", Diff(want, c))
	}
}

func TestParsePushRefusals(t *testing.T) {
	base := running(t)
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"unknown key", "model:\n  featurez: 3\n",
			[]string{`config push: line 2: unknown key "featurez" in section "model" (did you mean "features"?)`}},
		{"duplicate key", "model:\n  features: 3\n  features: 4\n",
			// Beside it, what validation finds with either value: the
			// running min_features (32) above it.
			[]string{`config push: line 3: duplicate key "features" in section "model" (first set at line 2)`,
				`config push: line 1: model.min_features: 32 is above model.features (3); it must be in 1..3`}},
		{"wrong type beside a value out of its set", "capture:\n  trigger: {mode: externel, max_age: 5 seconds}\n",
			[]string{`config push: line 2: capture.trigger.max_age: duration "5 seconds" is not like 500ms, 2s or 1m30s (units: ns, us, ms, s, m, h)`,
				`config push: line 2: capture.trigger.mode: "externel" is not one of free-run, external`}},
		{"duplicate key in JSON", "{\"mqtt\": {\"result_qos\": 1,\n \"result_qos\": 2}}",
			[]string{`config push: line 2: duplicate key "result_qos" in section "mqtt" (first set at line 1)`}},
		{"wrong type", `{"model": {"features": "many"}}`,
			[]string{`config push: line 1: model.features: expected an integer, got "many"`}},
		{"tab", "model:\n\tfeatures: 3\n",
			[]string{`config push: line 2, column 1: a tab character indents this line; YAML indents with spaces only: replace the tab with spaces (the YAML parser said: found character that cannot start any token)`}},
		{"invalid merged result", "capture:\n  folder:\n    path: \"\"\n",
			[]string{`config push: line 3: capture.folder.path: is empty; capture.source is folder`}},
		{"anchor", "model: &m {features: 3}\n",
			[]string{`config push: line 1: anchor &m: anchors and aliases are not accepted in a pushed configuration; write the values out`}},
		{"not a mapping", "[1, 2]\n",
			[]string{`config push: line 1: expected a mapping of settings such as "capture:" at the top, got a list of 2`}},
		{"trust keys", "remote:\n  trust_keys: {ops: " + testKeyB64(t, 1) + "}\n",
			[]string{`config push: line 2: remote.trust_keys: cannot be changed by a configuration push; send the signed trust-keys command`}},
		{"password in a broker URL", "mqtt: {brokers: [\"tcp://plant:s3cret@10.0.0.9:1883\"]}\n",
			[]string{`config push: line 1: mqtt.brokers[0]: "tcp://plant:xxxxx@10.0.0.9:1883" holds a user name; set mqtt.username and mqtt.password instead`}},
		{"too big", strings.Repeat("#", MaxFileSize+1),
			[]string{`config push: 1048577 bytes is more than a configuration may hold (1MiB)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePush(base, []byte(tc.doc), "push", PushMerge)
			if got := problemStrings(err); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// aliasBomb is a billion-laughs document: 9 levels of 9 aliases each
// would expand to 9^9 strings.
func aliasBomb() []byte {
	var b strings.Builder
	b.WriteString("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		b.WriteString(n + ": &" + n + " [")
		for j := range 9 {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]\n")
		prev = n
	}
	return []byte(b.String())
}

func TestParsePushAliasBombRefusedWithoutExpanding(t *testing.T) {
	bomb := aliasBomb()
	if len(bomb) > 1024 {
		t.Fatalf("the bomb is %d bytes; it should be a few hundred", len(bomb))
	}
	base := running(t)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ParsePush(base, bomb, "push", PushMerge)
	runtime.ReadMemStats(&after)
	if got := problemStrings(err); len(got) != 1 || !strings.Contains(got[0], "line 1: anchor &a: anchors and aliases are not accepted") {
		t.Fatalf("got %q", got)
	}
	// Expanded, the bomb is 387 M strings; refused, it costs the node tree.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("refusing a %d-byte alias bomb allocated %d bytes", len(bomb), alloc)
	}
	// The same inside JSON-like flow syntax, and with the merge key.
	for _, doc := range []string{`{"a": &x [1], "b": [*x, *x]}`, "base: &b {features: 3}\nmodel:\n  <<: *b\n"} {
		if _, err := ParsePush(base, []byte(doc), "push", PushReplace); err == nil || !strings.Contains(err.Error(), "anchors and aliases are not accepted") {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

func TestParsePushKeepsTrustKeysAndSecrets(t *testing.T) {
	base := running(t)
	base.Remote.TrustKeys = map[string]string{"ops": testKeyB64(t, 1)}
	// Pushing back what config-get shows changes nothing.
	shown, err := Marshal(base.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(shown), "s3cret") || !strings.Contains(string(shown), RedactedValue) {
		t.Fatalf("redacted config shows the password or no marker:\n%s", shown)
	}
	for _, mode := range []PushMode{PushMerge, PushReplace} {
		c, err := ParsePush(base, shown, "push", mode)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if d := Diff(base, c); len(d) != 0 || c.MQTT.Password != "s3cret" {
			t.Errorf("%s: pushing the redacted config back changed %v (password %q)", mode, d, c.MQTT.Password)
		}
	}
	// A replacing document without the keys keeps them.
	c, err := ParsePush(base, []byte("device_id: box1\n"), "push", PushReplace)
	if err != nil || !reflect.DeepEqual(c.Remote.TrustKeys, base.Remote.TrustKeys) {
		t.Errorf("trust keys after replace: %v, %v", c.Remote.TrustKeys, err)
	}
	// A new password is taken.
	c, err = ParsePush(base, []byte("mqtt: {password: n3w}\n"), "push", PushMerge)
	if err != nil || c.MQTT.Password != "n3w" {
		t.Errorf("password = %q, %v", c.MQTT.Password, err)
	}
	if base.Redacted().MQTT.Password != RedactedValue || base.MQTT.Password != "s3cret" {
		t.Error("Redacted changed the original or did not redact")
	}
}

func TestCloneIsDeep(t *testing.T) {
	a := running(t)
	a.Capture.Camera.Controls = map[string]int32{"gain": 1}
	b := a.Clone()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("clone differs")
	}
	b.MQTT.Groups[0] = "x"
	b.Capture.Camera.Controls["gain"] = 2
	b.Capture.Camera.Formats[0] = "GREY"
	if a.MQTT.Groups[0] != "line3" || a.Capture.Camera.Controls["gain"] != 1 || a.Capture.Camera.Formats[0] != FormatMJPEG {
		t.Error("clone shares lists or maps with the original")
	}
	if !reflect.DeepEqual(Default().Clone(), Default()) {
		t.Error("Default().Clone() differs from Default()")
	}
}

func TestSaveKeepPreviousAndRollback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inspectd.yaml")
	orig := []byte("# hand-written\ndevice_id: box1\n")
	if err := os.WriteFile(path, orig, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrevious(path); err == nil || !strings.Contains(err.Error(), "no previous configuration") {
		t.Errorf("LoadPrevious before any save: %v", err)
	}
	c, _ := Parse(orig, "x")
	c.Model.Features = 64
	if err := SaveKeepPrevious(path, c); err != nil {
		t.Fatal(err)
	}
	if prev, _ := os.ReadFile(PreviousPath(path)); string(prev) != string(orig) {
		t.Errorf(".prev = %q, want the replaced file byte for byte", prev)
	}
	// Rolling back swaps the two; rolling back again goes forward.
	p, err := LoadPrevious(path)
	if err != nil || p.Model.Features != 100 {
		t.Fatalf("LoadPrevious: %v, features %d", err, p.Model.Features)
	}
	if err := SaveKeepPrevious(path, p); err != nil {
		t.Fatal(err)
	}
	cur, _ := Load(path)
	fwd, _ := LoadPrevious(path)
	if cur.Model.Features != 100 || fwd.Model.Features != 64 {
		t.Errorf("after rollback: current d %d, previous d %d", cur.Model.Features, fwd.Model.Features)
	}
	// The hand-written file comes back as it was, comments and all (it
	// came back marshalled, "written by inspectd", its comments lost).
	if got, _ := os.ReadFile(path); string(got) != string(orig) {
		t.Errorf("after rollback the file is %q, want the hand-written one byte for byte", got)
	}
	// A configuration that failed to apply is undone byte for byte, the
	// previous file included (what a rollback still needs).
	applied, _ := os.ReadFile(path)
	keptPrev, _ := os.ReadFile(PreviousPath(path))
	cp, err := NewCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	c2 := cur.Clone()
	c2.Pipeline.Queue = 9
	if err := SaveKeepPrevious(path, c2); err != nil {
		t.Fatal(err)
	}
	if err := cp.Restore(); err != nil {
		t.Fatal(err)
	}
	back, _ := os.ReadFile(path)
	backPrev, _ := os.ReadFile(PreviousPath(path))
	if string(back) != string(applied) || string(backPrev) != string(keptPrev) {
		t.Errorf("restored files differ from the ones before the save")
	}
	// A file that had no previous one: restored without one.
	lone := filepath.Join(dir, "lone.yaml")
	if err := Save(lone, cur); err != nil {
		t.Fatal(err)
	}
	cp, err = NewCheckpoint(lone)
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveKeepPrevious(lone, c2); err != nil {
		t.Fatal(err)
	}
	if err := cp.Restore(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(PreviousPath(lone)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a previous file left behind: %v", err)
	}
	cur, _ = Load(path)
	// An invalid configuration touches neither file.
	bad := cur.Clone()
	bad.Model.Features = 0
	before, _ := os.ReadFile(PreviousPath(path))
	if err := SaveKeepPrevious(path, bad); err == nil {
		t.Fatal("saved an invalid configuration")
	}
	if after, _ := os.ReadFile(PreviousPath(path)); string(after) != string(before) {
		t.Error("a refused save replaced .prev")
	}
}

// testKeyB64 is a deterministic Ed25519 public key, base64 of its 32 bytes.
func testKeyB64(t testing.TB, seed byte) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(testKey(seed))
}

func testKey(seed byte) ed25519.PublicKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
}

func TestRemoteValidation(t *testing.T) {
	der, err := x509.MarshalPKIXPublicKey(testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	c := Default()
	c.Remote.TrustKeys = map[string]string{
		"raw":  testKeyB64(t, 1),
		"pkix": base64.StdEncoding.EncodeToString(der),
		"pem":  pemKey,
		"url":  base64.RawURLEncoding.EncodeToString(testKey(3)),
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid keys refused: %v", err)
	}
	keys, err := c.Remote.Keys()
	if err != nil || !keys["pem"].Equal(testKey(2)) || !keys["raw"].Equal(testKey(1)) || !keys["url"].Equal(testKey(3)) {
		t.Fatalf("Keys() = %v, %v", keys, err)
	}

	c.Remote.TrustKeys = map[string]string{
		"short":    base64.StdEncoding.EncodeToString([]byte("not a key")),
		"private":  "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n",
		"bad name": testKeyB64(t, 1),
	}
	c.Remote.MaxSkew = 0
	c.Remote.MaxPayload = 10
	c.Remote.MaxRefitFrames = 1
	c.MQTT.Groups = []string{"line3", "line/4", "line3"}
	c.DeviceID = "fleet"
	got := problemStrings(c.Validate())
	for _, want := range []string{
		`remote.trust_keys.short: is not an Ed25519 public key: 9 bytes`,
		`remote.trust_keys.private: is a PEM "PRIVATE KEY" block; want "PUBLIC KEY"`,
		`remote.trust_keys.bad name: the name "bad name" is not 1..64 letters`,
		`remote.max_skew: 0s is out of range 1s..1h`,
		`remote.max_payload: 10B is out of range 1KiB..16MiB`,
		`remote.max_refit_frames: 1 is out of range 3..100000`,
		`mqtt.groups[1]: "line/4" is not 1..64 letters`,
		`mqtt.groups[2]: "line3" is listed twice`,
		`device_id: "fleet" is reserved`,
	} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, want)
		}
		if !found {
			t.Errorf("no problem starting %q in\n%s", want, strings.Join(got, "\n"))
		}
	}
}

// FuzzParsePush feeds ParsePush arbitrary documents in both modes: it must
// never panic, never modify the running configuration, and what it accepts
// must be valid, keep the running trust keys and password unless the
// document sets a new password, and survive Marshal → Parse unchanged.
func FuzzParsePush(f *testing.F) {
	for _, s := range []string{
		"", "~", "model: {features: 64}\n", `{"mqtt": {"result_qos": 1, "groups": ["a"]}}`,
		"{\n\t\"model\": {\"features\": 1}\n}", "model:\n\tfeatures: 2\n", "model:\n  features: 3\n  features: 4\n",
		"mqtt: {password: \"<redacted>\"}\n", "remote: {trust_keys: {}}\n", "remote: {trust_keys: {a: b}}\n",
		"a: &a [1]\nb: [*a]\n", "capture: {source: folder}\n", "[1]", "{{{{", string(aliasBomb()),
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	base := Default()
	base.DeviceID = "box1"
	base.MQTT.Username, base.MQTT.Password = "plant", "s3cret"
	base.Remote.TrustKeys = map[string]string{"ops": base64.StdEncoding.EncodeToString(testKey(1))}
	keep := base.Clone()
	f.Fuzz(func(t *testing.T, data []byte, replace bool) {
		mode := PushMerge
		if replace {
			mode = PushReplace
		}
		c, err := ParsePush(base, data, "fuzz", mode)
		if !reflect.DeepEqual(base, keep) {
			t.Fatal("ParsePush modified the running configuration")
		}
		if err != nil {
			if c != nil || len(Problems(err)) == 0 {
				t.Fatalf("config %v with error %v, or an error without problems", c != nil, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		if !reflect.DeepEqual(c.Remote.TrustKeys, base.Remote.TrustKeys) {
			t.Fatalf("trust keys changed to %v", c.Remote.TrustKeys)
		}
		if c.MQTT.Password == RedactedValue {
			t.Fatal("the redaction marker became the password")
		}
		b, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := Parse(b, "marshalled"); err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// TestParsePushRules: a push is checked by the caller's rules as a file
// is, merged or replacing, with the line and field (a recipe name the
// model cannot read passed the push and failed at the model's load).
func TestParsePushRules(t *testing.T) {
	rule := func(c *Config) []*Problem {
		if c.Model.Recipe == "zz-top" {
			return []*Problem{{Field: "model.recipe", Msg: "not a recipe"}}
		}
		return nil
	}
	running := Default()
	for _, mode := range []PushMode{PushMerge, PushReplace} {
		_, err := ParsePush(running, []byte("device_id: b1\nmodel:\n  recipe: zz-top\n"), "push", mode, rule)
		ps := Problems(err)
		if len(ps) != 1 || ps[0].Field != "model.recipe" || ps[0].Line != 3 || !strings.Contains(ps[0].Msg, "not a recipe") {
			t.Errorf("%s: %v; want model.recipe on line 3 refused by the rule", mode, err)
		}
		if _, err := ParsePush(running, []byte("device_id: b1\nmodel:\n  recipe: plain\n"), "push", mode, rule); err != nil {
			t.Errorf("%s: a recipe the rule takes: %v", mode, err)
		}
	}
}

// The kept .prev has the permissions of the file it was (a trial: a
// remote push left FILE.prev 0600 beside the operator's 0644 file), an
// existing .prev's own included, and the rewritten file keeps its own.
func TestSaveKeepPreviousKeepsMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	for _, tc := range []struct {
		mode, prevMode fs.FileMode // prevMode 0: no .prev yet
	}{{0o644, 0}, {0o640, 0}, {0o644, 0o600}, {0o600, 0o644}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "inspectd.yaml")
		if err := os.WriteFile(path, []byte("device_id: box1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		if tc.prevMode != 0 {
			if err := os.WriteFile(PreviousPath(path), []byte("device_id: box0\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(PreviousPath(path), tc.prevMode); err != nil {
				t.Fatal(err)
			}
		}
		c := Default()
		c.DeviceID = "box2"
		if err := SaveKeepPrevious(path, c); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{path, PreviousPath(path)} {
			if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != tc.mode {
				t.Errorf("file %o, .prev %o before: %s is %v (%v), want %o", tc.mode, tc.prevMode, filepath.Base(f), fi.Mode().Perm(), err, tc.mode)
			}
		}
	}
}
