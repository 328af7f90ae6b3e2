package sparkplug

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
)

// The crash test re-runs this test binary as an edge node process it can
// SIGKILL; the environment tells it what to do.
const (
	envChild  = "SPARKPLUG_TEST_CHILD"
	envBroker = "SPARKPLUG_TEST_BROKER"
	envState  = "SPARKPLUG_TEST_STATE"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(childNode())
	}
	os.Exit(m.Run())
}

// childNode runs an edge node, publishes a few inspections and prints
// "RUNNING" once born; it closes cleanly when stdin reaches EOF.
func childNode() int {
	n, err := New(Options{Brokers: []string{os.Getenv(envBroker)}, ClientID: "spb-child", GroupID: testGroup,
		EdgeNodeID: testNode, DeviceID: testDevice, StateDir: os.Getenv(envState),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err == nil {
		err = n.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; ; i++ {
		if ok, _ := n.Health(); ok {
			break
		}
		if i > 1000 {
			fmt.Fprintln(os.Stderr, "not born within 10s")
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := uint64(1); i <= 3; i++ {
		_ = n.PublishResult(result(i, float64(i)), 0)
	}
	fmt.Println("RUNNING")
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestNDEATHAfterSIGKILL: an edge node process killed with SIGKILL leaves
// its NDEATH to the broker (the Will, QoS 1), with the bdSeq of its
// NBIRTH; the restarted process connects with the next bdSeq, read from
// the state directory, and a clean shutdown publishes the NDEATH itself.
func TestNDEATHAfterSIGKILL(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	h := newHost(t, b.URL, testGroup)
	state := t.TempDir()
	env := []string{envChild + "=1", envBroker + "=" + b.URL, envState + "=" + state}

	var want uint64
	for run := 0; run < 3; run++ {
		mark := h.mark()
		c := testproc.Start(t, env...)
		c.Expect(t, "RUNNING")
		nb := h.wait(mark, "NBIRTH", nil)
		if got := bdSeqOf(t, nb); got != want {
			t.Fatalf("run %d: NBIRTH bdSeq %d, want %d", run, got, want)
		}
		h.wait(mark, "DDATA", nil)
		mark = h.mark()
		if run < 2 {
			c.Kill(t)
		} else {
			c.Stdin.Close()
			if err := <-c.Done; err != nil {
				t.Fatalf("clean shutdown: %v", err)
			}
		}
		nd := h.wait(mark, "NDEATH", nil)
		if got := bdSeqOf(t, nd); got != want {
			t.Fatalf("run %d: NDEATH bdSeq %d, NBIRTH had %d", run, got, want)
		}
		if nd.qos != 1 {
			t.Errorf("run %d: NDEATH delivered at QoS %d, want 1", run, nd.qos)
		}
		data, err := os.ReadFile(filepath.Join(state, BdSeqFile))
		if err != nil || strings.TrimSpace(string(data)) != fmt.Sprint(want) {
			t.Errorf("run %d: %s holds %q (%v), want %d", run, BdSeqFile, data, err, want)
		}
		want++
	}
}
