package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/model"
)

// TestMain lets the test binary run as a daemon child process (see
// runChild) for the tests that kill it.
//
// Most tests of this package wait: on a broker's answer, a daemon's start,
// a child process, a timer. Run one after the other they kept one of two
// cores idle for minutes, the package the last of `make test` to end. The
// tests of more than a second that can share the process call t.Parallel
// and run together once the others are done; these must not:
//   - tests that send SIGHUP (hup, TestSIGHUP*): every daemon Run in the
//     process reloads on it, and their checks count reload log lines;
//   - tests that set environment variables (t.Setenv refuses a parallel
//     test; Run reads NOTIFY_SOCKET, WATCHDOG_*, INSPECTD_SHARE);
//   - tests that measure the process: its resident set (residentMB) or its
//     PID (the state folder lock's words).
//
// They wait far more than they compute: four at once, not GOMAXPROCS
// (two here), keep the two cores busy. go test -parallel N still decides.
func TestMain(m *testing.M) {
	if os.Getenv("INSPECTD_TEST_CHILD") == "daemon" {
		os.Exit(runChild())
	}
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(max(4, runtime.GOMAXPROCS(0))))
	}
	code := m.Run()
	if syntheticModel.dir != "" {
		_ = os.RemoveAll(syntheticModel.dir)
	}
	os.Exit(code)
}

// runChild runs the daemon on $INSPECTD_TEST_CONFIG until its standard
// input ends, printing "started <model id> <result_max_rate>" once up.
func runChild() int {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err := Run(ctx, RunOptions{ConfigPath: os.Getenv("INSPECTD_TEST_CONFIG"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		OnStarted: func(d *Daemon) {
			fmt.Printf("started %s %g\n", d.ModelInfo().ID, d.Config().MQTT.ResultMaxRate)
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// crashRig is a daemon configuration on a broker of its own that the
// crash tests start as a child process (runChild) and kill: a synthetic
// line with the synthetic detector's model in its state folder, remote
// commands on, and a folder of good images to refit on. The two crash
// tests were one of 100 s, mostly waiting on its children: the parallel
// tests resume in no set order, and it ended alone, after the others.
type crashRig struct {
	t         *testing.T
	op        *operator
	cfgPath   string
	modelPath string
	good      string
	det       *model.Detector
	mopts     model.Options
}

func newCrashRig(t *testing.T) *crashRig {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{})
	c := &crashRig{t: t, op: newOperator(t, b.URL)}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	c.det = syntheticDetector(t)
	c.modelPath = filepath.Join(state, "model.safetensors")
	if err := c.det.Save(c.modelPath); err != nil {
		t.Fatal(err)
	}
	c.good = filepath.Join(dir, "good")
	writePNGs(t, c.good, 24, 17, false)
	c.cfgPath = filepath.Join(dir, "inspectd.yaml")
	yaml := "device_id: crash1\nstate_dir: " + state + "\n" +
		syntheticLine + "\n" +
		"model: {features: 16, min_features: 16, position_zscore: false, context_pool: 0}\n" +
		"mqtt: {brokers: [" + b.URL + "], max_reconnect_interval: 1s}\nhttp: {listen: \"\"}\n" +
		"remote: {allow_unsigned: true}\n"
	if err := os.WriteFile(c.cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.mopts, err = ModelOptions(testDefaults(t), testLogger(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs the daemon as a child and returns it with the model id and
// result_max_rate it printed once started.
func (c *crashRig) start() (*testproc.Child, string, string) {
	ch := testproc.Start(c.t, "INSPECTD_TEST_CHILD=daemon", "INSPECTD_TEST_CONFIG="+c.cfgPath)
	f := strings.Fields(ch.Expect(c.t, "started "))
	return ch, f[0], f[1]
}

func (c *crashRig) kill(ch *testproc.Child) {
	_ = ch.Cmd.Process.Kill()
	<-ch.Done
}

// waitCommands waits until the child answers commands (it subscribes on connect).
func (c *crashRig) waitCommands(i int) {
	c.t.Helper()
	id := fmt.Sprintf("hello-%d", i)
	deadline := time.Now().Add(30 * time.Second)
	for len(c.op.got("crash1", id)) == 0 {
		if time.Now().After(deadline) {
			c.t.Fatalf("round %d: the daemon does not answer commands", i)
		}
		c.op.send("inspectd/crash1/cmd/status", `{"id":"`+id+`"}`)
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSIGKILLDuringConfigPush kills the daemon at random points while it
// writes a pushed configuration, 20 times: every restart runs the complete
// old or the complete new configuration, never a mix, never a file that
// does not load.
func TestSIGKILLDuringConfigPush(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the daemon 20 times")
	}
	c := newCrashRig(t)
	op, cfgPath := c.op, c.cfgPath
	rng := rand.New(rand.NewPCG(1, 2))
	rates := map[string]bool{"0": true}
	for i := range 20 {
		ch, _, rate := c.start()
		if !rates[rate] {
			t.Fatalf("round %d: the daemon runs result_max_rate %s, which was never pushed", i, rate)
		}
		onDisk, err := config.Load(cfgPath)
		if err != nil {
			t.Fatalf("round %d: the configuration file does not load after a kill: %v", i, err)
		}
		if got := fmt.Sprint(onDisk.MQTT.ResultMaxRate); got != rate {
			t.Fatalf("round %d: the file says result_max_rate %s, the daemon runs %s", i, got, rate)
		}
		c.waitCommands(i)
		next := fmt.Sprint(i + 1)
		rates[next] = true
		op.send("inspectd/crash1/cmd/config", fmt.Sprintf(`{"id":"push-%d","config":{"mqtt":{"result_max_rate":%s}}}`, i, next))
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		c.kill(ch)
	}
}

// TestSIGKILLDuringRefit kills the daemon at random points while it
// refits, 20 times: every restart runs the complete old or the complete
// new model, never a file that does not load, and the killed refit is
// answered after the restart.
func TestSIGKILLDuringRefit(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the daemon 20 times")
	}
	c := newCrashRig(t)
	op, good, modelPath, mopts := c.op, c.good, c.modelPath, c.mopts
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 { // the kill points of the one test these rounds came from, which pushed a configuration 20 times first
		rng.IntN(60)
	}
	models := map[string]bool{c.det.Info().ID: true}
	for i := range 20 {
		ch, id, _ := c.start()
		if !models[id] {
			models[id] = true // a refit that completed before the kill
		}
		m, err := model.Load(modelPath, mopts)
		if err != nil {
			t.Fatalf("refit round %d: the model file does not load after a kill: %v", i, err)
		}
		if m.Info().ID != id {
			t.Errorf("refit round %d: the file holds model %s, the daemon runs %s", i, m.Info().ID, id)
		}
		m.Close()
		if i > 0 { // the refit killed in the last round is answered: done (the reply was durable) or interrupted
			prev := fmt.Sprintf("refit-%d", i-1)
			deadline := time.Now().Add(30 * time.Second)
			for len(op.got("crash1", prev)) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("refit round %d: the refit killed in the round before got no reply after the restart", i)
				}
				time.Sleep(100 * time.Millisecond)
			}
			for _, r := range op.got("crash1", prev) { // a durable reply may come twice (QoS 1)
				if r["ok"] != true && r["code"] != "interrupted" {
					t.Errorf("refit round %d: the killed refit was answered %v", i, r)
				}
			}
		}
		c.waitCommands(100 + i)
		op.send("inspectd/crash1/cmd/refit", fmt.Sprintf(`{"id":"refit-%d","folder":"%s","max_false_alarm_rate":1}`, i, good))
		time.Sleep(time.Duration(rng.IntN(4000)) * time.Millisecond)
		c.kill(ch)
	}
	t.Logf("%d distinct models across 20 killed refits", len(models))
}
