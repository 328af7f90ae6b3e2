package cli

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion checks that `inspectd version` names the release, the commit,
// the TensorFlow Lite library actually loaded (from its C API, so a wrong
// library would show), the MJPEG decoder and the Go toolchain.
func TestVersion(t *testing.T) {
	code, out, errs := runConfigCLI("version")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 lines, got:\n%s", out)
	}
	for i, re := range []string{
		`^inspectd \S+$`,
		`^commit   \S+$`,
		`^tflite   2\.9\.\d+$`, // the bundled tfjs-tflite-node library
		`^jpeg     (libjpeg-turbo( \d+\.\d+\.\d+)?|image/jpeg .*)$`,
		`^go       ` + regexp.QuoteMeta(runtime.Version()) + ` linux/(amd64|arm64)$`,
	} {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i+1, lines[i], re)
		}
	}
	if code, _, _ := runConfigCLI("version", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d; want 2", code)
	}
}
