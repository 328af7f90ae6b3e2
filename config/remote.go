package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Remote configures remote control: the commands a plant sends to this box,
// its group or the whole fleet over MQTT (<topic_prefix>/<device_id>/cmd/...,
// <topic_prefix>/fleet/cmd/..., <topic_prefix>/group/<g>/cmd/...).
type Remote struct {
	// TrustKeys are the Ed25519 public keys whose signatures are accepted,
	// by name (the name goes in each signed envelope). Each key is the
	// base64 of the 32-byte key or of its PKIX (SubjectPublicKeyInfo) DER
	// form, or a PEM "PUBLIC KEY" block, as `inspectd keygen` writes them.
	// When any are set, only signed commands are executed. They are changed
	// only by the signed trust-keys command, never by a configuration push.
	TrustKeys map[string]string `yaml:"trust_keys"`
	// AllowUnsigned accepts unsigned commands when TrustKeys is empty (a
	// trusted network: the embedded loopback broker, tests). Without trust
	// keys and without it, remote commands are off.
	AllowUnsigned bool `yaml:"allow_unsigned"`
	// MaxSkew is how far a signed command's timestamp may be from this
	// box's clock; nonces are remembered for twice as long.
	MaxSkew Duration `yaml:"max_skew"`
	// MaxPayload bounds one command message, signed envelope included.
	MaxPayload Size `yaml:"max_payload"`
	// DedupWindow is how long a request id is remembered: a request with an
	// id answered within it is answered again with the stored reply instead
	// of being executed twice.
	DedupWindow Duration `yaml:"dedup_window"`
	// MaxRefitFrames bounds the frames (or folder images) a refit may use.
	MaxRefitFrames int `yaml:"max_refit_frames"`
}

// DefaultRemote is the remote section's defaults: commands off until trust
// keys or allow_unsigned are set.
func DefaultRemote() Remote {
	return Remote{
		MaxSkew:        Duration(5 * time.Minute),
		MaxPayload:     Size(1 << 20),
		DedupWindow:    Duration(10 * time.Minute),
		MaxRefitFrames: 5000,
	}
}

// Limits of the remote section.
const (
	maxTrustKeys      = 32
	maxGroups         = 32
	minRemotePayload  = Size(1 << 10)
	maxRemotePayload  = Size(16 << 20)
	maxRefitFramesCap = 100_000
)

// ParseTrustKey reads an Ed25519 public key written as base64 of its 32
// bytes, base64 of its PKIX DER form, or a PEM "PUBLIC KEY" block.
func ParseTrustKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("is empty")
	}
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		b, rest := pem.Decode([]byte(s))
		switch {
		case b == nil:
			return nil, errors.New("is not a valid PEM block")
		case b.Type != "PUBLIC KEY":
			return nil, fmt.Errorf("is a PEM %q block; want \"PUBLIC KEY\" (the .pub file of inspectd keygen, never the private key)", b.Type)
		case strings.TrimSpace(string(rest)) != "":
			return nil, errors.New("has text after its PEM block")
		}
		der = b.Bytes
	} else {
		raw, err := decodeBase64(s)
		if err != nil {
			return nil, errors.New("is neither base64 nor a PEM block")
		}
		if len(raw) == ed25519.PublicKeySize {
			return ed25519.PublicKey(raw), nil
		}
		der = raw
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("is not an Ed25519 public key: %d bytes that are neither the 32-byte key nor its PKIX form", len(der))
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("is a %T, not an Ed25519 public key", k)
	}
	return pk, nil
}

// decodeBase64 accepts standard and URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// Enabled says whether remote commands can run: signed ones with
// TrustKeys, or unsigned ones with AllowUnsigned. Without either every
// command is answered unauthorized, saying how to turn them on.
func (r *Remote) Enabled() bool { return len(r.TrustKeys) > 0 || r.AllowUnsigned }

// Keys parses TrustKeys; the error names the first key that does not parse
// (Validate reports all of them).
func (r *Remote) Keys() (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(r.TrustKeys))
	for _, name := range sortedKeys(r.TrustKeys) {
		k, err := ParseTrustKey(r.TrustKeys[name])
		if err != nil {
			return nil, fmt.Errorf("remote.trust_keys.%s %w", name, err)
		}
		out[name] = k
	}
	return out, nil
}

// remote checks the remote section and mqtt.groups.
func (v *validator) remote(c *Config) {
	r := &c.Remote
	if len(r.TrustKeys) > maxTrustKeys {
		v.addf("remote.trust_keys", "has %d keys; at most %d", len(r.TrustKeys), maxTrustKeys)
	}
	for _, name := range sortedKeys(r.TrustKeys) {
		field := "remote.trust_keys." + name
		if !validID(name) {
			v.addf(field, "the name %q is not 1..%d letters, digits, '.', '_' or '-'", name, maxDeviceID)
			continue
		}
		if _, err := ParseTrustKey(r.TrustKeys[name]); err != nil {
			v.addf(field, "%v", err)
		}
	}
	v.durRange("remote.max_skew", r.MaxSkew, time.Second, time.Hour)
	if r.MaxPayload < minRemotePayload || r.MaxPayload > maxRemotePayload {
		v.addf("remote.max_payload", "%s is out of range %s..%s", r.MaxPayload, minRemotePayload, maxRemotePayload)
	}
	v.durRange("remote.dedup_window", r.DedupWindow, time.Second, 7*24*time.Hour)
	v.intRange("remote.max_refit_frames", r.MaxRefitFrames, 3, maxRefitFramesCap)

	g := c.MQTT.Groups
	if len(g) > maxGroups {
		v.addf("mqtt.groups", "has %d groups; at most %d", len(g), maxGroups)
	}
	seen := map[string]bool{}
	for i, name := range g {
		field := fmt.Sprintf("mqtt.groups[%d]", i)
		switch {
		case !validID(name):
			v.addf(field, "%q is not 1..%d letters, digits, '.', '_' or '-' (it is an MQTT topic level)", name, maxDeviceID)
		case seen[name]:
			v.addf(field, "%q is listed twice", name)
		}
		seen[name] = true
	}
	if c.DeviceID == "fleet" || c.DeviceID == "group" {
		v.addf("device_id", "%q is reserved: <topic_prefix>/%s/cmd/... are the fleet and group command topics", c.DeviceID, c.DeviceID)
	}
}

// redactURL hides the password of a URL written with user:password@, so
// that a refused broker URL can be shown (in a remote reply, a log) without
// its secret.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); i >= 0 && j > i {
			return s[:i+3] + "xxxxx" + s[j:] // not a URL Go parses: hide all before @
		}
		return s
	}
	return u.Redacted()
}
