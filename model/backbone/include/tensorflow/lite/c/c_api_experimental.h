/* inspectd's stand-in for TensorFlow Lite 2.9's c_api_experimental.h.
 *
 * The prebuilt TensorFlow Lite C library that inspectd uses (from the npm
 * package tfjs-tflite-node@0.0.2) ships c_api.h, c_api_types.h and common.h
 * but not this header, which github.com/mattn/go-tflite includes. The library
 * does export the functions below, so declaring exactly them (with the
 * signatures of TensorFlow Lite 2.9) is enough for go-tflite to compile.
 * The XNNPACK delegate declarations are here too because the library exports
 * them without a header. */
#ifndef TENSORFLOW_LITE_C_C_API_EXPERIMENTAL_H_
#define TENSORFLOW_LITE_C_C_API_EXPERIMENTAL_H_

#include <stdint.h>
#include "tensorflow/lite/c/c_api.h"
#include "tensorflow/lite/c/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TfLiteBuiltinOperator is an enum in builtin_ops.h, which is not shipped;
 * the C ABI passes it as an int. */
typedef int TfLiteBuiltinOperator;

TFL_CAPI_EXPORT extern TfLiteStatus TfLiteInterpreterResetVariableTensors(
    TfLiteInterpreter* interpreter);

TFL_CAPI_EXPORT extern void TfLiteInterpreterOptionsAddBuiltinOp(
    TfLiteInterpreterOptions* options, TfLiteBuiltinOperator op,
    const TfLiteRegistration* registration, int32_t min_version,
    int32_t max_version);

TFL_CAPI_EXPORT extern void TfLiteInterpreterOptionsAddCustomOp(
    TfLiteInterpreterOptions* options, const char* name,
    const TfLiteRegistration* registration, int32_t min_version,
    int32_t max_version);

/* XNNPACK delegate, TensorFlow Lite 2.9 layout of its options. */
typedef struct {
  int32_t num_threads;
  uint32_t flags;
  void* weights_cache;
} TfLiteXNNPackDelegateOptions;

#define TFLITE_XNNPACK_DELEGATE_FLAG_QS8 0x00000001
#define TFLITE_XNNPACK_DELEGATE_FLAG_QU8 0x00000002

TFL_CAPI_EXPORT extern TfLiteXNNPackDelegateOptions
TfLiteXNNPackDelegateOptionsDefault(void);
TFL_CAPI_EXPORT extern TfLiteDelegate* TfLiteXNNPackDelegateCreate(
    const TfLiteXNNPackDelegateOptions* options);
TFL_CAPI_EXPORT extern void TfLiteXNNPackDelegateDelete(TfLiteDelegate* delegate);

#ifdef __cplusplus
}
#endif

#endif
