package mqttpub

import (
	"sync/atomic"
	"testing"
	"time"
)

// A message counts as the session's backlog before the SUBACK and for
// BacklogSettle after it (paho may call the handler of a message read
// before the SUBACK only after the SUBACK was processed); later ones are
// live.
func TestBacklogSettles(t *testing.T) {
	at := new(atomic.Int64)
	if !backlog(at) {
		t.Error("before the SUBACK: not backlog")
	}
	at.Store(time.Now().UnixNano())
	if !backlog(at) {
		t.Error("right after the SUBACK: not backlog")
	}
	at.Store(time.Now().Add(-2 * BacklogSettle).UnixNano())
	if backlog(at) {
		t.Error("well after the SUBACK: still backlog")
	}
}
