package padim

import "fmt"

// StateBytes is the size of the scoring state for P positions at dimension
// d: the float32 mean and packed inverse covariance.
func StateBytes(positions, d int) int64 {
	return int64(positions) * int64(d+packedLen(d)) * 4
}

// Size is a memory-sizing decision: the embedding dimension and the pooling
// of the grid, with the resulting scoring state's bytes.
type Size struct {
	D            int
	Pool         int // 1: the full grid
	GridH, GridW int // after pooling
	Bytes        int64
}

// ChooseSize picks the largest d in [minD, maxD] whose scoring state for the
// full gridH×gridW grid fits budget bytes; if even minD does not fit, the
// smallest average-pooling factor (2, 3, ...) at minD that fits. It fails
// when nothing fits.
func ChooseSize(gridH, gridW, minD, maxD int, budget int64) (Size, error) {
	if gridH <= 0 || gridW <= 0 || minD <= 0 || maxD < minD || budget <= 0 {
		return Size{}, fmt.Errorf("choose size: grid %dx%d, d %d..%d, budget %d: want positive values and min ≤ max", gridH, gridW, minD, maxD, budget)
	}
	p := gridH * gridW
	if StateBytes(p, minD) <= budget {
		// StateBytes grows with d: binary search the largest fit.
		lo, hi := minD, maxD
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if StateBytes(p, mid) <= budget {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		return Size{D: lo, Pool: 1, GridH: gridH, GridW: gridW, Bytes: StateBytes(p, lo)}, nil
	}
	for k := 2; k <= min(gridH, gridW); k++ {
		h, w := gridH/k, gridW/k
		if b := StateBytes(h*w, minD); b <= budget {
			return Size{D: minD, Pool: k, GridH: h, GridW: w, Bytes: b}, nil
		}
	}
	return Size{}, fmt.Errorf("choose size: even a 1x1 grid at d=%d needs %d bytes, over the budget of %d bytes", minD, StateBytes(1, minD), budget)
}
