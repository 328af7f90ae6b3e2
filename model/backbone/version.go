package backbone

/*
#include "tensorflow/lite/c/c_api.h"
*/
import "C"

// TFLiteVersion is the version of the TensorFlow Lite C library this
// process runs on, as its TfLiteVersion() reports it (for example "2.9.0"):
// the library is loaded at run time, so this can differ from the headers
// the binary was built against.
func TFLiteVersion() string { return C.GoString(C.TfLiteVersion()) }
