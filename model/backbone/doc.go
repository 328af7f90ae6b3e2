// Package backbone runs a TensorFlow Lite CNN and reads the feature maps of
// chosen intermediate tensors ("taps") that PaDiM models.
package backbone

import _ "github.com/mattn/go-tflite"
