package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// setWarnings gathers the warnings an eval set's fits and scorings log,
// one fit per draw (--train-draws, --misalign) and recipe column
// (--compare), and logs each distinct one once when the set is done: they
// came once per draw and column, K×C copies of one sentence about the set.
// A warning met in some draws (or columns) only, or differing between
// them, is logged with the draws (recipes) it came from. Records below
// warn pass straight on: timings and progress belong to each fit.
type setWarnings struct {
	mu sync.Mutex
	// draws names the set's draws ("train-draw1"), columns its recipe
	// columns; draw and column are the fit now running (indices).
	draws, columns []string
	draw, column   int
	seen           []*setWarning
	byKey          map[string]*setWarning
	// done: logged; a record that comes later (a fit's background work)
	// passes straight on rather than wait for a flush that will not come.
	done bool
}

// setWarning is one distinct warning and where it came from.
type setWarning struct {
	next    slog.Handler // the handler it came through (with its bound attributes)
	rec     slog.Record  // the first one met
	draws   []bool
	columns []bool
}

// newSetWarnings gathers the warnings of a set's fits over draws and
// columns (their names).
func newSetWarnings(draws, columns []string) *setWarnings {
	return &setWarnings{draws: draws, columns: columns, byKey: map[string]*setWarning{}}
}

// logger returns a logger that writes through next, the set's warnings
// gathered by w.
func (w *setWarnings) logger(next slog.Handler) *slog.Logger {
	return slog.New(&warnHandler{c: w, next: next})
}

// at says which draw and recipe column the records that follow come from.
func (w *setWarnings) at(draw, column int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.draw, w.column = draw, column
}

// flush logs each distinct warning gathered, once, in the order first
// met; it is a no-op the second time (a set's end, then a failed run's
// return).
func (w *setWarnings) flush(ctx context.Context) {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.done = true
	seen := w.seen
	w.seen, w.byKey = nil, nil
	w.mu.Unlock()
	for _, s := range seen {
		r := s.rec.Clone()
		if names, all := which(w.draws, s.draws); !all {
			r.AddAttrs(slog.String("draws", names))
		}
		if names, all := which(w.columns, s.columns); !all {
			r.AddAttrs(slog.String("recipes", names))
		}
		// A log line that cannot be written has nowhere to be reported.
		_ = s.next.Handle(ctx, r)
	}
}

// which names those of names marked in in, and says whether that is all
// of them.
func which(names []string, in []bool) (string, bool) {
	var got []string
	for i, ok := range in {
		if ok {
			got = append(got, names[i])
		}
	}
	return strings.Join(got, ","), len(got) == len(names)
}

// catch gathers a warning (or error) while the set runs; one met after
// the flush passes on.
func (w *setWarnings) catch(next slog.Handler, bound string, r slog.Record) bool {
	var key strings.Builder
	fmt.Fprintf(&key, "%s\x00%s\x00%s", bound, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		key.WriteString("\x00" + attrText(a))
		return true
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	s := w.byKey[key.String()]
	if s == nil {
		s = &setWarning{next: next, rec: r.Clone(), draws: make([]bool, len(w.draws)), columns: make([]bool, len(w.columns))}
		w.byKey[key.String()] = s
		w.seen = append(w.seen, s)
	}
	s.draws[w.draw], s.columns[w.column] = true, true
	return true
}
