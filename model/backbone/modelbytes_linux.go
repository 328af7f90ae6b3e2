package backbone

import (
	"fmt"
	"os"

	"github.com/mattn/go-tflite"
	"golang.org/x/sys/unix"
)

// newModel hands the (rewritten) model bytes to TensorFlow Lite so that
// deleting the model frees them. tflite.NewModel copies the bytes into C
// memory that nothing ever frees (TfLiteModelCreate needs the buffer to
// outlive the model, and go-tflite keeps no pointer to it): 8–9 MB lost per
// reload, hundreds of MB after a day of remote refits. Instead the bytes go
// into an anonymous memory file that TensorFlow Lite maps from
// /proc/self/fd; TfLiteModelDelete unmaps and closes it, and the kernel
// frees the file with its last reference.
func newModel(data []byte) (*tflite.Model, error) {
	fd, err := unix.MemfdCreate("inspectd-backbone", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inspectd-backbone")
	defer f.Close() // TensorFlow Lite opens its own descriptor
	if _, err := f.Write(data); err != nil {
		return nil, fmt.Errorf("write model to memory file: %w", err)
	}
	m := tflite.NewModelFromFile(fmt.Sprintf("/proc/self/fd/%d", fd))
	if m == nil {
		return nil, nil
	}
	return m, nil
}
