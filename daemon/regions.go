package daemon

import (
	"image"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/metrics"
)

// regionFinder turns a mask into an alarm's regions: the bounding boxes
// and areas of its 8-connected regions (metrics.Regions, which inspectd
// eval scores against the ground truth), with reusable buffers.
type regionFinder struct {
	regions metrics.Regions
	out     []mqttpub.Region
}

// MaxAlarmRegions bounds an alarm's region list (model.MaxAlarmRegions,
// which the recipe search measures its regions with).
const MaxAlarmRegions = model.MaxAlarmRegions

func (rf *regionFinder) find(m *image.Gray) []mqttpub.Region {
	rf.out = rf.out[:0]
	for _, b := range rf.regions.FindGray(m, MaxAlarmRegions) {
		rf.out = append(rf.out, mqttpub.Region{X: b.Min.X, Y: b.Min.Y, W: b.Dx(), H: b.Dy(), Area: b.Area})
	}
	return rf.out
}
