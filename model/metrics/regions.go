package metrics

import (
	"image"
	"slices"
)

// Regions finds the 8-connected regions of a binary mask and their
// bounding boxes, as an alarm reports them, with reusable buffers. It is
// not safe for concurrent use.
type Regions struct {
	label []int32
	stack []int32
	boxes []Box
}

// Box is a region's bounding box and its area in pixels.
type Box struct {
	image.Rectangle
	Area int
}

// Find returns the bounding boxes of mask's 8-connected regions of
// non-zero pixels (w×h, row major), largest area first, at most most (0:
// all), as the largest regions are what an alarm keeps. The slice is
// reused by the next call.
func (r *Regions) Find(mask []uint8, w, h, most int) []Box { return r.find(mask, w, w, h, most) }

// FindGray is Find on a gray image's pixels (0: normal); boxes are
// relative to its top-left corner.
func (r *Regions) FindGray(m *image.Gray, most int) []Box {
	return r.find(m.Pix, m.Stride, m.Rect.Dx(), m.Rect.Dy(), most)
}

func (r *Regions) find(mask []uint8, stride, w, h, most int) []Box {
	if cap(r.label) < w*h {
		r.label = make([]int32, w*h)
	}
	lab := r.label[:w*h]
	clear(lab)
	r.boxes = r.boxes[:0]
	var id int32
	for y := range h {
		for x, mv := range mask[y*stride : y*stride+w] {
			i := y*w + x
			if mv == 0 || lab[i] != 0 {
				continue
			}
			id++
			x0, y0, x1, y1 := x, y, x, y
			area := 0
			r.stack = append(r.stack[:0], int32(i))
			lab[i] = id
			for len(r.stack) > 0 {
				p := int(r.stack[len(r.stack)-1])
				r.stack = r.stack[:len(r.stack)-1]
				area++
				px, py := p%w, p/w
				x0, y0, x1, y1 = min(x0, px), min(y0, py), max(x1, px), max(y1, py)
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						nx, ny := px+dx, py+dy
						if nx < 0 || ny < 0 || nx >= w || ny >= h {
							continue
						}
						j := ny*w + nx
						if lab[j] == 0 && mask[ny*stride+nx] != 0 {
							lab[j] = id
							r.stack = append(r.stack, int32(j))
						}
					}
				}
			}
			r.boxes = append(r.boxes, Box{image.Rect(x0, y0, x1+1, y1+1), area})
		}
	}
	slices.SortStableFunc(r.boxes, func(a, b Box) int { return b.Area - a.Area })
	if most > 0 && len(r.boxes) > most {
		r.boxes = r.boxes[:most]
	}
	return r.boxes
}

// boxIoURow is the widest image whose row BoxIoU counts in an array on
// its stack (a byte per column, 8 KiB): 8K frames and anything narrower.
// Eval calls BoxIoU per defective image and the recipe search per
// synthetic defect and pixel ratio, so a row from the heap per call was
// garbage at that rate; a wider image still takes one.
const boxIoURow = 8192

// BoxIoU is the intersection over union of the pixels covered by the boxes
// pred and those covered by the boxes truth, on a w×h image: how well the
// regions an alarm reports (boxes) match the defect's own boxes. Both
// empty: 1; one empty: 0. It allocates nothing for images up to 8192
// pixels wide.
func BoxIoU(pred, truth []Box, w, h int) float64 {
	if len(pred) == 0 && len(truth) == 0 {
		return 1
	}
	if len(pred) == 0 || len(truth) == 0 {
		return 0
	}
	// Row by row: each box covers a column interval per row.
	var inter, union int
	var row [boxIoURow]uint8
	var cover []uint8
	if w <= len(row) {
		cover = row[:w]
	} else {
		cover = make([]uint8, w)
	}
	for y := range h {
		any := false
		for _, set := range [2][]Box{pred, truth} {
			for _, b := range set {
				if y >= b.Min.Y && y < b.Max.Y {
					any = true
				}
			}
		}
		if !any {
			continue
		}
		clear(cover)
		for k, set := range [2][]Box{pred, truth} {
			for _, b := range set {
				if y < b.Min.Y || y >= b.Max.Y {
					continue
				}
				for x := max(b.Min.X, 0); x < min(b.Max.X, w); x++ {
					cover[x] |= 1 << k
				}
			}
		}
		for _, c := range cover {
			if c == 3 {
				inter++
			}
			if c != 0 {
				union++
			}
		}
	}
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}
