package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/remote"
)

func TestKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "scada")
	code, out, errs := runCaptureCmd(t, "keygen", "--out", prefix)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errs)
	}
	st, err := os.Stat(prefix + ".key")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, mode %v", err, st.Mode())
	}
	pubPEM, _ := os.ReadFile(prefix + ".pub")
	pub, err := config.ParseTrustKey(string(pubPEM))
	if err != nil {
		t.Fatal(err)
	}
	// The printed line is a configuration a box accepts.
	i := strings.Index(out, "remote:\n")
	cfgText := out[i : i+strings.Index(out[i:], "\n\n")]
	c, err := config.Parse([]byte(cfgText), "printed")
	if err != nil {
		t.Fatalf("the printed configuration %q: %v", cfgText, err)
	}
	if k, _ := c.Remote.Keys(); !k["scada"].Equal(pub) {
		t.Errorf("printed key %v is not the .pub file's", c.Remote.TrustKeys)
	}
	if strings.Contains(out, "PRIVATE") {
		t.Error("keygen printed the private key")
	}
	if code, _, errs := runCaptureCmd(t, "keygen", "--out", prefix); code != 1 || !strings.Contains(errs, "exists; refusing to overwrite a key") {
		t.Errorf("second keygen: exit %d, %s", code, errs)
	}

	body := `{"id":"c1","config":{"mqtt":{"result_qos":1}}}`
	var so, se bytes.Buffer
	code = Main(context.Background(), []string{"sign", "--key", prefix + ".key", "--target", "fleet"}, strings.NewReader(body), &so, &se)
	if code != 0 {
		t.Fatalf("sign: exit %d: %s", code, se.String())
	}
	e, payload, err := remote.ParseEnvelope(bytes.TrimSpace(so.Bytes()))
	if err != nil {
		t.Fatalf("sign printed %q: %v", so.String(), err)
	}
	if string(payload) != body || e.Command != "config" || e.Target != "fleet" || e.Key != "scada" || e.Verify(pub, payload) != nil {
		t.Errorf("envelope %+v does not verify or names the wrong command, target or key", e)
	}
	if strings.Contains(se.String(), "every box") {
		t.Errorf("with --target, sign said: %s", se.String())
	}
	// Without --target the envelope runs on every box: said on stderr.
	so.Reset()
	se.Reset()
	if code := Main(context.Background(), []string{"sign", "--key", prefix + ".key"}, strings.NewReader(body), &so, &se); code != 0 || !strings.Contains(se.String(), "signed for every box that trusts key \"scada\" (target *)") {
		t.Errorf("sign without --target: exit %d, stderr %q", code, se.String())
	}
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"sign", "--key", prefix + ".key"}, `{"config":{}}`, "id: missing"},
		{[]string{"sign", "--key", prefix + ".key"}, "model: {features: 3}", "malformed JSON"},
		{[]string{"sign", "--key", prefix + ".pub"}, body, `not a PEM "PRIVATE KEY" file`},
		{[]string{"sign", "--key", prefix + ".key", "--target", "line3"}, body, "target"},
		{[]string{"sign", "--key", prefix + ".key", "--command", "bogus"}, body, `--command "bogus" is not a remote command (config, `},
	} {
		var so, se bytes.Buffer
		if code := Main(context.Background(), tc.args, strings.NewReader(tc.stdin), &so, &se); code == 0 || !strings.Contains(se.String(), tc.want) {
			t.Errorf("%v < %q: exit %d, stderr %q, want %q", tc.args, tc.stdin, code, se.String(), tc.want)
		}
	}
}
