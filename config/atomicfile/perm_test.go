package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Write gave its temporary file its permissions only once the content was
// in it; a caller that wanted a file of 0600 from the start could not have
// it. The file now has them (and what Prepare gives it, first) before the
// first byte is written.
func TestWriteGivesThePermissionsBeforeTheBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.bin")
	prepared := false
	opts := Options{Perm: 0o640, Prepare: func(f *os.File) error {
		prepared = true
		return nil
	}}
	err := WriteWith(path, opts, func(w io.Writer) error {
		st, err := w.(*os.File).Stat()
		if err != nil {
			return err
		}
		if st.Mode().Perm() != 0o640 || st.Size() != 0 || !prepared {
			t.Errorf("temporary file %v, %d bytes, prepared %v before the write, want 0640, empty, prepared", st.Mode().Perm(), st.Size(), prepared)
		}
		_, err = w.Write([]byte("model"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("file %v (%v), want 0640", st.Mode(), err)
	}
}
