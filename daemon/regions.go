package daemon

import (
	"image"
	"slices"

	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// regionFinder labels the 8-connected regions of a binary mask with
// reusable buffers, for the bounding boxes and areas an alarm carries.
type regionFinder struct {
	label []int32
	stack []int32
	out   []mqttpub.Region
}

// maxRegions bounds an alarm's region list; a speckled mask would
// otherwise produce a huge message. The largest regions are kept.
const maxRegions = 32

func (rf *regionFinder) find(m *image.Gray) []mqttpub.Region {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	if cap(rf.label) < w*h {
		rf.label = make([]int32, w*h)
	}
	lab := rf.label[:w*h]
	clear(lab)
	rf.out = rf.out[:0]
	var id int32
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			if m.Pix[y*m.Stride+x] == 0 || lab[i] != 0 {
				continue
			}
			id++
			r := mqttpub.Region{X: x, Y: y, W: 1, H: 1}
			x0, y0, x1, y1 := x, y, x, y
			area := 0
			rf.stack = append(rf.stack[:0], int32(i))
			lab[i] = id
			for len(rf.stack) > 0 {
				p := int(rf.stack[len(rf.stack)-1])
				rf.stack = rf.stack[:len(rf.stack)-1]
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
						if lab[j] == 0 && m.Pix[ny*m.Stride+nx] != 0 {
							lab[j] = id
							rf.stack = append(rf.stack, int32(j))
						}
					}
				}
			}
			r.X, r.Y, r.W, r.H, r.Area = x0, y0, x1-x0+1, y1-y0+1, area
			rf.out = append(rf.out, r)
		}
	}
	// Largest first; a speckled mask keeps its largest regions.
	slices.SortStableFunc(rf.out, func(a, b mqttpub.Region) int { return b.Area - a.Area })
	if len(rf.out) > maxRegions {
		rf.out = rf.out[:maxRegions]
	}
	return rf.out
}
