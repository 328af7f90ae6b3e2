package remote

import "testing"

// TestProgressDescribedWithoutUncountedFrames: a busy reply while a
// folder refit was still listing its folder said "starting, 0 of 0
// frames, 0%"; frames are said once they are counted.
func TestProgressDescribedWithoutUncountedFrames(t *testing.T) {
	for _, tc := range []struct {
		p    Progress
		want string
	}{
		{Progress{}, "starting"},
		{Progress{Phase: "starting"}, "starting"},
		{Progress{Phase: "starting", Total: 220}, "starting, 0 of 220 frames, 0%"},
		{Progress{Phase: "capturing", Frames: 50, Total: 220, Percent: 22.7}, "capturing, 50 of 220 frames, 23%"},
	} {
		if got := tc.p.describe(); got != tc.want {
			t.Errorf("%+v described %q, want %q", tc.p, got, tc.want)
		}
	}
}
