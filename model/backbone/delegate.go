package backbone

/*
#include <stdlib.h>
#include "tensorflow/lite/c/c_api_experimental.h"

#include <dlfcn.h>
#include <stdio.h>

// Delegate plugins (the TFLite GPU delegate, Coral's libedgetpu) export
// tflite_plugin_create_delegate / tflite_plugin_destroy_delegate. They are
// loaded here rather than through TFLite's external delegate, whose 2.9
// version hands out a delegate even when the library or its creation failed
// and then crashes when it is applied.
typedef TfLiteDelegate* (*inspectd_create_fn)(char**, char**, size_t, void (*)(const char*));
typedef void (*inspectd_destroy_fn)(TfLiteDelegate*);

static __thread char inspectd_plugin_msg[512];
static void inspectd_plugin_report(const char* msg) {
  snprintf(inspectd_plugin_msg, sizeof inspectd_plugin_msg, "%s", msg ? msg : "");
}

static TfLiteDelegate* inspectd_plugin_create(const char* lib, int n, char** keys, char** values,
                                              void** handle, void** destroy, char* err, int errlen) {
  inspectd_plugin_msg[0] = 0;
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) { snprintf(err, errlen, "%s", dlerror()); return NULL; }
  inspectd_create_fn c = (inspectd_create_fn)dlsym(h, "tflite_plugin_create_delegate");
  inspectd_destroy_fn d = (inspectd_destroy_fn)dlsym(h, "tflite_plugin_destroy_delegate");
  if (!c || !d) {
    snprintf(err, errlen, "%s does not export tflite_plugin_create_delegate and tflite_plugin_destroy_delegate", lib);
    dlclose(h);
    return NULL;
  }
  TfLiteDelegate* del = c(keys, values, (size_t)n, inspectd_plugin_report);
  if (!del) {
    snprintf(err, errlen, "tflite_plugin_create_delegate returned no delegate%s%s",
             inspectd_plugin_msg[0] ? ": " : "", inspectd_plugin_msg);
    dlclose(h);
    return NULL;
  }
  *handle = h;
  *destroy = (void*)d;
  return del;
}

static void inspectd_plugin_destroy(void* destroy, void* handle, TfLiteDelegate* d) {
  ((inspectd_destroy_fn)destroy)(d);
  dlclose(handle);
}

static TfLiteDelegate* inspectd_xnnpack_create(int threads, unsigned flags) {
  TfLiteXNNPackDelegateOptions o = TfLiteXNNPackDelegateOptionsDefault();
  o.num_threads = threads;
  o.flags = flags;
  return TfLiteXNNPackDelegateCreate(&o);
}
#cgo LDFLAGS: -ltensorflowlite_c -ldl
*/
import "C"

import (
	"fmt"
	"sort"
	"unsafe"
)

// DelegateOptions configure an external delegate plugin: a shared library
// exposing tflite_plugin_create_delegate / tflite_plugin_destroy_delegate
// (the TFLite GPU delegate, Coral's libedgetpu, …).
type DelegateOptions struct {
	// Library is the plugin's path; empty means none.
	Library string
	// Options are handed to the plugin as key/value strings.
	Options map[string]string
	// Required makes a plugin that cannot be loaded or applied an error
	// instead of a fallback to the CPU.
	Required bool
}

// delegate owns a TfLiteDelegate; it satisfies go-tflite's Delegater.
type delegate struct {
	ptr  *C.TfLiteDelegate
	free func(*C.TfLiteDelegate)
	name string
}

func (d *delegate) Delete() {
	if d != nil && d.ptr != nil {
		d.free(d.ptr)
		d.ptr = nil
	}
}

func (d *delegate) Ptr() unsafe.Pointer { return unsafe.Pointer(d.ptr) }

// newXNNPACK creates the XNNPACK delegate built into the TFLite library.
func newXNNPACK(threads int, flags uint32) (*delegate, error) {
	p := C.inspectd_xnnpack_create(C.int(threads), C.unsigned(flags))
	if p == nil {
		return nil, fmt.Errorf("XNNPACK delegate could not be created")
	}
	return &delegate{ptr: p, name: "xnnpack", free: func(p *C.TfLiteDelegate) { C.TfLiteXNNPackDelegateDelete(p) }}, nil
}

// newExternal loads a delegate plugin and creates its delegate with the
// configured options.
func newExternal(o DelegateOptions) (*delegate, error) {
	keys := make([]string, 0, len(o.Options))
	for k := range o.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := max(len(keys), 1)
	ptrSize := C.size_t(unsafe.Sizeof((*C.char)(nil)))
	ck := unsafe.Slice((**C.char)(C.calloc(C.size_t(n), ptrSize)), n)
	cv := unsafe.Slice((**C.char)(C.calloc(C.size_t(n), ptrSize)), n)
	lib := C.CString(o.Library)
	errBuf := (*C.char)(C.calloc(512, 1))
	defer func() {
		for i := range keys {
			C.free(unsafe.Pointer(ck[i]))
			C.free(unsafe.Pointer(cv[i]))
		}
		C.free(unsafe.Pointer(&ck[0]))
		C.free(unsafe.Pointer(&cv[0]))
		C.free(unsafe.Pointer(lib))
		C.free(unsafe.Pointer(errBuf))
	}()
	for i, k := range keys {
		ck[i], cv[i] = C.CString(k), C.CString(o.Options[k])
	}
	var handle, destroy unsafe.Pointer
	p := C.inspectd_plugin_create(lib, C.int(len(keys)), &ck[0], &cv[0], &handle, &destroy, errBuf, 512)
	if p == nil {
		return nil, fmt.Errorf("delegate plugin %s: %s", o.Library, C.GoString(errBuf))
	}
	return &delegate{ptr: p, name: o.Library, free: func(p *C.TfLiteDelegate) { C.inspectd_plugin_destroy(destroy, handle, p) }}, nil
}
