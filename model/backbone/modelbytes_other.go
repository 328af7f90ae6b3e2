//go:build !linux

package backbone

import "github.com/mattn/go-tflite"

// newModel hands the model bytes to TensorFlow Lite. Off Linux there is no
// memfd: go-tflite's copy is kept for the life of the process.
func newModel(data []byte) (*tflite.Model, error) { return tflite.NewModel(data), nil }
