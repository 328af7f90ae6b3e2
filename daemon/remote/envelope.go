package remote

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// EnvelopeVersion names the signed-envelope format. It is the value of the
// envelope's "envelope" field and the first line of the signed bytes.
const EnvelopeVersion = "inspectd-sig-v1"

// Envelope is a signed command. It travels as the whole message on a
// command topic, in place of the command's own JSON body:
//
//	{"envelope": "inspectd-sig-v1", "key": "scada", "target": "fleet",
//	 "command": "config", "ts": 1795000000, "nonce": "q3J0c2dk0wXh1Yk2a9Ld2g",
//	 "payload": "<base64 of the command body>", "sig": "<base64 of 64 bytes>"}
//
// The signature is Ed25519 (RFC 8032) over SignedBytes: the lines
//
//	inspectd-sig-v1
//	<key>
//	<target>
//	<command>
//	<ts>
//	<nonce>
//
// each ended by "\n", followed by the exact payload bytes. No field but
// the payload may hold a newline, so the encoding is unambiguous. Binding
// the command name stops a signed config body from being replayed as
// another command; binding the target stops a command signed for one box
// or group from being replayed to another; the timestamp and the nonce
// stop replays in time (see Dispatcher).
type Envelope struct {
	// Envelope is EnvelopeVersion.
	Envelope string `json:"envelope"`
	// Key names the trust key (remote.trust_keys) that signed it.
	Key string `json:"key"`
	// Target is where the command may run: "*" (anywhere),
	// "device/<device_id>", "fleet" (the fleet topic) or "group/<group>"
	// (that group's topic).
	Target string `json:"target"`
	// Command is the command name; it must match the topic's.
	Command string `json:"command"`
	// TS is the signing time, in Unix seconds.
	TS int64 `json:"ts"`
	// Nonce is 16 to 64 characters of [A-Za-z0-9+/=_-], unique per
	// signature (inspectd sign uses 16 random bytes, base64url).
	Nonce string `json:"nonce"`
	// Payload is the standard base64 (padded) of the command's JSON body.
	Payload string `json:"payload"`
	// Sig is the standard base64 of the 64-byte Ed25519 signature.
	Sig string `json:"sig"`
}

// isEnvelope reports whether a command message is a signed envelope: a JSON
// object with an "envelope" key (no command body has one). The key is
// matched regardless of case on purpose: {"Envelope": ...} is a signed
// command spelt wrong, and ParseEnvelope refuses it naming the key
// ("did you mean"), where an unsigned body would be refused only as
// unsigned.
func isEnvelope(body []byte) bool {
	var probe struct {
		Envelope json.RawMessage `json:"envelope"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.Envelope != nil
}

// SignedBytes is what the signature covers; see Envelope.
func (e *Envelope) SignedBytes(payload []byte) []byte {
	var b bytes.Buffer
	for _, f := range []string{EnvelopeVersion, e.Key, e.Target, e.Command, strconv.FormatInt(e.TS, 10), e.Nonce} {
		b.WriteString(f)
		b.WriteByte('\n')
	}
	b.Write(payload)
	return b.Bytes()
}

// Sign wraps payload (a command's JSON body) in a signed envelope for
// command and target, timestamped now, with a fresh nonce from rnd
// (crypto/rand when nil).
func Sign(priv ed25519.PrivateKey, keyName, target, command string, payload []byte, now time.Time, rnd io.Reader) (*Envelope, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	n := make([]byte, 16)
	if _, err := io.ReadFull(rnd, n); err != nil {
		return nil, fmt.Errorf("sign: nonce: %w", err)
	}
	e := &Envelope{Envelope: EnvelopeVersion, Key: keyName, Target: target, Command: command, TS: now.Unix(),
		Nonce: base64.RawURLEncoding.EncodeToString(n), Payload: base64.StdEncoding.EncodeToString(payload)}
	if err := e.checkFields(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	e.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, e.SignedBytes(payload)))
	return e, nil
}

// ParseEnvelope decodes an envelope strictly (unknown, missing, duplicate
// and mistyped fields are refused naming the field) and returns it with its
// decoded payload. It does not verify the signature.
func ParseEnvelope(data []byte) (*Envelope, []byte, error) {
	var e Envelope
	if err := decodeStrict(data, &e); err != nil {
		return nil, nil, err
	}
	if e.Envelope != EnvelopeVersion {
		return nil, nil, invalidf("envelope", "%q is not a known envelope format; want %q", truncate(e.Envelope, 40), EnvelopeVersion)
	}
	if err := e.checkFields(); err != nil {
		return nil, nil, err
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, nil, invalidf("payload", "is not standard base64: %v", err)
	}
	if sig, err := base64.StdEncoding.DecodeString(e.Sig); err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, invalidf("sig", "is not the standard base64 of a %d-byte Ed25519 signature", ed25519.SignatureSize)
	}
	return &e, payload, nil
}

// checkFields checks every field but payload and sig.
func (e *Envelope) checkFields() error {
	switch {
	case !isName(e.Key, 64):
		return invalidf("key", "%q is not a trust key name (1..64 letters, digits, '.', '_' or '-')", truncate(e.Key, 70))
	case !validTarget(e.Target):
		return invalidf("target", "%q is not \"*\", \"device/<device_id>\", \"fleet\" or \"group/<group>\"", truncate(e.Target, 140))
	case !isName(e.Command, 64):
		return invalidf("command", "%q is not a command name", truncate(e.Command, 70))
	case e.TS <= 0:
		return invalidf("ts", "%d is not a time in Unix seconds", e.TS)
	case len(e.Nonce) < 16 || len(e.Nonce) > 64 || strings.IndexFunc(e.Nonce, func(r rune) bool { return !isNonceRune(r) }) >= 0:
		return invalidf("nonce", "must be 16 to 64 characters of A-Z a-z 0-9 + / = _ -")
	}
	return nil
}

func validTarget(t string) bool {
	if t == "*" || t == "fleet" {
		return true
	}
	if id, ok := strings.CutPrefix(t, "device/"); ok {
		return isName(id, 64)
	}
	if g, ok := strings.CutPrefix(t, "group/"); ok {
		return isName(g, 64)
	}
	return false
}

// targetMatches reports whether a command signed for target may run on
// deviceID when it arrived from origin ("device", "fleet", "group/<g>" or
// another front end's name).
func targetMatches(target, deviceID, origin string) bool {
	switch {
	case target == "*":
		return true
	case target == "fleet" || strings.HasPrefix(target, "group/"):
		return origin == target
	default:
		return target == "device/"+deviceID
	}
}

// Verify checks the signature over payload with pub.
func (e *Envelope) Verify(pub ed25519.PublicKey, payload []byte) error {
	sig, err := base64.StdEncoding.DecodeString(e.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return invalidf("sig", "is not a %d-byte Ed25519 signature", ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, e.SignedBytes(payload), sig) {
		return errors.New("the signature does not verify")
	}
	return nil
}

// isName reports whether s is 1..max of [A-Za-z0-9._-].
func isName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func isNonceRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+/=_-", r)
}

// truncate shortens s for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Fingerprint identifies a public key in replies and logs: "SHA256:" and
// the unpadded base64 of the SHA-256 of its 32 bytes, as OpenSSH shows
// keys.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// Key files: the private key as a PEM "PRIVATE KEY" block (PKCS #8), the
// public key as a PEM "PUBLIC KEY" block (PKIX), as OpenSSL writes Ed25519
// keys (`openssl pkey -in k.key -pubout` reads them).

// GenerateKey writes a new Ed25519 key pair: the private key to privPath
// (mode 0600, refused if the file exists) and the public key to pubPath
// (0644). It returns the public key.
func GenerateKey(privPath, pubPath string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s exists; refusing to overwrite a key", p)
		}
	}
	if err := writeNew(privPath, 0o600, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, 0o644, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})); err != nil {
		os.Remove(privPath)
		return nil, err
	}
	return pub, nil
}

// writeNew creates path (never replacing a file) with perm and data, and
// syncs it.
func writeNew(path string, perm os.FileMode, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err // *PathError: "open PATH: ..."
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm) // the umask may have narrowed it; never widened
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadPrivateKey reads a private key written by GenerateKey (PEM PKCS #8,
// as OpenSSL writes Ed25519 keys too).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	// A named pipe was opened and read, so that `inspectd sign --key`
	// waited for a writer for good (SIGTERM too); /dev/zero was read until
	// memory ran out. Refused unopened, naming what it is.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		return nil, fmt.Errorf("%s is %s, not a private key file (inspectd keygen writes one)", path, atomicfile.FileKind(st.Mode()))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\" file (inspectd keygen writes one)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not an Ed25519 key", path, k)
	}
	return priv, nil
}
