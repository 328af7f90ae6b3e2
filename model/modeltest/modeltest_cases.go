package modeltest

import (
	"os"
	"path/filepath"
	"testing"
)

// Case is a file of ../shared/cases (inputs from field reports), or skips
// the test when the folder is not beside the checkout.
func Case(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(root(tb), "..", "shared", "cases", rel)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("field case %s not found beside the checkout (../shared/cases)", rel)
	}
	return p
}
