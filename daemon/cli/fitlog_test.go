package cli

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// The noisy-line warning fit holds back is logged after all where the
// command ends without saying it on stdout (a fit refused after the
// model's fit), dropped where it said it; the other records pass on.
func TestHeldWarningLoggedWhereNotSaid(t *testing.T) {
	for _, said := range []bool{false, true} {
		var buf bytes.Buffer
		held, log := holdWarning(slog.NewTextHandler(&buf, nil), noisyLineLog)
		log.With("part", "x").Warn(noisyLineLog+" its sensor noise", "ratio", "3.1")
		log.Warn("another warning")
		log.Info("fit done")
		if strings.Contains(buf.String(), noisyLineLog) || !strings.Contains(buf.String(), "another warning") || !strings.Contains(buf.String(), "fit done") {
			t.Fatalf("before the end:\n%s\nwant the noisy line held, the rest logged", &buf)
		}
		if said {
			held.drop()
		}
		held.release(context.Background())
		n := strings.Count(buf.String(), noisyLineLog)
		if want := map[bool]int{false: 1, true: 0}[said]; n != want || (n == 1 && !strings.Contains(buf.String(), "part=x ratio=3.1")) {
			t.Errorf("said on stdout %v: the noisy line logged %d times, want %d:\n%s", said, n, want, &buf)
		}
	}
}

// fit's hold of the noisy-line warning and eval's gathering of a set's
// warnings were two slog.Handlers of one shape, each with its own
// Enabled, WithAttrs and WithGroup: they are one type now, so that both
// pass on, bind and group alike. A warning held under a group and bound
// attributes is logged with them, as a gathered one is.
func TestHeldAndGatheredWarningsShareOneHandler(t *testing.T) {
	var held, gathered bytes.Buffer
	noisy, hl := holdWarning(slog.NewTextHandler(&held, nil), noisyLineLog)
	w := newSetWarnings([]string{"d1"}, []string{"plain"})
	gl := w.logger(slog.NewTextHandler(&gathered, nil))
	if a, b := reflect.TypeOf(hl.Handler()), reflect.TypeOf(gl.Handler()); a != b {
		t.Errorf("fit holds its warning with a %v, eval gathers a set's with a %v: want one handler", a, b)
	}
	for _, l := range []*slog.Logger{hl, gl} {
		l.With("part", "x").WithGroup("g").Warn(noisyLineLog+" its sensor noise", "ratio", "3.1")
		l.Info("fit done")
	}
	for name, buf := range map[string]*bytes.Buffer{"held": &held, "gathered": &gathered} {
		if strings.Contains(buf.String(), "WARN") || !strings.Contains(buf.String(), "fit done") {
			t.Errorf("%s, before the end:\n%s\nwant the warning held back, the rest logged", name, buf)
		}
	}
	noisy.release(context.Background())
	w.flush(context.Background())
	for name, buf := range map[string]*bytes.Buffer{"held": &held, "gathered": &gathered} {
		if !strings.Contains(buf.String(), "part=x g.ratio=3.1") {
			t.Errorf("%s, at the end:\n%s\nwant the warning with its bound attribute and group", name, buf)
		}
	}
}
