package remote

import (
	"context"
	"strings"

	"github.com/inspectd/inspectd/config"
)

// cmdTrustKeys replaces the set of trust keys (remote.trust_keys), the one
// way to change them remotely. It must be signed by a key in force; on a
// box with none yet (remote.allow_unsigned), it must be signed by one of
// the keys it installs, which proves the sender holds a private key the
// box will trust. Removing every key is refused: do that on the box.
//
//	request: {"id": "k1", "keys": {"scada": "MCowBQYDK2VwAyEA...", "mes": "..."}}
//	reply:   {"id": "k1", "ok": true, "keys": [{"name": "mes", "fingerprint": "SHA256:..."}, ...],
//	          "restarted": []}
type cmdTrustKeys struct{}

func (cmdTrustKeys) Name() string { return "trust-keys" }

// trustKeysArgs is the request cmdTrustKeys takes.
type trustKeysArgs struct {
	ID   string            `json:"id"`
	Keys map[string]string `json:"keys"`
}

func (cmdTrustKeys) args() any { return new(trustKeysArgs) }

func (cmdTrustKeys) Prepare(env *Env, body []byte) (*Plan, error) {
	var a trustKeysArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	if err := env.refuseWhilePending("changing the trust keys"); err != nil {
		return nil, err
	}
	if len(a.Keys) == 0 {
		return nil, invalidf("keys", "missing or empty; removing every trust key would turn remote control off: do that in the configuration file on the box")
	}
	running := env.Ctl.Config()
	next := running.Clone()
	next.Remote.TrustKeys = a.Keys
	if err := next.Validate(); err != nil {
		return nil, keysError(err)
	}
	keys, err := next.Remote.Keys()
	if err != nil {
		return nil, invalidf("keys", "%v", err)
	}
	if env.Signer == "" {
		// No keys in force (else the dispatcher would have refused an
		// unsigned request): the first keys must sign their own request.
		e := env.Envelope
		if e == nil {
			return nil, errorf(CodeUnauthorized, "", "trust-keys must be signed: with no trust keys yet, sign it with one of the keys it installs (inspectd sign --key FILE --command trust-keys)")
		}
		pub, ok := keys[e.Key]
		if !ok {
			return nil, errorf(CodeUnauthorized, "envelope.key", "%q is not among the keys this request installs; with no trust keys yet, it must be signed by one of them", e.Key)
		}
		if err := e.Verify(pub, body); err != nil {
			return nil, errorf(CodeUnauthorized, "envelope.sig", "does not verify with the key %q it installs (%s)", e.Key, Fingerprint(pub))
		}
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		applied, err := env.Ctl.ApplyConfig(ctx, next)
		if err != nil {
			return nil, errorf(CodeFailed, "", "trust keys unchanged: %v", err)
		}
		var list []map[string]any
		for _, name := range sortedNames(keys) {
			list = append(list, map[string]any{"name": name, "fingerprint": Fingerprint(keys[name])})
		}
		env.Log.Info("remote trust keys replaced", "keys", strings.Join(sortedNames(keys), ","))
		out := map[string]any{"keys": list, "restarted": nonNil(applied.Restarted)}
		addNotes(out, applied.Notes...)
		return out, nil
	}}, nil
}

// keysError reports the trust-key problems of a validation under the
// request's field names (keys.<name>); other problems mean the
// configuration in force is itself invalid.
func keysError(err error) error {
	var msgs []string
	field := ""
	for _, p := range config.Problems(err) {
		f := p.Field
		if k, ok := strings.CutPrefix(f, "remote.trust_keys"); ok {
			f = "keys" + k
		}
		if field == "" {
			field = f
		}
		msgs = append(msgs, f+": "+p.Msg)
	}
	if len(msgs) == 0 {
		return invalidf("keys", "%v", err)
	}
	return &Error{Code: CodeInvalid, Field: field, Msg: strings.Join(msgs, "; "), named: true}
}
