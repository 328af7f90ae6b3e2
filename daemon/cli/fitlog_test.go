package cli

import (
	"bytes"
	"context"
	"log/slog"
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
