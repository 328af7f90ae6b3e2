package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd bench --camera-replay PATH` with PATH a link to a recording
// that is not there said "stat PATH: no such file or directory" of a link
// that is there. It now says where the link leads; a link that leads
// round in a loop is named with its loop.
func TestBenchReplayNamesABrokenLink(t *testing.T) {
	dir := t.TempDir()
	dangling := filepath.Join(dir, "dangling.mjpeg")
	missing := filepath.Join(dir, "gone", "line.mjpeg")
	loop := filepath.Join(dir, "loop.mjpeg")
	for _, l := range [][2]string{{missing, dangling}, {"la", loop}, {"lb", filepath.Join(dir, "la")}, {"la", filepath.Join(dir, "lb")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	cfg := evalConfig(t, t.TempDir())
	for path, want := range map[string]string{
		dangling: dangling + " is a link to " + missing + ", which does not exist",
		loop:     loop + " is a link that leads round in a loop (la → lb → la)",
	} {
		code, _, stderr := runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", cfg, "--camera-replay", path)
		if code == 0 || !strings.Contains(stderr, "--camera-replay: "+want) {
			t.Errorf("exit %d, stderr %q: want %q", code, stderr, want)
		}
	}
}
