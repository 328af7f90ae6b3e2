package padim

import (
	"fmt"
	"math"
)

// FirstNonFinite returns the index of the first NaN or ±Inf in v, or -1.
// It reads each value once and allocates nothing: cheap enough for a
// frame's P distances and for every tensor of a model file at load (about
// as long as the CRC-32C over the same bytes: BenchmarkFiniteCheck; a
// branch-free block maximum measured no faster).
func FirstNonFinite(v []float32) int {
	for i, x := range v {
		// All exponent bits set: Inf (zero mantissa) or NaN.
		if math.Float32bits(x)&0x7f800000 == 0x7f800000 {
			return i
		}
	}
	return -1
}

// checkFinite refuses a tensor holding NaN or ±Inf, naming it, the value
// and the first bad index (flat, and per dimension of shape).
func checkFinite(name string, shape []int64, data []float32) error {
	i := FirstNonFinite(data)
	if i < 0 {
		return nil
	}
	at := ""
	if len(shape) > 1 {
		idx := make([]int64, len(shape))
		r := int64(i)
		for d := len(shape) - 1; d >= 0; d-- {
			if shape[d] > 0 {
				idx[d] = r % shape[d]
				r /= shape[d]
			}
		}
		at = fmt.Sprintf(" (%v of shape %v)", idx, shape)
	}
	return fmt.Errorf("tensor %q holds %v at index %d%s; every value must be finite: refit the model", name, data[i], i, at)
}
