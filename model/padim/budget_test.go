package padim

import "testing"

func TestStateBytes(t *testing.T) {
	// The figure the issue sets: 56×56 at d=100 within 64 MB.
	if got := StateBytes(56*56, 100); got != 3136*(100+5050)*4 || got > 64<<20 {
		t.Fatalf("StateBytes(56×56, 100) = %d", got)
	}
	g := randomState(56, 56, 100)
	if int64(len(g.Mean)+len(g.InvCov))*4 != StateBytes(56*56, 100) {
		t.Fatal("StateBytes disagrees with the state's slices")
	}
}

func TestChooseSize(t *testing.T) {
	full := StateBytes(3136, 100)
	for _, tc := range []struct {
		budget   int64
		wantD    int
		wantPool int
	}{
		{1 << 40, 550, 1},
		{full, 100, 1},
		{full + StateBytes(3136, 101) - full - 1, 100, 1},
		{StateBytes(3136, 101), 101, 1},
		{full - 1, 99, 1},
		{StateBytes(3136, 50) - 1, 50, 2},
		{StateBytes(28*28, 50), 50, 2},
		{StateBytes(28*28, 50) - 1, 50, 3},
		{StateBytes(1, 50), 50, 29}, // 56/29 = 1: the first factor giving a 1x1 grid
	} {
		s, err := ChooseSize(56, 56, 50, 550, tc.budget)
		if err != nil {
			t.Fatalf("budget %d: %v", tc.budget, err)
		}
		if s.D != tc.wantD || s.Pool != tc.wantPool || s.Bytes > tc.budget || s.Bytes != StateBytes(s.GridH*s.GridW, s.D) || s.GridH != 56/s.Pool {
			t.Errorf("budget %d: %+v, want d=%d pool=%d", tc.budget, s, tc.wantD, tc.wantPool)
		}
	}
	if _, err := ChooseSize(56, 56, 50, 550, StateBytes(1, 50)-1); err == nil {
		t.Error("impossible budget accepted")
	}
	if _, err := ChooseSize(56, 56, 100, 50, 1<<30); err == nil {
		t.Error("min > max accepted")
	}
}
