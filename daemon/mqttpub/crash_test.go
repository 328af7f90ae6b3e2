package mqttpub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// The crash tests re-run this test binary as a publisher process that
// they can SIGKILL; the environment tells it what to do.
const (
	envChild   = "MQTTPUB_TEST_CHILD"
	envBroker  = "MQTTPUB_TEST_BROKER"
	envStore   = "MQTTPUB_TEST_STORE"
	envFirst   = "MQTTPUB_TEST_FIRST"
	envCount   = "MQTTPUB_TEST_COUNT"
	envConnect = "MQTTPUB_TEST_WAIT_CONNECT"
	envPad     = "MQTTPUB_TEST_PAD_REGIONS"
	envQoS2    = "MQTTPUB_TEST_QOS2_RESULTS"
	envGo      = "MQTTPUB_TEST_WAIT_GO"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(childPublisher())
	}
	os.Exit(m.Run())
}

// childPublisher starts a publisher, publishes alarms FIRST..FIRST+COUNT-1
// (padded with PAD_REGIONS regions; QoS 2 results instead with
// QOS2_RESULTS) and reports "QUEUED <depth>" on stdout once Publish has
// returned for all of them (they are then on disk). With WAIT_CONNECT it
// reports "CONNECTED" first, and with WAIT_GO it then waits for a line on
// stdin before publishing. It closes cleanly when stdin reaches EOF.
func childPublisher() int {
	first, _ := strconv.ParseUint(os.Getenv(envFirst), 10, 64)
	count, _ := strconv.ParseUint(os.Getenv(envCount), 10, 64)
	p, err := mqttpub.New(mqttpub.Options{
		Brokers:              []string{os.Getenv(envBroker)},
		DeviceID:             "cam1",
		StoreDir:             os.Getenv(envStore),
		MaxReconnectInterval: 500 * time.Millisecond,
		Logger:               slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := p.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv(envConnect) == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.WaitConnected(ctx)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("CONNECTED")
	}
	in := bufio.NewReader(os.Stdin)
	if os.Getenv(envGo) == "1" {
		_, _ = in.ReadString('\n')
	}
	pad, _ := strconv.Atoi(os.Getenv(envPad))
	for i := first; i < first+count; i++ {
		a := sampleAlarm(i)
		for range pad {
			a.Regions = append(a.Regions, mqttpub.Region{X: 1000, Y: 1000, W: 1000, H: 1000, Area: 1000000})
		}
		var err error
		if os.Getenv(envQoS2) == "1" {
			err = p.PublishResult(sampleResult(i, ""), 2)
		} else {
			err = p.PublishAlarm(a)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Printf("QUEUED %d\n", p.State().Queued)
	_, _ = io.Copy(io.Discard, in)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild runs the test binary as a publisher child process.
func startChild(t *testing.T, env ...string) *testproc.Child {
	t.Helper()
	return testproc.Start(t, append([]string{envChild + "=1"}, env...)...)
}

func countMsgFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.msg"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestSIGKILLWhileBrokerDown: alarms published while the broker is down
// are on disk when Publish returns; the publisher is SIGKILLed, restarted
// (still without broker) and publishes more; when the broker comes back
// every alarm of both runs arrives.
func TestSIGKILLWhileBrokerDown(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Persistence: true})
	topic := mqttpub.TopicsFor(mqttpub.DefaultTopicPrefix, "cam1").Alarm
	sub := collect(t, b.URL, "alarm-counter", true, topic)
	b.Stop() // graceful: the broker saves the counter's session
	store := t.TempDir()
	env := []string{envBroker + "=" + b.URL, envStore + "=" + store}

	first := startChild(t, append(env, envFirst+"=1", envCount+"=20")...)
	if q := first.Expect(t, "QUEUED"); q != "20" {
		t.Fatalf("first run queued %s, want 20", q)
	}
	first.Kill(t)
	if n := countMsgFiles(t, store); n != 20 {
		t.Fatalf("%d messages on disk after SIGKILL, want 20", n)
	}

	second := startChild(t, append(env, envFirst+"=21", envCount+"=10")...)
	if q := second.Expect(t, "QUEUED"); q != "30" {
		t.Fatalf("second run reports %s queued, want 30 (20 recovered + 10 new)", q)
	}
	b.Restart()
	seen := map[uint64]bool{}
	var order []uint64 // first deliveries, in arrival order
	waitFor(t, 20*time.Second, "all 30 alarms", func() bool {
		for _, m := range sub.drain() {
			var a mqttpub.Alarm
			if err := json.Unmarshal(m.payload, &a); err != nil {
				t.Fatalf("alarm payload %q: %v", m.payload, err)
			}
			if !seen[a.Seq] {
				order = append(order, a.Seq)
			}
			seen[a.Seq] = true
		}
		return len(seen) == 30
	})
	for i, s := range order {
		if s != uint64(i+1) {
			t.Fatalf("alarms replayed out of order: %v", order)
		}
	}
	second.Stdin.Close()
	select {
	case err := <-second.Done:
		if err != nil {
			t.Fatalf("second run exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("second run did not exit after Close")
	}
	if n := countMsgFiles(t, store); n != 0 {
		t.Fatalf("%d messages left on disk after everything was acknowledged", n)
	}
}

// TestLastWill: a publisher killed while connected leaves "offline"
// (retained) on the status topic, published by the broker.
func TestLastWill(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	status := mqttpub.TopicsFor(mqttpub.DefaultTopicPrefix, "cam1").Status
	sub := collect(t, b.URL, "watcher", false, status)
	c := startChild(t, envBroker+"="+b.URL, envStore+"="+t.TempDir(), envCount+"=0", envConnect+"=1")
	c.Expect(t, "CONNECTED")
	waitFor(t, 5*time.Second, "online", func() bool {
		m := sub.on(status)
		return len(m) > 0 && string(m[len(m)-1].payload) == "online"
	})
	c.Kill(t)
	waitFor(t, 10*time.Second, "offline from the Last Will", func() bool {
		m := sub.on(status)
		return string(m[len(m)-1].payload) == "offline"
	})
	late := collect(t, b.URL, "late", false, status)
	waitFor(t, 5*time.Second, "retained offline", func() bool {
		m := late.on(status)
		return len(m) == 1 && string(m[0].payload) == "offline" && m[0].retained
	})
}
