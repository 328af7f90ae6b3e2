package remote

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/inspectd/inspectd/config"
)

// cmdConfig pushes a configuration: a partial document merged onto the
// configuration in force (mode "merge", the default) or a whole one
// ("replace"), as a JSON object or as a string of YAML or JSON, with the
// strict rules of the file. The result is validated completely, then saved
// (the previous file kept as .prev) and applied live by the daemon, which
// restores the previous configuration if applying fails. An optional
// version makes pushes idempotent: one at or below the version in force is
// acknowledged and not applied. A push that changes the connection carrying
// remote control (broker, credentials, TLS, client id, topic prefix,
// profile, allow_unsigned, max_skew) needs "confirm" (applied on probation: the
// previous configuration comes back unless config-confirm arrives within
// it) or "force".
//
//	request: {"id": "c7", "config": {"mqtt": {"result_qos": 1}}, "version": 7}
//	         {"id": "c8", "config": "model:\n  features: 64\n", "mode": "merge", "dry_run": true}
//	         {"id": "c9", "config": {"mqtt": {"brokers": ["tcp://10.0.0.2:1883"]}}, "confirm": "5m"}
//	reply:   {"id": "c7", "ok": true, "applied": true, "version": 7,
//	          "changed": ["mqtt.result_qos"], "restarted": ["mqtt"]}
type cmdConfig struct{}

func (cmdConfig) Name() string { return "config" }

type configArgs struct {
	ID      string          `json:"id"`
	Config  json.RawMessage `json:"config"`
	Mode    string          `json:"mode"`
	Version *int64          `json:"version"`
	DryRun  bool            `json:"dry_run"`
	// Confirm ("5m") applies the push on probation: unless config-confirm
	// arrives within it, the previous configuration comes back.
	Confirm json.RawMessage `json:"confirm"`
	// Force applies a change to the connection that carries remote
	// control without a confirm window.
	Force bool `json:"force"`
}

func (cmdConfig) args() any { return new(configArgs) }

func (cmdConfig) Prepare(env *Env, body []byte) (*Plan, error) {
	var a configArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	doc, object, err := configDocument(a.Config)
	if err != nil {
		return nil, err
	}
	confirm, err := parseConfirm(a.Confirm)
	if err != nil {
		return nil, err
	}
	if confirm > 0 && a.Force {
		return nil, invalidf("force", "give confirm (applied on probation) or force (applied for good), not both")
	}
	mode := config.PushMode(a.Mode)
	switch mode {
	case "":
		mode = config.PushMerge
	case config.PushMerge, config.PushReplace:
	default:
		return nil, invalidf("mode", "%q is not merge or replace", truncate(a.Mode, 20))
	}
	cur := env.d.store.configVersion()
	if a.Version != nil {
		if *a.Version < 1 {
			return nil, invalidf("version", "%d must be 1 or more", *a.Version)
		}
		if *a.Version <= cur.Current {
			return &Plan{Run: func(context.Context) (map[string]any, error) {
				return map[string]any{"applied": false, "version": cur.Current,
					"note": fmt.Sprintf("version %d is not newer than the version in force (%d); nothing applied", *a.Version, cur.Current)}, nil
			}}, nil
		}
	}
	running := env.Ctl.Config()
	next, err := config.ParsePush(running, doc, "push", mode, env.d.rules...)
	if object {
		err = withTextProblems(err, jsonTextProblems(doc, "push"))
	}
	if err != nil {
		if object {
			err = placeInMessage(err, body, "config")
		} else {
			err = placeInText(err, body, "config")
		}
		return nil, configError("config", err)
	}
	changed := config.Diff(running, next)
	if err := checkConfigChange(env, running, next, changed); err != nil {
		return nil, err
	}
	if k := connectionChange(running, next, changed); k != "" && confirm == 0 && !a.Force {
		return nil, invalidf("config."+k, "%s", connectionRefusal("push"))
	}
	if a.DryRun {
		return &Plan{Run: func(context.Context) (map[string]any, error) {
			out := map[string]any{"applied": false, "dry_run": true, "changed": nonNil(changed)}
			// What the push would do that it does not say (a model fitted
			// in place of a missing file), or would be refused for on this
			// box, is told now: the dry run is how the operator finds out.
			notes, err := env.Ctl.PlanConfig(next)
			if err != nil {
				return out, refusedAtCheck(err, "dry run: applying this would be refused: %v", err)
			}
			addNotes(out, notes...)
			return out, nil
		}}, nil
	}
	if err := env.refuseWhilePending("another push"); err != nil {
		return nil, err
	}
	version := cur.Current
	if a.Version != nil {
		version = *a.Version
	}
	apply := func(ctx context.Context) (map[string]any, error) {
		out := map[string]any{"changed": nonNil(changed), "version": version}
		var applied Applied
		if len(changed) > 0 {
			// What a dry run refuses for what is on the box (a state_dir
			// that cannot be created, a model file that is a folder or a
			// device) is refused before the table is carried or anything
			// applied, in the dry run's words: the table's copy failed
			// first, for another reason (the lock file of a state_dir
			// under a file). Of a regular model file only the header is
			// read here (one that is no model's, or over the budget, is
			// refused, code invalid, before the configuration is saved:
			// the load's refusal counted a reload failure); its data and
			// checksum are read by the apply alone, whose load refuses a
			// file that fails its checksum in the same words (and takes
			// the table back): read whole here too, a new model file was
			// read twice.
			if err := env.Ctl.CheckConfig(next); err != nil {
				out["applied"], out["version"] = false, cur.Current
				return out, refusedAtCheck(err, "not applied; the previous configuration is in force: %v", err)
			}
			takeBack, err := carryTable(env, running, next)
			if err != nil {
				out["applied"], out["version"] = false, cur.Current
				return out, err
			}
			if applied, err = env.Ctl.ApplyConfig(ctx, next); err != nil {
				takeBack()
				out["applied"], out["version"] = false, cur.Current
				return out, refusedKey(err, "not applied; the previous configuration is in force: %v", err)
			}
		}
		if err := env.d.store.setConfigVersion(configVersion{Current: version, Previous: cur.Current}, env.Now(), running.Remote.DedupWindow.Std()); err != nil {
			env.Log.Error("remote: configuration version not recorded", "version", version, "error", err)
		}
		out["applied"], out["restarted"] = len(changed) > 0, nonNil(applied.Restarted)
		addNotes(out, applied.Notes...)
		if len(changed) == 0 {
			// The configuration in force is already what this version
			// says: the version is recorded (a later push must be newer),
			// and the note tells this apart from a push refused as not
			// newer.
			out["note"] = fmt.Sprintf("nothing to change: the configuration in force already says this; version %d recorded", version)
		}
		return out, nil
	}
	if confirm == 0 || len(changed) == 0 {
		return &Plan{Run: apply}, nil
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) { return runPending(ctx, env, confirm, apply) }}, nil
}

// refusedAtCheck is refusedKey for the Controller's refusal of a push at
// its check (CheckConfig, or PlanConfig for a dry run), before anything is
// saved or applied: its code is CodeInvalid where err carries an *Error of
// that code (the pushed value itself refused for what is on the box, a
// model file whose header is no model's or whose scoring state is over
// model.memory_budget, as a value out of bounds or a budget below the
// model in force is), CodeFailed otherwise.
func refusedAtCheck(err error, format string, a ...any) *Error {
	e := refusedKey(err, format, a...)
	if ie := (*Error)(nil); errors.As(err, &ie) && ie.Code == CodeInvalid {
		e.Code = CodeInvalid
	}
	return e
}

// configDocument is the pushed document's bytes: a JSON object without its
// insignificant white space (object true), or the text of a string.
func configDocument(raw json.RawMessage) (doc []byte, object bool, err error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return nil, false, invalidf("config", "missing; give the settings as an object, or as a string of YAML")
	case raw[0] == '{':
		// config reads the object as a YAML flow mapping, which refuses
		// some white space JSON allows (a line break between a key and its
		// colon); with none left, it reads any JSON object. Places come
		// from the message (placeInMessage), not from these bytes.
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, false, invalidf("config", "%v", err)
		}
		return b.Bytes(), true, nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, invalidf("config", "%v", err)
		}
		return []byte(s), false, nil
	}
	return nil, false, typef("config", "expected an object or a string of YAML, got %s", truncate(string(raw), 20))
}

// withTextProblems adds text, jsonTextProblems' list, to err, config's
// problems, leaving out config's on the same settings.
func withTextProblems(err error, text []*config.Problem) error {
	if len(text) == 0 {
		return err
	}
	errs := make([]error, 0, len(text))
	seen := map[string]bool{}
	for _, p := range text {
		errs = append(errs, p)
		seen[p.Field] = true
	}
	for _, p := range config.Problems(err) {
		if !seen[p.Field] || p.Field == "" {
			errs = append(errs, p)
		}
	}
	if err != nil && len(config.Problems(err)) == 0 {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// placeInMessage gives the problems of the JSON object at path under in
// body the line and column in body where the offending key (an unknown or
// duplicate one) or value starts: config parses the object as YAML, to
// which the object is one flow mapping, so its lines counted from the
// object's first (all "line 1" for a message on one line) and said nothing
// of where in the line. A setting the object leaves out (a check across
// settings) is placed at the nearest section the object writes, as config
// does for a file; one it does not write at all stays without a place.
// Errors without problems are returned as they are.
func placeInMessage(err error, body []byte, under string) error {
	ps := config.Problems(err)
	places := jsonPlaces(body)
	root, ok := places[under]
	if len(ps) == 0 || !ok {
		return err
	}
	out := make([]error, len(ps))
	for i, p := range ps {
		q := *p
		at := -1
		switch {
		case p.Key != "":
			if pl, ok := places[under+"."+p.Key]; ok {
				at = pl.key
			}
		case p.Field != "":
			if pl, ok := places[under+"."+p.Field]; ok {
				at = pl.value
				break
			}
			for f := p.Field; at < 0; {
				j := strings.LastIndexAny(f, ".[")
				if j < 0 {
					break
				}
				f = f[:j]
				if pl, ok := places[under+"."+f]; ok {
					at = pl.key
				}
			}
		}
		if at < 0 && p.Line > 0 && p.Field == "" && p.Key == "" {
			at = root.value // about the whole object
		}
		q.Line, q.Column = 0, 0
		if at >= 0 {
			q.Line, q.Column = lineColumn(body, at)
		}
		out[i] = &q
	}
	// In the order of the message, as config lists a file's problems;
	// those without a place last.
	slices.SortStableFunc(out, func(a, b error) int {
		p, q := a.(*config.Problem), b.(*config.Problem)
		if (p.Line == 0) != (q.Line == 0) {
			return cmp.Compare(q.Line, p.Line)
		}
		return cmp.Or(cmp.Compare(p.Line, q.Line), cmp.Compare(p.Column, q.Column))
	})
	return errors.Join(out...)
}

// placeInText says of each problem of the pushed YAML text at path under
// in body that has a line that the line (and column) is the text's, and
// where in body the string holding the text starts: an operator told
// "line 2" of {"id":"c4","config":"model:\n  features: abc\n"}
// looked for it on the command's line 2. Errors without problems are
// returned as they are.
func placeInText(err error, body []byte, under string) error {
	ps := config.Problems(err)
	if len(ps) == 0 {
		return err
	}
	in := fmt.Sprintf("the %q text", under)
	if pl, ok := jsonPlaces(body)[under]; ok {
		l, c := lineColumn(body, pl.value)
		in += fmt.Sprintf(" (a string at line %d, column %d of the command)", l, c)
	}
	out := make([]error, len(ps))
	for i, p := range ps {
		q := *p
		if q.Line > 0 {
			q.In = in
		}
		out[i] = &q
	}
	return errors.Join(out...)
}

// configError turns config problems into one refusal naming the first
// field (as config.<field>), or the first unknown or duplicate key (as
// config.<key>: a client points at what it sent, as it does for a value
// out of range), and listing them all.
func configError(field string, err error) error {
	ps := config.Problems(err)
	if len(ps) == 0 {
		return invalidf(field, "%v", err)
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Error()
	}
	if f := cmp.Or(ps[0].Field, ps[0].Key); f != "" {
		field += "." + fieldName(f)
	}
	return &Error{Code: CodeInvalid, Field: field, Msg: strings.Join(msgs, "; "), named: true}
}

// refitSensitive are the settings a running refit depends on: the frames
// it collects and the model it replaces.
var refitSensitive = []string{"capture.", "model.", "state_dir"}

// checkConfigChange refuses a change that would disturb a running refit,
// or whose model would not fit in memory, before anything is applied.
func checkConfigChange(env *Env, running, next *config.Config, changed []string) error {
	var touched []string
	for _, c := range changed {
		for _, p := range refitSensitive {
			if strings.HasPrefix(c, p) {
				touched = append(touched, c)
				break
			}
		}
	}
	if len(touched) > 0 {
		if err := env.refuseWhileRefit("changing " + strings.Join(touched, ", ") + " would change its frames or the model it replaces"); err != nil {
			return err
		}
	}
	return checkMemoryBudget(env, running, next)
}

// checkMemoryBudget refuses a model.memory_budget (or fraction) that is
// larger than this box can give, or smaller than the model in force,
// which reloading would then refuse. A push that also names another model
// file is not measured against the model in force, which it replaces: the
// load of the new file (and the dry run, from its header) refuses it if
// its own scoring state is over the new budget (a new, smaller model
// pushed with a budget below the old one's was refused for the old one).
func checkMemoryBudget(env *Env, running, next *config.Config) error {
	rm, nm := running.Model, next.Model
	if rm.MemoryBudget == nm.MemoryBudget && rm.MemoryFraction == nm.MemoryFraction {
		return nil
	}
	mem, err := env.d.available()
	if err != nil {
		return errorf(CodeFailed, "config.model.memory_budget", "cannot check it: available memory unknown: %v", err)
	}
	state := env.Ctl.ModelInfo().StateBytes
	if !nm.MemoryBudget.Auto && int64(nm.MemoryBudget.Bytes) > mem.Bytes+state {
		return invalidf("config.model.memory_budget", "%s is more than this box can give: %s available (%s) besides the %s of the model in force",
			nm.MemoryBudget, human(mem.Bytes), mem.Source, human(state))
	}
	budget, err := nm.MemoryBudget.Resolve(nm.MemoryFraction, func() (uint64, error) { return uint64(max(mem.Bytes+state, 0)), nil })
	if err != nil {
		return invalidf("config.model.memory_budget", "%v", err)
	}
	if state > 0 && int64(budget) < state && next.ModelPath() == running.ModelPath() {
		return invalidf("config.model.memory_budget", "%s resolves to %s, below the %s scoring state of the model in force, which the reload would refuse; refit with fewer features first",
			nm.MemoryBudget, human(int64(min(budget, 1<<62))), human(state))
	}
	return nil
}

// nonNil makes empty lists show as [] rather than null.
// addNotes adds notes to a reply's note, after the one it has (each
// command's own notes, a confirm window's, and what applying did that the
// configuration does not say, Applied.Notes, all in the one field).
func addNotes(out map[string]any, notes ...string) {
	for _, n := range notes {
		if prev, _ := out["note"].(string); prev != "" {
			n = prev + "; " + n
		}
		out["note"] = n
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// jsonTextProblems lists, for the pushed JSON object doc, each number or
// boolean written where the setting takes text (a string, or a list or
// mapping of strings): config reads the object as YAML, whose plain
// scalars 5 and true are text to a string setting, so {"path":5} was
// taken as the path "5". In JSON the quotes are what make a string, as a
// number setting already refuses "5". name is the document's name in the
// problems, as config.ParsePush gives it.
func jsonTextProblems(doc []byte, name string) []*config.Problem {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil // config says what is wrong
	}
	var out []*config.Problem
	var walk func(v any, t reflect.Type, path string, secret bool)
	walk = func(v any, t reflect.Type, path string, secret bool) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if _, own := reflect.PointerTo(t).MethodByName("UnmarshalYAML"); own {
			return // a setting with its own reader (a duration, a size) takes its own scalars
		}
		switch x := v.(type) {
		case map[string]any:
			switch t.Kind() {
			case reflect.Struct:
				for i := range t.NumField() {
					key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
					if e, ok := x[key]; ok && key != "" && key != "-" {
						walk(e, t.Field(i).Type, joinPath(path, key), t.Field(i).Tag.Get("secret") == "true")
					}
				}
			case reflect.Map:
				if t.Key().Kind() == reflect.String {
					for k, e := range x {
						walk(e, t.Elem(), joinPath(path, k), secret)
					}
				}
			}
		case []any:
			if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
				for i, e := range x {
					walk(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", secret)
				}
			}
		case json.Number, bool:
			if t.Kind() == reflect.String {
				got := fmt.Sprint(x)
				if secret {
					// A secret (mqtt.password) is never echoed: the
					// refusal goes to the reply and the log. Its kind
					// says enough to quote it.
					got = "a number"
					if _, ok := x.(bool); ok {
						got = "a boolean"
					}
				}
				out = append(out, &config.Problem{File: name, Line: 1, Field: path, Msg: "expected a string, got " + got})
			}
		}
	}
	walk(v, reflect.TypeFor[config.Config](), "", false)
	return out
}
